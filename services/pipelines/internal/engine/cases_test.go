package engine_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine/enginetest"
)

func caseSpec(t *testing.T, area, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cases", area, name, "pipeline.yaml"))
	require.NoError(t, err)
	return string(b)
}

// Case pipelines/symlink-output-followed: an output (or a file inside an output directory) that is a
// symlink out of the step's work dir fails the step with a message naming the output, and nothing of
// the host file reaches S3.
func TestCaseSymlinkOutputNeverEscapes(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	id, run := e.start(t, caseSpec(t, "pipelines", "symlink-output-followed"), nil)
	_, err := e.wait(t, run)
	require.Error(t, err)
	st := e.state(t, id)
	require.Equal(t, pipelinesv1.TaskFailed, st["p"].State)
	require.Contains(t, st["p"].Error, `output artifact "d"`) // outputs are checked in name order
	require.Contains(t, st["p"].Error, "symlink")
	require.Contains(t, st["p"].Error, "outside the step's work dir")
	for _, key := range []string{"c07-symlink-out/" + id + "/p/f", "c07-symlink-out/" + id + "/p/d/inner"} {
		_, err := e.store.Stat(t.Context(), key)
		require.ErrorIs(t, err, artifacts.ErrNotFound, key)
	}
}

// Links that stay inside the work dir are fine; a link anywhere under an output directory that leads
// out, a dangling link, or an output parameter file that is a link out all fail the step.
func TestSymlinkOutputsInsideAndOutside(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	host := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(host, []byte("TOP-SECRET-host-file"), 0o600))
	spec := func(script string) string {
		return `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: links}
spec:
  tasks:
    p:
      image: alpine
      command: [sh, -c, '` + script + `']
      args: ["{{outputs.f}}", "{{outputs.d}}", "{{outputs.x}}"]
      outputs: {artifacts: [f, d], parameters: [x]}
`
	}
	inside := `echo real > "$0.real"; ln -s "$0.real" "$0"; mkdir -p "$1/sub"; echo in > "$1/sub/a"; ln -s sub/a "$1/b"; echo 1 > "$2"`
	id, run := e.start(t, spec(inside), nil)
	_, err := e.wait(t, run)
	require.NoError(t, err)
	st := e.state(t, id)
	require.Equal(t, "real\n", e.read(t, st["p"].Outputs.Artifacts["f"].URI))

	for name, script := range map[string]string{
		`output artifact "d"`:  `echo 1 > "$0"; mkdir -p "$1/deep/er"; ln -s ` + host + ` "$1/deep/er/leak"; echo 1 > "$2"`,
		`output artifact "f"`:  `ln -s /nonexistent/x "$0"; mkdir -p "$1"; echo 1 > "$1/a"; echo 1 > "$2"`,
		`output parameter "x"`: `echo 1 > "$0"; mkdir -p "$1"; echo 1 > "$1/a"; ln -s ` + host + ` "$2"`,
		`output artifact "d" `: `echo 1 > "$0"; ln -s ` + filepath.Dir(host) + ` "$1"; echo 1 > "$2"`,
	} {
		id, run := e.start(t, spec(script), nil)
		_, err := e.wait(t, run)
		require.Error(t, err, name)
		st := e.state(t, id)
		require.Contains(t, st["p"].Error, strings.TrimSpace(name))
		require.NotContains(t, st["p"].Error, "TOP-SECRET")
	}
}

// Case pipelines/empty-artifact-loop (run part): the fan-in of a loop's artifacts reaches the consumer's
// executor input {{$}} as the list of every iteration's artifact in iteration order, and as [] for a
// loop of 0 iterations.
func TestCaseArtifactFanInListsInExecutorInput(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	spec := caseSpec(t, "pipelines", "empty-artifact-loop")
	spec = spec[:strings.Index(spec, "    # (1)")] + `    aggall:
      image: alpine
      command: [sh, -c, 'printf "%s" "$0"']
      args: ["{{$}}"]
      inputs:
        earts: {fromTask: loopempty.art}
        arts: {fromTask: loopfull.art}
`
	id, run := e.start(t, spec, nil)
	_, err := e.wait(t, run)
	require.NoError(t, err)
	st := e.state(t, id)
	var ei struct {
		Inputs struct {
			Artifacts map[string]struct {
				Artifacts []struct {
					URI string `json:"uri"`
				} `json:"artifacts"`
			} `json:"artifacts"`
		} `json:"inputs"`
	}
	require.NoError(t, json.Unmarshal([]byte(e.read(t, st["aggall"].LogURI)), &ei))
	earts, ok := ei.Inputs.Artifacts["earts"]
	require.True(t, ok, "the empty list is present in {{$}}")
	require.NotNil(t, earts.Artifacts)
	require.Empty(t, earts.Artifacts)
	var uris []string
	for _, a := range ei.Inputs.Artifacts["arts"].Artifacts {
		uris = append(uris, a.URI)
	}
	require.Len(t, uris, 3)
	for i, u := range uris {
		// Under the local runtime {{$}} shows the staged local path (.../s3/<bucket>/<key>).
		key := "c03-empty-artifact-loop/" + id + "/loopfull/" + strconv.Itoa(i) + "/art"
		require.True(t, strings.HasSuffix(u, "/"+key), "iteration order: %v", uris)
		require.Equal(t, "item "+strconv.Itoa(i+1)+"\n", e.read(t, e.store.URI(key)))
	}
}

// Cases kfp-backend/{constant-job-placeholders, loop-struct-item-to-string, nested-dag-input-default,
// final-status-state-value}: KFP IR files whose steps check what the KFP driver would give them
// (job/task placeholders inside constants, a struct loop item bound to a STRING input as its JSON
// text, a nested pipeline's own input default, a final status with state COMPLETE and a resource name
// starting with the pipeline name) and exit non-zero otherwise.
func TestCasesKFPDriverRules(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	for _, name := range []string{"constant-job-placeholders", "loop-struct-item-to-string", "nested-dag-input-default", "final-status-state-value"} {
		t.Run(name, func(t *testing.T) {
			id, run := e.start(t, caseSpec(t, "kfp-backend", name), nil)
			_, err := e.wait(t, run)
			require.NoError(t, err, "%v", e.state(t, id))
			enginetest.RecordHistory(t, e.tc, id, "kfp-"+name)
		})
	}
}

// Case kfp-backend/ignore-upstream-failure-default: with ALL_UPSTREAM_TASKS_COMPLETED an input from a
// failed producer stays unbound, so the component input's default applies and the task runs.
func TestCaseIgnoreUpstreamFailureUsesDefault(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	id, run := e.start(t, caseSpec(t, "kfp-backend", "ignore-upstream-failure-default"), nil)
	_, err := e.wait(t, run)
	require.Error(t, err, "the run fails: boom failed")
	st := e.state(t, id)
	var after pipelinesv1.TaskState
	for path, ts := range st {
		if strings.HasSuffix(path, "after") {
			after = ts
		}
	}
	require.Equal(t, pipelinesv1.TaskSucceeded, after.State, "%v", st)
	require.Equal(t, "msg=[fallback]\n", e.read(t, after.LogURI))
	enginetest.RecordHistory(t, e.tc, id, "kfp-ignore-upstream-failure")
}

// Case kfp-backend/failed-step-log-missing: the log of a failed step is kept and served, and its error
// keeps the first and the last lines of the log.
func TestCaseFailedStepLogIsKept(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	id, run := e.start(t, caseSpec(t, "kfp-backend", "failed-step-log-missing"), nil)
	_, err := e.wait(t, run)
	require.Error(t, err)
	noisy := e.state(t, id)["noisy"]
	require.Equal(t, pipelinesv1.TaskFailed, noisy.State)
	require.NotEmpty(t, noisy.LogURI, "a failed step keeps its log")
	log := e.read(t, noisy.LogURI)
	require.True(t, strings.HasPrefix(log, "FIRST-LINE-OF-LOG\n"), log[:40])
	require.Contains(t, log, "filler 2999\n")
	require.Contains(t, noisy.Error, "FIRST-LINE-OF-LOG")
	require.Contains(t, noisy.Error, "filler 2999")
	require.Contains(t, noisy.Error, "bytes of the log elided")
}

// standinEnv puts the stand-in KFP executor (testdata/kfpstandin, python3 stdlib, following the
// executor's documented contract; PyPI is unreachable so the real kfp cannot be installed) on the
// steps' PYTHONPATH. The local runtime passes the worker's environment to steps.
func standinEnv(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatalf("python3 is required (scripts/test-deps.sh installs it): %v", err)
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "kfpstandin"))
	require.NoError(t, err)
	t.Setenv("PYTHONPATH", dir)
	// The interpreter itself first on PATH: a version manager's shim (pyenv) would take a machine-wide
	// lock to rehash after every `python3 -m pip install` the components run.
	exe, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	require.NoError(t, err)
	t.Setenv("PATH", filepath.Dir(strings.TrimSpace(string(exe)))+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// Case kfp-backend/artifact-output-path: a lightweight Python component writes its output artifact at
// the path KFP's executor derives from the URI in {{$}}; under the local runtime that path lies in the
// step's work dir (nothing under /s3 on the host), and the object holds what was written.
func TestCaseKFPExecutorArtifactPaths(t *testing.T) {
	standinEnv(t)
	e := newEnv(t)
	e.startWorker(t)
	before, _ := os.ReadDir("/s3")
	id, run := e.start(t, caseSpec(t, "kfp-backend", "artifact-output-path"), nil)
	_, err := e.wait(t, run)
	require.NoError(t, err, "%v", e.state(t, id))
	d := e.state(t, id)["produce"].Outputs.Artifacts["d"]
	require.True(t, strings.HasPrefix(d.URI, "s3://"), "lineage keeps the s3:// URI: %s", d.URI)
	require.Equal(t, "hello", e.read(t, d.URI))
	after, _ := os.ReadDir("/s3")
	require.Equal(t, len(before), len(after), "nothing is written under /s3 on the host")
}

// Case kfp-backend/artifact-metadata-dropped: output artifact metadata written by the executor reaches
// the consumer's executor input and the recorded artifact. The case's components located the staged
// file by hand to get past the path bug above; here they use d.path, as real components do.
func TestCaseKFPExecutorArtifactMetadata(t *testing.T) {
	standinEnv(t)
	e := newEnv(t)
	e.startWorker(t)
	spec := caseSpec(t, "kfp-backend", "artifact-metadata-dropped")
	spec = strings.ReplaceAll(spec, `staged = os.path.join(os.getcwd(), 's3', d.uri[len('s3://'):])  # where Sluice stages the artifact\n`, `staged = d.path\n`)
	require.NotContains(t, spec, "os.getcwd()")
	id, run := e.start(t, spec, nil)
	_, err := e.wait(t, run)
	require.NoError(t, err, "%v", e.state(t, id))
	st := e.state(t, id)
	require.Equal(t, map[string]any{"rows": float64(3), "source": "probe"}, st["produce-md"].Outputs.Artifacts["d"].Metadata)
	require.Equal(t, "ok", st["consume-md"].Outputs.Parameters["Output"])
}

// Cases kfp/{ifpresent-placeholder, undeclared-task-input, placeholder-artifact-metadata}: IfPresent
// structured placeholders expand as KFP's launcher does, the compiler's undeclared pipelinechannel--
// inputs feed f-strings, and a bare .metadata placeholder renders the artifact's metadata JSON.
func TestCasesKFPPlaceholders(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	for _, tc := range []struct{ file, task, log string }{
		{"ifpresent-placeholder/pipeline.yaml", "show", "--req r --b bee --a none\n"},
		{"ifpresent-placeholder/pipeline-present.yaml", "show", "--req r --b bee\n"},
		{"undeclared-task-input/pipeline.yaml", "show", "value is seven\n"},
		{"placeholder-artifact-metadata/pipeline.yaml", "train", "metadata: {}\n"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cases", "kfp", tc.file))
			require.NoError(t, err)
			id, run := e.start(t, string(src), nil)
			_, err = e.wait(t, run)
			require.NoError(t, err, "%v", e.state(t, id))
			require.Contains(t, e.read(t, e.state(t, id)[tc.task].LogURI), tc.log)
		})
	}
}

// Issue #21, executor output (KFP launcher rules, uploadOutputArtifacts): an output artifact the
// executor reports with its own URI is uploaded from the path derived from that URI and recorded and
// passed on with it; a Metrics output that only logged metrics succeeds with its metrics as metadata
// and no object; an output never written is recorded without an object (the consumer finds no file); a
// pythonic return of an artifact with an external URI is recorded as given. The consumer step checks
// all of it in its own {{$}}.
func TestKFPExecutorOutputArtifacts(t *testing.T) {
	standinEnv(t)
	e := newEnv(t)
	e.startWorker(t)
	src, err := os.ReadFile(filepath.Join("testdata", "kfp", "executor-outputs.yaml"))
	require.NoError(t, err)
	id, run := e.start(t, string(src), nil)
	_, err = e.wait(t, run)
	require.NoError(t, err, "%v", e.state(t, id))
	st := e.state(t, id)
	own := st["own-uri"].Outputs.Artifacts["d"]
	require.Equal(t, e.store.URI("executor-outputs/"+id+"/own-uri/d-custom"), own.URI, "the executor's own URI, in s3:// form")
	require.Equal(t, "custom place", e.read(t, own.URI))
	require.NotEmpty(t, own.Digest)
	require.Equal(t, map[string]any{"where": "custom"}, own.Metadata)
	_, err = e.store.Stat(t.Context(), "executor-outputs/"+id+"/own-uri/d")
	require.ErrorIs(t, err, artifacts.ErrNotFound, "nothing is uploaded at the URI Sluice assigned")

	m := st["evaluate"].Outputs.Artifacts["m"]
	require.Equal(t, map[string]any{"accuracy": 0.92}, m.Metadata)
	require.Empty(t, m.Digest, "a Metrics output that only logged metrics has no object")
	require.Equal(t, "system.Metrics", m.SchemaTitle)
	lazy := st["lazy"].Outputs.Artifacts["d"]
	require.Equal(t, e.store.URI("executor-outputs/"+id+"/lazy/d"), lazy.URI)
	require.Empty(t, lazy.Digest)
	ref := st["reference"].Outputs.Artifacts["Output"]
	require.Equal(t, "https://example.com/data.csv", ref.URI)
	require.Equal(t, map[string]any{"origin": "web"}, ref.Metadata)
	require.Equal(t, "ok", st["consume"].Outputs.Parameters["Output"])
	enginetest.RecordHistory(t, e.tc, id, "kfp-executor-outputs")

	// URIs KFP's launcher refuses, and a file written for a URI outside the run: the step fails naming
	// the output.
	bucket := e.store.Bucket()
	for name, code := range map[string]string{
		"outside the pipeline root": `d.uri = 'gs://elsewhere/data'`,
		"uploaded only under":       `d.uri = d.uri[:d.uri.rindex('/s3/` + bucket + `/')] + '/s3/` + bucket + `/other-pipeline/run/x'`,
	} {
		t.Run(name, func(t *testing.T) {
			spec := strings.Replace(string(src), `d.uri = d.uri + '-custom'`, code, 1)
			require.NotEqual(t, string(src), spec)
			if name == "outside the pipeline root" { // nothing may be written at /gcs on the host
				spec = strings.Replace(spec, `with open(d.path, 'w') as f:\n        f.write('custom place')`, `pass`, 1)
				spec = strings.Replace(spec, `os.makedirs(os.path.dirname(d.path), exist_ok=True)`, `pass`, 1)
			}
			id, run := e.start(t, spec, nil)
			_, err := e.wait(t, run)
			require.Error(t, err)
			ts := e.state(t, id)["own-uri"]
			require.Equal(t, pipelinesv1.TaskFailed, ts.State)
			require.Contains(t, ts.Error, `output artifact "d"`)
			require.Contains(t, ts.Error, name)
		})
	}
	_, err = os.Stat("/gcs/elsewhere")
	require.ErrorIs(t, err, os.ErrNotExist)
}
