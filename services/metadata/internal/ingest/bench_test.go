package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/services/metadata/internal/ingest"
	"github.com/sluice-ml/sluice/services/metadata/internal/metastore"
	"github.com/sluice-ml/sluice/services/metadata/internal/metastore/metastoretest"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
)

// recordsPerTaskEvent is what one benchmark task event writes: the execution, its input and
// output artifacts and their two events (contexts are upserted too but not counted).
const recordsPerTaskEvent = 5

// taskEvents returns n task.succeeded events forming a chain: task i reads task i-1's output.
func taskEvents(b *testing.B, n int) []events.Event {
	out := make([]events.Event, n)
	for i := range out {
		run := fmt.Sprintf("bench-run-%d", i/100)
		in := pipelinesv1.Artifact{Name: "data", URI: fmt.Sprintf("s3://bench/%d/data", i-1), Digest: "sha256:00", SchemaTitle: "system.Dataset"}
		o := pipelinesv1.Artifact{Name: "data", URI: fmt.Sprintf("s3://bench/%d/data", i), Digest: "sha256:01", SchemaTitle: "system.Dataset"}
		out[i] = newEvent(b, events.PipelineTaskSucceededV1, "runs/x", pipelinesv1.TaskEvent{RunID: run, PipelineName: "bench",
			TaskPath: fmt.Sprintf("task-%d", i), TaskName: "step", Image: "alpine", Fingerprint: "fp",
			InputParams: map[string]any{"n": i}, Inputs: map[string]pipelinesv1.Artifact{"data": in}, Outputs: map[string]pipelinesv1.Artifact{"data": o}})
	}
	return out
}

type benchStore struct {
	name string
	open func(b *testing.B) *metastore.Store
}

func benchStores() []benchStore {
	return []benchStore{
		{"sqlite", func(b *testing.B) *metastore.Store { return metastoretest.SQLite(b) }},
		{"postgres", func(b *testing.B) *metastore.Store { return metastoretest.Postgres(b) }},
	}
}

// BenchmarkIngestEvents reports the event ingest rate: "handle" applies decoded CloudEvents
// one transaction each (decode, map, claim the CE id, upsert, link); "nats" publishes b.N
// events in batches of 500 (PublishAll) and times until the durable consumer has recorded
// them all, end to end through JetStream. PostgreSQL runs with METADATA_TEST_DATABASE_URL.
func BenchmarkIngestEvents(b *testing.B) {
	for _, bs := range benchStores() {
		b.Run("handle/"+bs.name, func(b *testing.B) {
			s := bs.open(b)
			c := ingest.New(s, nil)
			evs := taskEvents(b, b.N)
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if err := c.Handle(ctx, evs[i]); err != nil {
					b.Fatal(err)
				}
			}
			el := time.Since(start).Seconds()
			b.ReportMetric(float64(b.N)/el, "events/s")
			b.ReportMetric(float64(b.N*recordsPerTaskEvent)/el, "records/s")
		})
		b.Run("nats/"+bs.name, func(b *testing.B) {
			s := bs.open(b)
			bus := startNATS(b)
			evs := taskEvents(b, b.N)
			startConsumers(b, bus, s, "bench")
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for lo := 0; lo < len(evs); lo += 500 {
				if err := bus.PublishAll(ctx, evs[lo:min(lo+500, len(evs))]); err != nil {
					b.Fatal(err)
				}
			}
			for {
				n, err := s.IngestedCount(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if n == int64(b.N) {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			el := time.Since(start).Seconds()
			b.ReportMetric(float64(b.N)/el, "events/s")
			b.ReportMetric(float64(b.N*recordsPerTaskEvent)/el, "records/s")
		})
	}
}
