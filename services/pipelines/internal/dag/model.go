package dag

import (
	"encoding/json"
	"sort"
	"time"
)

// Format names the source format a [Pipeline] was parsed from.
type Format string

const (
	// FormatNative is Sluice's own YAML format (apiVersion sluice.io/v1, kind Pipeline).
	FormatNative Format = "native"
	// FormatKFP is the Kubeflow Pipelines v2 IR (PipelineSpec YAML as kfp.compiler writes it).
	FormatKFP Format = "kfp"
)

// ParamType is a parameter type, per KFP ParameterType.ParameterTypeEnum.
type ParamType string

const (
	ParamString          ParamType = "STRING"
	ParamInteger         ParamType = "NUMBER_INTEGER"
	ParamDouble          ParamType = "NUMBER_DOUBLE"
	ParamBoolean         ParamType = "BOOLEAN"
	ParamList            ParamType = "LIST"
	ParamStruct          ParamType = "STRUCT"
	ParamTaskFinalStatus ParamType = "TASK_FINAL_STATUS"
)

// Valid reports whether t is one of the known parameter types.
func (t ParamType) Valid() bool {
	switch t {
	case ParamString, ParamInteger, ParamDouble, ParamBoolean, ParamList, ParamStruct, ParamTaskFinalStatus:
		return true
	}
	return false
}

// ComponentKind says how a component is implemented.
type ComponentKind string

const (
	// KindContainer runs one container executor (image, command, args).
	KindContainer ComponentKind = "container"
	// KindDAG runs a nested DAG of tasks.
	KindDAG ComponentKind = "dag"
	// KindTrainingJob submits a TFJob or PyTorchJob (Component.TrainingJob)
	// to the training service and waits for it to finish (native format
	// `trainingJob:` tasks).
	KindTrainingJob ComponentKind = "trainingJob"
	// KindImporter imports an existing object as the component's one output
	// artifact (KFP dsl.importer, PipelineDeploymentConfig.ImporterSpec); no
	// container runs.
	KindImporter ComponentKind = "importer"
)

// TriggerStrategy is when a task becomes ready, per KFP
// PipelineTaskSpec.TriggerPolicy.TriggerStrategy.
type TriggerStrategy string

const (
	// AllUpstreamSucceeded: every upstream task succeeded (the default).
	// A skipped upstream task makes this task skipped as well.
	AllUpstreamSucceeded TriggerStrategy = "ALL_UPSTREAM_TASKS_SUCCEEDED"
	// AllUpstreamCompleted: every upstream task reached any final state
	// (succeeded, failed, skipped, cancelled). Used by exit handlers.
	AllUpstreamCompleted TriggerStrategy = "ALL_UPSTREAM_TASKS_COMPLETED"
)

// IOKind distinguishes parameters (small JSON values) from artifacts (objects in S3).
type IOKind string

const (
	IOParameter IOKind = "parameter"
	IOArtifact  IOKind = "artifact"
)

// SourceKind is where a task input's value comes from.
type SourceKind string

const (
	// SourceConstant: Source.Constant, a JSON value fixed in the spec.
	// A string constant may contain `{{$.inputs.parameters['x']}}`
	// placeholders referring to the task's other inputs; see Binding.Templated.
	SourceConstant SourceKind = "constant"
	// SourceComponentInput: Source.Input, an input of the enclosing
	// component. For tasks of the root DAG these are the pipeline's run
	// parameters (and input artifacts).
	SourceComponentInput SourceKind = "componentInput"
	// SourceTaskOutputParameter: output parameter Source.Output of the
	// upstream task Source.Task in the same DAG.
	SourceTaskOutputParameter SourceKind = "taskOutputParameter"
	// SourceTaskOutputArtifact: output artifact Source.Output of the
	// upstream task Source.Task in the same DAG.
	SourceTaskOutputArtifact SourceKind = "taskOutputArtifact"
	// SourceTaskFinalStatus: the final status of upstream task Source.Task,
	// a PipelineTaskFinalStatus JSON object (see [TaskFinalStatus]).
	SourceTaskFinalStatus SourceKind = "taskFinalStatus"
)

// Pipeline is a compiled pipeline. Build it with a parser (package spec),
// then [Compile] it; the engine only reads it.
type Pipeline struct {
	// Name is the subject-safe slug of the pipeline name (matches [SafeName]);
	// used in S3 keys, event subjects and workflow IDs.
	Name string `json:"name"`
	// DisplayName is the name as written in the spec (KFP pipelineInfo.name
	// or displayName, native metadata.name).
	DisplayName string `json:"displayName,omitempty"`
	Description string `json:"description,omitempty"`
	// Format is the source format.
	Format Format `json:"format"`
	// SchemaVersion is KFP's schemaVersion (empty for native).
	SchemaVersion string `json:"schemaVersion,omitempty"`
	// Root is the pipeline's top-level DAG component, named "root". Its
	// InputParams are the run parameters.
	Root *Component `json:"root"`
	// Platforms lists the platform sections of KFP's PlatformSpec document that came with the IR
	// (e.g. "kubernetes"); PlatformError says why that document could not be read. The kubernetes
	// settings themselves are on each Container.
	Platforms     []string `json:"platforms,omitempty"`
	PlatformError string   `json:"platformError,omitempty"`
	// KubernetesPipelineConfig is the PlatformSpec's platforms.kubernetes.pipelineConfig (e.g. the
	// pipeline workspace), as written.
	KubernetesPipelineConfig map[string]any `json:"kubernetesPipelineConfig,omitempty"`
	// Components holds every other component by name (KFP components map
	// keys, e.g. "comp-producer"). Use [Pipeline.Component] and
	// [Pipeline.ComponentNames] for deterministic access.
	Components map[string]*Component `json:"components"`
}

// Inputs returns the pipeline's run parameters (the root component's input parameters).
func (p *Pipeline) Inputs() []ParamDef {
	if p.Root == nil {
		return nil
	}
	return p.Root.InputParams
}

// Component returns the component named name ("root" is the root component).
func (p *Pipeline) Component(name string) (*Component, bool) {
	if name == RootComponent && p.Root != nil {
		return p.Root, true
	}
	c, ok := p.Components[name]
	return c, ok
}

// ComponentNames returns the names of p.Components, sorted.
func (p *Pipeline) ComponentNames() []string {
	names := make([]string, 0, len(p.Components))
	for n := range p.Components {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TaskComponent returns the component a task instantiates.
func (p *Pipeline) TaskComponent(t *Task) (*Component, bool) {
	return p.Component(t.ComponentRef)
}

// RootComponent is the name of Pipeline.Root.
const RootComponent = "root"

// ParamDef declares an input or output parameter.
type ParamDef struct {
	Name string    `json:"name"`
	Type ParamType `json:"type"`
	// Default is the JSON value used when no value is bound (inputs only).
	// Numbers are float64, lists []any, structs map[string]any.
	Default     any    `json:"default,omitempty"`
	HasDefault  bool   `json:"hasDefault,omitempty"`
	Optional    bool   `json:"optional,omitempty"`
	Description string `json:"description,omitempty"`
}

// ArtifactDef declares an input or output artifact.
type ArtifactDef struct {
	Name string `json:"name"`
	// SchemaTitle is the artifact type, e.g. "system.Dataset", "system.Model".
	SchemaTitle   string `json:"schemaTitle,omitempty"`
	SchemaVersion string `json:"schemaVersion,omitempty"`
	// IsList: the input/output is a list of artifacts (fan-in of a loop).
	IsList      bool   `json:"isList,omitempty"`
	Optional    bool   `json:"optional,omitempty"`
	Description string `json:"description,omitempty"`
}

// Component is a reusable unit: a container executor or a nested DAG.
type Component struct {
	Name string        `json:"name"`
	Kind ComponentKind `json:"kind"`
	// Path is the component's field path in the source spec, used in errors.
	Path string `json:"path,omitempty"`

	InputParams     []ParamDef    `json:"inputParams,omitempty"`
	InputArtifacts  []ArtifactDef `json:"inputArtifacts,omitempty"`
	OutputParams    []ParamDef    `json:"outputParams,omitempty"`
	OutputArtifacts []ArtifactDef `json:"outputArtifacts,omitempty"`

	// ExecutorLabel is the KFP deploymentSpec executor key (KindContainer).
	ExecutorLabel string `json:"executorLabel,omitempty"`
	// Executor is set for KindContainer.
	Executor *Container `json:"executor,omitempty"`
	// DAG is set for KindDAG.
	DAG *DAG `json:"dag,omitempty"`
	// TrainingJob is set for KindTrainingJob: the kubeflow.org TFJob or
	// PyTorchJob document as a JSON object, per training-operator v1. The
	// engine submits it under a per-run name (see [TrainingJobName]).
	TrainingJob json.RawMessage `json:"trainingJob,omitempty"`
	// Importer is set for KindImporter.
	Importer *Importer `json:"importer,omitempty"`
	// Paths locate the interface in the source spec, for errors.
	Paths ComponentPaths `json:"-"`
}

// ComponentPaths are source field path prefixes of a component's interface,
// set by the parser. Empty entries default to KFP's layout under
// Component.Path (inputDefinitions.parameters, ..., parameterType,
// defaultValue).
type ComponentPaths struct {
	InputParams     string
	InputArtifacts  string
	OutputParams    string
	OutputArtifacts string
	// Tasks is the path of the DAG's task map (default Path + ".dag.tasks").
	Tasks string
	// TypeField and DefaultField name a parameter's type and default keys.
	TypeField    string
	DefaultField string
}

// InputParam returns the declared input parameter name.
func (c *Component) InputParam(name string) (ParamDef, bool) { return findParam(c.InputParams, name) }

// OutputParam returns the declared output parameter name.
func (c *Component) OutputParam(name string) (ParamDef, bool) { return findParam(c.OutputParams, name) }

// InputArtifact returns the declared input artifact name.
func (c *Component) InputArtifact(name string) (ArtifactDef, bool) {
	return findArtifact(c.InputArtifacts, name)
}

// OutputArtifact returns the declared output artifact name.
func (c *Component) OutputArtifact(name string) (ArtifactDef, bool) {
	return findArtifact(c.OutputArtifacts, name)
}

func findParam(ps []ParamDef, name string) (ParamDef, bool) {
	for _, p := range ps {
		if p.Name == name {
			return p, true
		}
	}
	return ParamDef{}, false
}

func findArtifact(as []ArtifactDef, name string) (ArtifactDef, bool) {
	for _, a := range as {
		if a.Name == name {
			return a, true
		}
	}
	return ArtifactDef{}, false
}

// Container is a container executor, per KFP PipelineContainerSpec.
// Command and Args are raw: they still contain placeholders; see [Render].
type Container struct {
	Image   string   `json:"image"`
	Command []string `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	Env     []EnvVar `json:"env,omitempty"`
	// Resources is the executor's container.resources as written (cpuLimit, memoryLimit,
	// accelerator, ...); see spec.CheckRuntime for what each runtime does with it.
	Resources map[string]any `json:"resources,omitempty"`
	// Kubernetes is the executor's kfp-kubernetes platform config as written (KFP PlatformSpec
	// platforms.kubernetes.deploymentSpec.executors.<label>: secretAsEnv, pvcMount, nodeSelector, ...),
	// kept for a runtime that can apply it; see spec.CheckRuntime.
	Kubernetes map[string]any `json:"kubernetes,omitempty"`
	// Path is the executor's field path in the source spec, used in errors.
	Path string `json:"path,omitempty"`
}

// Importer is an importer executor, per KFP ImporterSpec: it registers the
// object at an artifact URI as the component's single output artifact.
type Importer struct {
	// URI is the constant artifact URI (artifactUri.constant); URIParam names
	// the component input parameter that holds it (artifactUri.runtimeParameter).
	// Exactly one is set.
	URI      string `json:"uri,omitempty"`
	URIParam string `json:"uriParam,omitempty"`
	// SchemaTitle and SchemaVersion are typeSchema (the artifact type).
	SchemaTitle   string `json:"schemaTitle,omitempty"`
	SchemaVersion string `json:"schemaVersion,omitempty"`
	// Metadata is the artifact's metadata; strings may hold
	// `{{$.inputs.parameters['x']}}` placeholders (the SDK's metadata inputs),
	// resolved by [ResolveImporterMetadata].
	Metadata map[string]any `json:"metadata,omitempty"`
	// Reimport, per ImporterSpec.reimport: record a new import of the URI
	// even when it was imported before.
	Reimport bool `json:"reimport,omitempty"`
	// DownloadToWorkspace, per ImporterSpec.download_to_workspace (KFP SDK 2.14+
	// dsl.importer(download_to_workspace=True)): the importer also downloads the
	// artifact into the run's workspace at <workspace>/.artifacts/s3/<bucket>/<key>,
	// and consumers read it there instead of downloading it themselves.
	DownloadToWorkspace bool `json:"downloadToWorkspace,omitempty"`
	// Path is the executor's field path in the source spec, used in errors.
	Path string `json:"path,omitempty"`
}

// EnvVar is an environment variable for the container.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// DAG is a graph of tasks.
type DAG struct {
	// Tasks in a deterministic topological order (dependencies first, ties
	// broken by name).
	Tasks []*Task `json:"tasks"`
	// Outputs maps the DAG component's outputs to inner task outputs.
	Outputs DAGOutputs `json:"outputs,omitempty"`
}

// Task returns the task named name.
func (d *DAG) Task(name string) (*Task, bool) {
	for _, t := range d.Tasks {
		if t.Name == name {
			return t, true
		}
	}
	return nil, false
}

// DAGOutputs selects the outputs of a DAG component from its inner tasks,
// per KFP DagOutputsSpec.
type DAGOutputs struct {
	Parameters []DAGOutputParam    `json:"parameters,omitempty"`
	Artifacts  []DAGOutputArtifact `json:"artifacts,omitempty"`
}

// DAGOutputParam is one output parameter of a DAG component.
type DAGOutputParam struct {
	Name string `json:"name"`
	// Selectors name the inner task outputs. With OneOf false there is
	// exactly one selector (valueFromParameter); with OneOf true the first
	// selector whose task produced a value wins and more than one value is an
	// error (valueFromOneof, used by dsl.If/Elif/Else).
	Selectors []OutputSelector `json:"selectors"`
	OneOf     bool             `json:"oneOf,omitempty"`
}

// DAGOutputArtifact is one output artifact of a DAG component; the selected
// artifacts are aggregated into one output channel.
type DAGOutputArtifact struct {
	Name      string           `json:"name"`
	Selectors []OutputSelector `json:"selectors"`
}

// OutputSelector names an output of an inner task.
type OutputSelector struct {
	Task   string `json:"task"`
	Output string `json:"output"`
}

// Task is one node of a DAG.
type Task struct {
	// Name is the task key in its DAG (matches [SafeName]).
	Name string `json:"name"`
	// DisplayName is KFP taskInfo.name (defaults to Name).
	DisplayName string `json:"displayName,omitempty"`
	// Path is the task's field path in the source spec, used in errors.
	Path string `json:"path,omitempty"`
	// ComponentRef names the component this task instantiates.
	ComponentRef string `json:"componentRef"`
	// DependsOn lists the upstream tasks (explicit dependentTasks plus every
	// producer of a data input), sorted and deduplicated. Filled by Compile.
	DependsOn []string `json:"dependsOn,omitempty"`
	// Inputs binds component inputs, sorted by (Kind, Name).
	Inputs []Binding `json:"inputs,omitempty"`
	// Condition is a CEL expression over `inputs.parameter_values[...]`; the
	// task is skipped when it evaluates to false. Empty = always.
	Condition string `json:"condition,omitempty"`
	// Strategy is when the task is ready (default AllUpstreamSucceeded).
	Strategy TriggerStrategy `json:"strategy"`
	// Iterator fans the task out (ParallelFor); nil for a single run.
	Iterator *Iterator `json:"iterator,omitempty"`
	// Retry is the per-task retry policy; nil = no retry.
	Retry *RetryPolicy `json:"retry,omitempty"`
	// EnableCache, per KFP cachingOptions.enableCache.
	EnableCache bool `json:"enableCache,omitempty"`
	// ExitHandler marks a task that must run once its upstream tasks reach
	// any final state, including failure and cancellation of the run (KFP
	// dsl.ExitHandler, Argo onExit). Its Strategy is AllUpstreamCompleted.
	ExitHandler bool `json:"exitHandler,omitempty"`
	// Paths locate the task's fields in the source spec, for errors.
	Paths TaskPaths `json:"-"`
}

// TaskPaths are the source field paths of a task's fields, set by the parser
// so errors name the field as the user wrote it. Empty entries default to
// Task.Path + "." + the KFP field name.
type TaskPaths struct {
	ComponentRef string
	DependsOn    string
	Condition    string
	Strategy     string
	Iterator     string
	Retry        string
}

// Binding returns the binding of input name of the given kind.
func (t *Task) Binding(kind IOKind, name string) (Binding, bool) {
	for _, b := range t.Inputs {
		if b.Kind == kind && b.Name == name {
			return b, true
		}
	}
	return Binding{}, false
}

// Binding feeds one component input of a task.
type Binding struct {
	// Name is the component input name.
	Name string `json:"name"`
	Kind IOKind `json:"kind"`
	// Type is the declared type of the component input (parameters only).
	// Filled by Compile.
	Type   ParamType `json:"type,omitempty"`
	Source Source    `json:"source"`
	// Selector is a CEL parameterExpressionSelector applied to the resolved
	// value (see [EvalSelector]); empty = pass through.
	Selector string `json:"selector,omitempty"`
	// Templated is true for a string constant that contains
	// `{{$.inputs.parameters['x']}}` placeholders referring to the task's
	// other parameter inputs; the engine resolves it with [RenderString]
	// once the other inputs are known. Filled by Compile.
	Templated bool `json:"templated,omitempty"`
	// Path is the binding's field path in the source spec, used in errors.
	Path string `json:"path,omitempty"`
}

// Source is where a binding's value comes from; Kind says which fields are set.
type Source struct {
	Kind SourceKind `json:"kind"`
	// Constant is the JSON value for SourceConstant (float64 numbers,
	// []any lists, map[string]any structs).
	Constant any `json:"constant,omitempty"`
	// Input is the enclosing component's input name for SourceComponentInput.
	Input string `json:"input,omitempty"`
	// Task is the producer task for SourceTaskOutput* and SourceTaskFinalStatus.
	Task string `json:"task,omitempty"`
	// Output is the producer's output key for SourceTaskOutput*.
	Output string `json:"output,omitempty"`
}

// Iterator fans a task out over a list, per KFP ParameterIteratorSpec /
// ArtifactIteratorSpec plus iteratorPolicy. Each iteration runs the task's
// component with ItemInput bound to one item; outputs of iterations are
// merged: output parameters into a LIST (JSON array, in item order), output
// artifacts into an artifact list.
type Iterator struct {
	// ItemInput is the component input that receives one item.
	ItemInput string `json:"itemInput"`
	// Artifact is true for an artifact iterator (items from InputArtifact).
	Artifact bool `json:"artifact,omitempty"`
	// Raw is a literal JSON list of items (items.raw); HasRaw says it is set
	// (an empty list is valid and runs zero iterations).
	Raw    []any `json:"raw,omitempty"`
	HasRaw bool  `json:"hasRaw,omitempty"`
	// InputParameter names a parameter input binding of the task whose value
	// is the JSON list of items (items.inputParameter).
	InputParameter string `json:"inputParameter,omitempty"`
	// InputArtifact names an artifact input binding of the task (artifact iterator).
	InputArtifact string `json:"inputArtifact,omitempty"`
	// ParallelismLimit caps concurrent iterations; 0 = unbounded.
	ParallelismLimit int `json:"parallelismLimit,omitempty"`
}

// RetryPolicy is a per-task retry policy, per KFP PipelineTaskSpec.RetryPolicy.
// Attempt n (n >= 1 retries) waits min(Backoff * Factor^(n-1), Max).
type RetryPolicy struct {
	// MaxRetryCount is the number of retries after the first attempt.
	MaxRetryCount int `json:"maxRetryCount"`
	// Backoff is the wait before the first retry (default 0: immediate).
	Backoff time.Duration `json:"backoff"`
	// Factor multiplies the wait on each retry (default 2).
	Factor float64 `json:"factor"`
	// Max caps the wait between retries (default and upper bound 1h).
	Max time.Duration `json:"max"`
}

// Delay returns the wait before retry number retry (1-based).
func (r RetryPolicy) Delay(retry int) time.Duration {
	if retry < 1 || r.Backoff <= 0 {
		return 0
	}
	d := float64(r.Backoff)
	for i := 1; i < retry && d < float64(r.Max); i++ {
		d *= r.Factor
	}
	if d > float64(r.Max) {
		return r.Max
	}
	return time.Duration(d)
}

// Retry policy defaults and bounds, per KFP pipeline_spec.proto.
const (
	DefaultBackoffFactor = 2.0
	MaxBackoff           = time.Hour
)

// TaskFinalStatus is the value of a SourceTaskFinalStatus input, per KFP
// PipelineTaskFinalStatus (JSON field names as KFP's launcher passes them).
type TaskFinalStatus struct {
	// State is SUCCEEDED, FAILED, CANCELLED or SKIPPED.
	State string `json:"state"`
	// Error is a google.rpc.Status-shaped error ({"code", "message"}).
	Error                   *StatusError `json:"error,omitempty"`
	PipelineJobResourceName string       `json:"pipelineJobResourceName"`
	PipelineTaskName        string       `json:"pipelineTaskName"`
}

// StatusError is a google.rpc.Status subset.
type StatusError struct {
	Code    int    `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}
