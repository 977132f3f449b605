package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/kube"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
	"github.com/sluice-ml/sluice/services/pipelines/internal/launcher"
)

// Activities do the I/O of pipeline runs. Register a pointer with the worker.
type Activities struct {
	Store   *artifacts.Store
	Runtime runtime.Runtime
	Bus     *events.Bus
	// WorkDir holds each step attempt's local files: <WorkDir>/<run>/<task path>/attempt-<n>.
	WorkDir string
	Log     *slog.Logger
	// Source is the CloudEvents source of published events.
	Source string
	// TrainingURL is the training service's base URL for trainingJob tasks (default DefaultTrainingURL);
	// TrainingPoll how often a job's state is polled (default DefaultTrainingPoll); HTTP the client
	// (default http.DefaultClient).
	TrainingURL  string
	TrainingPoll time.Duration
	HTTP         *http.Client
	// Kube configures steps on the kubernetes runtime (launcher image, S3 as pods reach it).
	Kube KubeSteps
	// Objects holds the namespaces' secrets and config maps that kfp-kubernetes settings read (nil: a
	// step that uses one fails, naming the setting).
	Objects ObjectSource
}

// eventNamespace derives deterministic event ids, so a retried activity re-publishes the same id and the
// stream drops the duplicate.
var eventNamespace = uuid.MustParse("6f1c1c52-4a55-4f43-9a7e-5c1de3f0a8b1")

// EventID is the deterministic CloudEvent id of a run or task event.
func EventID(parts ...string) string {
	return uuid.NewSHA1(eventNamespace, []byte(strings.Join(parts, "\x00"))).String()
}

func (a *Activities) publish(ctx context.Context, typ, subject, id string, data any) error {
	ev, err := events.New(a.Source, typ, subject, data)
	if err != nil {
		return err
	}
	ev.SetID(id)
	return a.Bus.Publish(ctx, ev)
}

// PublishRun publishes a run event with its deterministic id (also used by the starter for run.started).
func (a *Activities) PublishRun(ctx context.Context, typ string, ev pipelinesv1.RunEvent) error {
	return a.publish(ctx, typ, "runs/"+ev.RunID, EventID(ev.RunID, typ), ev)
}

// Notify publishes run and task events decided by the workflow (run transitions, skipped tasks).
func (a *Activities) Notify(ctx context.Context, in NotifyInput) error {
	if in.Run != nil {
		if err := a.PublishRun(ctx, in.RunType, *in.Run); err != nil {
			return err
		}
	}
	for _, t := range in.Tasks {
		id := EventID(t.RunID, t.TaskPath, in.TaskType)
		if t.Attempt > 0 { // the id of the same event published by the step's activity (see taskEventAsync)
			id = EventID(t.RunID, t.TaskPath, in.TaskType, fmt.Sprint(t.Attempt))
		}
		if err := a.publish(ctx, in.TaskType, "runs/"+t.RunID+"/tasks/"+t.TaskPath, id, t); err != nil {
			return err
		}
	}
	return nil
}

func (a *Activities) taskEvent(ctx context.Context, typ string, in StepInput, ev pipelinesv1.TaskEvent) error {
	return a.taskEventAsync(ctx, typ, in, ev)(ctx)
}

// taskEventAsync publishes a task event with its deterministic id and returns the wait for its ack.
func (a *Activities) taskEventAsync(ctx context.Context, typ string, in StepInput, ev pipelinesv1.TaskEvent) func(context.Context) error {
	ev.RunID, ev.Namespace, ev.PipelineName, ev.TaskPath, ev.TaskName = in.RunID, in.Namespace, in.PipelineName, in.TaskPath, in.TaskName
	ev.Component, ev.Image, ev.Attempt, ev.Fingerprint = in.Component, in.Image, in.Attempt, in.Fingerprint
	ev.InputParams = in.Params
	ev.Inputs = firstArtifacts(in.Artifacts)
	ev.Time = time.Now().UTC()
	if err := a.checkLargeParams(ctx, in, &ev); err != nil {
		return func(context.Context) error { return err }
	}
	out, err := events.New(a.Source, typ, "runs/"+in.RunID+"/tasks/"+in.TaskPath, ev)
	if err != nil {
		return func(context.Context) error { return err }
	}
	out.SetID(EventID(in.RunID, in.TaskPath, typ, fmt.Sprint(in.Attempt)))
	return a.Bus.PublishAsync(ctx, out)
}

// checkLargeParams moves parameter values over ClaimCheckBytes out of a task event into S3 (at
// <pipeline>/<run>/<task>/params/{inputs,outputs}/<name>.json, written once) and references them in
// ParamRefs, so an event stays far below NATS's max_payload whatever the values' sizes.
func (a *Activities) checkLargeParams(ctx context.Context, in StepInput, ev *pipelinesv1.TaskEvent) error {
	for _, side := range []struct {
		kind string
		m    *map[string]any
	}{{"inputs", &ev.InputParams}, {"outputs", &ev.OutputParams}} {
		var copied map[string]any
		for _, name := range sortedKeys(*side.m) {
			b, err := json.Marshal((*side.m)[name])
			if err != nil || len(b) <= pipelinesv1.ClaimCheckBytes {
				continue
			}
			key := path.Join(in.PipelineName, in.RunID, in.TaskPath, "params", side.kind, name+".json")
			obj, err := a.Store.Put(ctx, key, bytes.NewReader(b), int64(len(b)))
			if err != nil {
				return fmt.Errorf("store %s parameter %q (%d bytes) for its event: %w", side.kind, name, len(b), err)
			}
			if copied == nil {
				copied = map[string]any{}
				for k, v := range *side.m {
					copied[k] = v
				}
			}
			copied[name] = fmt.Sprintf("(%d bytes, stored at %s)", len(b), obj.URI)
			if ev.ParamRefs == nil {
				ev.ParamRefs = map[string]string{}
			}
			ev.ParamRefs[side.kind+"."+name] = obj.URI
		}
		if copied != nil {
			*side.m = copied
		}
	}
	return nil
}

// Events (and so lineage) carry no workspaceFlag: as KFP's MLMD conversion drops it, it is only a
// run-time marker for the consumers' executor input.
func firstArtifacts(m map[string][]Artifact) map[string]Artifact {
	if len(m) == 0 {
		return nil
	}
	out := map[string]Artifact{}
	for k, l := range m {
		for i, a := range l {
			name := k
			if len(l) > 1 {
				name = fmt.Sprintf("%s[%d]", k, i)
			}
			out[name] = withoutWorkspaceFlag(a)
		}
	}
	return out
}

// cacheEntry is stored at _cache/<pipeline>/<fingerprint>.json.
type cacheEntry struct {
	RunID    string  `json:"run_id"`
	TaskPath string  `json:"task_path"`
	Outputs  outputs `json:"outputs"`
	// LogURI is the log of the run that produced the outputs (shown for cache hits).
	LogURI    string    `json:"log_uri,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// cacheKey is where a step's cache entry lives: per namespace, so a run never reuses the outputs of
// another namespace's run ("default", and runs from before namespaces, keep the original layout).
func cacheKey(ns, pipeline, fingerprint string) string {
	if ns != "" && ns != "default" {
		return path.Join("_cache", "namespaces", ns, pipeline, fingerprint+".json")
	}
	return path.Join("_cache", pipeline, fingerprint+".json")
}

// lookupCache returns a usable cache entry: recent enough and with every output object still present
// with its recorded digest (a deleted or changed object is a miss).
func (a *Activities) lookupCache(ctx context.Context, in StepInput) (*cacheEntry, error) {
	rc, _, err := a.Store.Get(ctx, cacheKey(in.Namespace, in.PipelineName, in.Fingerprint))
	if errors.Is(err, artifacts.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var e cacheEntry
	if err := json.NewDecoder(rc).Decode(&e); err != nil {
		return nil, nil // unreadable entry: a miss, overwritten on success
	}
	if in.MaxStaleness > 0 && time.Since(e.CreatedAt) > time.Duration(in.MaxStaleness) {
		return nil, nil
	}
	for _, name := range sortedKeys(e.Outputs.Artifacts) {
		for _, art := range e.Outputs.Artifacts[name] {
			ok, err := a.artifactPresent(ctx, art)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, nil
			}
		}
	}
	return &e, nil
}

func (a *Activities) artifactPresent(ctx context.Context, art Artifact) (bool, error) {
	if art.Digest == "" {
		return true, nil // recorded without an object (never written, or a reference): nothing to check
	}
	key, err := a.Store.KeyOf(art.URI)
	if err != nil {
		return false, nil
	}
	if isDirURI(art.URI) {
		objs, err := a.Store.List(ctx, key)
		if err != nil || len(objs) == 0 {
			return false, err
		}
		for i, o := range objs { // List does not read digests
			st, err := a.Store.Stat(ctx, o.Key)
			if errors.Is(err, artifacts.ErrNotFound) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			objs[i] = st
		}
		return dirDigest(key, objs) == art.Digest, nil
	}
	obj, err := a.Store.Stat(ctx, key)
	if errors.Is(err, artifacts.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return obj.Digest == art.Digest, nil
}

// DirDigest is the digest of a directory artifact whose objects (with digests) are objs under prefix, as
// the engine records it for output directories.
func DirDigest(prefix string, objs []artifacts.Object) string { return dirDigest(prefix, objs) }

// isDirURI reports a directory artifact: its URI ends with "/".
func isDirURI(uri string) bool { return strings.HasSuffix(uri, "/") }

// dirDigest is the digest of a directory artifact: sha256 over "relative path NUL digest NL" lines in
// path order.
func dirDigest(prefix string, objs []artifacts.Object) string {
	lines := make([]string, 0, len(objs))
	for _, o := range objs {
		lines = append(lines, strings.TrimPrefix(o.Key, prefix+"/")+"\x00"+o.Digest)
	}
	sort.Strings(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l + "\n"))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// RunStep runs one attempt of a container step: cache lookup, input download, the process (heartbeating
// from its first 200 ms tick on; cancellation kills it), output upload with digests, log upload, task
// events, cache write. A no-op step's synchronous cost is the process, one S3 PUT (the result record,
// with the cache entry beside it) and task.succeeded's ack (task.started's overlaps the process).
// A non-zero exit or a missing declared output fails with a non-retryable error (the workflow applies the
// task's retry policy); infrastructure errors are retried by Temporal.
//
// Only a cancellation the run requested (or the attempt's end: its worker stopping, its deadline) kills
// the process: when a heartbeat fails, which makes the SDK cancel the activity's context even for a
// transient failure on a busy machine, the step runs on under wf.Steady while the attempt lives.
func (a *Activities) RunStep(ctx context.Context, in StepInput) (StepResult, error) {
	ctx, stop := wf.Steady(ctx, time.Second, func() any { return in.Attempt }, a.logger())
	defer stop()
	defer heartbeatFromFirstTick(ctx, in.Attempt)()
	image := in.Image
	if in.Fingerprint != "" {
		var err error
		if in.Fingerprint, image, err = a.stepFingerprint(ctx, in); err != nil {
			return StepResult{}, err
		}
		hit, err := a.lookupCache(ctx, in)
		if err != nil {
			return StepResult{}, fmt.Errorf("cache lookup: %w", err)
		}
		if hit != nil {
			ev := pipelinesv1.TaskEvent{State: pipelinesv1.TaskCached, CachedFrom: hit.RunID,
				OutputParams: hit.Outputs.Params, Outputs: firstArtifacts(hit.Outputs.Artifacts)}
			if err := a.taskEvent(ctx, events.PipelineTaskCachedV1, in, ev); err != nil {
				return StepResult{}, err
			}
			return StepResult{Outputs: hit.Outputs, Cached: true, CachedFrom: hit.RunID, LogURI: hit.LogURI}, nil
		}
	}
	// A retry of this activity after the step succeeded (its event publish failed, the worker died)
	// publishes again without running the step a second time.
	if res, ok := a.recordedResult(ctx, in); ok {
		return res, a.publishSucceeded(ctx, in, res)
	}
	// task.started is stored while the step runs; its ack is awaited before the activity completes.
	started := a.taskEventAsync(ctx, events.PipelineTaskStartedV1, in, pipelinesv1.TaskEvent{State: pipelinesv1.TaskRunning})
	var res StepResult
	var stepErr error
	if op := dag.PVCOperation(&dag.Container{Image: in.Image}); op != "" && len(in.Command) == 0 {
		res, stepErr = a.pvcStep(ctx, in, op) // intercepted as KFP's driver does: no container runs
	} else {
		res, stepErr = a.execute(ctx, in, image)
	}
	stepErr = withLog(stepErr, res.LogURI)
	if err := started(ctx); err != nil && stepErr == nil {
		if rerr := a.recordResult(ctx, in, res); rerr != nil {
			return res, rerr
		}
		return res, err
	}
	if stepErr != nil {
		if ctx.Err() == nil && (in.LastAttempt || wf.ErrorType(stepErr) == wf.ErrTypeInvalidSpec) && isBusinessFailure(stepErr) {
			_ = a.taskEvent(ctx, events.PipelineTaskFailedV1, in, pipelinesv1.TaskEvent{State: pipelinesv1.TaskFailed, Error: stepErr.Error()})
		}
		return res, stepErr
	}
	// The cache entry and the result record are written side by side; task.succeeded goes out only once
	// the result is recorded, so a retry after the event never runs the step again.
	cacheDone := make(chan error, 1)
	go func() {
		if in.Fingerprint == "" {
			cacheDone <- nil
			return
		}
		entry, _ := json.Marshal(cacheEntry{RunID: in.RunID, TaskPath: in.TaskPath, Outputs: res.Outputs, LogURI: res.LogURI, CreatedAt: time.Now().UTC()})
		if _, err := a.Store.Put(ctx, cacheKey(in.Namespace, in.PipelineName, in.Fingerprint), bytes.NewReader(entry), int64(len(entry))); err != nil {
			cacheDone <- fmt.Errorf("cache write: %w", err)
			return
		}
		cacheDone <- nil
	}()
	if err := a.recordResult(ctx, in, res); err != nil {
		<-cacheDone
		return res, err
	}
	succeeded := a.publishSucceededAsync(ctx, in, res)
	cacheErr := <-cacheDone
	if err := succeeded(ctx); err != nil {
		return res, err
	}
	return res, cacheErr
}

// stepFingerprint is the cache key of a step attempt: the workflow's fingerprint (component, parameter
// values, input artifact digests: dag.Fingerprint) extended with what only the worker knows — the image
// ID the runtime pins the task's image reference to (Docker: a rebuilt or moved tag is a miss), and the
// URIs of input artifacts recorded without a digest (references Sluice did not store, which digests
// cannot tell apart). It also returns the image to run: the pinned ID when there is one, so the step runs
// exactly what the key names. Without either, the key is the workflow's fingerprint unchanged.
func (a *Activities) stepFingerprint(ctx context.Context, in StepInput) (fingerprint, image string, err error) {
	var extra []string
	image = in.Image
	if r, ok := a.Runtime.(runtime.ImageResolver); ok && in.Image != "" {
		id, err := r.ImageID(ctx, in.Image)
		if errors.Is(err, runtime.ErrInvalidSpec) {
			return "", "", wf.NonRetryable(wf.ErrTypeInvalidSpec, err)
		}
		if err != nil {
			return "", "", fmt.Errorf("cache key: %w", err)
		}
		image = id
		extra = append(extra, "image\x00"+id)
	}
	for _, name := range sortedKeys(in.Artifacts) {
		for i, art := range in.Artifacts[name] {
			if art.Digest == "" {
				extra = append(extra, fmt.Sprintf("uri\x00%s\x00%d\x00%s", name, i, art.URI))
			}
		}
	}
	if len(extra) == 0 {
		return in.Fingerprint, image, nil
	}
	h := sha256.New()
	h.Write([]byte(in.Fingerprint))
	for _, e := range extra {
		h.Write([]byte("\n" + e))
	}
	return hex.EncodeToString(h.Sum(nil)), image, nil
}

func (a *Activities) publishSucceeded(ctx context.Context, in StepInput, res StepResult) error {
	return a.publishSucceededAsync(ctx, in, res)(ctx)
}

func (a *Activities) publishSucceededAsync(ctx context.Context, in StepInput, res StepResult) func(context.Context) error {
	ev := pipelinesv1.TaskEvent{State: pipelinesv1.TaskSucceeded, OutputParams: res.Outputs.Params, Outputs: firstArtifacts(res.Outputs.Artifacts)}
	return a.taskEventAsync(ctx, events.PipelineTaskSucceededV1, in, ev)
}

func resultKey(in StepInput) string {
	return path.Join(in.PipelineName, in.RunID, in.TaskPath, "logs", fmt.Sprintf("attempt-%d.result.json", in.Attempt))
}

// recordResult stores a succeeded attempt's result, read back by recordedResult.
func (a *Activities) recordResult(ctx context.Context, in StepInput, res StepResult) error {
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if _, err := a.Store.Put(ctx, resultKey(in), bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("record step result: %w", err)
	}
	return nil
}

// recordedResult returns the result of this attempt when a previous try of the same activity already
// ran the step to success.
func (a *Activities) recordedResult(ctx context.Context, in StepInput) (StepResult, bool) {
	var res StepResult
	if !activity.IsActivity(ctx) || activity.GetInfo(ctx).Attempt <= 1 {
		return res, false
	}
	rc, _, err := a.Store.Get(ctx, resultKey(in))
	if err != nil {
		return res, false
	}
	defer rc.Close()
	if json.NewDecoder(rc).Decode(&res) != nil {
		return res, false
	}
	return res, true
}

// withLog attaches the attempt's log URI to a step failure as the application error's details, so the
// workflow keeps it on the failed task (a failed activity's result is dropped) and `run logs` serves it.
func withLog(err error, logURI string) error {
	var ae *temporal.ApplicationError
	if err == nil || logURI == "" || !errors.As(err, &ae) || !ae.NonRetryable() || ae.HasDetails() {
		return err
	}
	return temporal.NewNonRetryableApplicationError(ae.Message(), ae.Type(), errors.Unwrap(ae), logURI)
}

// LogOf returns the log URI a step failure carries (see withLog), or "".
func LogOf(err error) string {
	var ae *temporal.ApplicationError
	var uri string
	if errors.As(err, &ae) && ae.HasDetails() && ae.Details(&uri) == nil {
		return uri
	}
	return ""
}

func isBusinessFailure(err error) bool {
	switch wf.ErrorType(err) {
	case wf.ErrTypeStepFailed, wf.ErrTypeMissingOutput, wf.ErrTypeInvalidSpec:
		return true
	}
	return false
}

// step holds the local layout of one attempt.
type step struct {
	dir, logPath, outputFile string
	bucket                   string
	// image is what the runtime runs: the task's image, or the image ID the cache key pinned it to.
	image string
}

func (s step) local(bucket, key string) string {
	return filepath.Join(s.dir, "s3", bucket, filepath.FromSlash(key))
}

// localFor is where an s3:// URI's object is staged: <dir>/s3/<bucket>/<key>.
func (s step) localFor(uri string) (string, error) {
	bucket, key, err := artifacts.ParseURI(uri)
	if err != nil {
		return "", err
	}
	return s.local(bucket, key), nil
}

// kfpLocalPath is the local path KFP's executor derives from an artifact URI (gs:// → /gcs/,
// minio:// → /minio/, s3:// → /s3/; any other URI is the path itself).
func kfpLocalPath(uri string) string {
	for _, m := range [][2]string{{"gs://", "/gcs/"}, {"minio://", "/minio/"}, {"s3://", "/s3/"}} {
		if rest, ok := strings.CutPrefix(uri, m[0]); ok {
			return m[1] + rest
		}
	}
	return uri
}

// execute runs one attempt in image (in.Image, or the ID the cache key pinned it to).
func (a *Activities) execute(ctx context.Context, in StepInput, image string) (StepResult, error) {
	st := step{dir: filepath.Join(a.WorkDir, in.RunID, filepath.FromSlash(in.TaskPath), fmt.Sprintf("attempt-%d", in.Attempt)), bucket: a.Store.Bucket(), image: image}
	// Absolute, since the step runs in this directory and reads every path of its executor input.
	if abs, err := filepath.Abs(st.dir); err == nil {
		st.dir = abs
	}
	if err := os.RemoveAll(st.dir); err != nil {
		return StepResult{}, err
	}
	if err := os.MkdirAll(filepath.Join(st.dir, "outputs", "parameters"), 0o755); err != nil {
		return StepResult{}, err
	}
	defer os.RemoveAll(st.dir)
	st.logPath = filepath.Join(st.dir, "step.log")
	st.outputFile = filepath.Join(st.dir, "outputs", "executor_output.json")
	prefix := path.Join(in.PipelineName, in.RunID, in.TaskPath)
	// On the kubernetes runtime the step runs in a pod whose launcher moves its files through S3
	// (kubepod.go): st.dir is the pod's work dir (an emptyDir at the same path), and on this host only
	// what the launcher uploaded is read back into it. The log is kept beside it.
	kr, onKube := a.Runtime.(*kube.Runtime)
	var ps *podStep
	if onKube {
		if in.Workspace {
			return StepResult{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, errors.New("{{$.workspace_path}}: the pipeline workspace is not supported by the kubernetes runtime yet"))
		}
		st.logPath = st.dir + ".log"
		defer os.Remove(st.logPath)
		ps = a.newPodStep(in, st, prefix)
	}

	if in.Workspace {
		ws, err := a.workspace(in.RunID)
		if err != nil {
			return StepResult{}, err
		}
		// As KFP's driver, {{$.workspace_path}} in constant inputs becomes the workspace path.
		in.Params = withWorkspace(in.Params, ws)
	}
	ectx := dag.ExecutorContext{
		Parameters:           in.Params,
		InputArtifacts:       map[string][]dag.RuntimeArtifact{},
		OutputParameterFiles: map[string]string{},
		OutputArtifacts:      map[string][]dag.RuntimeArtifact{},
		OutputFile:           st.outputFile,
		Job: dag.JobContext{JobName: in.PipelineName, JobResourceName: JobResourceName(in.PipelineName, in.RunID), JobUUID: in.RunID, TaskName: in.TaskName,
			TaskUUID: in.TaskPath, Root: "s3://" + st.bucket},
	}
	if in.Workspace {
		ectx.Job.WorkspacePath, _ = a.workspace(in.RunID)
	}
	// Inputs: download each artifact to <dir>/s3/<bucket>/<key>, as KFP's launcher maps s3:// URIs.
	for _, name := range sortedKeys(in.Artifacts) {
		ectx.InputArtifacts[name] = []dag.RuntimeArtifact{} // an empty list (a loop of 0 iterations) is [] in {{$}}
		for _, art := range in.Artifacts[name] {
			ra := dag.RuntimeArtifact{Name: name, SchemaTitle: art.SchemaTitle, URI: art.URI, Metadata: art.Metadata}
			if inWorkspace(art) && in.Workspace {
				// Downloaded by its importer (downloadToWorkspace): read in the workspace, as KFP's
				// launcher does, not downloaded again.
				ws, err := a.workspace(in.RunID)
				if err != nil {
					return StepResult{}, err
				}
				ra.Path = workspaceArtifactPath(ws, art.URI)
				ra.ExecutorURI = a.executorURI(ra.Path)
				ectx.InputArtifacts[name] = append(ectx.InputArtifacts[name], ra)
				continue
			}
			local, err := st.localFor(art.URI)
			key := ""
			if err == nil {
				key, err = a.Store.KeyOf(art.URI)
			}
			if err != nil && art.Digest == "" {
				// A reference Sluice never stored (an executor reported its own URI outside the store):
				// not fetched, as KFP's launcher skips URIs it cannot fetch; .path is where KFP's
				// executor would look for it.
				ra.Path = kfpLocalPath(art.URI)
				ectx.InputArtifacts[name] = append(ectx.InputArtifacts[name], ra)
				continue
			}
			if err != nil {
				return StepResult{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, fmt.Errorf("input artifact %q: %w", name, err))
			}
			if onKube { // downloaded in the pod by the launcher
				if err := a.addInput(ctx, ps, name, art, key, local); err != nil {
					return StepResult{}, err
				}
				ra.Path = local
				ectx.InputArtifacts[name] = append(ectx.InputArtifacts[name], ra)
				continue
			}
			if isDirURI(art.URI) {
				_, err = a.Store.GetDir(ctx, key, local)
			} else {
				_, err = a.Store.GetFile(ctx, key, local)
			}
			switch {
			case errors.Is(err, artifacts.ErrNotFound) && art.Digest == "":
				// An output its producer never wrote (no digest): consumers find no file, as under KFP.
			case errors.Is(err, artifacts.ErrNotFound):
				return StepResult{}, wf.NonRetryable(wf.ErrTypeNotFound, fmt.Errorf("input artifact %q: %s no longer exists", name, art.URI))
			case err != nil:
				return StepResult{}, fmt.Errorf("download input %q: %w", name, err)
			}
			ra.Path, ra.ExecutorURI = local, a.executorURI(local)
			ectx.InputArtifacts[name] = append(ectx.InputArtifacts[name], ra)
		}
	}
	for _, name := range sortedKeys(in.OutputParams) {
		ectx.OutputParameterFiles[name] = filepath.Join(st.dir, "outputs", "parameters", name)
		if onKube {
			ps.spec.Parameters = append(ps.spec.Parameters, launcher.Transfer{Path: ectx.OutputParameterFiles[name],
				Key: a.fullKey(path.Join(ps.attempt, "parameters", name))})
		}
	}
	for _, name := range sortedKeys(in.OutputArtifacts) {
		uri := a.Store.URI(path.Join(prefix, name))
		local, err := st.localFor(uri) // the store's key prefix included, as the executor derives it
		if err != nil {
			return StepResult{}, err
		}
		if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			return StepResult{}, err
		}
		ectx.OutputArtifacts[name] = []dag.RuntimeArtifact{{Name: name, SchemaTitle: in.OutputArtifacts[name], URI: uri, Path: local,
			ExecutorURI: a.executorURI(local)}}
		if onKube {
			ps.spec.Outputs = append(ps.spec.Outputs, launcher.Output{Name: name, URI: uri, Path: local})
		}
	}
	command, err := dag.Render(in.Command, ectx)
	if err != nil {
		return StepResult{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, fmt.Errorf("command: %w", err))
	}
	args, err := dag.Render(in.Args, ectx)
	if err != nil {
		return StepResult{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, fmt.Errorf("args: %w", err))
	}
	for i, arg := range append(append([]string(nil), command...), args...) {
		if len(arg) < maxArgBytes {
			continue
		}
		what, raw := fmt.Sprintf("command[%d]", i), in.Command
		if i >= len(command) {
			i -= len(command)
			what, raw = fmt.Sprintf("args[%d]", i), in.Args
		}
		if len(in.Command) == len(command) && len(in.Args) == len(args) {
			what += fmt.Sprintf(" %q", raw[i])
		}
		return StepResult{}, wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("%s is %d bytes once rendered; the OS limits one argument to %d bytes: pass values this large as artifacts", what, len(arg), maxArgBytes-1))
	}
	if len(command) == 0 && len(args) == 0 {
		return StepResult{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, errors.New("executor has no command and no args"))
	}

	logFile, err := os.Create(st.logPath)
	if err != nil {
		return StepResult{}, err
	}
	lw := &lockedWriter{w: logFile}
	var code int
	var runErr error
	if onKube {
		code, runErr = a.runPod(ctx, kr, in, st, command, args, lw, ps)
	} else {
		code, runErr = a.runProcess(ctx, in, st, command, args, lw)
	}
	_ = logFile.Close()
	res := StepResult{ExitCode: code}
	if logURI, err := a.uploadLog(ctx, prefix, in.Attempt, st.logPath); err == nil {
		res.LogURI = logURI
	} else if runErr == nil {
		return res, err
	}
	if runErr != nil {
		return res, runErr
	}
	if code != 0 {
		return res, wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("step %s exited with code %d%s", in.TaskPath, code, logTail(st.logPath)))
	}

	out := outputs{Params: map[string]any{}, Artifacts: map[string][]Artifact{}}
	var launched launcher.Result
	if onKube {
		var err error
		if launched, err = a.fetchPodOutputs(ctx, ps); err != nil {
			return res, err
		}
	}
	if err := confineFile(st.dir, st.outputFile); err != nil {
		return res, wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("executor output file: %w", err))
	}
	executorOut, eoArts, err := readExecutorOutput(st.outputFile)
	if err != nil {
		return res, wf.NonRetryable(wf.ErrTypeMissingOutput, err)
	}
	for _, name := range sortedKeys(in.OutputParams) {
		if v, ok := executorOut[name]; ok {
			if b, _ := json.Marshal(v); len(b) > pipelinesv1.MaxParamBytes {
				return res, wf.NonRetryable(wf.ErrTypeStepFailed, tooLarge(name, int64(len(b))))
			}
			out.Params[name] = v
			continue
		}
		if fi, err := os.Stat(ectx.OutputParameterFiles[name]); err == nil && fi.Size() > pipelinesv1.MaxParamBytes {
			return res, wf.NonRetryable(wf.ErrTypeStepFailed, tooLarge(name, fi.Size()))
		}
		if err := confineFile(st.dir, ectx.OutputParameterFiles[name]); err != nil {
			return res, wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("output parameter %q: %w", name, err))
		}
		b, err := os.ReadFile(ectx.OutputParameterFiles[name])
		if errors.Is(err, os.ErrNotExist) {
			return res, wf.NonRetryable(wf.ErrTypeMissingOutput, fmt.Errorf("declared output parameter %q was not written (expected file %s)", name, ectx.OutputParameterFiles[name]))
		}
		if err != nil {
			return res, err
		}
		v, err := dag.ParseParamText(string(b), dag.ParamType(in.OutputParams[name]))
		if err != nil {
			return res, wf.NonRetryable(wf.ErrTypeMissingOutput, fmt.Errorf("output parameter %q: %w", name, err))
		}
		out.Params[name] = v
	}
	for _, name := range sortedKeys(in.OutputArtifacts) {
		var art Artifact
		var err error
		if onKube {
			art, err = a.outputArtifactPod(ctx, in, name, ectx.OutputArtifacts[name][0], eoArts[name], launched.Outputs[name])
		} else {
			art, err = a.outputArtifact(ctx, in, st, name, ectx.OutputArtifacts[name][0], eoArts[name])
		}
		if err != nil {
			return res, err
		}
		out.Artifacts[name] = []Artifact{art}
	}
	res.Outputs = out
	return res, nil
}

// runProcess starts the step and waits for it, heartbeating every second. When the activity is
// cancelled (run cancel, the attempt timed out or its worker stops; see RunStep) the process group is killed.
func (a *Activities) runProcess(ctx context.Context, in StepInput, st step, command, args []string, log io.Writer) (int, error) {
	name := fmt.Sprintf("step-%s-a%d", shortHash(in.RunID+"/"+in.TaskPath), in.Attempt)
	spec := runtime.Spec{
		Name: name, Namespace: in.Namespace, Image: st.image, Command: command, Args: args, Env: in.Env, InheritEnv: true,
		WorkDir: st.dir, Stdout: log, Stderr: log,
		Labels: map[string]string{"sluice.io/run-id": in.RunID, "sluice.io/task": shortHash(in.TaskPath)},
		Mounts: []runtime.Mount{{HostPath: st.dir, ContainerPath: st.dir}},
	}
	if _, local := a.Runtime.(*runtime.Local); !local {
		// KFP's executor derives s3://B/K → /s3/B/K: the staged artifacts are there in the container.
		// A step without artifacts has no s3/ yet, and Docker refuses to bind a missing path.
		if err := os.MkdirAll(filepath.Join(st.dir, "s3"), 0o755); err != nil {
			return -1, err
		}
		spec.Mounts = append(spec.Mounts, runtime.Mount{HostPath: filepath.Join(st.dir, "s3"), ContainerPath: "/s3"})
	}
	if in.Workspace {
		if _, local := a.Runtime.(*runtime.Local); !local {
			spec.Mounts = append(spec.Mounts, runtime.Mount{Volume: workspaceVolume(in.RunID), ContainerPath: WorkspaceMountPath})
		}
	}
	if in.Resources != nil { // container resources (accepted for the Docker runtime only; Local rejects limits)
		spec.CPULimit, spec.MemoryLimit = in.Resources.CPULimit, in.Resources.MemoryLimit
	}
	// kfp-kubernetes pvcMount and podMetadata (accepted for the Docker runtime only; Local rejects volumes).
	for _, v := range in.Volumes {
		if err := a.checkPVCNamespace(ctx, in, "pvcMount at "+v.MountPath, v.Name); err != nil {
			return -1, err
		}
		spec.Mounts = append(spec.Mounts, runtime.Mount{Volume: v.Name, ContainerPath: v.MountPath})
	}
	// secretAsEnv/configMapAsEnv and secretAsVolume/configMapAsVolume, from the namespace's store. The
	// files live beside the work dir (never uploaded) and are removed when the step ends.
	objEnv, err := a.objectEnv(ctx, in)
	if err != nil {
		return -1, err
	}
	if len(objEnv) > 0 { // the setting wins over the executor's own env, as the driver appends it
		env := make(map[string]string, len(spec.Env)+len(objEnv))
		for k, v := range spec.Env {
			env[k] = v
		}
		for k, v := range objEnv {
			env[k] = v
		}
		spec.Env = env
	}
	if len(in.ObjectVolumes) > 0 {
		objDir := st.dir + ".objects"
		defer removeAllForce(objDir)
		mounts, err := a.objectMounts(ctx, in, objDir)
		if err != nil {
			return -1, err
		}
		for _, mp := range sortedKeys(mounts) {
			spec.Mounts = append(spec.Mounts, runtime.Mount{HostPath: mounts[mp], ContainerPath: mp, ReadOnly: true})
		}
	}
	for k, v := range in.Labels {
		if _, taken := spec.Labels[k]; !taken {
			spec.Labels[k] = v
		}
	}
	// Temporary files of the step (e.g. the KFP executor's ephemeral component dir from mktemp -d) live
	// in the work dir and are removed with it.
	spec.Env = withEnv(spec.Env, "TMPDIR", filepath.Join(st.dir, "tmp"))
	if err := os.MkdirAll(filepath.Join(st.dir, "tmp"), 0o755); err != nil {
		return -1, err
	}
	proc, err := a.Runtime.Start(ctx, spec)
	if err != nil {
		if errors.Is(err, runtime.ErrInvalidSpec) {
			return -1, wf.NonRetryable(wf.ErrTypeInvalidSpec, err)
		}
		return -1, wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("start step %s: %w", in.TaskPath, err))
	}
	return waitProcess(ctx, proc)
}

// waitProcess waits for a step's process and returns its exit code. RunStep heartbeats while this
// waits (heartbeatFromFirstTick); a cancel arrives as ctx.Done and kills the process.
func waitProcess(ctx context.Context, proc runtime.Process) (int, error) {
	for {
		select {
		case <-proc.Done():
			status, err := proc.Wait(context.WithoutCancel(ctx))
			if err != nil {
				return -1, err
			}
			if ctx.Err() != nil { // ended because the activity was cancelled or its worker stops
				return -1, ctx.Err()
			}
			return status.Code, nil
		case <-ctx.Done():
			_ = proc.Kill()
			<-proc.Done()
			return -1, ctx.Err()
		}
	}
}

// heartbeatFromFirstTick heartbeats the activity every 200 ms until the returned stop is called, the
// first time at the first tick, not at once: the SDK sends a first heartbeat synchronously (a round
// trip to the history service, which writes it), and a short step — most steps, every no-op —
// completes without needing one. It covers the whole attempt (cache lookup, image resolution, input
// downloads, a slow container start), so a loaded runtime never lets the heartbeat timeout retry a
// step that is still starting. A cancel reaches the step at its first tick, then within the heartbeat
// throttle (see WorkerOptions). Outside an activity (direct calls) it does nothing.
func heartbeatFromFirstTick(ctx context.Context, details any) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				activity.RecordHeartbeat(ctx, details)
			}
		}
	}()
	return func() { close(done); <-finished }
}

func withEnv(env map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for name, val := range env {
		out[name] = val // the step's own setting wins
	}
	return out
}

func (a *Activities) uploadLog(ctx context.Context, prefix string, attempt int, logPath string) (string, error) {
	fi, err := os.Stat(logPath)
	if err != nil || fi.Size() == 0 {
		return "", err
	}
	obj, err := a.Store.PutFile(ctx, path.Join(prefix, "logs", fmt.Sprintf("attempt-%d.log", attempt)), logPath)
	if err != nil {
		return "", fmt.Errorf("upload log: %w", err)
	}
	return obj.URI, nil
}

// executorArtifact is one output artifact of KFP's ExecutorOutput file ("artifacts": {"<name>":
// {"artifacts": [{"name", "uri", "metadata"}]}}): the URI the executor reports (the one it was given, or
// its own) and the metadata it set (a Metrics artifact's logged metrics among them).
type executorArtifact struct {
	URI      string         `json:"uri"`
	Metadata map[string]any `json:"metadata"`
}

// readExecutorOutput reads KFP's ExecutorOutput file when the step wrote one: the output parameter
// values ("parameterValues") and the first artifact of each output artifact list.
func readExecutorOutput(p string) (map[string]any, map[string]executorArtifact, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(bytes.TrimSpace(b)) == 0) {
		return nil, nil, nil // KFP's launcher treats a missing or empty file as no executor output
	}
	if err != nil {
		return nil, nil, err
	}
	var eo struct {
		ParameterValues map[string]any `json:"parameterValues"`
		Artifacts       map[string]struct {
			Artifacts []executorArtifact `json:"artifacts"`
		} `json:"artifacts"`
	}
	if err := json.Unmarshal(b, &eo); err != nil {
		return nil, nil, fmt.Errorf("executor output %s: %w", p, err)
	}
	arts := map[string]executorArtifact{}
	for name, l := range eo.Artifacts {
		if len(l.Artifacts) > 0 {
			ea := l.Artifacts[0]
			if len(ea.Metadata) == 0 {
				ea.Metadata = nil
			}
			arts[name] = ea
		}
	}
	return eo.ParameterValues, arts, nil
}

// outputArtifact records one declared output artifact after the step ran, following KFP's launcher
// (uploadOutputArtifacts and mergeRuntimeArtifacts in the KFP v2 backend): the executor output's
// metadata is kept, and a URI it reports that differs from the one Sluice gave replaces it:
//   - an s3:// URI in the store's bucket (under the local runtime also its local form, a path inside
//     the work dir's s3/ tree) is uploaded from the local path the executor derives from it, when it
//     lies under the run's own prefix <pipeline>/<run>/; elsewhere in the bucket it is recorded as a
//     reference to the object there (KFP allows uploads anywhere under the pipeline root; Sluice never
//     lets a step write outside its run, and a step that wrote such a file fails naming the output);
//   - gs:// and minio:// URIs and s3:// URIs of another bucket fail the step, as the launcher fails a
//     URI outside the pipeline root;
//   - any other URI (https://, a path outside the work dir) is recorded as given, nothing uploaded
//     (the launcher's "not a recognized storage URI").
//
// An output the executor did not write (a Metrics artifact that only logged metrics) is recorded
// without an object — no digest, consumers find no file — in KFP pipelines, as the launcher allows;
// native Sluice pipelines fail the step (wf.ErrTypeMissingOutput).
func (a *Activities) outputArtifact(ctx context.Context, in StepInput, st step, name string, ra dag.RuntimeArtifact, eo executorArtifact) (Artifact, error) {
	art := Artifact{Name: name, SchemaTitle: in.OutputArtifacts[name], URI: ra.URI, Metadata: eo.Metadata}
	key, err := a.Store.KeyOf(ra.URI)
	if err != nil {
		return art, err
	}
	local := ra.Path
	if eo.URI != "" && eo.URI != ra.URI && eo.URI != ra.ExecutorURI {
		uri := eo.URI
		if _, isLocal := a.Runtime.(*runtime.Local); isLocal && filepath.IsAbs(uri) {
			// The local form of an s3:// URI: <work dir>/s3/<bucket>/<key>.
			if rel, err := filepath.Rel(filepath.Join(st.dir, "s3"), filepath.Clean(uri)); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
				uri = artifacts.URIScheme + filepath.ToSlash(rel)
			}
		}
		switch {
		case strings.HasPrefix(uri, artifacts.URIScheme):
			k, err := a.Store.KeyOf(uri)
			if err != nil {
				return art, wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("output artifact %q: the executor reported URI %q, outside the pipeline root %s", name, eo.URI, a.Store.URI("")))
			}
			key, art.URI = k, a.Store.URI(k)
			if local, err = st.localFor(art.URI); err != nil {
				return art, wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("output artifact %q: %w", name, err))
			}
			if runPrefix := path.Join(in.PipelineName, in.RunID) + "/"; !strings.HasPrefix(k, runPrefix) {
				if _, err := os.Lstat(local); err == nil {
					return art, wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("output artifact %q: the executor wrote it for URI %q; a step's outputs are uploaded only under %s", name, eo.URI, a.Store.URI(runPrefix)))
				}
				obj, err := a.Store.Stat(ctx, k) // a reference to an existing object keeps its digest
				if err == nil {
					art.Digest, art.Size = obj.Digest, obj.Size
				} else if !errors.Is(err, artifacts.ErrNotFound) {
					return art, err
				}
				return art, nil
			}
		case strings.HasPrefix(uri, "gs://") || strings.HasPrefix(uri, "minio://"):
			return art, wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("output artifact %q: the executor reported URI %q, outside the pipeline root %s", name, eo.URI, a.Store.URI("")))
		default:
			art.URI = eo.URI
			return art, nil
		}
	}
	if _, err := os.Lstat(local); errors.Is(err, os.ErrNotExist) {
		if in.KFP {
			return art, nil
		}
		return art, wf.NonRetryable(wf.ErrTypeMissingOutput, fmt.Errorf("declared output artifact %q was not produced (expected %s)", name, local))
	}
	if err := confine(st.dir, local); err != nil {
		if errors.Is(err, errEscapes) {
			return art, wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("output artifact %q: %w", name, err))
		}
		return art, err
	}
	fi, err := os.Stat(local)
	if err != nil {
		return art, err
	}
	if fi.IsDir() {
		objs, err := a.Store.PutDir(ctx, key, local)
		if err != nil {
			return art, fmt.Errorf("upload output %q: %w", name, err)
		}
		if len(objs) == 0 {
			if in.KFP {
				return art, nil // nothing to upload, as for an output never written
			}
			return art, wf.NonRetryable(wf.ErrTypeMissingOutput, fmt.Errorf("declared output artifact %q is an empty directory", name))
		}
		art.URI, art.Digest = a.Store.URI(key)+"/", dirDigest(key, objs)
		for _, o := range objs {
			art.Size += o.Size
		}
		return art, nil
	}
	obj, err := a.Store.PutFile(ctx, key, local)
	if err != nil {
		return art, fmt.Errorf("upload output %q: %w", name, err)
	}
	art.URI, art.Digest, art.Size = obj.URI, obj.Digest, obj.Size
	return art, nil
}

// executorURI is the URI the executor input shows for an artifact staged at local: under the local
// runtime the path itself (KFP's executor uses a URI without a remote scheme as the path, as KFP's own
// local runner does), so nothing is written to /s3 on the host; other runtimes see the s3:// URI and
// find the file at /s3/<bucket>/<key>, where the work dir's s3/ directory is mounted.
func (a *Activities) executorURI(local string) string {
	if _, ok := a.Runtime.(*runtime.Local); ok {
		return local
	}
	return ""
}

// maxArgBytes is Linux's MAX_ARG_STRLEN (32 pages): exec refuses a longer single argument.
const maxArgBytes = 32 * 4096

func tooLarge(name string, size int64) error {
	return fmt.Errorf("output parameter %q is %d bytes; the limit is %d bytes (16 MiB): write it as an output artifact", name, size, pipelinesv1.MaxParamBytes)
}

// logTail is the part of a failed step's log kept in its error: all of it up to 3 KiB, else the first
// 1 KiB (where a KFP executor prints its executor input and the traceback begins) and the last 2 KiB,
// cut at line boundaries. The whole log of every attempt is kept in S3 and served by `run logs`.
func logTail(p string) string {
	b, err := os.ReadFile(p)
	if err != nil || len(b) == 0 {
		return ""
	}
	const head, tail = 1024, 2048
	if len(b) <= head+tail {
		return ": " + strings.TrimSpace(string(b))
	}
	h, t := b[:head], b[len(b)-tail:]
	if i := bytes.LastIndexByte(h, '\n'); i > 0 {
		h = h[:i]
	}
	if i := bytes.IndexByte(t, '\n'); i >= 0 && i < len(t)-1 {
		t = t[i+1:]
	}
	return ": " + strings.TrimSpace(string(h)) + "\n[... " + fmt.Sprint(len(b)-len(h)-len(t)) + " bytes of the log elided; see run logs ...]\n" + strings.TrimSpace(string(t))
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:6])
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// RunSteps runs the first attempt of several steps concurrently (a chunk of loop iterations), with the
// same semantics per step as RunStep. A step's own failure is reported in its outcome; an
// infrastructure error or a cancellation fails the whole activity (steps are idempotent, so Temporal's
// retry re-runs the chunk safely).
func (a *Activities) RunSteps(ctx context.Context, in StepsInput) ([]StepOutcome, error) {
	ctx, stop := wf.Steady(ctx, time.Second, nil, a.logger()) // one for all the steps (see RunStep)
	defer stop()
	conc := in.Concurrency
	if conc <= 0 {
		conc = 16
	}
	out := make([]StepOutcome, len(in.Steps))
	errs := make([]error, len(in.Steps))
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := range in.Steps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			res, err := a.RunStep(ctx, in.Steps[i])
			switch {
			case err == nil:
				out[i].Result = res
			case isBusinessFailure(err) || wf.ErrorType(err) == wf.ErrTypeNotFound:
				out[i].Error, out[i].ErrType, out[i].LogURI = err.Error(), wf.ErrorType(err), LogOf(err)
			default:
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
