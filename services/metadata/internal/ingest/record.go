// Package ingest turns the pipeline, training and serving events on the bus into ML Metadata
// records: one mlmd.IngestRequest per CloudEvent, applied exactly once per CE id.
//
// Mapping (per KFP's metadata/client.go where KFP has one):
//   - io.sluice.pipeline.run.{started,succeeded,failed,cancelled}.v1 (pipelinesv1.RunEvent):
//     contexts system.Pipeline (pipeline name) and system.PipelineRun (run id, child of the
//     pipeline and of sluice.Experiment when the run has one); a system.DAGExecution for the
//     run, RUNNING → COMPLETE | FAILED | CANCELED.
//   - io.sluice.pipeline.task.{started,succeeded,failed,skipped,cached,cancelled}.v1
//     (pipelinesv1.TaskEvent): a system.ContainerExecution named "<run id>/<task path>"
//     (RUNNING, COMPLETE, FAILED, CANCELED for skipped, CACHED) with custom properties
//     task_name, display_name, image, component, attempt, inputs and outputs (parameter
//     values), error, cache_fingerprint (on COMPLETE) and cached_from_run (on CACHED); an
//     artifact per input/output URI (type = schema title, custom property digest) with INPUT
//     events at path [{key: name}] or [{key: name}, {index: i}] for list element "name[i]",
//     and OUTPUT events at [{key: name}] (an output's KFP metadata becomes custom properties);
//     all attributed/associated to the run and pipeline. An importer task (execution_type
//     system.ImporterExecution) is recorded as a system.ImporterExecution with custom property
//     reimport and the imported artifact (its URI) as its OUTPUT, as KFP's importer does.
//   - io.sluice.training.job.*.v1 (trainingv1.JobEvent): context sluice.TrainingJob and
//     execution sluice.TrainingRun, both named "<namespace>/<name>" (created NEW;
//     running, restarting, resumed RUNNING; succeeded COMPLETE; failed FAILED; deleted
//     CANCELED).
//   - io.sluice.training.model.exported.v1 (trainingv1.ModelExported): the job's execution
//     COMPLETE with an OUTPUT system.Model artifact at the export URI (custom properties
//     digest, model_uri and one per metric, e.g. accuracy as a double).
//   - io.sluice.serving.* (metadatav1.ModelDeploymentEvent): context sluice.ModelDeployment
//     "<namespace>/<name>" attributed to the served model artifact (by storage URI).
//
// Every node of a record carries the custom property "namespace" (metadatav1.NamespaceProperty): the
// namespace of the run (data.namespace of run and task events; "default" when absent), training job or
// deployment, and for a model export the namespace of its job. The pipeline context of a run outside
// "default" is named "<namespace>/<pipeline name>", so namespaces never share one.
//
// Payloads are read as the producers' JSON (unknown fields ignored); a payload that cannot be
// decoded or lacks its key fields is a *Malformed error, which the consumer dead-letters.
package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-ml/sluice/libs/events"
	v1 "github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
)

// Malformed is an event that can never be recorded: undecodable data or a missing key field.
type Malformed struct {
	Field string // JSON field path in the event data ("" for the whole payload)
	Err   error
}

func (e *Malformed) Error() string {
	if e.Field == "" {
		return "data: " + e.Err.Error()
	}
	return "data." + e.Field + ": " + e.Err.Error()
}

func (e *Malformed) Unwrap() error { return e.Err }

var errRequired = errors.New("must be set")

// artifactRef is an input or output artifact of a task event (pipelinesv1.Artifact).
type artifactRef struct {
	Name        string `json:"name"`
	URI         string `json:"uri"`
	Digest      string `json:"digest"`
	Size        int64  `json:"size"`
	SchemaTitle string `json:"schema_title"`
	// Metadata is the artifact's KFP metadata (executor output, importer metadata).
	Metadata map[string]any `json:"metadata"`
}

// runEvent is pipelinesv1.RunEvent as this service reads it.
type runEvent struct {
	RunID        string `json:"run_id"`
	RunName      string `json:"run_name"`
	PipelineName string `json:"pipeline_name"`
	ExperimentID string `json:"experiment_id"`
	State        string `json:"state"`
	Error        string `json:"error"`
}

// taskEvent is pipelinesv1.TaskEvent as this service reads it.
type taskEvent struct {
	RunID        string                 `json:"run_id"`
	PipelineName string                 `json:"pipeline_name"`
	TaskPath     string                 `json:"task_path"`
	TaskName     string                 `json:"task_name"`
	Component    string                 `json:"component"`
	Image        string                 `json:"image"`
	State        string                 `json:"state"`
	Attempt      int                    `json:"attempt"`
	Error        string                 `json:"error"`
	Fingerprint  string                 `json:"fingerprint"`
	CachedFrom   string                 `json:"cached_from_run"`
	InputParams  map[string]any         `json:"input_parameters"`
	Inputs       map[string]artifactRef `json:"input_artifacts"`
	OutputParams map[string]any         `json:"output_parameters"`
	Outputs      map[string]artifactRef `json:"output_artifacts"`
	// ExecutionType is set for tasks that are not container steps (system.ImporterExecution).
	ExecutionType string `json:"execution_type"`
	Reimport      *bool  `json:"reimport"`
}

// jobEvent is trainingv1.JobEvent as this service reads it.
type jobEvent struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Condition string `json:"condition"`
	Reason    string `json:"reason"`
	Message   string `json:"message"`
}

// modelExported is trainingv1.ModelExported as this service reads it.
type modelExported struct {
	Job      string         `json:"job"`
	Kind     string         `json:"kind"`
	URI      string         `json:"uri"`
	ModelURI string         `json:"modelUri"`
	Digest   string         `json:"digest"`
	Metrics  map[string]any `json:"metrics"`
}

var (
	runStates = map[string]v1.ExecutionState{
		events.PipelineRunStartedV1:   v1.ExecutionRunning,
		events.PipelineRunSucceededV1: v1.ExecutionComplete,
		events.PipelineRunFailedV1:    v1.ExecutionFailed,
		events.PipelineRunCancelledV1: v1.ExecutionCanceled,
	}
	taskStates = map[string]v1.ExecutionState{
		events.PipelineTaskStartedV1:   v1.ExecutionRunning,
		events.PipelineTaskSucceededV1: v1.ExecutionComplete,
		events.PipelineTaskFailedV1:    v1.ExecutionFailed,
		events.PipelineTaskSkippedV1:   v1.ExecutionCanceled,
		events.PipelineTaskCachedV1:    v1.ExecutionCached,
		events.PipelineTaskCancelledV1: v1.ExecutionCanceled,
	}
	jobStates = map[string]v1.ExecutionState{
		events.TrainingJobCreatedV1:    v1.ExecutionNew,
		events.TrainingJobRunningV1:    v1.ExecutionRunning,
		events.TrainingJobRestartingV1: v1.ExecutionRunning,
		events.TrainingJobResumedV1:    v1.ExecutionRunning,
		events.TrainingJobSuspendedV1:  v1.ExecutionUnknown, // no MLMD state: keeps the current one
		events.TrainingJobSucceededV1:  v1.ExecutionComplete,
		events.TrainingJobFailedV1:     v1.ExecutionFailed,
		events.TrainingJobDeletedV1:    v1.ExecutionCanceled, // a job deleted before it ended
	}
	deploymentStates = map[string]string{
		events.ServingModelDeployedV1:      "DEPLOYED",
		events.ServingModelVersionLoadedV1: "LOADED",
		events.ServingModelFailedV1:        "FAILED",
		events.ServingDeploymentDeletedV1:  "DELETED",
	}
)

// Types lists every CloudEvent type Record maps, by stream.
func Types() map[string][]string {
	out := map[string][]string{}
	add := func(stream string, m []string) { out[stream] = append(out[stream], m...) }
	add(events.StreamPipeline, sortedKeys(runStates))
	add(events.StreamPipeline, sortedKeys(taskStates))
	add(events.StreamTraining, append(sortedKeys(jobStates), events.TrainingModelExportedV1))
	add(events.StreamServing, sortedKeys(deploymentStates))
	for _, l := range out {
		sort.Strings(l)
	}
	return out
}

// Record maps one CloudEvent to its lineage record; ok is false for types it does not map.
// The error is a *Malformed when the event can never be recorded.
func Record(ev events.Event) (req mlmd.IngestRequest, ok bool, err error) {
	t := ev.Type()
	switch {
	case runStates[t] != "":
		req, err = recordRun(ev)
	case taskStates[t] != "":
		req, err = recordTask(ev)
	case t == events.TrainingModelExportedV1:
		req, err = recordModel(ev)
	case hasKey(jobStates, t):
		req, err = recordJob(ev)
	case deploymentStates[t] != "":
		req, err = recordDeployment(ev)
	default:
		return mlmd.IngestRequest{}, false, nil
	}
	if err != nil {
		return mlmd.IngestRequest{}, true, err
	}
	ns := events.Namespace(ev)
	if t == events.TrainingModelExportedV1 {
		var m modelExported
		_ = json.Unmarshal(ev.Data(), &m)
		ns, _, _ = strings.Cut(m.Job, "/")
	}
	stampNamespace(&req, ns)
	req.Source, req.SourceID, req.SourceType = ev.Source(), ev.ID(), t
	return req, true, nil
}

// stampNamespace records ns on every node of req, and names a pipeline context outside the default
// namespace "<ns>/<pipeline>".
func stampNamespace(req *mlmd.IngestRequest, ns string) {
	if ns == "" {
		ns = v1.DefaultNamespace
	}
	set := func(p map[string]mlmd.Value) map[string]mlmd.Value {
		if p == nil {
			p = map[string]mlmd.Value{}
		}
		p[v1.NamespaceProperty] = v1.String(ns)
		return p
	}
	for i := range req.Contexts {
		c := &req.Contexts[i]
		if c.Type == v1.ContextTypePipeline && ns != v1.DefaultNamespace {
			c.Name = ns + "/" + c.Name
		}
		c.CustomProperties = set(c.CustomProperties)
	}
	if req.Execution != nil {
		req.Execution.CustomProperties = set(req.Execution.CustomProperties)
	}
	for i := range req.Artifacts {
		req.Artifacts[i].Artifact.CustomProperties = set(req.Artifacts[i].Artifact.CustomProperties)
	}
}

func decode(ev events.Event, into any) error {
	data := ev.Data()
	if len(data) == 0 {
		return &Malformed{Err: errors.New("is empty")}
	}
	if err := json.Unmarshal(data, into); err != nil {
		return &Malformed{Err: fmt.Errorf("not a JSON %s payload: %v", ev.Type(), err)}
	}
	return nil
}

func required(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if strings.TrimSpace(fields[i+1]) == "" {
			return &Malformed{Field: fields[i], Err: errRequired}
		}
	}
	return nil
}

// pipelineContexts are the pipeline and run contexts (run nested in pipeline) of an event.
func pipelineContexts(pipeline, run string) ([]mlmd.Context, []mlmd.ContextLink) {
	return []mlmd.Context{
			{Type: v1.ContextTypePipeline, Name: pipeline},
			{Type: v1.ContextTypePipelineRun, Name: run},
		},
		[]mlmd.ContextLink{{Child: 1, Parent: 0}}
}

func recordRun(ev events.Event) (mlmd.IngestRequest, error) {
	var r runEvent
	if err := decode(ev, &r); err != nil {
		return mlmd.IngestRequest{}, err
	}
	if err := required("run_id", r.RunID, "pipeline_name", r.PipelineName); err != nil {
		return mlmd.IngestRequest{}, err
	}
	ctxs, links := pipelineContexts(r.PipelineName, r.RunID)
	runProps := props{}
	runProps.str("run_name", r.RunName)
	runProps.str("experiment_id", r.ExperimentID)
	ctxs[1].CustomProperties = runProps
	if r.ExperimentID != "" {
		ctxs = append(ctxs, mlmd.Context{Type: v1.ContextTypeExperiment, Name: r.ExperimentID})
		links = append(links, mlmd.ContextLink{Child: 1, Parent: 2})
	}
	p := props{}
	p.str("display_name", r.RunName)
	p.str("pipeline_name", r.PipelineName)
	if ev.Type() != events.PipelineRunSucceededV1 {
		p.str("error", r.Error)
	}
	return mlmd.IngestRequest{
		Contexts: ctxs, ParentContexts: links,
		Execution: &mlmd.Execution{Type: v1.ExecutionTypeDAG, Name: r.RunID, ExternalID: v1.ExternalIDPipelineRun + r.RunID,
			LastKnownState: runStates[ev.Type()], CustomProperties: p},
	}, nil
}

func recordTask(ev events.Event) (mlmd.IngestRequest, error) {
	var t taskEvent
	if err := decode(ev, &t); err != nil {
		return mlmd.IngestRequest{}, err
	}
	if err := required("run_id", t.RunID, "pipeline_name", t.PipelineName, "task_path", t.TaskPath); err != nil {
		return mlmd.IngestRequest{}, err
	}
	state := taskStates[ev.Type()]
	p := props{}
	name := t.TaskName
	if name == "" {
		name = t.TaskPath[strings.LastIndex(t.TaskPath, "/")+1:]
	}
	p.str("task_name", name)
	p.str("display_name", name)
	p.str("image", t.Image)
	p.str("component", t.Component)
	if t.Attempt > 0 {
		p["attempt"] = v1.Int(int64(t.Attempt))
	}
	if err := p.object("inputs", t.InputParams, "input_parameters"); err != nil {
		return mlmd.IngestRequest{}, err
	}
	if err := p.object("outputs", t.OutputParams, "output_parameters"); err != nil {
		return mlmd.IngestRequest{}, err
	}
	switch state {
	case v1.ExecutionComplete:
		p.str(v1.CacheFingerprintProperty, t.Fingerprint)
	case v1.ExecutionCached:
		p.str("cached_from_run", t.CachedFrom)
	case v1.ExecutionFailed:
		p.str("error", t.Error)
	case v1.ExecutionCanceled:
		p.str("task_state", t.State) // SKIPPED or OMITTED
		p.str("error", t.Error)
	}
	execType := v1.ExecutionTypeContainer
	if t.ExecutionType == v1.ExecutionTypeImporter {
		execType = v1.ExecutionTypeImporter
		if t.Reimport != nil {
			p["reimport"] = v1.Bool(*t.Reimport)
		}
	}
	req := mlmd.IngestRequest{
		Execution: &mlmd.Execution{Type: execType, Name: t.RunID + "/" + t.TaskPath,
			ExternalID: v1.ExternalIDPipelineTask + t.RunID + "/" + t.TaskPath, LastKnownState: state, CustomProperties: p},
	}
	req.Contexts, req.ParentContexts = pipelineContexts(t.PipelineName, t.RunID)
	ins, err := taskArtifacts("input_artifacts", t.Inputs, v1.EventInput)
	if err != nil {
		return mlmd.IngestRequest{}, err
	}
	outs, err := taskArtifacts("output_artifacts", t.Outputs, v1.EventOutput)
	if err != nil {
		return mlmd.IngestRequest{}, err
	}
	req.Artifacts = append(ins, outs...)
	return req, nil
}

// taskArtifacts turns a task event's artifact map into artifacts with events, ordered by
// name and list index. A key "name[i]" is element i of list input name.
func taskArtifacts(field string, m map[string]artifactRef, typ v1.EventType) ([]mlmd.IngestArtifact, error) {
	type keyed struct {
		key   string
		name  string
		index int64
		list  bool
		ref   artifactRef
	}
	var ks []keyed
	for k, a := range m {
		f := field + "." + k
		if strings.TrimSpace(a.URI) == "" {
			return nil, &Malformed{Field: f + ".uri", Err: errRequired}
		}
		kd := keyed{key: k, name: k, ref: a}
		if open := strings.LastIndexByte(k, '['); open > 0 && strings.HasSuffix(k, "]") {
			if i, err := strconv.ParseInt(k[open+1:len(k)-1], 10, 64); err == nil && i >= 0 {
				kd.name, kd.index, kd.list = k[:open], i, true
			}
		}
		ks = append(ks, kd)
	}
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].name != ks[j].name {
			return ks[i].name < ks[j].name
		}
		return ks[i].index < ks[j].index
	})
	out := make([]mlmd.IngestArtifact, 0, len(ks))
	for _, k := range ks {
		steps := []v1.Step{v1.KeyStep(k.name)}
		if k.list {
			steps = append(steps, v1.IndexStep(k.index))
		}
		a := modelArtifact(k.ref.URI, k.ref.SchemaTitle)
		p := props{}
		// As KFP's launcher records an artifact: each metadata field is a custom property (a Metrics
		// artifact's logged metrics, a Dataset's own fields); Sluice's digest and size come after.
		for _, mk := range sortedKeys(k.ref.Metadata) {
			p.metric(mk, k.ref.Metadata[mk])
		}
		p.str("digest", k.ref.Digest)
		if k.ref.Size > 0 {
			p["size"] = v1.Int(k.ref.Size)
		}
		if typ == v1.EventOutput && !hasKey(p, "display_name") {
			p.str("display_name", k.name)
			for _, mk := range sortedMetaKeys(k.ref.Metadata) {
				if _, taken := p[mk]; !taken {
					p.metric(mk, k.ref.Metadata[mk])
				}
			}
		}
		a.CustomProperties = p
		out = append(out, mlmd.IngestArtifact{Artifact: a, Event: &mlmd.Event{Type: typ, Path: &v1.EventPath{Steps: steps}}})
	}
	return out, nil
}

func sortedMetaKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// NormalizeURI is the artifact identity of a storage URI: surrounding spaces and trailing
// slashes removed, so a model directory reported as ".../1/" and ".../1" is one artifact.
func NormalizeURI(uri string) string {
	uri = strings.TrimSpace(uri)
	for strings.HasSuffix(uri, "/") && !strings.HasSuffix(uri, "://") {
		uri = strings.TrimSuffix(uri, "/")
	}
	return uri
}

func modelArtifact(uri, typ string) mlmd.Artifact {
	if typ == "" {
		typ = v1.ArtifactTypeDefault
	}
	uri = NormalizeURI(uri)
	return mlmd.Artifact{Type: typ, URI: uri, ExternalID: uri, State: v1.ArtifactLive}
}

func recordJob(ev events.Event) (mlmd.IngestRequest, error) {
	var j jobEvent
	if err := decode(ev, &j); err != nil {
		return mlmd.IngestRequest{}, err
	}
	if err := required("namespace", j.Namespace, "name", j.Name); err != nil {
		return mlmd.IngestRequest{}, err
	}
	key := j.Namespace + "/" + j.Name
	p := props{}
	p.str("kind", j.Kind)
	if ev.Type() == events.TrainingJobFailedV1 {
		p.str("error", strings.TrimSpace(j.Reason+": "+j.Message))
	}
	return trainingRecord(key, j.Kind, jobStates[ev.Type()], p), nil
}

func trainingRecord(job, kind string, state v1.ExecutionState, p props) mlmd.IngestRequest {
	cp := props{}
	cp.str("kind", kind)
	return mlmd.IngestRequest{
		Contexts: []mlmd.Context{{Type: v1.ContextTypeTrainingJob, Name: job, CustomProperties: cp}},
		Execution: &mlmd.Execution{Type: v1.ExecutionTypeTrainingRun, Name: job, ExternalID: v1.ExternalIDTrainingJob + job,
			LastKnownState: state, CustomProperties: p},
	}
}

func recordModel(ev events.Event) (mlmd.IngestRequest, error) {
	var m modelExported
	if err := decode(ev, &m); err != nil {
		return mlmd.IngestRequest{}, err
	}
	if err := required("job", m.Job, "uri", m.URI); err != nil {
		return mlmd.IngestRequest{}, err
	}
	if ns, name, ok := strings.Cut(m.Job, "/"); !ok || ns == "" || name == "" {
		return mlmd.IngestRequest{}, &Malformed{Field: "job", Err: fmt.Errorf("must be <namespace>/<name>, got %q", m.Job)}
	}
	ep := props{}
	ep.str("kind", m.Kind)
	req := trainingRecord(m.Job, m.Kind, v1.ExecutionComplete, ep)
	a := modelArtifact(m.URI, v1.ArtifactTypeModel)
	p := props{}
	p.str("digest", m.Digest)
	p.str("model_uri", m.ModelURI)
	p.str("display_name", "model")
	for _, k := range sortedKeys(m.Metrics) {
		if _, taken := p[k]; taken {
			k2 := "metric_" + k
			p.metric(k2, m.Metrics[k])
			continue
		}
		p.metric(k, m.Metrics[k])
	}
	a.CustomProperties = p
	req.Artifacts = []mlmd.IngestArtifact{{Artifact: a, Event: &mlmd.Event{Type: v1.EventOutput, Path: &v1.EventPath{Steps: []v1.Step{v1.KeyStep("model")}}}}}
	return req, nil
}

func recordDeployment(ev events.Event) (mlmd.IngestRequest, error) {
	var d v1.ModelDeploymentEvent
	if err := decode(ev, &d); err != nil {
		return mlmd.IngestRequest{}, err
	}
	if err := required("namespace", d.Namespace, "name", d.Name); err != nil {
		return mlmd.IngestRequest{}, err
	}
	p := props{}
	p.str("state", deploymentStates[ev.Type()])
	p.str("model", d.Model)
	if d.Version > 0 {
		p.str("version", strconv.FormatInt(d.Version, 10))
	}
	p.str("model_uri", d.ModelURI)
	p.str("model_digest", d.Digest)
	p.str("model_format", d.ModelFormat)
	p.str("storage_uri", NormalizeURI(d.StorageURI))
	p.str("reason", d.Reason)
	if !d.Time.IsZero() {
		p["state_time_ms"] = v1.Int(d.Time.UnixMilli())
	}
	req := mlmd.IngestRequest{Contexts: []mlmd.Context{{Type: v1.ContextTypeModelDeployment, Name: d.Namespace + "/" + d.Name, CustomProperties: p}}}
	if d.StorageURI != "" && ev.Type() != events.ServingDeploymentDeletedV1 {
		// The served model is the version directory holding the model file (the artifact a training job
		// exported), else the storage URI itself.
		uri := d.StorageURI
		if i := strings.LastIndex(d.ModelURI, "/"); i > len("s3://") {
			uri = d.ModelURI[:i]
		}
		req.Artifacts = []mlmd.IngestArtifact{{Artifact: modelArtifact(uri, v1.ArtifactTypeModel)}}
	}
	return req, nil
}

// props builds custom properties, skipping empty strings.
type props map[string]mlmd.Value

func (p props) str(k, v string) {
	if v != "" {
		p[k] = v1.String(v)
	}
}

// object stores a JSON object (parameter values) as a struct_value.
func (p props) object(k string, m map[string]any, field string) error {
	if len(m) == 0 {
		return nil
	}
	v, err := v1.Struct(m)
	if err != nil {
		return &Malformed{Field: field, Err: err}
	}
	p[k] = v
	return nil
}

// metric stores a metric value: numbers as double_value (so filters like
// custom_properties.accuracy.double_value > 0.9 work), strings, bools, objects as
// struct_value, anything else as its JSON text.
func (p props) metric(k string, v any) {
	switch x := v.(type) {
	case float64:
		p[k] = v1.Double(x)
	case string:
		p[k] = v1.String(x)
	case bool:
		p[k] = v1.Bool(x)
	case map[string]any:
		if s, err := v1.Struct(x); err == nil {
			p[k] = s
		}
	case nil:
	default:
		if b, err := json.Marshal(x); err == nil {
			p[k] = v1.String(string(b))
		}
	}
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
