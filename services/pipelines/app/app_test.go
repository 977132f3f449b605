package app_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/app"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Run(m)) }

// newService runs the pipelines service against the shared embedded stack, as `sluice dev` does.
func newService(tb testing.TB) (*platform.Deps, *httptest.Server) {
	tb.Helper()
	st := devstacktest.Stack(tb)
	cfg := st.PlatformConfig(tb.TempDir(), "127.0.0.1:0", "local", "warn")
	require.NoError(tb, cfg.Validate())
	log := slog.New(slog.DiscardHandler)
	deps, err := platform.Connect(tb.Context(), cfg, "pipelines-test", log, func(string) string { return "" })
	require.NoError(tb, err)
	tb.Cleanup(deps.Close)
	svc, err := app.Build(tb.Context(), deps)
	require.NoError(tb, err)
	require.NoError(tb, svc.Start(context.WithoutCancel(tb.Context())))
	tb.Cleanup(func() { _ = svc.Close() })
	srv := httptest.NewServer(platform.Handler(deps.Metrics, log, deps.Checks(), svc))
	tb.Cleanup(srv.Close)
	return deps, srv
}

const tiny = `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: tiny}
spec:
  inputs:
    who: {type: STRING, default: world}
  tasks:
    hello:
      image: alpine
      command: [sh, -c, 'printf "hello %s" "$0" > "$1"']
      args: ["{{inputs.who}}", "{{outputs.greeting}}"]
      inputs: {who: {fromInput: who}}
      outputs: {parameters: [greeting]}
`

func runsWithID(t *testing.T, d *platform.Deps, id string) int {
	resp, err := d.Temporal.ListWorkflow(t.Context(), &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: d.Namespace, Query: "WorkflowId = '" + id + "'"})
	require.NoError(t, err)
	return len(resp.Executions)
}

func TestDuplicateRunRequestStartsOneRun(t *testing.T) {
	d, _ := newService(t)
	ev, err := events.New("/test", events.PipelineRunRequestedV1, "", pipelinesv1.RunRequest{Spec: tiny})
	require.NoError(t, err)
	require.NoError(t, d.Bus.Publish(t.Context(), ev))
	// The same CloudEvent again, past JetStream's dedup (a fresh message id), as a redelivery after the
	// window or a second publisher would send it.
	msg, err := events.Encode(t.Context(), &ev, events.SubjectFor(ev.Type()))
	require.NoError(t, err)
	_, err = d.Bus.JetStream().PublishMsg(t.Context(), msg)
	require.NoError(t, err)

	require.Eventually(t, func() bool { return runsWithID(t, d, ev.ID()) == 1 }, 30*time.Second, 50*time.Millisecond)
	run := d.Temporal.GetWorkflow(t.Context(), ev.ID(), "")
	var res pipelinesv1.RunResult
	require.NoError(t, run.Get(t.Context(), &res))
	require.Equal(t, "hello world", res.Tasks["hello"].Parameters["greeting"])
	time.Sleep(500 * time.Millisecond) // let the second delivery be handled
	require.Equal(t, 1, runsWithID(t, d, ev.ID()), "a duplicated event never starts a second run")
}

func TestInvalidRunRequestIsRejectedAndDeadLettered(t *testing.T) {
	d, srv := newService(t)
	bad := strings.Replace(tiny, "fromInput: who", "fromInput: nobody", 1)

	// REST: 400 naming the field, nothing created.
	resp, err := http.Post(srv.URL+"/apis/v1/runs?run_id=rest-bad-"+uuid.NewString()[:8], "application/json",
		strings.NewReader(`{"spec": `+quote(bad)+`}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// Event: run.rejected with the field path, plus a dead letter; no workflow.
	var mu sync.Mutex
	var seen []string
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		_ = d.Bus.Tail(ctx, "", true, func(r events.Received) {
			mu.Lock()
			defer mu.Unlock()
			if r.Err == nil {
				seen = append(seen, r.Event.Type()+" "+string(r.Event.Data()))
			}
		})
	}()
	ev, err := events.New("/test", events.PipelineRunRequestedV1, "", pipelinesv1.RunRequest{Spec: bad})
	require.NoError(t, err)
	require.NoError(t, d.Bus.Publish(t.Context(), ev))
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		var rejected, dead bool
		for _, s := range seen {
			rejected = rejected || strings.HasPrefix(s, events.PipelineRunRejectedV1) && strings.Contains(s, ev.ID()) && strings.Contains(s, "nobody")
			dead = dead || strings.HasPrefix(s, events.DeadLetterV1) && strings.Contains(s, ev.ID())
		}
		return rejected && dead
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, 0, runsWithID(t, d, ev.ID()))
}

func quote(s string) string {
	b := strings.Builder{}
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// BenchmarkEventToRunStarted measures the latency from publishing io.sluice.pipeline.run.requested.v1
// to the run's workflow having started (its run.started event stored), p50/p99 over b.N runs.
func BenchmarkEventToRunStarted(b *testing.B) {
	d, _ := newService(b)
	started := map[string]time.Time{}
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = d.Bus.Tail(ctx, events.PipelineRunStartedV1, false, func(r events.Received) {
			var re pipelinesv1.RunEvent
			if r.Err == nil && r.Event.DataAs(&re) == nil {
				mu.Lock()
				if _, ok := started[re.RunID]; !ok {
					started[re.RunID] = r.Stored
				}
				mu.Unlock()
			}
		})
	}()
	time.Sleep(200 * time.Millisecond)
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		ev, err := events.New("/bench", events.PipelineRunRequestedV1, "", pipelinesv1.RunRequest{Spec: tiny})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := d.Bus.Publish(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			at, ok := started[ev.ID()]
			mu.Unlock()
			if ok {
				lat = append(lat, at.Sub(t0))
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("run %s did not start", ev.ID())
			}
			time.Sleep(time.Millisecond)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

func TestCatalogUploadListRunByNameAndExperiments(t *testing.T) {
	d, srv := newService(t)
	post := func(path, ct, body string) (int, string) {
		resp, err := http.Post(srv.URL+path, ct, strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/apis/v1/pipelines")
	require.Equal(t, 200, code, body)
	name := "tiny-" + uuid.NewString()[:8]
	code, body = post("/apis/v1/pipelines?name="+name, "application/yaml", tiny)
	require.Equal(t, 201, code, body)
	code, body = get("/apis/v1/pipelines")
	require.Equal(t, 200, code, body)
	require.Contains(t, body, name)

	code, body = post("/apis/v1/experiments", "application/json", `{"display_name":"exp-`+name+`"}`)
	require.Equal(t, 201, code, body)
	var exp struct {
		ID string `json:"experiment_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &exp))
	code, body = get("/apis/v1/experiments")
	require.Equal(t, 200, code, body)
	require.Contains(t, body, "exp-"+name)

	code, body = post("/apis/v1/runs", "application/json", `{"pipeline_name":"`+name+`","experiment_id":"`+exp.ID+`","parameters":{"who":"catalog"}}`)
	require.Equal(t, 200, code, body)
	var created app.RunCreated
	require.NoError(t, json.Unmarshal([]byte(body), &created))
	var res pipelinesv1.RunResult
	require.NoError(t, d.Temporal.GetWorkflow(t.Context(), created.RunID, "").Get(t.Context(), &res))
	require.Equal(t, "hello catalog", res.Tasks["hello"].Parameters["greeting"])

	code, body = post("/apis/v1/runs/"+created.RunID+"/cancel", "application/json", "")
	require.Equal(t, http.StatusOK, code, "cancelling a finished run is idempotent: %s", body)
	require.Contains(t, body, pipelinesv1.RunSucceeded)
	code, _ = post("/apis/v1/runs", "application/json", `{"pipeline_name":"no-such-pipeline"}`)
	require.Equal(t, http.StatusBadRequest, code)
}
