package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/app"
	"github.com/sluice-ml/sluice/services/pipelines/internal/claimcheck"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine/enginetest"
)

func caseSpec(t *testing.T, area, name string) string {
	t.Helper()
	b, err := os.ReadFile("../testdata/cases/" + area + "/" + name + "/pipeline.yaml")
	require.NoError(t, err)
	return string(b)
}

type apiClient struct {
	t   *testing.T
	url string
}

func (c apiClient) do(method, path string, body any) (int, string) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(c.t, err)
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.url+path, r)
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitRun waits (up to 5 minutes) for a run to end and returns its result; a failed run's result is read
// from its state. A call that fails on a busy machine (a long poll or a query timing out) is tried again.
func waitRun(t *testing.T, d *platform.Deps, id string) pipelinesv1.RunResult {
	t.Helper()
	tc, err := claimcheck.NewClient(d.Temporal, d.Namespace, d.Artifacts, client.Options{})
	require.NoError(t, err)
	defer tc.Close()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		var res pipelinesv1.RunResult
		err := tc.GetWorkflow(ctx, id, "").Get(ctx, &res)
		cancel()
		if err == nil {
			return res
		}
		var ended *temporal.WorkflowExecutionError
		if errors.As(err, &ended) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			st, serr := engine.State(ctx, tc, id)
			cancel()
			if serr == nil {
				return pipelinesv1.RunResult{State: st.State, Error: st.Error}
			}
			err = serr
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: no result after 5m: %v", id, err)
		}
	}
}

func readObject(t *testing.T, d *platform.Deps, uri string) string {
	t.Helper()
	_, key, err := artifacts.ParseURI(uri)
	require.NoError(t, err)
	rc, _, err := d.Artifacts.Get(t.Context(), key)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return string(b)
}

// Case pipelines/runid-slash-collision: a run id is one safe segment, checked before anything is
// created; different run ids never share an S3 prefix; a taken id with another request is a 409.
func TestCaseRunIDIsValidatedAndNeverShared(t *testing.T) {
	d, srv := newService(t)
	c := apiClient{t, srv.URL}
	body := pipelinesv1.RunRequest{Spec: caseSpec(t, "pipelines", "runid-slash-collision")}
	for _, bad := range []string{"q//r", "q/r", "/", "/etc/x", ".", "..", "a b", "-x", "r.1", strings.Repeat("a", pipelinesv1.MaxRunIDLength+1)} {
		code, out := c.do(http.MethodPost, "/apis/v1/runs?run_id="+url.QueryEscape(bad), body)
		require.Equal(t, http.StatusBadRequest, code, "run_id %q: %s", bad, out)
		require.Contains(t, out, "run_id")
		require.Zero(t, runsWithID(t, d, bad), "nothing is created for run_id %q", bad)
	}

	suffix := uuid.NewString()[:8]
	ids := []string{"q-r-" + suffix, "q_r-" + suffix, "Q-r-" + suffix}
	uris := map[string]bool{}
	for _, id := range ids {
		code, out := c.do(http.MethodPost, "/apis/v1/runs?run_id="+id, body)
		require.Equal(t, http.StatusOK, code, out)
	}
	for _, id := range ids {
		require.Equal(t, pipelinesv1.RunSucceeded, waitRun(t, d, id).State)
		code, out := c.do(http.MethodGet, "/apis/v1/runs/"+id, nil)
		require.Equal(t, http.StatusOK, code, out)
		var st app.RunDetail
		require.NoError(t, json.Unmarshal([]byte(out), &st))
		require.Len(t, st.Tasks, 1)
		uri := st.Tasks[0].Outputs.Artifacts["f"].URI
		require.False(t, uris[uri], "two runs share %s", uri)
		uris[uri] = true
		require.Equal(t, "written by run "+id+"\n", readObject(t, d, uri))
	}

	// Same id, same request: idempotent. Same id, another request: 409, and the run is unchanged.
	code, out := c.do(http.MethodPost, "/apis/v1/runs?run_id="+ids[0], body)
	require.Equal(t, http.StatusOK, code, out)
	other := body
	other.RunName = "another"
	code, out = c.do(http.MethodPost, "/apis/v1/runs?run_id="+ids[0], other)
	require.Equal(t, http.StatusConflict, code, out)
	require.Equal(t, 1, runsWithID(t, d, ids[0]))
}

// runEvents collects "type task_path" for every pipeline event of the runs ids, in stream order.
type runEvents struct {
	mu  sync.Mutex
	got map[string][]string
}

func tailRunEvents(t *testing.T, d *platform.Deps) *runEvents {
	t.Helper()
	re := &runEvents{got: map[string][]string{}}
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go func() {
		_ = d.Bus.Tail(ctx, "io.sluice.pipeline.*", false, func(r events.Received) {
			if r.Err != nil {
				return
			}
			var data struct {
				RunID    string `json:"run_id"`
				TaskPath string `json:"task_path"`
			}
			if r.Event.DataAs(&data) != nil || data.RunID == "" {
				return
			}
			re.mu.Lock()
			re.got[data.RunID] = append(re.got[data.RunID], strings.TrimSpace(strings.TrimPrefix(r.Event.Type(), "io.sluice.pipeline.")+" "+data.TaskPath))
			re.mu.Unlock()
		})
	}()
	return re
}

func (re *runEvents) of(id string) []string {
	re.mu.Lock()
	defer re.mu.Unlock()
	return append([]string(nil), re.got[id]...)
}

func taskState(t *testing.T, c apiClient, id string) map[string]pipelinesv1.TaskState {
	t.Helper()
	code, out := c.do(http.MethodGet, "/apis/v1/runs/"+id, nil)
	require.Equal(t, http.StatusOK, code, out)
	var st app.RunDetail
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	m := map[string]pipelinesv1.TaskState{}
	for _, ts := range st.Tasks {
		m[ts.Path] = ts
	}
	return m
}

// Case pipelines/cancelled-tasks-no-terminal-event: cancelled during a retry backoff, every task that
// started gets a terminal event (task.cancelled), tasks that never started are cancelled too, the run's
// final event comes last, and a second cancel of the finished run is not an error.
func TestCaseCancelPublishesTerminalTaskEvents(t *testing.T) {
	d, srv := newService(t)
	re := tailRunEvents(t, d)
	c := apiClient{t, srv.URL}
	id := "cancel-" + uuid.NewString()[:8]
	code, out := c.do(http.MethodPost, "/apis/v1/runs?run_id="+id, pipelinesv1.RunRequest{Spec: caseSpec(t, "pipelines", "cancelled-tasks-no-terminal-event")})
	require.Equal(t, http.StatusOK, code, out)
	// Attempt 1 failed: the task is in its 5 s backoff.
	require.Eventually(t, func() bool { return taskState(t, c, id)["flaky"].Error != "" }, time.Minute, 50*time.Millisecond)
	code, out = c.do(http.MethodPost, "/apis/v1/runs/"+id+"/cancel", nil)
	require.Equal(t, http.StatusAccepted, code, out)
	require.Equal(t, pipelinesv1.RunCancelled, waitRun(t, d, id).State)
	code, out = c.do(http.MethodPost, "/apis/v1/runs/"+id+"/cancel", nil)
	require.Equal(t, http.StatusOK, code, "second cancel: %s", out)
	require.Contains(t, out, pipelinesv1.RunCancelled)

	st := taskState(t, c, id)
	require.Equal(t, pipelinesv1.TaskCancelled, st["flaky"].State)
	require.Equal(t, 1, st["flaky"].Attempts)
	require.Equal(t, pipelinesv1.TaskCancelled, st["after"].State)
	want := []string{"run.started.v1", "task.started.v1 flaky", "task.cancelled.v1 flaky", "task.cancelled.v1 after", "run.cancelled.v1"}
	require.Eventually(t, func() bool { return len(re.of(id)) >= len(want) }, time.Minute, 50*time.Millisecond)
	got := re.of(id)
	require.ElementsMatch(t, want, got)
	require.Equal(t, "run.started.v1", got[0])
	require.Equal(t, "run.cancelled.v1", got[len(got)-1], "the run's final event comes after its tasks' events: %v", got)
	enginetest.RecordHistory(t, d.Temporal, id, "cancel-in-backoff")
}

const cancelMix = `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: cancel-mix}
spec:
  tasks:
    long:
      image: alpine
      command: [sh, -c, 'echo started > "$0"; sleep 60']
      args: ["{{$.pipeline_root}}"]
    completed:
      image: alpine
      command: [sh, -c, 'echo completed-ran']
      dependsOn: [long]
      strategy: ALL_UPSTREAM_TASKS_COMPLETED
  exitHandler:
    name: cleanup
    image: alpine
    command: [sh, -c, 'echo cleanup-ran']
`

// After a cancel only the real exit handler starts; a task that merely uses ALL_UPSTREAM_TASKS_COMPLETED
// is cancelled like any other; the run ends CANCELED with a terminal event for every task; the cancel
// reaches the running step's process promptly (it would otherwise sleep 60 s).
func TestCancelStartsOnlyExitHandlers(t *testing.T) {
	d, srv := newService(t)
	re := tailRunEvents(t, d)
	c := apiClient{t, srv.URL}
	id := "cancelmix-" + uuid.NewString()[:8]
	spec := strings.Replace(cancelMix, `args: ["{{$.pipeline_root}}"]`, "args: [/dev/null]", 1)
	code, out := c.do(http.MethodPost, "/apis/v1/runs?run_id="+id, pipelinesv1.RunRequest{Spec: spec})
	require.Equal(t, http.StatusOK, code, out)
	require.Eventually(t, func() bool {
		for _, e := range re.of(id) {
			if e == "task.started.v1 exit-handler-1/long" {
				return true
			}
		}
		return false
	}, time.Minute, 50*time.Millisecond)
	t0 := time.Now()
	code, out = c.do(http.MethodPost, "/apis/v1/runs/"+id+"/cancel", nil)
	require.Equal(t, http.StatusAccepted, code, out)
	require.Equal(t, pipelinesv1.RunCancelled, waitRun(t, d, id).State)
	require.Less(t, time.Since(t0), 30*time.Second, "cancel must kill the running step")
	st := taskState(t, c, id)
	require.Equal(t, pipelinesv1.TaskCancelled, st["exit-handler-1/long"].State)
	require.Equal(t, pipelinesv1.TaskCancelled, st["exit-handler-1/completed"].State)
	require.Equal(t, pipelinesv1.TaskSucceeded, st["cleanup"].State)
	require.Eventually(t, func() bool {
		got := re.of(id)
		return len(got) > 0 && got[len(got)-1] == "run.cancelled.v1"
	}, time.Minute, 50*time.Millisecond)
	got := re.of(id)
	require.Contains(t, got, "task.cancelled.v1 exit-handler-1/long")
	require.Contains(t, got, "task.cancelled.v1 exit-handler-1/completed")
	require.Contains(t, got, "task.succeeded.v1 cleanup")
	require.NotContains(t, got, "task.started.v1 exit-handler-1/completed")
	enginetest.RecordHistory(t, d.Temporal, id, "cancel-exit-handler")
}

// Case pipelines/retry-reruns-succeeded-loop-iterations: retrying a failed run re-runs only the failed
// iteration and its downstream; succeeded iterations keep their outputs.
func TestCaseRetryReusesSucceededLoopIterations(t *testing.T) {
	d, srv := newService(t)
	c := apiClient{t, srv.URL}
	dir := t.TempDir()
	spec := strings.ReplaceAll(caseSpec(t, "pipelines", "retry-reruns-succeeded-loop-iterations"), "/tmp/c14b", dir)
	for _, fused := range []bool{true, false} {
		require.NoError(t, os.RemoveAll(filepath.Join(dir, "marker")))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "ran.log"), nil, 0o644))
		sp := spec
		if !fused { // one iteration at a time: the batch path instead of the fused chunk activity
			sp = strings.Replace(sp, "as: n}", "as: n, parallelism: 1}", 1)
		}
		id := "retry-" + uuid.NewString()[:8]
		code, out := c.do(http.MethodPost, "/apis/v1/runs?run_id="+id, pipelinesv1.RunRequest{Spec: sp})
		require.Equal(t, http.StatusOK, code, out)
		require.Equal(t, pipelinesv1.RunFailed, waitRun(t, d, id).State)
		code, out = c.do(http.MethodPost, "/apis/v1/runs/"+id+"/retry", nil)
		require.Equal(t, http.StatusOK, code, out)
		var created app.RunCreated
		require.NoError(t, json.Unmarshal([]byte(out), &created))
		res := waitRun(t, d, created.RunID)
		require.Equal(t, pipelinesv1.RunSucceeded, res.State, res.Error)
		log, err := os.ReadFile(filepath.Join(dir, "ran.log"))
		require.NoError(t, err)
		var runs []string // "iter N ran" and "down" lines (down's argument holds newlines: dash's echo expands \n)
		for _, l := range strings.Split(string(log), "\n") {
			if strings.HasPrefix(l, "iter ") || strings.HasPrefix(l, "down ") {
				runs = append(runs, strings.Fields(l)[0]+" "+strings.Fields(l)[1])
			}
		}
		require.ElementsMatch(t, []string{"iter 1", "iter 2", "iter 3", "iter 2", "down ran"}, runs, "fused=%v: %s", fused, log)
		require.Equal(t, "down ran", runs[len(runs)-1])
		st := taskState(t, c, created.RunID)
		require.Equal(t, "v1\n", st["loop/0"].Outputs.Parameters["v"])
		require.Equal(t, "v2\n", st["loop/1"].Outputs.Parameters["v"])
		enginetest.RecordHistory(t, d.Temporal, created.RunID, fmt.Sprintf("retry-loop-fused-%v", fused))
	}
}

// Case pipelines/output-param-over-1mb: a 1.2 MB output parameter is stored intact (claim check: it
// rides neither in NATS messages nor in Temporal payloads) and the step runs once; over the 16 MiB
// limit the step fails at once naming the value, its size and the limit; an input over the limit is a
// 400 naming it; large input parameters reach the step intact.
func TestCaseLargeParametersUpToTheLimit(t *testing.T) {
	d, srv := newService(t)
	re := tailRunEvents(t, d)
	c := apiClient{t, srv.URL}
	count := filepath.Join(t.TempDir(), "gen.count")
	spec := strings.ReplaceAll(caseSpec(t, "pipelines", "output-param-over-1mb"), "/tmp/c08-gen.count", count)
	run := func(size int) (string, pipelinesv1.RunResult) {
		require.NoError(t, os.WriteFile(count, nil, 0o644))
		id := "big-" + uuid.NewString()[:8]
		code, out := c.do(http.MethodPost, "/apis/v1/runs?run_id="+id, pipelinesv1.RunRequest{Spec: spec, Parameters: map[string]any{"outsize": size}})
		require.Equal(t, http.StatusOK, code, out)
		return id, waitRun(t, d, id)
	}
	runs := func() int {
		b, err := os.ReadFile(count)
		require.NoError(t, err)
		return strings.Count(string(b), "ran\n")
	}

	id, res := run(1200000)
	require.Equal(t, pipelinesv1.RunSucceeded, res.State, res.Error)
	require.Equal(t, 1, runs())
	st := taskState(t, c, id)
	require.Equal(t, strings.Repeat("x", 1200000), st["gen"].Outputs.Parameters["big"])
	require.Eventually(t, func() bool {
		for _, e := range re.of(id) {
			if e == "task.succeeded.v1 gen" {
				return true
			}
		}
		return false
	}, time.Minute, 50*time.Millisecond, "task.succeeded is published with the value checked into S3")

	id, res = run(pipelinesv1.MaxParamBytes + 1)
	require.Equal(t, pipelinesv1.RunFailed, res.State)
	require.Equal(t, 1, runs(), "a deterministic failure never re-runs the step")
	msg := taskState(t, c, id)["gen"].Error
	require.Contains(t, msg, `output parameter "big"`)
	require.Contains(t, msg, fmt.Sprint(pipelinesv1.MaxParamBytes+1)+" bytes")
	require.Contains(t, msg, fmt.Sprint(pipelinesv1.MaxParamBytes))

	code, out := c.do(http.MethodPost, "/apis/v1/runs", pipelinesv1.RunRequest{Spec: tiny, Parameters: map[string]any{"who": strings.Repeat("y", pipelinesv1.MaxParamBytes)}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, out, "parameters.who")
	require.Contains(t, out, "limit")

	// 3 MiB in: over Temporal's 2 MiB payload limit and NATS's 1 MiB max_payload, the run starts and the
	// value reaches the step's rendering intact; the OS refuses an argument that long, which the step's
	// error says plainly.
	big := strings.Repeat("z", 3<<20)
	id = "bigin-" + uuid.NewString()[:8]
	code, out = c.do(http.MethodPost, "/apis/v1/runs?run_id="+id, pipelinesv1.RunRequest{Spec: tiny, Parameters: map[string]any{"who": big}})
	require.Equal(t, http.StatusOK, code, out)
	res = waitRun(t, d, id)
	require.Equal(t, pipelinesv1.RunFailed, res.State)
	require.Contains(t, taskState(t, c, id)["hello"].Error, `args[0] "{{$.inputs.parameters['who']}}" is 3145728 bytes once rendered`)
}

// Case pipelines/schedule-no-pause-and-6-field-cron: recurring runs can be disabled and enabled through
// the KFP-shaped API; KFP's 6-field cron (seconds first) means what it means in KFP; next_run_time comes
// from the schedule and is absent while disabled; every scheduled run has its own name and pipeline.
func TestCaseRecurringRunsPauseResumeAndKFPCron(t *testing.T) {
	_, srv := newService(t)
	c := apiClient{t, srv.URL}
	log := filepath.Join(t.TempDir(), "ticks.log")
	spec := strings.ReplaceAll(caseSpec(t, "pipelines", "schedule-no-pause-and-6-field-cron"), "/tmp/c15.log", log)
	create := func(cronExpr string, paused bool) (int, string) {
		return c.do(http.MethodPost, "/apis/v1/recurringruns", app.RecurringRunRequest{Name: "c15", Cron: cronExpr, Paused: paused, Run: pipelinesv1.RunRequest{Spec: spec}})
	}
	get := func(id string) app.RecurringRun {
		code, out := c.do(http.MethodGet, "/apis/v1/recurringruns/"+id, nil)
		require.Equal(t, http.StatusOK, code, out)
		var rr app.RecurringRun
		require.NoError(t, json.Unmarshal([]byte(out), &rr))
		return rr
	}
	idOf := func(out string) string {
		var created struct {
			ID string `json:"recurring_run_id"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &created))
		return created.ID
	}
	del := func(id string) {
		code, out := c.do(http.MethodDelete, "/apis/v1/recurringruns/"+id, nil)
		require.Equal(t, http.StatusNoContent, code, out)
	}

	// (a) disable / enable.
	code, out := create("* * * * *", true)
	require.Equal(t, http.StatusCreated, code, out)
	id := idOf(out)
	rr := get(id)
	require.Equal(t, app.RecurringDisabled, rr.Status)
	require.Nil(t, rr.NextRunTime, "a disabled schedule has no next run")
	require.Equal(t, "c15-sched", rr.PipelineName)
	code, out = c.do(http.MethodPost, "/apis/v1/recurringruns/"+id+":enable", nil)
	require.Equal(t, http.StatusOK, code, out)
	rr = get(id)
	require.Equal(t, app.RecurringEnabled, rr.Status)
	require.NotNil(t, rr.NextRunTime)
	require.Zero(t, rr.NextRunTime.Second())
	code, out = c.do(http.MethodPost, "/apis/v1/recurringruns/"+id+"/disable", nil)
	require.Equal(t, http.StatusOK, code, out)
	require.Equal(t, app.RecurringDisabled, get(id).Status)
	del(id)
	code, _ = c.do(http.MethodDelete, "/apis/v1/recurringruns/"+id, nil)
	require.Equal(t, http.StatusNotFound, code)
	code, _ = c.do(http.MethodPost, "/apis/v1/recurringruns/"+id+":enable", nil)
	require.Equal(t, http.StatusNotFound, code)

	// (b) KFP's 6 fields, seconds first.
	code, out = create("0 0 * * * *", false)
	require.Equal(t, http.StatusCreated, code, out)
	id = idOf(out)
	rr = get(id)
	require.NotNil(t, rr.NextRunTime)
	require.True(t, rr.NextRunTime.Minute() == 0 && rr.NextRunTime.Second() == 0, "hourly at :00:00, got %s", rr.NextRunTime)
	require.WithinDuration(t, time.Now(), *rr.NextRunTime, time.Hour+time.Minute)
	del(id)
	code, out = create("30 * * * * *", false)
	require.Equal(t, http.StatusCreated, code, out)
	id = idOf(out)
	rr = get(id)
	require.Equal(t, 30, rr.NextRunTime.Second(), "every minute at second 30, got %s", rr.NextRunTime)
	require.WithinDuration(t, time.Now(), *rr.NextRunTime, 61*time.Second)
	del(id)
	for _, bad := range []string{"61 * * * * *", "* * *", "* * * * * * *", "@sometimes", ""} {
		code, out := create(bad, true)
		require.Equal(t, http.StatusBadRequest, code, "cron %q: %s", bad, out)
		require.Contains(t, out, "cron")
	}

	// Every scheduled run has its own name and shows its pipeline.
	code, out = create("* * * * * *", false) // every second
	require.Equal(t, http.StatusCreated, code, out)
	id = idOf(out)
	t.Cleanup(func() { // if the test fails before del below
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodDelete, srv.URL+"/apis/v1/recurringruns/"+id, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	var mine []app.RunSummary
	require.Eventually(t, func() bool {
		code, out := c.do(http.MethodGet, "/apis/v1/runs?page_size=1000", nil)
		require.Equal(t, http.StatusOK, code, out)
		var list struct {
			Runs []app.RunSummary `json:"runs"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &list))
		mine = nil
		for _, r := range list.Runs {
			if strings.HasPrefix(r.RunID, id) && r.State == pipelinesv1.RunSucceeded {
				mine = append(mine, r)
			}
		}
		return len(mine) >= 2
	}, 2*time.Minute, 200*time.Millisecond)
	del(id)
	require.NotEqual(t, mine[0].RunName, mine[1].RunName)
	for _, r := range mine {
		require.Equal(t, "c15-sched", r.Pipeline)
		require.Contains(t, r.RunName, "c15-sched")
	}
}

// Client input never gets a 500 from the pipelines API.
func TestClientInputNever500(t *testing.T) {
	_, srv := newService(t)
	c := apiClient{t, srv.URL}
	for _, req := range []struct{ method, path string }{
		{http.MethodGet, "/apis/v1/runs?page_token=garbage"},
		{http.MethodGet, "/apis/v1/runs?page_size=x"},
		{http.MethodGet, "/apis/v1/runs/no-such-run"},
		{http.MethodPost, "/apis/v1/runs/no-such-run/cancel"},
		{http.MethodPost, "/apis/v1/runs/no-such-run/retry"},
		{http.MethodGet, "/apis/v1/runs/no-such-run/logs"},
		{http.MethodGet, "/apis/v1/recurringruns/no-such"},
		{http.MethodPost, "/apis/v1/recurringruns/no-such:enable"},
		{http.MethodDelete, "/apis/v1/recurringruns/recurring-no-such"},
		{http.MethodPost, "/apis/v1/runs"},
	} {
		code, out := c.do(req.method, req.path, nil)
		require.True(t, code >= 400 && code < 500, "%s %s -> %d %s", req.method, req.path, code, out)
	}
	// Real page tokens still work.
	for i := 0; i < 2; i++ {
		code, out := c.do(http.MethodPost, "/apis/v1/runs", pipelinesv1.RunRequest{Spec: tiny})
		require.Equal(t, http.StatusOK, code, out)
	}
	var page struct {
		Runs []app.RunSummary `json:"runs"`
		Next string           `json:"next_page_token"`
	}
	require.Eventually(t, func() bool {
		code, out := c.do(http.MethodGet, "/apis/v1/runs?page_size=1", nil)
		require.Equal(t, http.StatusOK, code, out)
		require.NoError(t, json.Unmarshal([]byte(out), &page))
		return page.Next != ""
	}, time.Minute, 100*time.Millisecond)
	code, out := c.do(http.MethodGet, "/apis/v1/runs?page_size=1&page_token="+page.Next, nil)
	require.Equal(t, http.StatusOK, code, out)
}

// Case kfp/root-input-artifact: a run of a pipeline whose root declares a required input artifact is
// refused with a 400 naming it; nothing is created.
func TestCaseRootInputArtifactIsRefused(t *testing.T) {
	d, srv := newService(t)
	c := apiClient{t, srv.URL}
	id := "rootart-" + uuid.NewString()[:8]
	code, out := c.do(http.MethodPost, "/apis/v1/runs?run_id="+id, pipelinesv1.RunRequest{Spec: caseSpec(t, "kfp", "root-input-artifact")})
	require.Equal(t, http.StatusBadRequest, code, out)
	require.Contains(t, out, `input artifact \"data\"`)
	require.Zero(t, runsWithID(t, d, id))
}

// Root input artifacts supplied by URI at run creation (input_artifacts) reach the tasks that bind
// them: the case's pipeline runs and its step reads the object. An unknown name, a missing object or a
// URI outside the artifact store is a 400 naming the input; nothing is created.
func TestRootInputArtifactByURI(t *testing.T) {
	d, srv := newService(t)
	c := apiClient{t, srv.URL}
	obj, err := d.Artifacts.Put(t.Context(), "inputs/"+uuid.NewString()+"/data.txt", strings.NewReader("root artifact\n"), 14)
	require.NoError(t, err)
	id := "rootart-ok-" + uuid.NewString()[:8]
	code, out := c.do(http.MethodPost, "/apis/v1/runs?run_id="+id, pipelinesv1.RunRequest{Spec: caseSpec(t, "kfp", "root-input-artifact"),
		InputArtifacts: map[string]string{"data": obj.URI}})
	require.Equal(t, http.StatusOK, code, out)
	res := waitRun(t, d, id)
	require.Equal(t, pipelinesv1.RunSucceeded, res.State, res.Error)
	show := taskState(t, c, id)["show"]
	require.Equal(t, "root artifact\n", readObject(t, d, show.LogURI))
	for given, msg := range map[string]string{
		`{"data": "` + d.Artifacts.URI("inputs/none.txt") + `"}`:  "input_artifacts.data: no object at",
		`{"data": "s3://elsewhere/x.txt"}`:                        "input_artifacts.data: ",
		`{"data": "` + obj.URI + `", "other": "` + obj.URI + `"}`: `input_artifacts.other: the pipeline has no input artifact \"other\"`,
	} {
		var m map[string]string
		require.NoError(t, json.Unmarshal([]byte(given), &m))
		id := "rootart-bad-" + uuid.NewString()[:8]
		code, out := c.do(http.MethodPost, "/apis/v1/runs?run_id="+id, pipelinesv1.RunRequest{Spec: caseSpec(t, "kfp", "root-input-artifact"), InputArtifacts: m})
		require.Equal(t, http.StatusBadRequest, code, out)
		require.Contains(t, out, msg)
		require.Zero(t, runsWithID(t, d, id))
	}
}

// The local runtime ignores images: the run is created with a warning saying so and how to run images.
func TestLocalRuntimeWarnsThatImagesAreIgnored(t *testing.T) {
	_, srv := newService(t)
	c := apiClient{t, srv.URL}
	code, out := c.do(http.MethodPost, "/apis/v1/runs", pipelinesv1.RunRequest{Spec: tiny})
	require.Equal(t, http.StatusOK, code, out)
	var created app.RunCreated
	require.NoError(t, json.Unmarshal([]byte(out), &created))
	require.Len(t, created.Warnings, 1)
	require.Contains(t, created.Warnings[0], "ignores its image (alpine)")
	require.Contains(t, created.Warnings[0], "--runtime docker")
}

// Case security/list-experiment-filter-paging: the experiment filter is applied before paging, so an
// experiment's one run is on the first page however many other runs exist, and paging through a
// filtered list returns every match exactly once.
func TestCaseExperimentFilterBeforePaging(t *testing.T) {
	_, srv := newService(t)
	c := apiClient{t, srv.URL}
	code, out := c.do(http.MethodPost, "/apis/v1/experiments", map[string]string{"display_name": "paging-exp-" + uuid.NewString()[:8]})
	require.Equal(t, http.StatusCreated, code, out)
	var created struct {
		ID string `json:"experiment_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &created))
	exp := created.ID
	var mine []string
	for i := 0; i < 3; i++ {
		id := "paging-" + created.ID[:8] + "-" + strconv.Itoa(i)
		code, out := c.do(http.MethodPost, "/apis/v1/runs?run_id="+id, pipelinesv1.RunRequest{Spec: tiny, ExperimentID: exp})
		require.Equal(t, http.StatusOK, code, out)
		mine = append(mine, id)
	}
	for i := 0; i < 12; i++ { // newer runs of no experiment push the experiment's runs off a first unfiltered page
		code, out := c.do(http.MethodPost, "/apis/v1/runs", pipelinesv1.RunRequest{Spec: tiny})
		require.Equal(t, http.StatusOK, code, out)
	}
	type page struct {
		Runs []app.RunSummary `json:"runs"`
		Next string           `json:"next_page_token"`
	}
	list := func(q string) page {
		code, out := c.do(http.MethodGet, "/apis/v1/runs?"+q, nil)
		require.Equal(t, http.StatusOK, code, out)
		var p page
		require.NoError(t, json.Unmarshal([]byte(out), &p))
		return p
	}
	require.Eventually(t, func() bool { return len(list("experiment_id="+exp+"&page_size=50").Runs) == 3 },
		time.Minute, 100*time.Millisecond)
	first := list("experiment_id=" + exp + "&page_size=5")
	require.Len(t, first.Runs, 3, "every run of the experiment on the first page")
	var seen []string
	for q := "experiment_id=" + exp + "&page_size=1"; ; {
		p := list(q)
		for _, r := range p.Runs {
			require.Equal(t, exp, r.Experiment)
			seen = append(seen, r.RunID)
		}
		if p.Next == "" {
			break
		}
		require.Len(t, p.Runs, 1)
		q = "experiment_id=" + exp + "&page_size=1&page_token=" + p.Next
	}
	require.ElementsMatch(t, mine, seen)
}

// kfp-kubernetes platform settings and container resources are never silently ignored: a pipeline
// upload and a run request carrying one are refused with a 400 naming the task and the setting.
func TestPlatformSettingsAreRefusedAtUploadAndRun(t *testing.T) {
	d, srv := newService(t)
	c := apiClient{t, srv.URL}
	src, err := os.ReadFile("../internal/spec/testdata/refused/k8s-secretAsEnv.yaml")
	require.NoError(t, err)
	code, out := c.do(http.MethodPost, "/apis/v1/pipelines", app.UploadRequest{Name: "platform-" + uuid.NewString()[:8], Spec: string(src)})
	require.Equal(t, http.StatusBadRequest, code, out)
	require.Contains(t, out, "platforms.kubernetes.deploymentSpec.executors.exec-a.secretAsEnv")
	require.Contains(t, out, "task a: kfp-kubernetes secretAsEnv is not supported by the local runtime")
	id := "platform-" + uuid.NewString()[:8]
	code, out = c.do(http.MethodPost, "/apis/v1/runs?run_id="+id, pipelinesv1.RunRequest{Spec: string(src)})
	require.Equal(t, http.StatusBadRequest, code, out)
	require.Contains(t, out, "secretAsEnv")
	require.Zero(t, runsWithID(t, d, id))
}
