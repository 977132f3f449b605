// Package engine runs compiled pipelines on Temporal: one workflow per run (workflow ID = run ID) walks the
// DAG, each step attempt is an activity that runs the component through libs/runtime, moves artifacts
// through S3 and heartbeats so cancellation reaches it; loops and nested DAGs run as child workflows so no
// history grows past a few thousand events.
//
// The workflows only call pure helpers of package dag (compile, CEL, render, fingerprint); everything
// with I/O is in activities.go.
package engine

import (
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

// Artifact is an artifact reference carried between tasks (never the bytes).
type Artifact = pipelinesv1.Artifact

// outputs are what a task or DAG produced: parameter values and artifact lists (one element for a
// single artifact; several for loop fan-in).
type outputs struct {
	Params    map[string]any        `json:"params,omitempty"`
	Artifacts map[string][]Artifact `json:"artifacts,omitempty"`
}

func (o outputs) public() *pipelinesv1.TaskOutputs {
	out := &pipelinesv1.TaskOutputs{Parameters: o.Params}
	for _, name := range sortedKeys(o.Artifacts) {
		if len(o.Artifacts[name]) > 0 {
			if out.Artifacts == nil {
				out.Artifacts = map[string]Artifact{}
			}
			// Without the run-time workspace flag: a retried run reusing these outputs has a new, empty
			// workspace, so its consumers download the artifact as any other.
			out.Artifacts[name] = withoutWorkspaceFlag(o.Artifacts[name][0])
		}
	}
	return out
}

func fromPublic(t pipelinesv1.TaskOutputs) outputs {
	o := outputs{Params: t.Parameters}
	for _, name := range sortedKeys(t.Artifacts) {
		if o.Artifacts == nil {
			o.Artifacts = map[string][]Artifact{}
		}
		o.Artifacts[name] = []Artifact{t.Artifacts[name]}
	}
	return o
}

// ScopeInput is the input of the DAG child workflow (nested DAG components and loop batches).
type ScopeInput struct {
	Run pipelinesv1.RunInput `json:"run"`
	// PipelineName is the compiled pipeline's slug.
	PipelineName string `json:"pipeline_name"`
	// Component is the component to run for each item ("root" never appears here).
	Component string `json:"component"`
	// TaskName and Path locate the calling task; iteration paths are Path + "/" + index.
	TaskName string `json:"task_name"`
	Path     string `json:"path"`
	// Params and Artifacts are the component's inputs (for a loop: without the item input).
	Params    map[string]any        `json:"params,omitempty"`
	Artifacts map[string][]Artifact `json:"artifacts,omitempty"`
	// Loop is set for a batch of loop iterations.
	Loop *LoopBatch `json:"loop,omitempty"`
	// Retry and EnableCache carry the calling task's policies for container iterations.
	Retry       *dag.RetryPolicy `json:"retry,omitempty"`
	EnableCache bool             `json:"enable_cache,omitempty"`
}

// LoopBatch is a contiguous slice of a loop's items run by one child workflow.
type LoopBatch struct {
	ItemInput string `json:"item_input"`
	// Artifact is set for an artifact iterator (items are artifacts).
	Artifact bool `json:"artifact,omitempty"`
	// Items are the JSON items (parameter iterator) or ItemArtifacts (artifact iterator).
	Items         []any      `json:"items,omitempty"`
	ItemArtifacts []Artifact `json:"item_artifacts,omitempty"`
	// First is the index of Items[0] in the whole loop.
	First int `json:"first"`
	// Parallelism caps concurrent iterations inside this batch (0 = unbounded).
	Parallelism int `json:"parallelism,omitempty"`
}

// ScopeResult is the output of the DAG child workflow.
type ScopeResult struct {
	// State is SUCCEEDED, FAILED or CANCELED for the whole scope.
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// Outputs are the DAG component's outputs (nested DAG), or per-iteration outputs (loop batch).
	Outputs    outputs                 `json:"outputs"`
	Iterations []outputs               `json:"iterations,omitempty"`
	IterStates []string                `json:"iter_states,omitempty"`
	Tasks      []pipelinesv1.TaskState `json:"tasks,omitempty"`
}

// StepInput is one attempt of a container task.
type StepInput struct {
	RunID string `json:"run_id"`
	// Namespace is the run's namespace ("" = "default"): its events carry it, its cache is its own.
	Namespace    string `json:"namespace,omitempty"`
	PipelineName string `json:"pipeline_name"`
	TaskPath     string `json:"task_path"`
	TaskName     string `json:"task_name"`
	Component    string `json:"component"`
	Attempt      int    `json:"attempt"`
	// Image, Command and Args are the raw executor (placeholders unrendered); Env is added to the process.
	Image   string            `json:"image"`
	Command []string          `json:"command,omitempty"`
	Args    []string          `json:"args,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	// Volumes and Labels are the executor's kfp-kubernetes pvcMount and podMetadata settings as the
	// Docker runtime applies them (named volumes, container labels); see dag.KubernetesForDocker.
	Volumes []dag.DockerVolume `json:"volumes,omitempty"`
	Labels  map[string]string  `json:"labels,omitempty"`
	// EnvFrom and ObjectVolumes are the executor's kfp-kubernetes secretAsEnv/configMapAsEnv and
	// secretAsVolume/configMapAsVolume settings (names only: the values are read from the namespace's
	// store when the step starts and never enter the workflow's history).
	EnvFrom       []dag.DockerEnvFrom      `json:"env_from,omitempty"`
	ObjectVolumes []dag.DockerObjectVolume `json:"object_volumes,omitempty"`
	// Pod holds the executor's pod-only kfp-kubernetes settings (node selector, tolerations, pod labels
	// and annotations, image pull policy) that the kubernetes runtime applies to the step pod; nil
	// when it has none, and for runs started before versionPodSettings.
	Pod *dag.PodSettings `json:"pod,omitempty"`
	// Workspace says the run uses KFP's shared workspace ({{$.workspace_path}}): the step gets the run's
	// workspace directory (see Activities.workspace).
	Workspace bool `json:"workspace,omitempty"`
	// Resources are the executor's container resources as the Docker runtime applies them (limits).
	Resources *dag.DockerResources `json:"resources,omitempty"`
	// Params and Artifacts are the resolved inputs.
	Params    map[string]any        `json:"params,omitempty"`
	Artifacts map[string][]Artifact `json:"artifacts,omitempty"`
	// OutputParams maps each declared output parameter to its type; OutputArtifacts to its schema title.
	OutputParams    map[string]string `json:"output_params,omitempty"`
	OutputArtifacts map[string]string `json:"output_artifacts,omitempty"`
	// Fingerprint is set when caching is enabled for this task; MaxStaleness bounds a hit's age (0 = any).
	Fingerprint  string `json:"fingerprint,omitempty"`
	MaxStaleness int64  `json:"max_staleness_ns,omitempty"`
	// LastAttempt tells the activity to publish task.failed (not a retryable failure) when the step fails.
	LastAttempt bool `json:"last_attempt"`
	// KFP applies KFP's launcher rules to the outputs (a KFP IR pipeline): a declared output artifact the
	// executor did not write is recorded without an object instead of failing the step.
	KFP bool `json:"kfp,omitempty"`
}

// StepResult is a finished step attempt.
type StepResult struct {
	Outputs    outputs `json:"outputs"`
	Cached     bool    `json:"cached,omitempty"`
	CachedFrom string  `json:"cached_from,omitempty"`
	LogURI     string  `json:"log_uri,omitempty"`
	ExitCode   int     `json:"exit_code"`
}

// NotifyInput asks the events activity to publish run or task events (skips, run transitions).
type NotifyInput struct {
	Run *pipelinesv1.RunEvent `json:"run,omitempty"`
	// RunType is the event type of Run.
	RunType string                  `json:"run_type,omitempty"`
	Tasks   []pipelinesv1.TaskEvent `json:"tasks,omitempty"`
	// TaskType is the event type of Tasks.
	TaskType string `json:"task_type,omitempty"`
}

// StepsInput is a chunk of loop iterations whose first attempts run in one RunSteps activity.
type StepsInput struct {
	Steps []StepInput `json:"steps"`
	// Concurrency bounds the steps running at once (default 16).
	Concurrency int `json:"concurrency,omitempty"`
}

// StepOutcome is the result of one step of a chunk: Result when Error is empty, else the step's
// failure and its error type.
type StepOutcome struct {
	Result  StepResult `json:"result"`
	Error   string     `json:"error,omitempty"`
	ErrType string     `json:"err_type,omitempty"`
	// LogURI is the failed step's log.
	LogURI string `json:"log_uri,omitempty"`
}
