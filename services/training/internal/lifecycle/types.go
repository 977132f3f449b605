// Package lifecycle runs training jobs: one Temporal workflow per job
// (JobWorkflow, workflow ID trainingv1.WorkflowID) that starts every
// replica through libs/runtime, watches each with one long-running,
// heartbeating activity (WatchReplica), and applies training-operator v1's
// rules from package jobstatus: restartPolicy, backoffLimit, successPolicy,
// activeDeadlineSeconds and ttlSecondsAfterFinished (as workflow timers),
// cleanPodPolicy, suspend/resume and delete (signals). Every transition is
// published as an io.sluice.training.job.*.v1 event with a deterministic id.
//
// Worker loss: replica processes are children of the service (the local
// runtime kills them when the service dies). When the service is restarted,
// Temporal retries the replica's watcher after its heartbeat timeout; a
// retried watcher never adopts a process, it reports the replica Lost, and
// the workflow recreates it as training-operator recreates a pod deleted
// under it: under every restart policy, without counting toward
// backoffLimit and without a Restarting condition.
package lifecycle

import (
	"encoding/json"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/internal/clusterspec"
)

// ReplicaRun is the input of WatchReplica: one attempt of one replica.
type ReplicaRun struct {
	Namespace string `json:"namespace"`
	JobName   string `json:"jobName"`
	// UID is the job's metadata.uid; logs and work dirs are keyed by it
	// (empty for runs started before job UIDs).
	UID string `json:"uid,omitempty"`
	// Kind is the job's trainingv1.KindSegment ("tfjob", "pytorchjob");
	// store keys, work dirs and Docker names are qualified by it. Empty
	// for jobs with a legacy workflow ID (created before the kind was part
	// of a job's identity), which keep their unqualified layout.
	Kind string `json:"kind,omitempty"`
	// Replica is the replica's type and index; Name its pod-style name.
	Replica clusterspec.Replica `json:"replica"`
	Name    string              `json:"name"`
	// LogName is "<type>-<index>", used in log keys.
	LogName string `json:"logName"`
	Attempt int    `json:"attempt"`
	// ProcessName is the runtime Spec.Name (unique per job and attempt; it
	// keeps the name given by the workflow run that started the attempt).
	ProcessName string `json:"processName"`
	// Adopt: the attempt was started by an earlier run of the workflow,
	// which continued as new while it ran; the watcher follows the running
	// process instead of starting one (Lost when this worker has none).
	Adopt      bool              `json:"adopt,omitempty"`
	Image      string            `json:"image"`
	Command    []string          `json:"command"`
	Args       []string          `json:"args,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	WorkingDir string            `json:"workingDir,omitempty"`
	// Network is JobInput.Network.
	Network string `json:"network,omitempty"`
	// Claims are the default container's volumeMounts of
	// persistentVolumeClaim volumes (container runtimes mount each claim
	// as a named volume; the local runtime ignores them).
	Claims []ClaimMount `json:"claims,omitempty"`
	// Kube is set under trainingv1.NetworkKubernetes: the pod and the
	// job object the Kubernetes runtime creates (see KubeReplica).
	Kube *KubeReplica `json:"kube,omitempty"`
}

// ClaimMount is one volumeMount of a persistentVolumeClaim volume.
type ClaimMount struct {
	Claim     string `json:"claim"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// Exit reasons reported by WatchReplica besides the runtime's.
const (
	// ReasonLost: the watcher was retried (its worker died) and the
	// process is gone.
	ReasonLost = "Lost"
	// ReasonStartError: the process could not be started (code 127).
	ReasonStartError = "StartError"
	// ReasonTerminated: the service stopped the replica.
	ReasonTerminated = "Terminated"
	// ReasonDetached: the watcher's workflow run continued as new while the
	// replica ran; the process was left to the next run's watcher (the
	// result goes nowhere).
	ReasonDetached = "Detached"
)

// ReplicaExit is how one attempt ended.
type ReplicaExit struct {
	// Code is the exit code (128+N for signal N; 127 when the program
	// could not be started; -1 when unknown).
	Code    int32  `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
	// Lost is set when the process vanished with its worker.
	Lost   bool   `json:"lost,omitempty"`
	LogURI string `json:"logUri,omitempty"`
}

// PurgeInput names a deleted job whose logs and work dirs are removed.
type PurgeInput struct {
	Namespace string `json:"namespace"`
	// Kind is ReplicaRun.Kind ("" for the legacy layout).
	Kind    string `json:"kind,omitempty"`
	JobName string `json:"jobName"`
	UID     string `json:"uid"`
}

// PublishInput is one event to publish with a deterministic id.
type PublishInput struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Subject string          `json:"subject"`
	Data    json.RawMessage `json:"data"`
}

// ExportInput asks RecordExport to look for the model a succeeded job
// exported under ExportDir and publish TrainingModelExportedV1.
type ExportInput struct {
	Job       string `json:"job"`
	Kind      string `json:"kind"`
	ExportDir string `json:"exportDir"`
	EventID   string `json:"eventId"`
	// Subject is the event's subject (default "jobs/<Job>").
	Subject string `json:"subject,omitempty"`
}

// jobKey is "<namespace>/<name>" of a job.
func jobKey(job *trainingv1.Job) string { return job.Key() }
