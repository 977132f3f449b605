package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/runtime"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine/enginetest"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Run(m)) }

type env struct {
	tc    client.Client
	store *artifacts.Store
	bus   *events.Bus
	acts  *engine.Activities
}

var workerSeq atomic.Int32

func newEnv(t testing.TB) *env {
	t.Helper()
	st := devstacktest.Stack(t)
	ctx := t.Context()
	bus, err := events.Connect(ctx, st.NATSURL, "engine-test", nil)
	require.NoError(t, err)
	t.Cleanup(bus.Close)
	require.NoError(t, bus.EnsureStreams(ctx))
	tc, err := wf.Dial(ctx, wf.Config{HostPort: st.TemporalAddress, Namespace: st.Namespace}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	store, err := artifacts.New(artifacts.Config{Endpoint: st.S3Endpoint, AccessKey: st.S3AccessKey, SecretKey: st.S3SecretKey, Bucket: st.S3Bucket, Region: st.S3Region})
	require.NoError(t, err)
	e := &env{tc: tc, store: store, bus: bus, acts: &engine.Activities{
		Store: store, Runtime: runtime.NewLocal(runtime.LocalConfig{}), Bus: bus,
		WorkDir: filepath.Join(t.TempDir(), "work"), Source: "/sluice/pipelines-test",
	}}
	return e
}

// startWorker runs a worker for the engine; the returned func stops it (like a crash of the service).
func (e *env) startWorker(t testing.TB) func() {
	t.Helper()
	w := worker.New(e.tc, pipelinesv1.TaskQueue, engine.WorkerOptions(worker.Options{Identity: fmt.Sprintf("test-worker-%d", workerSeq.Add(1))}))
	engine.Register(w, e.acts)
	require.NoError(t, w.Start())
	var once atomic.Bool
	stop := func() {
		if once.CompareAndSwap(false, true) {
			w.Stop()
		}
	}
	t.Cleanup(stop)
	return stop
}

func (e *env) start(t *testing.T, spec string, params map[string]any) (string, client.WorkflowRun) {
	t.Helper()
	id := uuid.NewString()
	run, err := engine.Start(t.Context(), e.tc, pipelinesv1.RunInput{RunID: id, RunName: t.Name(), Spec: spec, Parameters: params})
	require.NoError(t, err)
	return id, run
}

func (e *env) wait(t *testing.T, run client.WorkflowRun) (pipelinesv1.RunResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var res pipelinesv1.RunResult
	err := run.Get(ctx, &res)
	return res, err
}

func (e *env) state(t *testing.T, id string) map[string]pipelinesv1.TaskState {
	t.Helper()
	st, err := engine.State(t.Context(), e.tc, id)
	require.NoError(t, err)
	out := map[string]pipelinesv1.TaskState{}
	for _, ts := range st.Tasks {
		out[ts.Path] = ts
	}
	return out
}

func (e *env) read(t *testing.T, uri string) string {
	t.Helper()
	_, key, err := artifacts.ParseURI(uri)
	require.NoError(t, err)
	rc, _, err := e.store.Get(t.Context(), key)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return string(b)
}

const diamond = `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: diamond}
spec:
  inputs:
    flip: {type: STRING, default: tails}
  tasks:
    a:
      image: alpine
      command: [sh, -c, 'printf "%s" "$0" > "$1"']
      args: ["{{inputs.x}}", "{{outputs.out}}"]
      inputs: {x: {fromInput: flip}}
      outputs: {parameters: [out]}
    b:
      image: alpine
      command: [sh, -c, 'echo b']
      inputs: {coin: {fromTask: a.out}}
      when: "inputs.parameter_values['coin'] == 'heads'"
    c:
      image: alpine
      command: [sh, -c, 'printf c > "$0"']
      args: ["{{outputs.out}}"]
      dependsOn: [a]
      outputs: {parameters: [out]}
    d:
      image: alpine
      command: [sh, -c, 'echo d']
      dependsOn: [b, c]
    e:
      image: alpine
      command: [sh, -c, 'printf "%s-e" "$0" > "$1"']
      args: ["{{inputs.in}}", "{{outputs.out}}"]
      inputs: {in: {fromTask: c.out}}
      outputs: {parameters: [out]}
`

func TestDiamondWithSkippedBranch(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	id, run := e.start(t, diamond, nil)
	res, err := e.wait(t, run)
	require.NoError(t, err)
	require.Equal(t, pipelinesv1.RunSucceeded, res.State)
	st := e.state(t, id)
	require.Equal(t, pipelinesv1.TaskSucceeded, st["a"].State)
	require.Equal(t, pipelinesv1.TaskSkipped, st["b"].State)
	require.Contains(t, st["b"].Error, "is false")
	require.Equal(t, pipelinesv1.TaskSucceeded, st["c"].State)
	require.Equal(t, pipelinesv1.TaskSkipped, st["d"].State, "a task after a skipped task is skipped")
	require.Equal(t, pipelinesv1.TaskSucceeded, st["e"].State)
	require.Equal(t, "c-e", res.Tasks["e"].Parameters["out"])
	enginetest.RecordHistory(t, e.tc, id, "diamond")

	// heads: b runs, so d runs too.
	id2, run2 := e.start(t, diamond, map[string]any{"flip": "heads"})
	_, err = e.wait(t, run2)
	require.NoError(t, err)
	st2 := e.state(t, id2)
	require.Equal(t, pipelinesv1.TaskSucceeded, st2["b"].State)
	require.Equal(t, pipelinesv1.TaskSucceeded, st2["d"].State)
}

const loops = `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: loops}
spec:
  inputs:
    nums: {type: LIST, default: [1, 2, 3]}
  tasks:
    square:
      image: alpine
      forEach: {items: {fromInput: nums}, as: n, type: NUMBER_INTEGER, parallelism: 2}
      command: [sh, -c, 'echo $(($0 * $0)) > "$1"']
      args: ["{{inputs.n}}", "{{outputs.sq}}"]
      outputs: {parameters: {sq: {type: NUMBER_INTEGER}}}
    total:
      image: alpine
      command: [sh, -c, 'printf "%s" "$0" > "$1"']
      args: ["{{inputs.all}}", "{{outputs.out}}"]
      inputs: {all: {fromTask: square.sq}}
      outputs: {parameters: [out]}
`

func TestLoopFanInAndEmptyLoop(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	_, run := e.start(t, loops, nil)
	res, err := e.wait(t, run)
	require.NoError(t, err)
	require.Equal(t, "[1,4,9]", res.Tasks["total"].Parameters["out"])

	id, run := e.start(t, loops, map[string]any{"nums": []any{}})
	res, err = e.wait(t, run)
	require.NoError(t, err)
	require.Equal(t, "[]", res.Tasks["total"].Parameters["out"], "an empty loop runs no iteration and fans in an empty list")
	require.Equal(t, pipelinesv1.TaskSucceeded, e.state(t, id)["square"].State)
}

const retryForever = `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: retry-cancel}
spec:
  tasks:
    flaky:
      image: alpine
      command: [sh, -c, 'echo attempt; exit 3']
      retry: {maxRetries: 5, backoff: 30s}
`

func TestRetriesThenCancelDuringBackoff(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	id, run := e.start(t, retryForever, nil)
	require.Eventually(t, func() bool {
		ts := e.state(t, id)["flaky"]
		return ts.Attempts == 1 && strings.Contains(ts.Error, "exited with code 3")
	}, time.Minute, 50*time.Millisecond, "first attempt fails, backoff begins")
	require.NoError(t, e.tc.CancelWorkflow(t.Context(), id, ""))
	_, err := e.wait(t, run)
	var ce interface{ Error() string }
	require.Error(t, err)
	require.True(t, errors.As(err, &ce))
	st := e.state(t, id)["flaky"]
	require.Equal(t, pipelinesv1.TaskCancelled, st.State)
	require.Equal(t, 1, st.Attempts, "no new attempt after cancel")
	objs, err := e.store.List(t.Context(), "retry-cancel/"+id+"/flaky/logs")
	require.NoError(t, err)
	require.Len(t, objs, 1, "exactly one attempt's log")
}

const exitHandler = `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: exit-handler}
spec:
  inputs:
    mode: {type: STRING, default: fail}
  tasks:
    body:
      image: alpine
      command: [sh, -c, 'if [ "$0" = fail ]; then exit 1; fi; sleep 60']
      args: ["{{inputs.mode}}"]
      inputs: {mode: {fromInput: mode}}
  exitHandler:
    name: cleanup
    image: alpine
    command: [sh, -c, 'printf "%s" "$0" > "$1"']
    args: ["{{inputs.status}}", "{{outputs.seen}}"]
    inputs: {status: {finalStatus: true}}
    outputs: {parameters: [seen]}
`

func TestExitHandlerOnFailureAndOnCancel(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	id, run := e.start(t, exitHandler, nil)
	_, err := e.wait(t, run)
	require.Error(t, err)
	rs, err := engine.State(t.Context(), e.tc, id)
	require.NoError(t, err)
	require.Equal(t, pipelinesv1.RunFailed, rs.State)
	st := e.state(t, id)
	require.Equal(t, pipelinesv1.TaskFailed, st["exit-handler-1/body"].State)
	require.Equal(t, pipelinesv1.TaskSucceeded, st["cleanup"].State)
	require.Contains(t, st["cleanup"].Outputs.Parameters["seen"], `"state":"FAILED"`)

	id, run = e.start(t, exitHandler, map[string]any{"mode": "sleep"})
	require.Eventually(t, func() bool {
		return e.state(t, id)["exit-handler-1/body"].State == pipelinesv1.TaskRunning
	}, 20*time.Second, 500*time.Millisecond)
	require.NoError(t, e.tc.CancelWorkflow(t.Context(), id, ""))
	_, err = e.wait(t, run)
	require.Error(t, err)
	st = e.state(t, id)
	require.Equal(t, pipelinesv1.TaskCancelled, st["exit-handler-1/body"].State)
	require.Equal(t, pipelinesv1.TaskSucceeded, st["cleanup"].State, "exit handler runs on cancel")
	require.Contains(t, st["cleanup"].Outputs.Parameters["seen"], `"state":"CANCELED"`)
}

func TestMissingDeclaredOutputFailsTheStep(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	id, run := e.start(t, `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: missing-output}
spec:
  tasks:
    lazy:
      image: alpine
      command: [sh, -c, 'echo did nothing']
      outputs: {artifacts: {model: {type: system.Model}}}
`, nil)
	_, err := e.wait(t, run)
	require.Error(t, err)
	st := e.state(t, id)["lazy"]
	require.Equal(t, pipelinesv1.TaskFailed, st.State)
	require.Contains(t, st.Error, `declared output artifact "model" was not produced`)
}

const cached = `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: cached}
spec:
  inputs:
    text: {type: STRING, default: hello}
    salt: {type: STRING, default: a}
  tasks:
    produce:
      image: alpine
      command: [sh, -c, 'printf "%s" "$0" > "$1"']
      args: ["{{inputs.text}}", "{{outputs.data}}"]
      inputs: {text: {fromInput: text}}
      outputs: {artifacts: [data]}
    consume:
      image: alpine
      command: [sh, -c, 'echo "$1 $(date +%s%N)" > "$2"; cat "$0" >> "$2"']
      args: ["{{inputs.data}}", "{{inputs.salt}}", "{{outputs.out}}"]
      inputs: {data: {fromTask: produce.data}, salt: {fromInput: salt}}
      outputs: {artifacts: [out]}
      cache: true
`

func TestCacheHitMissAndChangedInputArtifact(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	runOnce := func(params map[string]any) (string, pipelinesv1.TaskState) {
		id, run := e.start(t, cached, params)
		_, err := e.wait(t, run)
		require.NoError(t, err)
		return id, e.state(t, id)["consume"]
	}
	_, first := runOnce(nil)
	require.Equal(t, pipelinesv1.TaskSucceeded, first.State)
	_, second := runOnce(nil)
	require.Equal(t, pipelinesv1.TaskCached, second.State, "same inputs: cache hit")
	require.Equal(t, first.Outputs.Artifacts["out"].URI, second.Outputs.Artifacts["out"].URI)

	// The cache is per namespace: a run of another namespace never reuses these outputs, its own are
	// reused by its next run.
	inNamespace := func(ns string) pipelinesv1.TaskState {
		id := uuid.NewString()
		run, err := engine.Start(t.Context(), e.tc, pipelinesv1.RunInput{RunID: id, RunName: t.Name(), Spec: cached, Namespace: ns})
		require.NoError(t, err)
		_, err = e.wait(t, run)
		require.NoError(t, err)
		return e.state(t, id)["consume"]
	}
	ns := "team-" + uuid.NewString()[:8]
	require.Equal(t, pipelinesv1.TaskSucceeded, inNamespace(ns).State, "another namespace's cache entry is a miss")
	require.Equal(t, pipelinesv1.TaskCached, inNamespace(ns).State, "the namespace's own entry is a hit")

	_, changed := runOnce(map[string]any{"text": "changed content"})
	require.Equal(t, pipelinesv1.TaskSucceeded, changed.State, "a changed input artifact is a miss")
	_, param := runOnce(map[string]any{"salt": "b"})
	require.Equal(t, pipelinesv1.TaskSucceeded, param.State, "a changed parameter is a miss")

	// Deleting the cached output object turns the next lookup into a miss.
	_, key, err := artifacts.ParseURI(first.Outputs.Artifacts["out"].URI)
	require.NoError(t, err)
	require.NoError(t, e.store.Delete(t.Context(), key))
	_, again := runOnce(nil)
	require.Equal(t, pipelinesv1.TaskSucceeded, again.State, "a hit whose outputs are gone is a miss")
}

func TestArgvReachesStepByteExact(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	value := "{{$.inputs.parameters['v']}} \"quoted\" 'single'\nnew line ünïcødé ☃"
	for _, v := range []string{value, "-rf", "=x", "--flag=1"} {
		_, run := e.start(t, `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: argv}
spec:
  inputs:
    v: {type: STRING}
  tasks:
    echo:
      image: alpine
      command: [sh, -c, 'printf "%s|%s" "$#" "$0" > "$1"']
      args: ["{{inputs.v}}", "{{outputs.out}}"]
      inputs: {v: {fromInput: v}}
      outputs: {artifacts: [out]}
`, map[string]any{"v": v})
		res, err := e.wait(t, run)
		require.NoError(t, err)
		require.Equal(t, "1|"+v, e.read(t, res.Tasks["echo"].Artifacts["out"].URI))
	}
}

func TestWorkerKilledMidRunResumes(t *testing.T) {
	e := newEnv(t)
	stop := e.startWorker(t)
	id, run := e.start(t, `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: resume}
spec:
  tasks:
    first:
      image: alpine
      command: [sh, -c, 'printf one > "$0"']
      args: ["{{outputs.out}}"]
      outputs: {artifacts: [out]}
    slow:
      image: alpine
      command: [sh, -c, 'sleep 2; cat "$0" > "$1"; printf two >> "$1"']
      args: ["{{inputs.in}}", "{{outputs.out}}"]
      inputs: {in: {fromTask: first.out}}
      outputs: {artifacts: [out]}
`, nil)
	require.Eventually(t, func() bool { return e.state(t, id)["slow"].State == pipelinesv1.TaskRunning }, time.Minute, 20*time.Millisecond)
	stop() // the service dies mid-step
	e.startWorker(t)
	res, err := e.wait(t, run)
	require.NoError(t, err)
	require.Equal(t, "onetwo", e.read(t, res.Tasks["slow"].Artifacts["out"].URI))
	for _, task := range []string{"first", "slow"} {
		objs, err := e.store.List(t.Context(), "resume/"+id+"/"+task)
		require.NoError(t, err)
		n := 0
		for _, o := range objs {
			if strings.HasSuffix(o.Key, "/out") {
				n++
			}
		}
		require.Equal(t, 1, n, "each output exists exactly once")
	}
}

func newBenchEnv(b *testing.B) *env {
	e := newEnv(b)
	e.startWorker(b)
	return e
}

func TestFusedLoopRetriesFailedIterationAlone(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	marker := filepath.Join(t.TempDir(), "failed-once")
	id, run := e.start(t, `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: fused}
spec:
  inputs:
    marker: {type: STRING}
  tasks:
    work:
      image: alpine
      forEach: {items: [1, 2, 3, 4], as: n, type: NUMBER_INTEGER}
      command: [sh, -c, 'if [ "$0" = 2 ] && [ ! -e "$1" ]; then touch "$1"; exit 7; fi; echo $(($0 * 10)) > "$2"']
      args: ["{{inputs.n}}", "{{inputs.marker}}", "{{outputs.out}}"]
      inputs: {marker: {fromInput: marker}}
      outputs: {parameters: {out: {type: NUMBER_INTEGER}}}
      retry: {maxRetries: 1}
    sum:
      image: alpine
      command: [sh, -c, 'printf "%s" "$0" > "$1"']
      args: ["{{inputs.all}}", "{{outputs.out}}"]
      inputs: {all: {fromTask: work.out}}
      outputs: {parameters: [out]}
`, map[string]any{"marker": marker})
	res, err := e.wait(t, run)
	require.NoError(t, err)
	require.Equal(t, "[10,20,30,40]", res.Tasks["sum"].Parameters["out"])
	st := e.state(t, id)
	require.Equal(t, 2, st["work/1"].Attempts, "the failed iteration ran a second attempt")
	require.Equal(t, 1, st["work/0"].Attempts)
}
