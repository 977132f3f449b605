package trainingv1

import (
	"strings"
	"time"

	"github.com/sluice-ml/sluice/libs/events"
)

// Temporal names of the job lifecycle. One workflow runs per job, with
// workflow ID WorkflowID(kind, namespace, name), on TaskQueue.
const (
	// TaskQueue is the Temporal task queue of the training service.
	TaskQueue = "sluice-training"
	// WorkflowType is the registered name of the job lifecycle workflow.
	WorkflowType = "TrainingJob"
	// QueryJob returns the job with its live status as a JobView.
	QueryJob = "job"
	// SignalSuspend suspends a running job: its replicas are terminated and
	// Suspended=True is set (runPolicy.suspend: true).
	SignalSuspend = "suspend"
	// SignalResume resumes a suspended job: every replica that has not
	// succeeded is started again.
	SignalResume = "resume"
	// SignalDelete deletes the job: every replica is terminated, a deleted
	// event is published and the workflow ends.
	SignalDelete = "delete"
	// SignalReplicaStarted is sent by the replica watcher once the
	// replica's process runs (data: ReplicaStarted).
	SignalReplicaStarted = "replica-started"

	// MemoDeleted is the workflow memo key set to true once the job is
	// deleted (by request or ttlSecondsAfterFinished).
	MemoDeleted = "deleted"
	// MemoRequestID is the memo key holding the id of the request (CE id
	// of a job.requested event, or a fresh id for REST) that created the job.
	MemoRequestID = "request_id"
	// MemoKind is the memo key holding the job kind (TFJob, PyTorchJob).
	MemoKind = "kind"
)

// WorkflowID is the business-key workflow ID of a job. The kind is part of
// a job's identity (as in Kubernetes, where a TFJob and a PyTorchJob may
// share a name): "trainjob/<namespace>/<kind>/<name>", kind lower-case
// (KindSegment), e.g. "trainjob/default/tfjob/mnist".
func WorkflowID(kind, namespace, name string) string {
	return "trainjob/" + namespace + "/" + KindSegment(kind) + "/" + name
}

// LegacyWorkflowID is the workflow ID of jobs created before the kind was
// part of their identity, "trainjob/<namespace>/<name>". Such jobs are
// still found (their workflow memo holds the kind), suspended and deleted.
func LegacyWorkflowID(namespace, name string) string {
	return "trainjob/" + namespace + "/" + name
}

// ParseWorkflowID splits a job workflow ID of either form. kind is the
// lower-case KindSegment, "" for a legacy ID; ok is false for another ID.
func ParseWorkflowID(id string) (namespace, kind, name string, ok bool) {
	rest, found := strings.CutPrefix(id, "trainjob/")
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, "/")
	switch len(parts) {
	case 2:
		return parts[0], "", parts[1], parts[0] != "" && parts[1] != ""
	case 3:
		return parts[0], parts[1], parts[2], parts[0] != "" && parts[2] != "" && KindOf(parts[1]) != ""
	}
	return "", "", "", false
}

// KindSegment is a kind as it appears in identifiers (workflow IDs, event
// subjects, store keys, Docker names): lower-case, "tfjob" or "pytorchjob".
func KindSegment(kind string) string { return strings.ToLower(kind) }

// KindOf parses a kind as users write it (TFJob, tfjob, tfjobs, PyTorchJob,
// pytorchjob, pytorchjobs; case-insensitive) into KindTFJob or
// KindPyTorchJob; "" when it is neither.
func KindOf(s string) string {
	switch strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "s") {
	case "tfjob":
		return KindTFJob
	case "pytorchjob":
		return KindPyTorchJob
	}
	return ""
}

// Kinds lists the job kinds in a fixed order.
var Kinds = []string{KindTFJob, KindPyTorchJob}

// EventSubject is the CloudEvents subject of a job's events,
// "jobs/<namespace>/<kind>/<name>" (KindSegment), or "jobs/<namespace>/<name>"
// for a job with a legacy workflow ID (kind "").
func EventSubject(kind, namespace, name string) string {
	if kind == "" {
		return "jobs/" + namespace + "/" + name
	}
	return "jobs/" + namespace + "/" + KindSegment(kind) + "/" + name
}

// JobInput starts the lifecycle workflow of one job.
type JobInput struct {
	// Job is the parsed, defaulted and validated job (status empty).
	Job Job `json:"job"`
	// RequestID identifies the request that created the job (a
	// job.requested CE id, or a fresh id for REST creates).
	RequestID string `json:"requestId"`
	// HeartbeatTimeout bounds how long a lost replica watcher (its worker
	// died) goes unnoticed; 0 means 10 s.
	HeartbeatTimeout time.Duration `json:"heartbeatTimeout,omitempty"`
	// RestartBackoff is the delay before a replica restarted by its restart
	// policy starts again, as kubelet's CrashLoopBackOff: Initial (default
	// 10 s) after the first crash, doubling up to Max (default 5 min); it
	// resets once an attempt ran for 2×Max.
	RestartBackoff Backoff `json:"restartBackoff,omitempty"`
	// HistoryLimit is the history length past which a run continues as new
	// (0: 2000 events, or Temporal's continue-as-new suggestion). Replicas
	// still running are handed over to the next run, which adopts them.
	HistoryLimit int `json:"historyLimit,omitempty"`
	// Network is how replicas address each other: "" gives every replica
	// its own loopback port (local processes); NetworkDNS gives each job a
	// network of its own on which replicas are reached by their service
	// names and declared ports (container runtimes).
	Network string `json:"network,omitempty"`
	// ClusterNamespace is the Kubernetes namespace the job's pods run in
	// under NetworkKubernetes (TF_CONFIG and MASTER_ADDR name Services in it).
	ClusterNamespace string `json:"clusterNamespace,omitempty"`
	// Carry is the state handed over by continue-as-new (nil on the first run).
	Carry *Carry `json:"carry,omitempty"`
}

// Backoff is an exponential restart delay.
type Backoff struct {
	Initial time.Duration `json:"initial,omitempty"`
	Max     time.Duration `json:"max,omitempty"`
}

// Default restart backoff, as kubelet's CrashLoopBackOff.
const (
	DefaultBackoffInitial = 10 * time.Second
	DefaultBackoffMax     = 5 * time.Minute
)

// Delay is the wait before the restart following the n-th consecutive
// crash (n >= 1): Initial·2^(n-1), at most Max.
func (b Backoff) Delay(n int) time.Duration {
	initial, maxD := b.Initial, b.Max
	if initial <= 0 {
		initial = DefaultBackoffInitial
	}
	if maxD <= 0 {
		maxD = DefaultBackoffMax
	}
	d := initial
	for i := 1; i < n && d < maxD; i++ {
		d *= 2
	}
	return min(d, maxD)
}

// Carry is a job lifecycle's state passed to its next run by
// continue-as-new: the job with its status, and every replica.
type Carry struct {
	Replicas  []CarriedReplica `json:"replicas"`
	Restarts  int32            `json:"restarts"`
	Suspended bool             `json:"suspended,omitempty"`
	Ports     map[string]int32 `json:"ports,omitempty"`
	NetMode   string           `json:"netMode,omitempty"`
}

// NetworkDNS is JobInput.Network for replicas reached by service name.
const NetworkDNS = "dns"

// NetworkKubernetes is JobInput.Network for replicas run as pods, each
// reached through its headless Service "<job>-<type>-<i>.<namespace>.svc"
// as training-operator v1.9 creates them.
const NetworkKubernetes = "kubernetes"

// CarriedReplica is one replica in a Carry.
type CarriedReplica struct {
	View  ReplicaView `json:"view"`
	Phase string      `json:"phase"`
	// Crashes counts consecutive restarts (the backoff exponent).
	Crashes int `json:"crashes,omitempty"`
	// Running is set when the replica's current attempt was still running
	// when the run continued as new: the next run follows (adopts) that
	// process, named ProcessName, instead of starting another.
	Running     bool   `json:"running,omitempty"`
	ProcessName string `json:"processName,omitempty"`
}

// JobResult is the workflow's result: the job as it finished.
type JobResult struct {
	View JobView `json:"view"`
}

// ReplicaState names the state of one replica in a JobView: the pod phases
// Pending, Running, Succeeded, Failed, plus Terminated for a replica the
// service stopped (cleanPodPolicy, suspend, delete).
type ReplicaState string

const (
	ReplicaPending    ReplicaState = "Pending"
	ReplicaRunning    ReplicaState = "Running"
	ReplicaSucceeded  ReplicaState = "Succeeded"
	ReplicaFailed     ReplicaState = "Failed"
	ReplicaTerminated ReplicaState = "Terminated"
)

// ReplicaView is one replica of a job as the lifecycle sees it.
type ReplicaView struct {
	// Name is the pod-style name "<job>-<type>-<index>".
	Name  string       `json:"name"`
	Type  ReplicaType  `json:"type"`
	Index int32        `json:"index"`
	State ReplicaState `json:"state"`
	// Attempt counts the processes started for this replica (1 = first).
	Attempt int `json:"attempt"`
	// Restarts counts restarts decided by the restart policy.
	Restarts int32 `json:"restarts"`
	// ExitCode of the last process that ended (nil while none has).
	ExitCode *int32 `json:"exitCode,omitempty"`
	// Reason of the last exit (Completed, Error, Killed, Lost, ...).
	Reason string `json:"reason,omitempty"`
	// Address is host:port the replica listens on (local runtime).
	Address string `json:"address,omitempty"`
	// StartedAt is when the current attempt's process started.
	StartedAt *time.Time `json:"startedAt,omitempty"`
	// LogURI is the s3:// URI of the last finished attempt's log.
	LogURI string `json:"logUri,omitempty"`
	// RestartAt is when a replica waiting in CrashLoopBackOff (Reason of
	// the last exit kept) starts again; nil otherwise.
	RestartAt *time.Time `json:"restartAt,omitempty"`
	// TFConfig is the TF_CONFIG value the replica's process gets, exactly
	// as training-operator v1.9 sets it (TFJobs with more than one replica;
	// "" otherwise). Filled by QueryJob, not kept in workflow state.
	TFConfig string `json:"tfConfig,omitempty"`
}

// LogName is the replica's short name in log keys and the logs endpoint,
// "<lower type>-<index>", e.g. "worker-0".
func (r ReplicaView) LogName() string {
	n := ReplicaName("x", r.Type, r.Index)
	return n[2:]
}

// JobView is a job with its live status and replicas: the answer of
// QueryJob and of GET /apis/training/v1/namespaces/{ns}/jobs/{name}.
type JobView struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// State is the type of the last condition (kubectl's State column).
	State JobConditionType `json:"state"`
	// Job is the document with spec and status.
	Job      Job           `json:"job"`
	Replicas []ReplicaView `json:"replicas"`
	// Restarts is the sum of restarts that count toward backoffLimit.
	Restarts int32 `json:"restarts"`
	// Deleted is true once the job was deleted (request or TTL).
	Deleted bool `json:"deleted,omitempty"`
	// ModelURI is the exported model directory recorded on success.
	ModelURI string `json:"modelUri,omitempty"`
}

// ReplicaStarted is the data of SignalReplicaStarted.
type ReplicaStarted struct {
	Name    string    `json:"name"`
	Attempt int       `json:"attempt"`
	Time    time.Time `json:"time"`
}

// JobEvent is the data of every io.sluice.training.job.*.v1 transition
// event (created, running, restarting, succeeded, failed, suspended,
// resumed, deleted).
type JobEvent struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Condition is the condition that became true (Created, Running, ...;
	// "Deleted" for deletion).
	Condition string `json:"condition"`
	Reason    string `json:"reason,omitempty"`
	Message   string `json:"message,omitempty"`
	// ReplicaStatuses are the counts by replica type at the transition.
	ReplicaStatuses map[ReplicaType]*ReplicaStatus `json:"replicaStatuses,omitempty"`
	Time            time.Time                      `json:"time"`
}

// Rejected is the data of io.sluice.training.job.rejected.v1: a request that
// created nothing.
type Rejected struct {
	// RequestID is the CE id of the refused job.requested event.
	RequestID string `json:"requestId"`
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	// Errors lists every problem, each naming its field path.
	Errors []string `json:"errors"`
}

// ModelExported is the data of io.sluice.training.model.exported.v1,
// published when a job whose chief exported a model to an s3:// exportDir
// succeeds, for lineage.
type ModelExported struct {
	// Job is "<namespace>/<name>"; Kind TFJob or PyTorchJob.
	Job  string `json:"job"`
	Kind string `json:"kind"`
	// URI is the s3:// URI of the exported model version directory.
	URI string `json:"uri"`
	// ModelURI is the model file (model.onnx) when present.
	ModelURI string `json:"modelUri,omitempty"`
	// Digest is "sha256:<hex>" of the model file, or of the directory
	// listing (relative path NUL digest NL lines) when there is none.
	Digest string `json:"digest"`
	// Metrics is the content of metrics.json.
	Metrics map[string]any `json:"metrics,omitempty"`
	Time    time.Time      `json:"time"`
}

// EventTypeFor maps a condition type to its transition event type
// ("" for none).
func EventTypeFor(c JobConditionType) string {
	switch c {
	case JobCreated:
		return events.TrainingJobCreatedV1
	case JobRunning:
		return events.TrainingJobRunningV1
	case JobRestarting:
		return events.TrainingJobRestartingV1
	case JobSucceeded:
		return events.TrainingJobSucceededV1
	case JobFailed:
		return events.TrainingJobFailedV1
	case JobSuspended:
		return events.TrainingJobSuspendedV1
	}
	return ""
}

// JobDeletionRequest is the data of io.sluice.training.job-deletion.requested.v1: delete the job
// Kind Namespace/Name (Kind TFJob or PyTorchJob; empty when only one kind has a job of that name).
// The job's replicas are stopped and io.sluice.training.job.deleted.v1 is published; a job that does
// not exist (already deleted) makes the request a no-op.
type JobDeletionRequest struct {
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}
