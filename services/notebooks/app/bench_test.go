package app_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/services/notebooks/spawnbench"
)

// BenchmarkSpawn measures request-to-ready time (POST create → condition Running, real Jupyter) for one
// notebook at a time and for 10 at once; it reports p50/p99 in ms. Each iteration is one round.
//
// cold runs the service without a warm pool (SLUICE_NOTEBOOKS_WARM_POOL=0): every spawn starts Python and
// imports Jupyter; it is the baseline of the same run. warm runs it with a pool of 10, full at the start of
// each round (the wait for the refill is not measured), so each spawn claims a process that has imported
// Jupyter already. The two services run one after the other, never at once (they share the task queue).
func BenchmarkSpawn(b *testing.B) {
	needJupyter(b)
	for _, pool := range []struct {
		name string
		size int
	}{{"cold", 0}, {"warm", 10}} {
		h := start(b, b.TempDir(), map[string]string{"SLUICE_NOTEBOOKS_WARM_POOL": strconv.Itoa(pool.size)})
		for _, bc := range []struct {
			name        string
			concurrency int
		}{{"one", 1}, {"concurrent10", 10}} {
			b.Run(pool.name+"/"+bc.name, func(b *testing.B) {
				var all []time.Duration
				for b.Loop() {
					for deadline := time.Now().Add(5 * time.Minute); h.svc.WarmReady() < pool.size; time.Sleep(50 * time.Millisecond) {
						if time.Now().After(deadline) {
							b.Fatalf("warm pool at %d of %d after 5m", h.svc.WarmReady(), pool.size)
						}
					}
					res, err := spawnbench.Run(b.Context(), spawnbench.Config{BaseURL: h.srv.URL, Token: tokenA, Namespace: "team-a",
						Rounds: 1, Concurrency: bc.concurrency, Prefix: "bench-" + pool.name + "-" + bc.name})
					if err != nil {
						b.Fatal(err)
					}
					all = append(all, res.Samples...)
				}
				sorted := append([]time.Duration(nil), all...)
				slices.Sort(sorted)
				b.ReportMetric(float64(spawnbench.Quantile(sorted, 0.5).Milliseconds()), "p50-ms")
				b.ReportMetric(float64(spawnbench.Quantile(sorted, 0.99).Milliseconds()), "p99-ms")
				b.ReportMetric(0, "ns/op")
			})
		}
		h.close()
	}
}
