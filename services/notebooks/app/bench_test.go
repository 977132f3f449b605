package app_test

import (
	"slices"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/services/notebooks/spawnbench"
)

// BenchmarkSpawn measures request-to-ready time (POST create → condition Running, real Jupyter) for one
// notebook at a time and for 10 at once; it reports p50/p99 in ms. Each iteration is one round.
func BenchmarkSpawn(b *testing.B) {
	needJupyter(b)
	h := start(b, b.TempDir(), map[string]string{})
	for _, bc := range []struct {
		name        string
		concurrency int
	}{{"one", 1}, {"concurrent10", 10}} {
		b.Run(bc.name, func(b *testing.B) {
			var all []time.Duration
			for b.Loop() {
				res, err := spawnbench.Run(b.Context(), spawnbench.Config{BaseURL: h.srv.URL, Token: tokenA, Namespace: "team-a",
					Rounds: 1, Concurrency: bc.concurrency, Prefix: "bench-" + bc.name})
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
}
