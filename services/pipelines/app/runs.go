package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/catalog"
	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
)

// invalidError is a run request that can never start (HTTP 400, CLI exit 2, run.rejected event).
// what names the request when it is not a run request ("Secret", "ConfigMap").
type invalidError struct {
	what     string
	problems []string
}

func (e *invalidError) Error() string {
	what := e.what
	if what == "" {
		what = "run request"
	}
	return "invalid " + what + ":\n  " + strings.Join(e.problems, "\n  ")
}

func invalid(err error) *invalidError {
	if fe := dag.AsFieldErrors(err); len(fe) > 0 {
		out := make([]string, len(fe))
		for i, f := range fe {
			out[i] = f.Error()
		}
		return &invalidError{problems: out}
	}
	return &invalidError{problems: []string{err.Error()}}
}

// prepare resolves what a request runs and validates it completely; nothing is created. The run's
// namespace is its experiment's (one the caller may not read, or of another namespace than
// req.Namespace, is "no experiment"), else req.Namespace, else "default"; the caller of ctx must be a
// contributor there (a forbidden error), and the pipeline must be the namespace's or shared.
func (a *App) prepare(ctx context.Context, req pipelinesv1.RunRequest, runID string) (pipelinesv1.RunInput, *dag.Pipeline, error) {
	in := pipelinesv1.RunInput{RunID: runID, RunName: req.RunName, ExperimentID: req.ExperimentID, Parameters: req.Parameters, DisableCache: req.DisableCache}
	if err := pipelinesv1.ValidateRunID(runID); err != nil {
		return in, nil, &invalidError{problems: []string{err.Error()}}
	}
	if req.Namespace != "" {
		if err := auth.ValidNamespace(req.Namespace); err != nil {
			return in, nil, &invalidError{problems: []string{"namespace: " + err.Error()}}
		}
	}
	in.Namespace = req.Namespace
	if req.ExperimentID != "" {
		e, err := a.catalog.Experiment(ctx, req.ExperimentID)
		if err != nil || !readable(ctx, e.Namespace) || (req.Namespace != "" && e.Namespace != req.Namespace) {
			return in, nil, &invalidError{problems: []string{fmt.Sprintf("experiment_id: no experiment %q", req.ExperimentID)}}
		}
		in.Namespace = e.Namespace
	}
	in.Namespace = orDefault(in.Namespace)
	if in.ExperimentID == "" {
		in.ExperimentID = catalog.DefaultExperiment(in.Namespace).ID
	}
	if !auth.Allowed(ctx, in.Namespace, auth.RoleContributor) {
		id, _ := auth.FromContext(ctx)
		return in, nil, fmt.Errorf("%w: create run: %q may not create runs in namespace %q (needs contributor)", platform.ErrForbidden, id.Subject, in.Namespace)
	}
	refs := 0
	for _, s := range []string{req.PipelineID, req.PipelineName, req.Spec} {
		if s != "" {
			refs++
		}
	}
	if refs != 1 {
		return in, nil, &invalidError{problems: []string{"exactly one of pipeline_id, pipeline_name or spec is required"}}
	}
	switch {
	case req.Spec != "":
		in.Spec = req.Spec
	default:
		pid := req.PipelineID
		if pid == "" {
			p, err := a.catalog.PipelineByName(ctx, in.Namespace, req.PipelineName)
			if errors.Is(err, catalog.ErrNotFound) {
				return in, nil, &invalidError{problems: []string{fmt.Sprintf("pipeline_name: no pipeline %q", req.PipelineName)}}
			}
			if err != nil {
				return in, nil, err
			}
			pid = p.ID
		}
		if p, err := a.catalog.Pipeline(ctx, pid); err == nil && p.Namespace != "" && p.Namespace != in.Namespace {
			// another namespace's pipeline is not there for this run, whether or not the caller may read it
			return in, nil, &invalidError{problems: []string{fmt.Sprintf("pipeline_id: no pipeline %q or version %q", pid, req.PipelineVersionID)}}
		}
		v, err := a.catalog.Version(ctx, pid, req.PipelineVersionID)
		if errors.Is(err, catalog.ErrNotFound) {
			return in, nil, &invalidError{problems: []string{fmt.Sprintf("pipeline_id: no pipeline %q or version %q", pid, req.PipelineVersionID)}}
		}
		if err != nil {
			return in, nil, err
		}
		in.Spec, in.PipelineID, in.VersionID = v.Spec, pid, v.ID
	}
	if req.CacheMaxStaleness != "" {
		d, err := time.ParseDuration(req.CacheMaxStaleness)
		if err != nil || d < 0 {
			return in, nil, &invalidError{problems: []string{fmt.Sprintf("cache_max_staleness: %q is not a duration like 24h", req.CacheMaxStaleness)}}
		}
		in.CacheMaxStaleness = d
	}
	var tooLarge []string
	for _, name := range sortedNames(req.Parameters) {
		if b, _ := json.Marshal(req.Parameters[name]); len(b) > pipelinesv1.MaxParamBytes {
			tooLarge = append(tooLarge, fmt.Sprintf("parameters.%s: value is %d bytes; the limit is %d bytes (16 MiB): pass it as an input artifact", name, len(b), pipelinesv1.MaxParamBytes))
		}
	}
	if len(tooLarge) > 0 {
		return in, nil, &invalidError{problems: tooLarge}
	}
	p, err := a.parseRun(in.Spec)
	if err != nil {
		return in, nil, err
	}
	if _, err := p.ResolveInputs(in.Parameters); err != nil {
		return in, nil, invalid(err)
	}
	if problems := trainingJobNamespaces(p, in.Namespace); len(problems) > 0 {
		return in, nil, &invalidError{problems: problems}
	}
	arts, err := a.inputArtifacts(ctx, p, req.InputArtifacts)
	if err != nil {
		return in, nil, err
	}
	in.InputArtifacts = arts
	in.PipelineName = p.Name
	if in.RunName == "" {
		in.RunName = p.Name + " " + runID
	}
	return in, p, nil
}

// parseRun is [App.parse] of a run's spec through the service's compiled-spec cache (speccache.go). The
// pipeline it returns is shared: read it, never change it.
func (a *App) parseRun(src string) (*dag.Pipeline, error) {
	p, key := a.specs.get(src)
	if p != nil {
		return p, nil
	}
	p, err := a.parse(src)
	if err != nil {
		return nil, err
	}
	a.specs.put(key, p)
	return p, nil
}

// inputArtifacts resolves the pipeline's input artifacts given by URI (RunRequest.InputArtifacts): each
// must be declared in root.inputDefinitions.artifacts and name an object (or, ending in "/", a directory)
// of the artifact store, whose digest and size are recorded; every required one must be given. Problems
// are an *invalidError naming them.
func (a *App) inputArtifacts(ctx context.Context, p *dag.Pipeline, given map[string]string) (map[string]pipelinesv1.Artifact, error) {
	var problems []string
	out := map[string]pipelinesv1.Artifact{}
	for _, name := range sortedNames(anyMap(given)) {
		uri := given[name]
		def, ok := p.Root.InputArtifact(name)
		if !ok {
			problems = append(problems, fmt.Sprintf("input_artifacts.%s: the pipeline has no input artifact %q", name, name))
			continue
		}
		art, err := a.resolveArtifact(ctx, uri)
		if err != nil {
			problems = append(problems, fmt.Sprintf("input_artifacts.%s: %v", name, err))
			continue
		}
		art.Name, art.SchemaTitle = name, def.SchemaTitle
		out[name] = art
	}
	for _, def := range p.Root.InputArtifacts {
		if _, ok := given[def.Name]; !ok && !def.Optional {
			problems = append(problems, fmt.Sprintf("root.inputDefinitions.artifacts.%s: the pipeline's input artifact %q has no value (give its URI in input_artifacts, e.g. sluice pipeline run -a %s=s3://...)", def.Name, def.Name, def.Name))
		}
	}
	if len(problems) > 0 {
		return nil, &invalidError{problems: problems}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// resolveArtifact reads the digest and size of the object (or directory, URI ending in "/") at an s3://
// URI of the artifact store.
func (a *App) resolveArtifact(ctx context.Context, uri string) (pipelinesv1.Artifact, error) {
	store := a.d.Artifacts
	key, err := store.KeyOf(uri)
	if err != nil {
		return pipelinesv1.Artifact{}, fmt.Errorf("%q is not an s3:// URI of the artifact store (bucket %q): %v", uri, store.Bucket(), err)
	}
	if !strings.HasSuffix(uri, "/") {
		obj, err := store.Stat(ctx, key)
		if err != nil {
			if errors.Is(err, artifacts.ErrNotFound) {
				return pipelinesv1.Artifact{}, fmt.Errorf("no object at %s (end a directory's URI with \"/\")", uri)
			}
			return pipelinesv1.Artifact{}, err
		}
		return pipelinesv1.Artifact{URI: store.URI(key), Digest: obj.Digest, Size: obj.Size}, nil
	}
	objs, err := store.List(ctx, key)
	if err != nil {
		return pipelinesv1.Artifact{}, err
	}
	if len(objs) == 0 {
		return pipelinesv1.Artifact{}, fmt.Errorf("no objects under %s", uri)
	}
	art := pipelinesv1.Artifact{URI: store.URI(key) + "/"}
	for i, o := range objs {
		st, err := store.Stat(ctx, o.Key)
		if err != nil {
			return pipelinesv1.Artifact{}, err
		}
		objs[i] = st
		art.Size += st.Size
	}
	art.Digest = engine.DirDigest(key, objs)
	return art, nil
}

func anyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// conflictError is a run id that already names a run started from a different request (HTTP 409).
type conflictError struct{ runID string }

func (e *conflictError) Error() string {
	return fmt.Sprintf("run_id: run %s already exists with a different request (re-submit the same request, or choose another run id)", e.runID)
}

// start starts the run workflow (idempotent by run id) and publishes run.started at once; the workflow
// publishes the same event with the same id, so the stream keeps one. When the run id is taken, it
// answers engine.ErrRunExists if the existing run was started from the same request (idempotent
// re-submission) and a *conflictError otherwise; neither publishes anything.
func (a *App) start(ctx context.Context, in pipelinesv1.RunInput, p *dag.Pipeline) (client.WorkflowRun, error) {
	run, err := engine.Start(ctx, a.tc, in)
	if errors.Is(err, engine.ErrRunExists) {
		prev, perr := a.runInput(ctx, in.RunID)
		if perr != nil {
			return nil, perr
		}
		if !sameRequest(prev, in) {
			return nil, &conflictError{runID: in.RunID}
		}
		return run, err
	}
	if err != nil {
		return nil, err
	}
	ev := pipelinesv1.RunEvent{RunID: in.RunID, RunName: in.RunName, PipelineName: p.Name, ExperimentID: in.ExperimentID,
		Namespace: in.Namespace, State: pipelinesv1.RunRunning, Time: time.Now().UTC()}
	if perr := a.acts.PublishRun(ctx, events.PipelineRunStartedV1, ev); perr != nil {
		return run, perr
	}
	return run, nil
}

// sameRequest compares what two run inputs would run (everything but fields the engine fills in).
func sameRequest(a, b pipelinesv1.RunInput) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// handleRunRequested starts the run asked for by a sluice.pipeline.run.requested.v1 event; the CE id is
// the run id, so a redelivered or duplicated event never starts a second run. An invalid request is
// answered with run.rejected and dead-lettered.
func (a *App) handleRunRequested(ctx context.Context, ev events.Event) error {
	ctx = events.WithPublisher(ctx, ev) // the run's owner (SluiceOwner) is the publisher
	var req pipelinesv1.RunRequest
	if err := ev.DataAs(&req); err != nil {
		a.reject(ctx, ev.ID(), []string{"data: " + err.Error()})
		return events.Permanent(fmt.Errorf("data: %w", err))
	}
	// The event gateway authorised the publisher in the event's namespace (events.Namespace: data.namespace,
	// else the namespace extension, else "default"); the run is created there and nowhere else.
	req.Namespace = events.Namespace(ev)
	in, p, err := a.prepare(ctx, req, ev.ID())
	var ie *invalidError
	if errors.As(err, &ie) {
		a.reject(ctx, ev.ID(), ie.problems)
		return events.Permanent(err)
	}
	if err != nil {
		return err
	}
	_, err = a.start(ctx, in, p)
	var ce *conflictError
	switch {
	case errors.Is(err, engine.ErrRunExists):
		return nil
	case errors.As(err, &ce):
		a.reject(ctx, ev.ID(), []string{ce.Error()})
		return events.Permanent(err)
	}
	return err
}

func (a *App) reject(ctx context.Context, requestID string, problems []string) {
	out, err := events.New("/sluice/"+Name, events.PipelineRunRejectedV1, "runs/"+requestID, pipelinesv1.RunRejected{RequestID: requestID, Errors: problems})
	if err == nil {
		out.SetID(engine.EventID(requestID, events.PipelineRunRejectedV1))
		err = a.d.Bus.Publish(ctx, out)
	}
	if err != nil {
		a.d.Log.WarnContext(ctx, "publish run.rejected", "event_id", requestID, "err", err)
	}
}

// trainingJobNamespaces checks that every training job task of p creates its job in the run's namespace
// ns (a job document naming none is created there).
func trainingJobNamespaces(p *dag.Pipeline, ns string) []string {
	names := make([]string, 0, len(p.Components))
	for name := range p.Components {
		names = append(names, name)
	}
	sort.Strings(names)
	var problems []string
	for _, name := range names {
		c := p.Components[name]
		if c == nil || len(c.TrainingJob) == 0 {
			continue
		}
		var d struct {
			Metadata struct {
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		_ = json.Unmarshal(c.TrainingJob, &d)
		if d.Metadata.Namespace != "" && d.Metadata.Namespace != ns {
			problems = append(problems, fmt.Sprintf("components.%s.trainingJob.metadata.namespace: %q is not the run's namespace %q: a run creates its training jobs in its own namespace", name, d.Metadata.Namespace, ns))
		}
	}
	return problems
}

func sortedNames(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
