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

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/app"
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
// Sub-benchmarks run the service with 8 concurrent run-request handlers (the default) and with
// 64, one after the other on the same dev stack, each waiting for its runs to finish.
func BenchmarkRunRequestBurst(b *testing.B) {
	for _, c := range []struct{ name, consumers string }{{"consumers=8", "8"}, {"consumers=64", "64"}} {
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
			q := func(l []time.Duration, p float64) float64 {
				sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
				return float64(l[min(len(l)-1, int(p*float64(len(l))))].Microseconds()) / 1000
			}
			b.ReportMetric(q(idle, 0.5), "idle-p50-ms")
			b.ReportMetric(q(lat, 0.5), "p50-ms")
			b.ReportMetric(q(lat, 0.95), "p95-ms")
			b.ReportMetric(q(lat, 1), "max-ms")
			b.ReportMetric(float64(b.N)/last.Sub(t0).Seconds(), "starts/s")
			b.Logf("consumers %s: %d runs, none lost or duplicated", strconv.Quote(c.consumers), b.N)
		})
	}
}
