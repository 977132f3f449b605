package notebooksv1

import "time"

// Tensorboard document identity, as Kubeflow's tensorboard-controller defines the resource.
const (
	TensorboardAPIVersion = "tensorboard.kubeflow.org/v1alpha1"
	TensorboardKind       = "Tensorboard"
)

// TensorboardWorkflowType is the registered name of the Tensorboard lifecycle workflow (same task queue
// as notebooks, TaskQueue).
const TensorboardWorkflowType = "TensorboardLifecycle"

// TensorboardWorkflowID returns the business-key workflow ID of a Tensorboard: "tensorboard/<namespace>/<name>".
func TensorboardWorkflowID(namespace, name string) string {
	return "tensorboard/" + namespace + "/" + name
}

// TensorboardPathPrefix is the URL prefix a Tensorboard is served under, "/tensorboard/<namespace>/<name>/"
// (the prefix Kubeflow's controller gives its VirtualService).
func TensorboardPathPrefix(namespace, name string) string {
	return "/tensorboard/" + namespace + "/" + name + "/"
}

// Tensorboard is a tensorboard.kubeflow.org/v1alpha1 Tensorboard.
type Tensorboard struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   ObjectMeta        `json:"metadata"`
	Spec       TensorboardSpec   `json:"spec"`
	Status     TensorboardStatus `json:"status,omitzero"`
}

// TensorboardSpec is the desired state: where the event files are.
type TensorboardSpec struct {
	// LogsPath is "s3://<bucket>/<prefix>" or "pvc://<claim>/<path>" (Kubeflow's two forms; Kubeflow also
	// accepts gs://, which Sluice does not serve).
	LogsPath string `json:"logspath"`
}

// TensorboardStatus mirrors the controller's status, plus the URL Sluice serves the board at.
type TensorboardStatus struct {
	// Conditions hold the Deployment condition type the controller copies: "Available" once the logs
	// path answered, "Progressing" before, "ReplicaFailure" when it cannot be read.
	Conditions []TensorboardCondition `json:"conditions"`
	// ReadyReplicas is 1 when the board serves, else 0.
	ReadyReplicas int32 `json:"readyReplicas"`
	// URL is the board's path on the API port, TensorboardPathPrefix (Sluice addition).
	URL string `json:"url,omitempty"`
	// Message explains a ReplicaFailure (Sluice addition).
	Message string `json:"message,omitempty"`
}

// TensorboardCondition is one observed state.
type TensorboardCondition struct {
	DeploymentState string    `json:"deploymentState"`
	LastProbeTime   time.Time `json:"lastProbeTime,omitzero"`
}

// Deployment condition types used in TensorboardCondition.DeploymentState.
const (
	TensorboardAvailable      = "Available"
	TensorboardProgressing    = "Progressing"
	TensorboardReplicaFailure = "ReplicaFailure"
)

// TensorboardList is the list answer.
type TensorboardList struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Items      []Tensorboard `json:"items"`
}

// TensorboardInput is the lifecycle workflow's input.
type TensorboardInput struct {
	Tensorboard Tensorboard `json:"tensorboard"`
	// RequestID identifies the create request (idempotent retries).
	RequestID string `json:"requestId,omitempty"`
}

// TensorboardResult is the lifecycle workflow's result (when the board is deleted).
type TensorboardResult struct {
	Deleted bool `json:"deleted"`
}

// SignalTensorboardDelete ends a Tensorboard's workflow (no payload).
const SignalTensorboardDelete = "tensorboard-delete"

// QueryTensorboard returns the live Tensorboard.
const QueryTensorboard = "tensorboard"
