package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/runtime"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

// ImportInput is one importer task (KFP dsl.importer): the importer spec and the task's resolved inputs.
type ImportInput struct {
	RunID        string         `json:"run_id"`
	PipelineName string         `json:"pipeline_name"`
	TaskPath     string         `json:"task_path"`
	TaskName     string         `json:"task_name"`
	Component    string         `json:"component"`
	Importer     dag.Importer   `json:"importer"`
	Params       map[string]any `json:"params,omitempty"`
	// Output is the component's one output artifact; SchemaTitle its type.
	Output      string `json:"output"`
	SchemaTitle string `json:"schema_title,omitempty"`
}

// runImport runs an importer task: no container, one Import activity that registers the object at the
// artifact URI as the task's output artifact.
func (r *runner) runImport(ctx workflow.Context, t *dag.Task, comp *dag.Component, path string, params map[string]any) taskResult {
	in := ImportInput{RunID: r.in.RunID, PipelineName: r.p.Name, TaskPath: path, TaskName: t.Name, Component: comp.Name,
		Importer: *comp.Importer, Params: params, SchemaTitle: comp.Importer.SchemaTitle}
	if len(comp.OutputArtifacts) == 1 {
		in.Output = comp.OutputArtifacts[0].Name
		if in.SchemaTitle == "" || in.SchemaTitle == "system.Artifact" {
			in.SchemaTitle = comp.OutputArtifacts[0].SchemaTitle
		}
	}
	r.setTask(ctx, path, t.Name, pipelinesv1.TaskRunning, func(ts *pipelinesv1.TaskState) { ts.Attempts = 1 })
	var a *Activities
	var out StepResult
	actx := withSummary(workflow.WithActivityOptions(ctx, wf.ShortActivity()), "importer "+path)
	err := workflow.ExecuteActivity(actx, a.Import, in).Get(ctx, &out)
	if err != nil {
		var ce *temporal.CanceledError
		if errors.As(err, &ce) || ctx.Err() != nil {
			return taskResult{State: pipelinesv1.TaskCancelled, Error: "cancelled"}
		}
		return taskResult{State: pipelinesv1.TaskFailed, Error: rootMessage(err)}
	}
	return taskResult{State: pipelinesv1.TaskSucceeded, Outputs: out.Outputs}
}

// Import registers the object at an importer's artifact URI as the task's output artifact, as KFP's
// importer launcher does: the URI is the constant or the input parameter artifactUri names, the metadata
// has its input placeholders resolved, and the task is recorded as a system.ImporterExecution whose
// output is the artifact at that URI (with its digest and size, read from the store). The object must
// exist in the artifact store's bucket, since the steps that consume it download it from there.
func (a *Activities) Import(ctx context.Context, in ImportInput) (StepResult, error) {
	ev := StepInput{RunID: in.RunID, PipelineName: in.PipelineName, TaskPath: in.TaskPath, TaskName: in.TaskName,
		Component: in.Component, Attempt: 1, Params: in.Params, LastAttempt: true}
	art, err := a.importArtifact(ctx, in)
	if err == nil && in.Importer.DownloadToWorkspace {
		art, err = a.downloadToWorkspace(ctx, in.RunID, art)
	}
	if err != nil {
		if isBusinessFailure(err) || wf.ErrorType(err) == wf.ErrTypeNotFound {
			_ = a.taskEvent(ctx, events.PipelineTaskFailedV1, ev, pipelinesv1.TaskEvent{State: pipelinesv1.TaskFailed, Error: err.Error(),
				ExecutionType: pipelinesv1.ExecutionTypeImporter, Reimport: &in.Importer.Reimport})
		}
		return StepResult{}, err
	}
	res := StepResult{Outputs: outputs{Artifacts: map[string][]Artifact{in.Output: {art}}}}
	err = a.taskEvent(ctx, events.PipelineTaskSucceededV1, ev, pipelinesv1.TaskEvent{State: pipelinesv1.TaskSucceeded,
		Outputs: firstArtifacts(res.Outputs.Artifacts), ExecutionType: pipelinesv1.ExecutionTypeImporter, Reimport: &in.Importer.Reimport})
	return res, err
}

func (a *Activities) importArtifact(ctx context.Context, in ImportInput) (Artifact, error) {
	invalid := func(format string, args ...any) (Artifact, error) {
		return Artifact{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, fmt.Errorf("importer: "+format, args...))
	}
	uri := in.Importer.URI
	if p := in.Importer.URIParam; p != "" {
		s, ok := in.Params[p].(string)
		if !ok || s == "" {
			return invalid("input parameter %q (the artifact URI) has no value", p)
		}
		uri = s
	}
	if err := dag.CheckImportURI(uri); err != nil {
		return invalid("%v", err)
	}
	if rest, ok := strings.CutPrefix(uri, "minio://"); ok { // KFP's name for the same store
		uri = artifacts.URIScheme + rest
	}
	bucket, _, err := artifacts.ParseURI(uri)
	if err != nil {
		return invalid("%v", err)
	}
	if bucket != a.Store.Bucket() {
		return invalid("artifact URI %s is in bucket %q; steps read artifacts from the artifact store's bucket %q", uri, bucket, a.Store.Bucket())
	}
	key, err := a.Store.KeyOf(uri)
	if err != nil {
		return invalid("%v", err)
	}
	meta, err := dag.ResolveImporterMetadata(in.Importer.Metadata, in.Params)
	if err != nil {
		return invalid("%v", err)
	}
	art := Artifact{Name: in.Output, SchemaTitle: in.SchemaTitle, Metadata: meta}
	if !isDirURI(uri) {
		obj, err := a.Store.Stat(ctx, key)
		if err == nil {
			art.URI, art.Digest, art.Size = a.Store.URI(key), obj.Digest, obj.Size
			return art, nil
		}
		if !errors.Is(err, artifacts.ErrNotFound) {
			return Artifact{}, fmt.Errorf("importer: stat %s: %w", uri, err)
		}
	}
	// A directory: the objects under <key>/ (the URI as given, with or without a trailing slash).
	objs, err := a.Store.List(ctx, key)
	if err != nil {
		return Artifact{}, fmt.Errorf("importer: list %s: %w", uri, err)
	}
	if len(objs) == 0 {
		return Artifact{}, wf.NonRetryable(wf.ErrTypeNotFound, fmt.Errorf("importer: nothing to import at %s (no object and no objects under it in the artifact store)", uri))
	}
	for i, o := range objs { // List does not read digests
		st, err := a.Store.Stat(ctx, o.Key)
		if err != nil {
			return Artifact{}, fmt.Errorf("importer: stat %s: %w", o.Key, err)
		}
		objs[i] = st
		art.Size += st.Size
	}
	art.URI, art.Digest = a.Store.URI(key)+"/", dirDigest(key, objs)
	return art, nil
}

// downloadToWorkspace downloads an imported artifact into the run's workspace at
// workspaceArtifactPath, as KFP's importer launcher does for ImporterSpec.download_to_workspace, and
// returns it flagged with workspaceFlag so that its consumers read it there. Under the local runtime
// the workspace is a host directory; under Docker, the run's named volume, which the runtime fills
// from a staging directory (volumeFiller). Downloading again (a retried activity) overwrites.
func (a *Activities) downloadToWorkspace(ctx context.Context, runID string, art Artifact) (Artifact, error) {
	key, err := a.Store.KeyOf(strings.TrimSuffix(art.URI, "/"))
	if err != nil {
		return Artifact{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, fmt.Errorf("importer: %v", err))
	}
	get := func(dest string) error {
		var err error
		if isDirURI(art.URI) {
			_, err = a.Store.GetDir(ctx, key, dest)
		} else {
			_, err = a.Store.GetFile(ctx, key, dest)
		}
		if err != nil {
			return fmt.Errorf("importer: download %s to the workspace: %w", art.URI, err)
		}
		return nil
	}
	switch rt := a.Runtime.(type) {
	case *runtime.Local:
		ws, err := a.workspace(runID)
		if err != nil {
			return Artifact{}, err
		}
		if err := get(workspaceArtifactPath(ws, art.URI)); err != nil {
			return Artifact{}, err
		}
	case volumeFiller:
		if err := os.MkdirAll(a.WorkDir, 0o755); err != nil {
			return Artifact{}, err
		}
		stage, err := os.MkdirTemp(a.WorkDir, "import-")
		if err != nil {
			return Artifact{}, err
		}
		defer os.RemoveAll(stage)
		rel := strings.TrimPrefix(workspaceArtifactPath("/", art.URI), "/")
		if err := get(filepath.Join(stage, rel)); err != nil {
			return Artifact{}, err
		}
		if err := rt.FillVolume(ctx, workspaceVolume(runID), stage); err != nil {
			return Artifact{}, fmt.Errorf("importer: copy %s into the workspace: %w", art.URI, err)
		}
	default:
		return Artifact{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, fmt.Errorf("importer: downloadToWorkspace is not supported by the %s runtime", a.Runtime.Name()))
	}
	m := make(map[string]any, len(art.Metadata)+1)
	for k, v := range art.Metadata {
		m[k] = v
	}
	m[workspaceFlag] = true
	art.Metadata = m
	return art, nil
}

// volumeFiller is a runtime with named volumes that can copy a host directory's contents into one
// (the Docker runtime).
type volumeFiller interface {
	FillVolume(ctx context.Context, volume, dir string) error
}
