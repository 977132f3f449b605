package app_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/app"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
)

// newServiceEnv is newService with the service's environment (e.g. SLUICE_PIPELINES_CONSUMERS).
func newServiceEnv(tb testing.TB, env map[string]string) *platform.Deps {
	tb.Helper()
	st := devstacktest.Stack(tb)
	cfg := st.PlatformConfig(tb.TempDir(), "127.0.0.1:0", "local", "warn")
	require.NoError(tb, cfg.Validate())
	log := slog.New(slog.DiscardHandler)
	getenv := func(k string) string { return env[k] }
	deps, err := platform.Connect(tb.Context(), cfg, "pipelines-test", log, getenv)
	require.NoError(tb, err)
	tb.Cleanup(deps.Close)
	svc, err := app.Build(tb.Context(), deps)
	require.NoError(tb, err)
	require.NoError(tb, svc.Start(context.WithoutCancel(tb.Context())))
	tb.Cleanup(func() { _ = svc.Close() })
	srv := httptest.NewServer(platform.Handler(deps.Metrics, log, deps.Checks(), svc))
	tb.Cleanup(srv.Close)
	return deps
}

// BenchmarkRunRequestBurst publishes b.N io.sluice.pipeline.run.requested.v1 events at once
// (PublishAll, chunks of 500) and measures, for each, publish → run.started stored (the run's
// workflow started), p50/p95/max, and runs started per second; every request must start exactly
// one run (a missing or second run.started for a request fails the benchmark). Its baseline in
// the same run is idle-p50-ms: 20 requests one at a time before the burst, on the same service.
// Sub-benchmarks run the service with 8 concurrent run-request handlers and with 64 (the default),
// one after the other on the same dev stack, each waiting for its runs to finish.
func BenchmarkRunRequestBurst(b *testing.B) {
	for _, c := range []struct{ name, consumers string }{{"consumers=8", "8"}, {"consumers=64", "64"}} {
		n, _ := strconv.Atoi(c.consumers)
		b.Run("bare-temporal/concurrency="+c.consumers, func(b *testing.B) { benchBareStarts(b, n) })
		b.Run(c.name, func(b *testing.B) {
			env := map[string]string{}
			if c.consumers != "" {
				env["SLUICE_PIPELINES_CONSUMERS"] = c.consumers
			}
			d := newServiceEnv(b, env)
			var mu sync.Mutex
			started := map[string]time.Time{}
			dups := 0
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Only run.started events stored from now on: earlier sub-benchmarks' runs are not counted.
			go func() {
				_ = d.Bus.Tail(ctx, events.PipelineRunStartedV1, false, func(r events.Received) {
					var re pipelinesv1.RunEvent
					if r.Err == nil && r.Event.DataAs(&re) == nil {
						mu.Lock()
						if _, ok := started[re.RunID]; ok {
							dups++
						} else {
							started[re.RunID] = r.Stored
						}
						mu.Unlock()
					}
				})
			}()
			finished := map[string]bool{}
			go func() {
				_ = d.Bus.Tail(ctx, "io.sluice.pipeline.run.*", false, func(r events.Received) {
					if r.Err != nil {
						return
					}
					switch r.Event.Type() {
					case events.PipelineRunSucceededV1, events.PipelineRunFailedV1:
						var re pipelinesv1.RunEvent
						if r.Event.DataAs(&re) == nil {
							mu.Lock()
							finished[re.RunID] = true
							mu.Unlock()
						}
					}
				})
			}()
			time.Sleep(200 * time.Millisecond)
			newReq := func() events.Event {
				ev, err := events.New("/bench", events.PipelineRunRequestedV1, "", pipelinesv1.RunRequest{Spec: tiny})
				if err != nil {
					b.Fatal(err)
				}
				return ev
			}
			wait := func(ids []string, within time.Duration) {
				deadline := time.Now().Add(within)
				for {
					mu.Lock()
					n := 0
					for _, id := range ids {
						if _, ok := started[id]; ok {
							n++
						}
					}
					mu.Unlock()
					if n == len(ids) {
						return
					}
					if time.Now().After(deadline) {
						b.Fatalf("%d of %d runs did not start within %s", len(ids)-n, len(ids), within)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
			var idle []time.Duration
			for range 20 {
				ev := newReq()
				t0 := time.Now()
				if err := d.Bus.Publish(ctx, ev); err != nil {
					b.Fatal(err)
				}
				wait([]string{ev.ID()}, 30*time.Second)
				mu.Lock()
				idle = append(idle, started[ev.ID()].Sub(t0))
				mu.Unlock()
			}
			evs := make([]events.Event, b.N)
			ids := make([]string, b.N)
			for i := range evs {
				evs[i] = newReq()
				ids[i] = evs[i].ID()
			}
			published := make([]time.Time, b.N)
			b.ResetTimer()
			t0 := time.Now()
			for lo := 0; lo < b.N; lo += 500 {
				hi := min(lo+500, b.N)
				t := time.Now()
				for i := lo; i < hi; i++ {
					published[i] = t
				}
				if err := d.Bus.PublishAll(ctx, evs[lo:hi]); err != nil {
					b.Fatal(err)
				}
			}
			wait(ids, 5*time.Minute)
			b.StopTimer()
			mu.Lock()
			lat := make([]time.Duration, b.N)
			last := t0
			for i, id := range ids {
				lat[i] = started[id].Sub(published[i])
				if started[id].After(last) {
					last = started[id]
				}
			}
			dup := dups
			mu.Unlock()
			// Let the burst's runs finish, so the next sub-benchmark starts on a quiet service.
			deadline := time.Now().Add(10 * time.Minute)
			for {
				mu.Lock()
				n := len(finished)
				mu.Unlock()
				if n >= b.N+20 || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if dup != 0 {
				b.Fatalf("%d run.started events for a request already started", dup)
			}
			q := quantileMS
			b.ReportMetric(q(idle, 0.5), "idle-p50-ms")
			b.ReportMetric(q(lat, 0.5), "p50-ms")
			b.ReportMetric(q(lat, 0.95), "p95-ms")
			b.ReportMetric(q(lat, 1), "max-ms")
			b.ReportMetric(float64(b.N)/last.Sub(t0).Seconds(), "starts/s")
			b.Logf("consumers %s: %d runs, none lost or duplicated", strconv.Quote(c.consumers), b.N)
		})
	}
}

// bareWorkflow is the bare-Temporal baseline's trivial workflow: one workflow task, no activity.
func bareWorkflow(workflow.Context) error { return nil }

// benchBareStarts is BenchmarkRunRequestBurst's baseline: b.N StartWorkflowExecution calls of a trivial
// workflow (bareWorkflow, plain start options: no memo, search attributes or summary), issued by
// concurrency goroutines at once against the same dev server, with a worker of the service's options
// executing them on a task queue of their own (the pipelines service runs beside it, idle, as in the
// Sluice burst). p50-ms/p95-ms/max-ms are burst start → start accepted, the same clock as the Sluice
// figures (all requests published at the burst's start); call-p50-ms/call-p95-ms are one call → its
// start accepted. It waits for every workflow to finish before it returns.
func benchBareStarts(b *testing.B, concurrency int) {
	d := newServiceEnv(b, map[string]string{"SLUICE_PIPELINES_CONSUMERS": strconv.Itoa(concurrency)})
	queue := "bench-bare-" + uuid.NewString()
	w := worker.New(d.Temporal, queue, engine.WorkerOptions(wf.WorkerOptions()))
	w.RegisterWorkflowWithOptions(bareWorkflow, workflow.RegisterOptions{Name: "bench-bare"})
	require.NoError(b, w.Start())
	defer w.Stop()
	ctx := context.Background()
	start := func(id string) (client.WorkflowRun, error) {
		return d.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, "bench-bare")
	}
	// Warm-up: the task queue's first start and workflow task (not counted).
	run, err := start("bench-bare-warm-" + uuid.NewString())
	require.NoError(b, err)
	require.NoError(b, run.Get(ctx, nil))
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = "bench-bare-" + uuid.NewString()
	}
	accepted := make([]time.Time, b.N)
	call := make([]time.Duration, b.N)
	errs := make([]error, b.N)
	next := make(chan int, b.N)
	for i := range ids {
		next <- i
	}
	close(next)
	b.ResetTimer()
	t0 := time.Now()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := time.Now()
				_, errs[i] = start(ids[i])
				accepted[i] = time.Now()
				call[i] = accepted[i].Sub(t)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	lat := make([]time.Duration, b.N)
	last := t0
	for i := range ids {
		require.NoError(b, errs[i], "start %d", i)
		lat[i] = accepted[i].Sub(t0)
		if accepted[i].After(last) {
			last = accepted[i]
		}
	}
	// Let every workflow finish, so the next sub-benchmark starts on a quiet server.
	done := make(chan int, b.N)
	for i := range ids {
		done <- i
	}
	close(done)
	var fwg sync.WaitGroup
	for range concurrency {
		fwg.Add(1)
		go func() {
			defer fwg.Done()
			for i := range done {
				gctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
				errs[i] = d.Temporal.GetWorkflow(gctx, ids[i], "").Get(gctx, nil)
				cancel()
			}
		}()
	}
	fwg.Wait()
	for i := range ids {
		require.NoError(b, errs[i], "workflow %d", i)
	}
	b.ReportMetric(quantileMS(lat, 0.5), "p50-ms")
	b.ReportMetric(quantileMS(lat, 0.95), "p95-ms")
	b.ReportMetric(quantileMS(lat, 1), "max-ms")
	b.ReportMetric(quantileMS(call, 0.5), "call-p50-ms")
	b.ReportMetric(quantileMS(call, 0.95), "call-p95-ms")
	b.ReportMetric(float64(b.N)/last.Sub(t0).Seconds(), "starts/s")
}

// quantileMS is the p quantile of l in milliseconds (l is sorted in place).
func quantileMS(l []time.Duration, p float64) float64 {
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return float64(l[min(len(l)-1, int(p*float64(len(l))))].Microseconds()) / 1000
}
