package engine_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
)

// BenchmarkCancelReachesRunningStep measures, under the local runtime, the time from cancelling a run to
// its running step's process being gone (the run's workflow closed after the step's activity saw the
// cancel and killed the process group): p50 and max over b.N runs.
func BenchmarkCancelReachesRunningStep(b *testing.B) {
	e := newEnv(b)
	e.startWorker(b)
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		marker := filepath.Join(b.TempDir(), "started")
		spec := `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: cancel-bench}
spec:
  tasks:
    long:
      image: alpine
      command: [sh, -c, 'touch ` + marker + `; sleep 60']
`
		id := uuid.NewString()
		run, err := engine.Start(b.Context(), e.tc, pipelinesv1.RunInput{RunID: id, RunName: "bench", Spec: spec})
		if err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for {
			if _, err := os.Stat(marker); err == nil {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("step did not start")
			}
			time.Sleep(5 * time.Millisecond)
		}
		t0 := time.Now()
		if err := e.tc.CancelWorkflow(b.Context(), id, ""); err != nil {
			b.Fatal(err)
		}
		_ = run.Get(b.Context(), nil)
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
}
