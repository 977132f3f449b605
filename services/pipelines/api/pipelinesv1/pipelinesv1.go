// Package pipelinesv1 holds the pipelines service's contracts: the run-request event payload, the REST
// DTOs, the Temporal workflow input/output and state shapes, and the task-queue name. KFP-compatible
// names are used where KFP has them (run, task, experiment, recurring run, pipeline version).
package pipelinesv1

import (
	"fmt"
	"regexp"
	"time"
)

// MaxRunIDLength bounds a run id (client-chosen or a CloudEvent id).
const MaxRunIDLength = 128

var runIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// ValidateRunID checks a client-chosen run id (the run_id query parameter of POST /apis/v1/runs, or the
// id of a run.requested CloudEvent) before anything is created. A run id becomes the Temporal workflow
// ID, a path segment of the work dir and of the S3 prefix <pipeline>/<run id>/, so it is one segment:
// 1 to MaxRunIDLength letters, digits, '-' and '_', starting with a letter or digit (no '/', no empty or
// dot segments, no spaces). Child workflows, loops and batches of a run have ids "<run id>/<task
// path>", which always contain '/', so no run id can ever equal one of them.
func ValidateRunID(id string) error {
	if len(id) == 0 || len(id) > MaxRunIDLength || !runIDRe.MatchString(id) {
		return fmt.Errorf("run_id: %q is not a valid run id (1-%d letters, digits, '-' or '_', starting with a letter or digit)", id, MaxRunIDLength)
	}
	return nil
}

// TaskQueue is the Temporal task queue of pipeline run workflows and step activities.
const TaskQueue = "sluice-pipelines"

// WorkflowType is the registered name of the run workflow (visible in the Temporal UI).
const WorkflowType = "PipelineRun"

// QueryState is the workflow query that returns a [RunState].
const QueryState = "state"

// Run states (KFP v2 RuntimeState names).
const (
	RunPending   = "PENDING"
	RunRunning   = "RUNNING"
	RunSucceeded = "SUCCEEDED"
	RunFailed    = "FAILED"
	RunCancelled = "CANCELED"
)

// Task states (KFP v2 task states used by the engine).
const (
	TaskPending   = "PENDING"
	TaskRunning   = "RUNNING"
	TaskSucceeded = "SUCCEEDED"
	TaskFailed    = "FAILED"
	TaskSkipped   = "SKIPPED"
	TaskCached    = "CACHED"
	TaskCancelled = "CANCELED"
	// TaskOmitted: not run because an upstream task did not succeed (Argo's Omitted).
	TaskOmitted = "OMITTED"
)

// RunRequest starts a run: the data of io.sluice.pipeline.run.requested.v1, and the body of
// POST /apis/v1/runs. Exactly one of PipelineID, PipelineName or Spec says what to run.
type RunRequest struct {
	// RunName is a display name (default: the pipeline name and the run id).
	RunName string `json:"run_name,omitempty"`
	// PipelineID / PipelineVersionID reference an uploaded pipeline (latest version when the version is empty).
	PipelineID        string `json:"pipeline_id,omitempty"`
	PipelineVersionID string `json:"pipeline_version_id,omitempty"`
	// PipelineName references an uploaded pipeline by name.
	PipelineName string `json:"pipeline_name,omitempty"`
	// Spec is an inline pipeline: native Sluice YAML or KFP v2 IR YAML/JSON.
	Spec string `json:"spec,omitempty"`
	// Parameters are the run's input parameter values (JSON values).
	Parameters map[string]any `json:"parameters,omitempty"`
	// InputArtifacts supply the pipeline's own input artifacts (KFP root.inputDefinitions.artifacts) by
	// URI: input name → an s3:// URI in the artifact store (an object, or a directory ending in "/").
	// KFP's open-source API has no such field (its RuntimeConfig carries parameters only); the name
	// follows Vertex AI's PipelineJob.RuntimeConfig.inputArtifacts.
	InputArtifacts map[string]string `json:"input_artifacts,omitempty"`
	// ExperimentID groups the run (default: the "Default" experiment of the run's namespace).
	ExperimentID string `json:"experiment_id,omitempty"`
	// Namespace is where the run belongs (KFP v2 multi-user mode): the experiment's namespace when
	// ExperimentID is set (a different one is refused), else this one, else "default". The event gateway
	// authorises a run.requested event by it.
	Namespace string `json:"namespace,omitempty"`
	// CacheMaxStaleness ignores cache entries older than this (Go duration, e.g. "24h"); "" = no limit.
	CacheMaxStaleness string `json:"cache_max_staleness,omitempty"`
	// DisableCache turns caching off for the whole run.
	DisableCache bool `json:"disable_cache,omitempty"`
}

// RunInput is the input of the run workflow (one struct; add fields, never retype them).
type RunInput struct {
	RunID        string `json:"run_id"`
	RunName      string `json:"run_name"`
	ExperimentID string `json:"experiment_id,omitempty"`
	// Namespace is the run's namespace; "" (runs started before runs had one) is "default".
	Namespace  string `json:"namespace,omitempty"`
	PipelineID string `json:"pipeline_id,omitempty"`
	VersionID  string `json:"version_id,omitempty"`
	// PipelineName is the compiled pipeline's name (for listings; the workflow recompiles Spec).
	PipelineName string `json:"pipeline_name,omitempty"`
	// Spec is the pipeline source; the workflow compiles it (pure and deterministic).
	Spec       string         `json:"spec"`
	Parameters map[string]any `json:"parameters,omitempty"`
	// InputArtifacts are the pipeline's input artifacts, resolved from RunRequest.InputArtifacts at run
	// creation (URI, digest, size, type).
	InputArtifacts map[string]Artifact `json:"input_artifacts,omitempty"`
	// CacheMaxStaleness in nanoseconds; 0 = no limit. DisableCache turns caching off.
	CacheMaxStaleness time.Duration `json:"cache_max_staleness,omitempty"`
	DisableCache      bool          `json:"disable_cache,omitempty"`
	// Reuse maps a task path (as in TaskState.Path) to the outputs of a previous run's succeeded task:
	// retry-from-failure starts a new run that reuses them instead of running those tasks again.
	Reuse map[string]TaskOutputs `json:"reuse,omitempty"`
}

// RunResult is the output of the run workflow.
type RunResult struct {
	State string                 `json:"state"`
	Error string                 `json:"error,omitempty"`
	Tasks map[string]TaskOutputs `json:"tasks,omitempty"`
}

// RunState is what the state query returns and GET /apis/v1/runs/{id} shows.
type RunState struct {
	RunID        string      `json:"run_id"`
	RunName      string      `json:"run_name"`
	PipelineName string      `json:"pipeline_name"`
	ExperimentID string      `json:"experiment_id,omitempty"`
	State        string      `json:"state"`
	Error        string      `json:"error,omitempty"`
	CreatedAt    time.Time   `json:"created_at"`
	FinishedAt   *time.Time  `json:"finished_at,omitempty"`
	Tasks        []TaskState `json:"tasks"`
}

// TaskState is one task (or one loop iteration) of a run.
type TaskState struct {
	// Path identifies the task in nested DAGs and loops: "join", "for-loop-2/3/train" (iteration 3).
	Path       string            `json:"path"`
	Name       string            `json:"name"`
	State      string            `json:"state"`
	Attempts   int               `json:"attempts,omitempty"`
	Error      string            `json:"error,omitempty"`
	StartedAt  *time.Time        `json:"started_at,omitempty"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
	Outputs    *TaskOutputs      `json:"outputs,omitempty"`
	LogURI     string            `json:"log_uri,omitempty"`
	Extra      map[string]string `json:"extra,omitempty"`
}

// TaskOutputs are what a task produced: parameter values and artifacts.
type TaskOutputs struct {
	Parameters map[string]any      `json:"parameters,omitempty"`
	Artifacts  map[string]Artifact `json:"artifacts,omitempty"`
}

// Artifact is an output or input artifact stored in S3.
type Artifact struct {
	Name   string `json:"name"`
	URI    string `json:"uri"`
	Digest string `json:"digest,omitempty"`
	Size   int64  `json:"size,omitempty"`
	// SchemaTitle is the KFP artifact type (system.Dataset, system.Model, ...).
	SchemaTitle string `json:"schema_title,omitempty"`
	// Metadata is the artifact's metadata as the step's executor output reported it (KFP artifact
	// metadata: e.g. a Dataset's custom fields, a Metrics artifact's logged metrics).
	Metadata map[string]any `json:"metadata,omitempty"`
}

// RunEvent is the data of io.sluice.pipeline.run.*.v1 events.
type RunEvent struct {
	RunID        string `json:"run_id"`
	RunName      string `json:"run_name,omitempty"`
	PipelineName string `json:"pipeline_name"`
	ExperimentID string `json:"experiment_id,omitempty"`
	// Namespace is the run's namespace (events.Namespace reads it; "" is "default").
	Namespace string    `json:"namespace,omitempty"`
	State     string    `json:"state"`
	Error     string    `json:"error,omitempty"`
	Time      time.Time `json:"time"`
}

// TaskEvent is the data of io.sluice.pipeline.task.*.v1 events: enough for the metadata service to
// record an execution with its input and output artifacts.
type TaskEvent struct {
	RunID string `json:"run_id"`
	// Namespace is the run's namespace (events.Namespace reads it; "" is "default").
	Namespace    string              `json:"namespace,omitempty"`
	PipelineName string              `json:"pipeline_name"`
	TaskPath     string              `json:"task_path"`
	TaskName     string              `json:"task_name"`
	Component    string              `json:"component,omitempty"`
	Image        string              `json:"image,omitempty"`
	State        string              `json:"state"`
	Attempt      int                 `json:"attempt,omitempty"`
	Error        string              `json:"error,omitempty"`
	Fingerprint  string              `json:"fingerprint,omitempty"`
	CachedFrom   string              `json:"cached_from_run,omitempty"`
	InputParams  map[string]any      `json:"input_parameters,omitempty"`
	Inputs       map[string]Artifact `json:"input_artifacts,omitempty"`
	OutputParams map[string]any      `json:"output_parameters,omitempty"`
	Outputs      map[string]Artifact `json:"output_artifacts,omitempty"`
	// ParamRefs holds the parameters too large to ride in the event (claim check): "inputs.<name>" or
	// "outputs.<name>" → the s3:// URI of the value's JSON; the value in InputParams/OutputParams is then
	// a short text saying so.
	ParamRefs map[string]string `json:"param_refs,omitempty"`
	// ExecutionType is the MLMD execution type of the task when it is not a container step:
	// ExecutionTypeImporter for an importer task ("" = system.ContainerExecution).
	ExecutionType string `json:"execution_type,omitempty"`
	// Reimport is an importer task's reimport setting (KFP ImporterSpec.reimport).
	Reimport *bool     `json:"reimport,omitempty"`
	Time     time.Time `json:"time"`
}

// ExecutionTypeImporter is the execution type of an importer task, as KFP records it in MLMD.
const ExecutionTypeImporter = "system.ImporterExecution"

// MaxParamBytes is the largest parameter value (its JSON encoding), input or output, a run accepts:
// 16 MiB. Values over ClaimCheckBytes never ride in NATS messages or Temporal payloads; they are stored
// in S3 and referenced.
const MaxParamBytes = 16 << 20

// ClaimCheckBytes is the size above which a parameter value in an event is replaced by a reference.
const ClaimCheckBytes = 64 << 10

// RunRejected is the data of io.sluice.pipeline.run.rejected.v1.
type RunRejected struct {
	RequestID string   `json:"request_id"`
	Errors    []string `json:"errors"`
}

// Graph is the static DAG of a pipeline: GET /apis/v1/runs/{id}/graph (the spec the run was started
// with) and GET /apis/v1/pipelines/{id}/graph (a version's spec; ?version_id=, default the latest). It is
// what a UI draws: one node per task of the root DAG and of every nested DAG that is not a loop, with
// the paths a [RunState] uses for the same tasks; loop iterations appear only in the run state (paths
// "<loop task path>/<index>").
type Graph struct {
	PipelineName string       `json:"pipeline_name"`
	DisplayName  string       `json:"display_name,omitempty"`
	Description  string       `json:"description,omitempty"`
	Inputs       []GraphInput `json:"inputs,omitempty"`
	Tasks        []GraphTask  `json:"tasks"`
}

// GraphInput is one run parameter of a pipeline (the root component's input parameters).
type GraphInput struct {
	Name string `json:"name"`
	// Type is the KFP parameter type: STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN, LIST or STRUCT.
	Type        string `json:"type"`
	Default     any    `json:"default,omitempty"`
	HasDefault  bool   `json:"has_default,omitempty"`
	Optional    bool   `json:"optional,omitempty"`
	Description string `json:"description,omitempty"`
}

// GraphTask is one node of a [Graph].
type GraphTask struct {
	// Path is the task's path in the run state: its name in the root DAG, "<parent path>/<name>" inside
	// a nested DAG.
	Path        string `json:"path"`
	Name        string `json:"name"`
	DisplayName string `json:"display_name,omitempty"`
	// Parent is the path of the DAG task this task is nested in ("" in the root DAG).
	Parent string `json:"parent,omitempty"`
	// DependsOn lists the paths of the upstream tasks in the same DAG.
	DependsOn []string `json:"depends_on,omitempty"`
	// Kind is the component kind: container, dag or trainingJob.
	Kind      string `json:"kind"`
	Component string `json:"component,omitempty"`
	// Loop: the task fans out over items (KFP ParallelFor); its iterations run as "<path>/<index>".
	Loop bool `json:"loop,omitempty"`
	// Condition is the CEL condition the task runs under (KFP dsl.If), empty when unconditional.
	Condition string `json:"condition,omitempty"`
	// ExitHandler: the task runs once its upstream tasks ended in any state (KFP dsl.ExitHandler).
	ExitHandler bool `json:"exit_handler,omitempty"`
}
