// Package notebooksv1 is the public contract of the Sluice notebooks service: the Notebook resource (the
// kubeflow.org/v1 Notebook document per Kubeflow's notebook-controller, plus a compact local form), its
// status, the REST shapes under /apis/notebooks/v1, the event payloads and the Temporal workflow I/O.
package notebooksv1

import "time"

// TaskQueue is the Temporal task queue of the notebook lifecycle workflow and its activities.
const TaskQueue = "sluice-notebooks"

// WorkflowType is the registered name of the lifecycle workflow.
const WorkflowType = "NotebookLifecycle"

// WorkflowID returns the business-key workflow ID of a notebook: "notebook/<namespace>/<name>".
func WorkflowID(namespace, name string) string { return "notebook/" + namespace + "/" + name }

// PathPrefix returns the URL prefix a notebook is served under, "/notebook/<namespace>/<name>/" (the value
// Kubeflow passes to the server as NB_PREFIX plus a trailing slash).
func PathPrefix(namespace, name string) string { return "/notebook/" + namespace + "/" + name + "/" }

// Document identity of the Kubeflow form.
const (
	APIVersion = "kubeflow.org/v1"
	Kind       = "Notebook"
)

// Annotations used with Kubeflow's meaning.
const (
	// AnnotationStopped marks a notebook whose server is scaled to zero; its value is the RFC 3339 time of the stop.
	AnnotationStopped = "kubeflow-resource-stopped"
	// AnnotationLastActivity is the RFC 3339 time of the last kernel activity seen by the culler.
	AnnotationLastActivity = "notebooks.kubeflow.org/last-activity"
	// AnnotationLastActivityCheck is the RFC 3339 time of the culler's last probe.
	AnnotationLastActivityCheck = "notebooks.kubeflow.org/last_activity_check_timestamp"
)

// Notebook is a kubeflow.org/v1 Notebook. Pod template fields the local runtime does not use (volumes,
// affinity, …) are accepted, kept (PodSpec.Extra, Container.Extra) and ignored by it; the Kubernetes runtime
// passes them to the StatefulSet's pod template.
type Notebook struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   ObjectMeta     `json:"metadata"`
	Spec       NotebookSpec   `json:"spec"`
	Status     NotebookStatus `json:"status,omitzero"`
}

// ObjectMeta is the subset of Kubernetes object metadata a notebook uses.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// CreationTimestamp is set by Sluice when the notebook is created.
	CreationTimestamp *time.Time `json:"creationTimestamp,omitempty"`
}

// NotebookSpec is just a pod template, per Kubeflow's Notebook CRD.
type NotebookSpec struct {
	Template PodTemplateSpec `json:"template"`
}

// PodTemplateSpec wraps the pod spec.
type PodTemplateSpec struct {
	Spec PodSpec `json:"spec"`
}

// PodSpec is a Kubernetes PodSpec: the fields a local notebook server uses are typed; containers[0] is the
// server. Every other field (volumes, securityContext, serviceAccountName, nodeSelector, …) is kept as given
// in Extra, so the Kubernetes runtime creates the pod template from the Notebook spec unmodified.
type PodSpec struct {
	Containers []Container `json:"containers"`
	// Extra holds the pod spec's other fields, by JSON name, as given (marshalled inline).
	Extra Fields `json:"-"`
}

// Container is the subset of a Kubernetes container a notebook server uses.
type Container struct {
	Name    string   `json:"name,omitempty"`
	Image   string   `json:"image"`
	Command []string `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	Env     []EnvVar `json:"env,omitempty"`
	// Resources holds Kubernetes quantities ("500m", "1Gi") per resource name.
	Resources ResourceRequirements `json:"resources,omitzero"`
	// WorkingDir is informational for the local runtime (the notebook directory is always its own).
	WorkingDir string `json:"workingDir,omitempty"`
	// Extra holds the container's other Kubernetes fields (ports, volumeMounts, imagePullPolicy, …), by JSON
	// name, as given (marshalled inline); the local runtime ignores them.
	Extra Fields `json:"-"`
}

// EnvVar is a literal environment variable (valueFrom is not supported and is refused by validation).
type EnvVar struct {
	Name      string `json:"name"`
	Value     string `json:"value,omitempty"`
	ValueFrom any    `json:"valueFrom,omitempty"`
}

// ResourceRequirements holds requests and limits as Kubernetes quantity strings.
type ResourceRequirements struct {
	Limits   map[string]string `json:"limits,omitempty"`
	Requests map[string]string `json:"requests,omitempty"`
}

// LocalNotebook is the compact form accepted by REST, the CLI and events:
//
//	{"name": "nb1", "namespace": "team-a", "image": "jupyter/base", "env": {"K": "V"},
//	 "args": ["--NotebookApp.iopub_data_rate_limit=1e10"], "cpu": "1", "memory": "1Gi", "stopped": false}
//
// It is told apart from the Kubeflow form by the absence of "apiVersion"/"kind".
type LocalNotebook struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"`
	Image     string            `json:"image,omitempty"`
	Command   []string          `json:"command,omitempty"`
	Args      []string          `json:"args,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	CPU       string            `json:"cpu,omitempty"`
	Memory    string            `json:"memory,omitempty"`
	Stopped   bool              `json:"stopped,omitempty"`
}

// Condition types, per Kubeflow's notebook-controller (they mirror the container state).
const (
	ConditionRunning    = "Running"
	ConditionWaiting    = "Waiting"
	ConditionTerminated = "Terminated"
)

// Condition reasons Sluice sets.
const (
	ReasonStarting         = "ContainerCreating"
	ReasonReady            = "Ready"
	ReasonStopped          = "Stopped"
	ReasonCulled           = "Culled"
	ReasonCrashLoopBackOff = "CrashLoopBackOff"
	ReasonRestarting       = "Restarting"
	ReasonError            = "Error"
	ReasonDeleted          = "Deleted"
)

// NotebookStatus is the observed state, per Kubeflow's Notebook status.
type NotebookStatus struct {
	Conditions     []Condition    `json:"conditions,omitempty"`
	ReadyReplicas  int32          `json:"readyReplicas"`
	ContainerState ContainerState `json:"containerState,omitzero"`
	// URL is the proxied address of the server ("/notebook/<ns>/<name>/"), set while it runs (Sluice extension).
	URL string `json:"url,omitempty"`
	// Restarts counts unexpected server exits since the last start (Sluice extension).
	Restarts int `json:"restarts,omitempty"`
}

// Condition is one status condition (Kubernetes-style; status is "True" or "False").
type Condition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"`
	Reason             string    `json:"reason,omitempty"`
	Message            string    `json:"message,omitempty"`
	LastProbeTime      time.Time `json:"lastProbeTime,omitzero"`
	LastTransitionTime time.Time `json:"lastTransitionTime,omitzero"`
}

// ContainerState mirrors a Kubernetes container state: exactly one member is set.
type ContainerState struct {
	Running    *ContainerStateRunning    `json:"running,omitempty"`
	Waiting    *ContainerStateWaiting    `json:"waiting,omitempty"`
	Terminated *ContainerStateTerminated `json:"terminated,omitempty"`
}

// ContainerStateRunning is a running server.
type ContainerStateRunning struct {
	StartedAt time.Time `json:"startedAt,omitzero"`
}

// ContainerStateWaiting is a server being started or restarted.
type ContainerStateWaiting struct {
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// ContainerStateTerminated is a server that is not running (stopped, culled, crashed).
type ContainerStateTerminated struct {
	ExitCode   int       `json:"exitCode"`
	Reason     string    `json:"reason,omitempty"`
	Message    string    `json:"message,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// NotebookList is the answer of GET /apis/notebooks/v1/namespaces/{ns}/notebooks.
type NotebookList struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Items      []Notebook `json:"items"`
}

// Event is the data of every io.sluice.notebook.server.*.v1 event.
type Event struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// URL is the proxied address (running events).
	URL string `json:"url,omitempty"`
	// Reason and Message explain stops, culls and failures.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// ExitCode is the server's exit code (failed events).
	ExitCode int `json:"exitCode,omitempty"`
	// SpawnSeconds is the request-to-ready time (running events).
	SpawnSeconds float64 `json:"spawnSeconds,omitempty"`
}

// Rejection is the data of an io.sluice.notebook.rejected.v1 event.
type Rejection struct {
	// RequestID is the CE id of the refused request.
	RequestID string `json:"requestId"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	// Reason is "Invalid" or "AlreadyExists"; Message lists the field errors.
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Actions carried by the control signal.
const (
	ActionStop   = "stop"
	ActionStart  = "start"
	ActionDelete = "delete"
)

// SignalControl is the signal name for stop/start/delete; its payload is a Control.
const SignalControl = "notebook-control"

// QueryNotebook is the query that returns the current Notebook (spec, annotations and status).
const QueryNotebook = "notebook"

// Control asks the lifecycle workflow to stop, start or delete its notebook.
type Control struct {
	Action string `json:"action"`
	// Reason is recorded on the resulting condition ("user" when empty).
	Reason string `json:"reason,omitempty"`
}

// CullingPolicy is Kubeflow's culling configuration (ENABLE_CULLING, CULL_IDLE_TIME, IDLENESS_CHECK_PERIOD).
type CullingPolicy struct {
	Enabled     bool          `json:"enabled"`
	IdleTime    time.Duration `json:"idleTime"`
	CheckPeriod time.Duration `json:"checkPeriod"`
}

// CrashPolicy stops a server that exits unexpectedly MaxRestarts times within Window.
type CrashPolicy struct {
	MaxRestarts int           `json:"maxRestarts"`
	Window      time.Duration `json:"window"`
	// Backoff is the first restart delay; it doubles per restart within the window.
	Backoff time.Duration `json:"backoff"`
}

// LifecycleInput is the lifecycle workflow's one input. Carry (internal state) is set on continue-as-new.
type LifecycleInput struct {
	Notebook Notebook      `json:"notebook"`
	Culling  CullingPolicy `json:"culling"`
	Crash    CrashPolicy   `json:"crash"`
	// RequestID is the id of the request that created the notebook (a CE id or a REST request id).
	RequestID string `json:"requestId"`
	// RequestedAt is when the request arrived, for the spawn-time figure.
	RequestedAt time.Time       `json:"requestedAt"`
	Carry       *LifecycleCarry `json:"carry,omitempty"`
}

// LifecycleCarry is the state a lifecycle run hands to its continuation.
type LifecycleCarry struct {
	Generation   int         `json:"generation"`
	EventSeq     int         `json:"eventSeq"`
	CrashTimes   []time.Time `json:"crashTimes,omitempty"`
	Serving      bool        `json:"serving"`
	ServerStart  time.Time   `json:"serverStart,omitzero"`
	PendingSpawn bool        `json:"pendingSpawn,omitempty"`
}

// LifecycleResult is the lifecycle workflow's one output (it ends when the notebook is deleted).
type LifecycleResult struct {
	Notebook Notebook `json:"notebook"`
}
