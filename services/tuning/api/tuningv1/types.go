// Package tuningv1 is the public contract of the tuning service: Katib's kubeflow.org/v1beta1 Experiment
// (as published in Katib's examples, accepted unmodified), the Trial view, the Temporal names of the
// experiment workflow and the payloads of io.sluice.tuning.* events.
//
// Source of the shapes: kubeflow/katib pkg/apis/controller/{experiments,trials,common}/v1beta1.
package tuningv1

import (
	"encoding/json"
	"time"
)

// APIVersion and Kind of an Experiment document.
const (
	APIVersion = "kubeflow.org/v1beta1"
	Kind       = "Experiment"
)

// Temporal names. One workflow runs per experiment, with ID WorkflowID(ns, name), on TaskQueue.
const (
	TaskQueue    = "sluice-tuning"
	WorkflowType = "TuningExperiment"
	// QueryExperiment returns the ExperimentView (experiment with live status and its trials).
	QueryExperiment = "experiment"
	// SignalDelete stops the running trials, deletes their training jobs and ends the workflow.
	SignalDelete = "delete"
	// MemoDeleted is set to true on the workflow once the experiment is deleted.
	MemoDeleted = "deleted"
)

// WorkflowID is the business key of an experiment's workflow: "<namespace>/<name>" prefixed by
// "experiment/" so it cannot collide with other services' keys.
func WorkflowID(namespace, name string) string { return "experiment/" + namespace + "/" + name }

// ObjectMeta is the subset of Kubernetes metadata Sluice keeps.
type ObjectMeta struct {
	Name              string            `json:"name,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	UID               string            `json:"uid,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	CreationTimestamp *time.Time        `json:"creationTimestamp,omitempty"`
	// Kubernetes bookkeeping fields, accepted and ignored so that kubectl output can be re-applied.
	ResourceVersion string          `json:"resourceVersion,omitempty"`
	Generation      int64           `json:"generation,omitempty"`
	GenerateName    string          `json:"generateName,omitempty"`
	ManagedFields   json.RawMessage `json:"managedFields,omitempty"`
	Finalizers      []string        `json:"finalizers,omitempty"`
}

// Experiment is a Katib v1beta1 Experiment.
type Experiment struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Metadata   ObjectMeta       `json:"metadata"`
	Spec       ExperimentSpec   `json:"spec"`
	Status     ExperimentStatus `json:"status,omitempty"`
}

// ExperimentSpec mirrors Katib's ExperimentSpec.
type ExperimentSpec struct {
	Parameters []ParameterSpec `json:"parameters,omitempty"`
	Objective  *ObjectiveSpec  `json:"objective,omitempty"`
	Algorithm  *AlgorithmSpec  `json:"algorithm,omitempty"`
	// EarlyStopping: medianstop only.
	EarlyStopping *EarlyStoppingSpec `json:"earlyStopping,omitempty"`
	TrialTemplate *TrialTemplate     `json:"trialTemplate,omitempty"`
	// ParallelTrialCount defaults to 3; MaxTrialCount nil means no limit (grid stops when exhausted);
	// MaxFailedTrialCount nil means failures never fail the experiment.
	ParallelTrialCount  *int32 `json:"parallelTrialCount,omitempty"`
	MaxTrialCount       *int32 `json:"maxTrialCount,omitempty"`
	MaxFailedTrialCount *int32 `json:"maxFailedTrialCount,omitempty"`
	// MetricsCollectorSpec defaults to the StdOut collector.
	MetricsCollectorSpec *MetricsCollectorSpec `json:"metricsCollectorSpec,omitempty"`
	// NasConfig is refused (neural architecture search is not supported).
	NasConfig *json.RawMessage `json:"nasConfig,omitempty"`
	// ResumePolicy: Never (default) and LongRunning are accepted (the workflow stays until deleted
	// either way); FromVolume is refused.
	ResumePolicy string `json:"resumePolicy,omitempty"`
}

// ParameterType of a search-space parameter.
type ParameterType string

const (
	ParameterDouble      ParameterType = "double"
	ParameterInt         ParameterType = "int"
	ParameterDiscrete    ParameterType = "discrete"
	ParameterCategorical ParameterType = "categorical"
)

// Distribution of a double/int parameter.
type Distribution string

const (
	DistributionUniform    Distribution = "uniform"
	DistributionLogUniform Distribution = "logUniform"
	DistributionNormal     Distribution = "normal"
	DistributionLogNormal  Distribution = "logNormal"
)

// ParameterSpec is one dimension of the search space.
type ParameterSpec struct {
	Name          string        `json:"name"`
	ParameterType ParameterType `json:"parameterType"`
	FeasibleSpace FeasibleSpace `json:"feasibleSpace"`
}

// FeasibleSpace bounds a parameter: Min/Max/Step for int and double (strings, as in Katib), List for
// discrete and categorical.
type FeasibleSpace struct {
	Max          string       `json:"max,omitempty"`
	Min          string       `json:"min,omitempty"`
	List         []string     `json:"list,omitempty"`
	Step         string       `json:"step,omitempty"`
	Distribution Distribution `json:"distribution,omitempty"`
}

// ObjectiveType is minimize or maximize.
type ObjectiveType string

const (
	ObjectiveMinimize ObjectiveType = "minimize"
	ObjectiveMaximize ObjectiveType = "maximize"
)

// MetricStrategyType picks which observed value of a metric counts.
type MetricStrategyType string

const (
	StrategyMin    MetricStrategyType = "min"
	StrategyMax    MetricStrategyType = "max"
	StrategyLatest MetricStrategyType = "latest"
)

// MetricStrategy names a metric's strategy.
type MetricStrategy struct {
	Name  string             `json:"name"`
	Value MetricStrategyType `json:"value"`
}

// ObjectiveSpec: what to optimise. Goal, when set, ends the experiment once reached
// (minimize: value <= goal; maximize: value >= goal). MetricStrategies is defaulted: the objective
// metric gets min (minimize) or max (maximize), additional metrics latest.
type ObjectiveSpec struct {
	Type                  ObjectiveType    `json:"type"`
	Goal                  *float64         `json:"goal,omitempty"`
	ObjectiveMetricName   string           `json:"objectiveMetricName"`
	AdditionalMetricNames []string         `json:"additionalMetricNames,omitempty"`
	MetricStrategies      []MetricStrategy `json:"metricStrategies,omitempty"`
}

// EarlyStoppingSpec names the early-stopping algorithm: medianstop, with settings min_trials_required
// (default 3) and start_step (default 4). A running trial whose objective value, once it has reported
// start_step values, is worse than the median of the objective values of the completed trials is
// stopped: condition EarlyStopped, reason TrialEarlyStopped.
type EarlyStoppingSpec struct {
	AlgorithmName     string             `json:"algorithmName"`
	AlgorithmSettings []AlgorithmSetting `json:"algorithmSettings,omitempty"`
}

// EarlyStoppingRule is what a running trial checks (Katib's EarlyStoppingRule): stop once the metric has
// been reported StartStep times and its latest value compares to Value as Comparison says ("less" when
// maximizing, "greater" when minimizing).
type EarlyStoppingRule struct {
	Name       string  `json:"name"`
	Value      float64 `json:"value"`
	Comparison string  `json:"comparison"`
	StartStep  int     `json:"startStep"`
}

// AlgorithmSetting is a name/value setting of the algorithm.
type AlgorithmSetting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// AlgorithmSpec names the suggestion algorithm: random, grid or tpe.
type AlgorithmSpec struct {
	AlgorithmName     string             `json:"algorithmName"`
	AlgorithmSettings []AlgorithmSetting `json:"algorithmSettings,omitempty"`
}

// TrialParameterSpec binds ${trialParameters.<name>} in the trial template to a search parameter
// (reference) or, for Katib's metadata references, ${trialSpec.Name} / ${trialSpec.Namespace}.
type TrialParameterSpec struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Reference   string `json:"reference"`
}

// TrialTemplate is the job each trial runs: TrialSpec (a TFJob or PyTorchJob, kubeflow.org/v1) with
// ${trialParameters.x} placeholders. ConfigMap is refused (no Kubernetes API). PrimaryPodLabels picks the
// replica whose log the StdOut collector reads (training.kubeflow.org/replica-type; default the Chief or
// Master when the job has one, else Worker 0). SuccessCondition/FailureCondition are Katib's GJSON
// expressions over the job; Sluice reads the condition type they test (`type=="Succeeded"`) and matches
// it against the training job's conditions.
type TrialTemplate struct {
	Retain               bool                 `json:"retain,omitempty"`
	TrialSpec            json.RawMessage      `json:"trialSpec,omitempty"`
	ConfigMap            *json.RawMessage     `json:"configMap,omitempty"`
	TrialParameters      []TrialParameterSpec `json:"trialParameters,omitempty"`
	PrimaryPodLabels     map[string]string    `json:"primaryPodLabels,omitempty"`
	PrimaryContainerName string               `json:"primaryContainerName,omitempty"`
	SuccessCondition     string               `json:"successCondition,omitempty"`
	FailureCondition     string               `json:"failureCondition,omitempty"`
}

// CollectorKind names a metrics collector.
type CollectorKind string

const (
	CollectorStdOut          CollectorKind = "StdOut"
	CollectorTensorFlowEvent CollectorKind = "TensorFlowEvent"
	CollectorFile            CollectorKind = "File"
	CollectorNone            CollectorKind = "None"
)

// MetricsCollectorSpec picks the collector and where it reads.
type MetricsCollectorSpec struct {
	Source    *SourceSpec    `json:"source,omitempty"`
	Collector *CollectorSpec `json:"collector,omitempty"`
}

// SourceSpec: Filter for StdOut (metricsFormat regexes, each with two groups: name, value),
// FileSystemPath for TensorFlowEvent (a local directory or s3://bucket/prefix; "{trialName}" in it is
// replaced by the trial's name). HttpGet is refused.
type SourceSpec struct {
	HTTPGet        *json.RawMessage `json:"httpGet,omitempty"`
	FileSystemPath *FileSystemPath  `json:"fileSystemPath,omitempty"`
	Filter         *FilterSpec      `json:"filter,omitempty"`
}

// FileSystemPath is where event files are.
type FileSystemPath struct {
	Path   string `json:"path,omitempty"`
	Kind   string `json:"kind,omitempty"`
	Format string `json:"format,omitempty"`
}

// FilterSpec holds metricsFormat regexes.
type FilterSpec struct {
	MetricsFormat []string `json:"metricsFormat,omitempty"`
}

// CollectorSpec names the collector kind.
type CollectorSpec struct {
	Kind CollectorKind `json:"kind"`
}

// DefaultMetricsFormat is Katib's default StdOut filter.
const DefaultMetricsFormat = `([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)`

// Condition types and reasons, as Katib reports them.
const (
	ConditionCreated   = "Created"
	ConditionRunning   = "Running"
	ConditionSucceeded = "Succeeded"
	ConditionFailed    = "Failed"
	// ConditionMetricsUnavailable: the trial's job succeeded but the objective metric was never reported.
	ConditionMetricsUnavailable = "MetricsUnavailable"
	// ConditionEarlyStopped: the early-stopping rule stopped the trial.
	ConditionEarlyStopped = "EarlyStopped"
	// ConditionKilled: the trial was still running when the experiment ended (goal reached, failed).
	ConditionKilled = "Killed"

	ReasonExperimentCreated              = "ExperimentCreated"
	ReasonExperimentRunning              = "ExperimentRunning"
	ReasonExperimentGoalReached          = "ExperimentGoalReached"
	ReasonExperimentMaxTrialsReached     = "ExperimentMaxTrialsReached"
	ReasonExperimentSuggestionEndReached = "ExperimentSuggestionEndReached"
	ReasonExperimentFailed               = "ExperimentFailed"

	ReasonTrialCreated            = "TrialCreated"
	ReasonTrialRunning            = "TrialRunning"
	ReasonTrialSucceeded          = "TrialSucceeded"
	ReasonTrialFailed             = "TrialFailed"
	ReasonTrialMetricsUnavailable = "MetricsUnavailable"
	ReasonTrialEarlyStopped       = "TrialEarlyStopped"
	ReasonTrialKilled             = "TrialKilled"
)

// Condition is a Katib condition: Status is "True" or "False".
type Condition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"`
	Reason             string    `json:"reason,omitempty"`
	Message            string    `json:"message,omitempty"`
	LastUpdateTime     time.Time `json:"lastUpdateTime"`
	LastTransitionTime time.Time `json:"lastTransitionTime"`
}

// ParameterAssignment is one parameter's value in a trial (value as a string, as Katib writes it).
type ParameterAssignment struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Metric is one metric's observed values; Min/Max/Latest as strings, as in Katib's Observation.
type Metric struct {
	Name   string `json:"name"`
	Min    string `json:"min"`
	Max    string `json:"max"`
	Latest string `json:"latest"`
}

// Observation is what the collector saw.
type Observation struct {
	Metrics []Metric `json:"metrics,omitempty"`
}

// OptimalTrial is status.currentOptimalTrial.
type OptimalTrial struct {
	BestTrialName        string                `json:"bestTrialName"`
	ParameterAssignments []ParameterAssignment `json:"parameterAssignments"`
	Observation          Observation           `json:"observation"`
}

// ExperimentStatus mirrors Katib's ExperimentStatus.
type ExperimentStatus struct {
	StartTime                   *time.Time    `json:"startTime,omitempty"`
	CompletionTime              *time.Time    `json:"completionTime,omitempty"`
	LastReconcileTime           *time.Time    `json:"lastReconcileTime,omitempty"`
	Conditions                  []Condition   `json:"conditions,omitempty"`
	CurrentOptimalTrial         *OptimalTrial `json:"currentOptimalTrial,omitempty"`
	RunningTrialList            []string      `json:"runningTrialList,omitempty"`
	SucceededTrialList          []string      `json:"succeededTrialList,omitempty"`
	FailedTrialList             []string      `json:"failedTrialList,omitempty"`
	MetricsUnavailableTrialList []string      `json:"metricsUnavailableTrialList,omitempty"`
	EarlyStoppedTrialList       []string      `json:"earlyStoppedTrialList,omitempty"`
	TrialsEarlyStopped          int32         `json:"trialsEarlyStopped"`
	KilledTrialList             []string      `json:"killedTrialList,omitempty"`
	TrialsKilled                int32         `json:"trialsKilled"`
	Trials                      int32         `json:"trials"`
	TrialsSucceeded             int32         `json:"trialsSucceeded"`
	TrialsFailed                int32         `json:"trialsFailed"`
	TrialsRunning               int32         `json:"trialsRunning"`
	TrialMetricsUnavailable     int32         `json:"trialMetricsUnavailable"`
}

// Trial is one trial: its assignments, the training job it runs, its conditions and observation.
type Trial struct {
	Name                 string                `json:"name"`
	Index                int                   `json:"index"`
	ParameterAssignments []ParameterAssignment `json:"parameterAssignments"`
	// Job is "<kind>/<namespace>/<name>" of the training job the trial runs.
	JobKind        string      `json:"jobKind"`
	Conditions     []Condition `json:"conditions,omitempty"`
	Observation    Observation `json:"observation"`
	StartTime      *time.Time  `json:"startTime,omitempty"`
	CompletionTime *time.Time  `json:"completionTime,omitempty"`
	// Message says why a trial failed or has no metrics.
	Message string `json:"message,omitempty"`
}

// State is the type of the trial's last True condition.
func (t Trial) State() string {
	for i := len(t.Conditions) - 1; i >= 0; i-- {
		if t.Conditions[i].Status == "True" {
			return t.Conditions[i].Type
		}
	}
	return ""
}

// State is the type of the experiment's last True condition.
func (e Experiment) State() string {
	c := e.Status.Conditions
	for i := len(c) - 1; i >= 0; i-- {
		if c[i].Status == "True" {
			return c[i].Type
		}
	}
	return ""
}

// WithoutStatus returns the experiment with an empty status.
func (v Experiment) WithoutStatus() Experiment {
	v.Status = ExperimentStatus{}
	return v
}

// ExperimentView is the answer of QueryExperiment and GET .../experiments/{name}: the experiment with
// its status, and every trial.
type ExperimentView struct {
	Experiment
	TrialsView []Trial `json:"trialList"`
}

// ExperimentList is the answer of GET .../experiments.
type ExperimentList struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Items      []Experiment `json:"items"`
}

// ExperimentInput starts (or continues) an experiment's workflow.
type ExperimentInput struct {
	// Experiment is parsed, defaulted and validated; metadata.uid and creationTimestamp set.
	Experiment Experiment `json:"experiment"`
	// Trials and Status carry the state across continue-as-new (empty on the first run).
	Trials []Trial           `json:"trials,omitempty"`
	Status *ExperimentStatus `json:"status,omitempty"`
	// Exhausted is true once the algorithm had no more suggestions (grid).
	Exhausted bool `json:"exhausted,omitempty"`
	// TrialsPerRun bounds the trials launched by one workflow run before it continues as new (0: 50).
	TrialsPerRun int `json:"trialsPerRun,omitempty"`
	// PollInterval is how often a trial's job is polled (0: 1 s).
	PollInterval time.Duration `json:"pollInterval,omitempty"`
}

// ExperimentResult is the final view of a deleted experiment.
type ExperimentResult struct {
	Deleted bool `json:"deleted"`
}

// ExperimentEvent is the data of io.sluice.tuning.experiment.*.v1 (created, running, succeeded, failed,
// deleted) and of io.sluice.tuning.trial.*.v1 (succeeded, failed) events.
type ExperimentEvent struct {
	Namespace           string        `json:"namespace"`
	Name                string        `json:"name"`
	Condition           string        `json:"condition"`
	Reason              string        `json:"reason,omitempty"`
	Message             string        `json:"message,omitempty"`
	Trial               *Trial        `json:"trial,omitempty"`
	CurrentOptimalTrial *OptimalTrial `json:"currentOptimalTrial,omitempty"`
}
