// Package trainingv1 holds the wire types of the training service: the
// kubeflow.org/v1 TFJob and PyTorchJob documents users submit (per
// training-operator v1), their status, and a kind-neutral Job wrapper.
//
// The types decode Kubeflow YAML/JSON unmodified: pod templates are the
// Kubernetes core/v1 types (k8s.io/api v0.37.2) so volumes, volumeMounts,
// resources and every other pod field parse, and unknown fields are ignored
// as the Kubernetes API server does for non-strict decoding.
package trainingv1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// API group, versions and kinds accepted by the training service.
const (
	// GroupVersion is the apiVersion of documents the service emits.
	GroupVersion = "kubeflow.org/v1"
	// GroupVersionV1Beta2 is the legacy TFJob apiVersion, accepted on input
	// and converted to GroupVersion.
	GroupVersionV1Beta2 = "kubeflow.org/v1beta2"

	KindTFJob      = "TFJob"
	KindPyTorchJob = "PyTorchJob"
)

// ReplicaType names a role in a job: the key of tfReplicaSpecs or
// pytorchReplicaSpecs.
type ReplicaType string

// Replica types of TFJob (Chief, Master, PS, Worker, Evaluator) and
// PyTorchJob (Master, Worker), in their canonical CamelCase spelling.
const (
	ReplicaTypeChief     ReplicaType = "Chief"
	ReplicaTypeMaster    ReplicaType = "Master"
	ReplicaTypePS        ReplicaType = "PS"
	ReplicaTypeWorker    ReplicaType = "Worker"
	ReplicaTypeEvaluator ReplicaType = "Evaluator"
)

// RestartPolicy says what happens to a replica whose process exits.
type RestartPolicy string

const (
	// RestartPolicyAlways restarts the replica whatever its exit code.
	RestartPolicyAlways RestartPolicy = "Always"
	// RestartPolicyOnFailure restarts the replica when it exits non-zero.
	RestartPolicyOnFailure RestartPolicy = "OnFailure"
	// RestartPolicyNever never restarts the replica; a non-zero exit fails it.
	RestartPolicyNever RestartPolicy = "Never"
	// RestartPolicyExitCode decides by the exit code of the default
	// container: 1-127 are permanent failures, 128 and above are retried.
	RestartPolicyExitCode RestartPolicy = "ExitCode"
)

// CleanPodPolicy says which replicas are deleted when the job finishes.
type CleanPodPolicy string

const (
	CleanPodPolicyAll     CleanPodPolicy = "All"
	CleanPodPolicyRunning CleanPodPolicy = "Running"
	CleanPodPolicyNone    CleanPodPolicy = "None"
)

// SuccessPolicy says when a TFJob without a chief/master has succeeded.
type SuccessPolicy string

const (
	// SuccessPolicyDefault: the job succeeds when worker 0 succeeds.
	SuccessPolicyDefault SuccessPolicy = ""
	// SuccessPolicyAllWorkers: the job succeeds when every worker succeeds.
	SuccessPolicyAllWorkers SuccessPolicy = "AllWorkers"
)

// Defaults applied by the training-operator defaulter.
const (
	TFJobDefaultContainerName = "tensorflow"
	TFJobDefaultPortName      = "tfjob-port"
	TFJobDefaultPort          = int32(2222)
	TFJobDefaultRestartPolicy = RestartPolicyNever

	PyTorchJobDefaultContainerName = "pytorch"
	PyTorchJobDefaultPortName      = "pytorchjob-port"
	PyTorchJobDefaultPort          = int32(23456)
	PyTorchJobDefaultRestartPolicy = RestartPolicyOnFailure
	// PyTorchJobDefaultNprocPerNode is the defaulted spec.nprocPerNode.
	PyTorchJobDefaultNprocPerNode = "auto"
)

// ReplicaSpec describes one replica type.
type ReplicaSpec struct {
	// Replicas is the number of processes of this type; defaulted to 1.
	Replicas *int32 `json:"replicas,omitempty"`
	// Template is the pod each replica runs.
	Template corev1.PodTemplateSpec `json:"template,omitempty"`
	// RestartPolicy overrides the pod template's restartPolicy; defaulted to
	// Never (TFJob) or OnFailure (PyTorchJob).
	RestartPolicy RestartPolicy `json:"restartPolicy,omitempty"`
}

// SchedulingPolicy is accepted for compatibility (gang scheduling); the
// local and Docker runtimes ignore it.
type SchedulingPolicy struct {
	MinAvailable           *int32               `json:"minAvailable,omitempty"`
	Queue                  string               `json:"queue,omitempty"`
	MinResources           *corev1.ResourceList `json:"minResources,omitempty"`
	PriorityClass          string               `json:"priorityClass,omitempty"`
	ScheduleTimeoutSeconds *int32               `json:"scheduleTimeoutSeconds,omitempty"`
}

// RunPolicy is the kind-independent part of a job's execution policy.
type RunPolicy struct {
	// CleanPodPolicy: which replicas to delete after the job finishes; defaulted to None.
	CleanPodPolicy *CleanPodPolicy `json:"cleanPodPolicy,omitempty"`
	// TTLSecondsAfterFinished deletes the job this many seconds after completionTime.
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
	// ActiveDeadlineSeconds fails the job this many seconds after startTime.
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`
	// BackoffLimit is the number of restarts before the job is failed.
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`
	// SchedulingPolicy is accepted and kept; it has no effect outside Kubernetes.
	SchedulingPolicy *SchedulingPolicy `json:"schedulingPolicy,omitempty"`
	// Suspend deletes the replicas and keeps the job until resumed.
	Suspend *bool `json:"suspend,omitempty"`
	// ManagedBy names the controller that owns the job.
	ManagedBy *string `json:"managedBy,omitempty"`
}

// TFJobSpec is the spec of a TFJob.
type TFJobSpec struct {
	RunPolicy RunPolicy `json:"runPolicy"`
	// SuccessPolicy is "" (worker 0 or chief/master decides) or AllWorkers.
	SuccessPolicy *SuccessPolicy `json:"successPolicy,omitempty"`
	// TFReplicaSpecs maps Chief, Master, PS, Worker and Evaluator to their specs.
	TFReplicaSpecs map[ReplicaType]*ReplicaSpec `json:"tfReplicaSpecs"`
	// EnableDynamicWorker emits the sparse TF_CONFIG and lets workers fail
	// without failing the job.
	EnableDynamicWorker bool `json:"enableDynamicWorker,omitempty"`
}

// TFJob is a distributed TensorFlow job (kubeflow.org/v1, kind TFJob).
type TFJob struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TFJobSpec `json:"spec,omitempty"`
	Status JobStatus `json:"status,omitempty"`
}

// RDZVBackend is the torch elastic rendezvous backend.
type RDZVBackend string

const (
	BackendC10D   RDZVBackend = "c10d"
	BackendETCD   RDZVBackend = "etcd"
	BackendETCDv2 RDZVBackend = "etcd-v2"
)

// RDZVConf is one key=value rendezvous option.
type RDZVConf struct {
	Key   string `json:"key,omitempty"`
	Value string `json:"value,omitempty"`
}

// ElasticPolicy configures torch elastic (torchrun) jobs.
type ElasticPolicy struct {
	MinReplicas  *int32       `json:"minReplicas,omitempty"`
	MaxReplicas  *int32       `json:"maxReplicas,omitempty"`
	RDZVBackend  *RDZVBackend `json:"rdzvBackend,omitempty"`
	RDZVPort     *int32       `json:"rdzvPort,omitempty"`
	RDZVHost     *string      `json:"rdzvHost,omitempty"`
	RDZVID       *string      `json:"rdzvId,omitempty"`
	RDZVConf     []RDZVConf   `json:"rdzvConf,omitempty"`
	Standalone   *bool        `json:"standalone,omitempty"`
	NProcPerNode *int32       `json:"nProcPerNode,omitempty"`
	MaxRestarts  *int32       `json:"maxRestarts,omitempty"`
}

// PyTorchJobSpec is the spec of a PyTorchJob.
type PyTorchJobSpec struct {
	RunPolicy     RunPolicy      `json:"runPolicy"`
	ElasticPolicy *ElasticPolicy `json:"elasticPolicy,omitempty"`
	// PyTorchReplicaSpecs maps Master and Worker to their specs.
	PyTorchReplicaSpecs map[ReplicaType]*ReplicaSpec `json:"pytorchReplicaSpecs"`
	// NprocPerNode is auto, cpu, gpu or an integer; defaulted to auto.
	NprocPerNode *string `json:"nprocPerNode,omitempty"`
}

// PyTorchJob is a distributed PyTorch job (kubeflow.org/v1, kind PyTorchJob).
type PyTorchJob struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PyTorchJobSpec `json:"spec,omitempty"`
	Status JobStatus      `json:"status,omitempty"`
}

// JobConditionType is the type of a job condition.
type JobConditionType string

const (
	JobCreated    JobConditionType = "Created"
	JobRunning    JobConditionType = "Running"
	JobRestarting JobConditionType = "Restarting"
	JobSucceeded  JobConditionType = "Succeeded"
	JobSuspended  JobConditionType = "Suspended"
	JobFailed     JobConditionType = "Failed"
)

// JobCondition is one entry of status.conditions.
type JobCondition struct {
	Type   JobConditionType       `json:"type"`
	Status corev1.ConditionStatus `json:"status"`
	// Reason is "<Kind><Reason>", e.g. TFJobRunning.
	Reason             string      `json:"reason,omitempty"`
	Message            string      `json:"message,omitempty"`
	LastUpdateTime     metav1.Time `json:"lastUpdateTime,omitempty"`
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`
}

// ReplicaStatus counts the replicas of one type by state.
type ReplicaStatus struct {
	Active    int32 `json:"active,omitempty"`
	Succeeded int32 `json:"succeeded,omitempty"`
	Failed    int32 `json:"failed,omitempty"`
	// Selector is the label selector of the replicas, as a string.
	Selector string `json:"selector,omitempty"`
}

// JobStatus is the observed state of a job.
type JobStatus struct {
	Conditions        []JobCondition                 `json:"conditions,omitempty"`
	ReplicaStatuses   map[ReplicaType]*ReplicaStatus `json:"replicaStatuses,omitempty"`
	StartTime         *metav1.Time                   `json:"startTime,omitempty"`
	CompletionTime    *metav1.Time                   `json:"completionTime,omitempty"`
	LastReconcileTime *metav1.Time                   `json:"lastReconcileTime,omitempty"`
}
