package app_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
)

// BenchmarkQuickstart measures the quickstart pipeline (examples/pipelines/download_and_join.yaml: two
// parallel downloads over loopback HTTP, then a join; three real processes, three artifacts in S3) end
// to end: from publishing io.sluice.pipeline.run.requested.v1, as `sluice dev` does, to the run's
// io.sluice.pipeline.run.succeeded.v1 event being stored. Caching is off so every iteration runs all
// three steps. Reports p50 and p99 in ms.
func BenchmarkQuickstart(b *testing.B) {
	examples := filepath.Join("..", "..", "..", "examples", "pipelines")
	spec, err := os.ReadFile(filepath.Join(examples, "download_and_join.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	texts := httptest.NewServer(http.StripPrefix("/texts/", http.FileServer(http.Dir(filepath.Join(examples, "texts")))))
	defer texts.Close()
	d, _ := newService(b)

	type outcome struct {
		at  time.Time
		ok  bool
		err string
	}
	done := map[string]outcome{}
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// all=true: replay from the stream's start, so no run's outcome is missed while the tail subscribes.
		_ = d.Bus.Tail(ctx, "io.sluice.pipeline.run.*", true, func(r events.Received) {
			var re pipelinesv1.RunEvent
			if r.Err != nil || r.Event.DataAs(&re) != nil {
				return
			}
			switch r.Event.Type() {
			case events.PipelineRunSucceededV1, events.PipelineRunFailedV1:
				mu.Lock()
				done[re.RunID] = outcome{at: r.Stored, ok: r.Event.Type() == events.PipelineRunSucceededV1, err: re.State + ": " + re.Error}
				mu.Unlock()
			}
		})
	}()
	params := map[string]any{"url1": texts.URL + "/texts/shakespeare1.txt", "url2": texts.URL + "/texts/shakespeare2.txt"}
	run := func() time.Duration {
		ev, err := events.New("/bench", events.PipelineRunRequestedV1, "", pipelinesv1.RunRequest{
			Spec: string(spec), Parameters: params, DisableCache: true, RunName: "bench quickstart",
		})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := d.Bus.Publish(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			mu.Lock()
			o, ok := done[ev.ID()]
			mu.Unlock()
			if ok {
				if !o.ok {
					b.Fatalf("quickstart run %s: %s", ev.ID(), o.err)
				}
				return o.at.Sub(t0)
			}
			if time.Now().After(deadline) {
				b.Fatalf("quickstart run %s did not finish", ev.ID())
			}
			time.Sleep(time.Millisecond)
		}
	}
	run() // warm-up, not timed: first run of the task queue, first S3 writes, process image cache.
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat = append(lat, run())
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
