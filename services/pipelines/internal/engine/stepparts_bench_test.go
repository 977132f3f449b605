package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
)

// BenchmarkStepParts times, one after another on the same dev stack, the synchronous parts of a no-op
// step's activity that remain on its critical path: starting and waiting for the process (local
// runtime), the step result record (one small S3 PUT with its digest) and a task event published and
// acknowledged by the stream. Their sum against BenchmarkStepCost's in-step-ms/step shows what is left.
func BenchmarkStepParts(b *testing.B) {
	e := newEnv(b)
	rt := runtime.NewLocal(runtime.LocalConfig{})
	dir := b.TempDir()
	var proc, put, pub, step time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		p, err := rt.Start(context.Background(), runtime.Spec{Name: fmt.Sprintf("parts-%d", i), Command: []string{"true"}, WorkDir: dir, InheritEnv: true,
			Stdout: io.Discard, Stderr: io.Discard, Mounts: []runtime.Mount{{HostPath: dir, ContainerPath: dir}}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Wait(context.Background()); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		body := []byte(`{"outputs":{},"exit_code":0}`)
		if _, err := e.store.Put(context.Background(), filepath.Join("bench-parts", fmt.Sprint(i), "result.json"), bytes.NewReader(body), int64(len(body))); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		ev, err := events.New("/bench", events.PipelineTaskSucceededV1, "runs/bench/tasks/x", map[string]any{"run_id": "bench", "i": i})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.bus.Publish(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		in := engine.StepInput{RunID: "bench-" + uuid.NewString(), PipelineName: "parts", TaskPath: "s", TaskName: "s", Component: "s",
			Attempt: 1, LastAttempt: true, Image: "alpine", Command: []string{"true"}}
		if _, err := e.acts.RunStep(context.Background(), in); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		proc, put, pub, step = proc+t1.Sub(t0), put+t2.Sub(t1), pub+t3.Sub(t2), step+t4.Sub(t3)
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(per(proc), "process-ms")
	b.ReportMetric(per(put), "s3-put-ms")
	b.ReportMetric(per(pub), "event-ack-ms")
	b.ReportMetric(per(step), "runstep-ms")
}
