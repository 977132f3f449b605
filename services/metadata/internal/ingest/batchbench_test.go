package ingest_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/services/metadata/internal/ingest"
	"github.com/sluice-ml/sluice/services/metadata/internal/metastore/metastoretest"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
)

// BenchmarkIngestBatch reports the batched ingest rate on SQLite and PostgreSQL
// (METADATA_TEST_DATABASE_URL; make bench starts a durable throwaway cluster, fsync and
// synchronous_commit on) beside raw baselines of the same run:
//
//   - "raw-insert": the floor of the store: the same number of rows per event (recordsPerTaskEvent
//     plus the source id) written with bare multi-row INSERTs into a scratch table, events.DefaultMaxBatch events per
//     transaction, no lookups, upserts or properties.
//   - "batch": HandleBatch called directly with events.DefaultMaxBatch events at a time (decode, map, one transaction).
//   - "nats-raw": the bus's floor: b.N events published in a burst and consumed in batches by a
//     handler that only acknowledges, with the lag of every 10th event from just before its
//     chunk of 500 was published until the handler holds it (lag-p50-ms, lag-p95-ms).
//   - "nats": a burst of 1,000 runs' task events (event i is step i/1000 of run i%1000, each step
//     reading its run's previous output) through the service's durable consumers into
//     PostgreSQL, with the lineage lag of every 10th event: from just before its chunk of 500 was
//     published until its source event (written in the same transaction as its lineage) is
//     visible to another connection, polled every 5 ms; lag-p50-ms and lag-p95-ms.
//
// Ratios (events/s of batch or nats over raw-insert) compare figures of one run.
func BenchmarkIngestBatch(b *testing.B) {
	const batch = events.DefaultMaxBatch
	for _, bs := range benchStores() {
		b.Run("raw-insert/"+bs.name, func(b *testing.B) {
			s := bs.open(b)
			db := s.DB()
			ctx := context.Background()
			if _, err := db.ExecContext(ctx, `CREATE TABLE raw_record (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT)`); err != nil {
				b.Fatal(err)
			}
			// PostgreSQL: one statement per transaction; SQLite: statements of 250 rows (1,000
			// parameters), as the store writes it (modernc.org/sqlite binds in quadratic time).
			mark := func(n int) string { return "?" }
			perStmt := 250
			if bs.name == "postgres" {
				mark = func(n int) string { return fmt.Sprintf("$%d", n) }
				perStmt = batch * (recordsPerTaskEvent + 1)
			}
			const perEvent = recordsPerTaskEvent + 1
			b.ResetTimer()
			start := time.Now()
			for lo := 0; lo < b.N; lo += batch {
				n := min(batch, b.N-lo)
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				for r0 := 0; r0 < n*perEvent; r0 += perStmt {
					var q strings.Builder
					q.WriteString(`INSERT INTO raw_record (id, kind, key, value) VALUES `)
					args := make([]any, 0, perStmt*4)
					for j, i := 0, r0; i < min(r0+perStmt, n*perEvent); i, j = i+1, j+1 {
						if j > 0 {
							q.WriteString(", ")
						}
						fmt.Fprintf(&q, "(%s, %s, %s, %s)", mark(4*j+1), mark(4*j+2), mark(4*j+3), mark(4*j+4))
						args = append(args, int64(lo*perEvent+i), fmt.Sprintf("kind-%d", i%perEvent), fmt.Sprintf("key-%d-%d", lo, i), "s3://bench/value")
					}
					if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
		b.Run("batch/"+bs.name, func(b *testing.B) {
			s := bs.open(b)
			c := ingest.New(s, nil)
			evs := taskEvents(b, b.N)
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for lo := 0; lo < len(evs); lo += batch {
				for _, err := range c.HandleBatch(ctx, evs[lo:min(lo+batch, len(evs))]) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			el := time.Since(start).Seconds()
			b.ReportMetric(float64(b.N)/el, "events/s")
			b.ReportMetric(float64(b.N*recordsPerTaskEvent)/el, "records/s")
		})
	}
	b.Run("nats-raw", func(b *testing.B) {
		bus := startNATS(b)
		evs := burstEvents(b, b.N, 1000)
		published := make([]atomic.Int64, len(evs)) // unix ns
		index := make(map[string]int, len(evs))
		for i, ev := range evs {
			index[ev.ID()] = i
		}
		var got atomic.Int64
		var mu sync.Mutex
		var lags []time.Duration
		cfg := ingest.Consumers("raw")[0]
		sub, err := bus.ConsumeBatch(context.Background(), cfg, batch, func(_ context.Context, evs []events.Event) []error {
			now := time.Now()
			mu.Lock()
			for _, ev := range evs {
				if i := index[ev.ID()]; i%10 == 0 {
					lags = append(lags, now.Sub(time.Unix(0, published[i].Load())))
				}
			}
			mu.Unlock()
			got.Add(int64(len(evs)))
			return make([]error, len(evs))
		})
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Stop()
		b.ResetTimer()
		start := time.Now()
		publishChunks(b, bus, evs, published)
		for got.Load() < int64(b.N) {
			time.Sleep(time.Millisecond)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		mu.Lock()
		reportLags(b, lags)
		mu.Unlock()
	})
	b.Run("nats/postgres", func(b *testing.B) {
		s := metastoretest.Postgres(b)
		bus := startNATS(b)
		evs := burstEvents(b, b.N, 1000)
		startConsumers(b, bus, s, "bench")
		ctx := context.Background()
		published := make([]atomic.Int64, len(evs)) // unix ns
		pending := map[string]int{}
		for i := 0; i < len(evs); i += 10 {
			pending[evs[i].ID()] = i
		}
		lags := make([]time.Duration, 0, len(pending))
		b.ResetTimer()
		start := time.Now()
		done := make(chan struct{})
		var pollErr error
		go func() { // lineage lag of the sampled events, looked up by their key (source, id)
			defer close(done)
			srcs, ids := make([]string, 0, len(pending)), make([]string, 0, len(pending))
			for len(pending) > 0 {
				srcs, ids = srcs[:0], ids[:0]
				for id, i := range pending {
					srcs, ids = append(srcs, evs[i].Source()), append(ids, id)
				}
				rows, err := s.DB().QueryContext(ctx, `SELECT ce_id FROM ingested_event WHERE (ce_source, ce_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, srcs, ids)
				if err != nil {
					pollErr = err
					return
				}
				now := time.Now()
				for rows.Next() {
					var id string
					if err := rows.Scan(&id); err != nil {
						pollErr = err
						return
					}
					i := pending[id]
					if t := published[i].Load(); t != 0 {
						lags = append(lags, now.Sub(time.Unix(0, t)))
						delete(pending, id)
					}
				}
				rows.Close()
				time.Sleep(5 * time.Millisecond)
			}
		}()
		publishChunks(b, bus, evs, published)
		for {
			n, err := s.IngestedCount(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if n == int64(b.N) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		el := time.Since(start).Seconds()
		<-done
		if pollErr != nil {
			b.Fatal(pollErr)
		}
		b.ReportMetric(float64(b.N)/el, "events/s")
		b.ReportMetric(float64(b.N*recordsPerTaskEvent)/el, "records/s")
		reportLags(b, lags)
	})
}

// reportLags reports the p50 and p95 of lags as lag-p50-ms and lag-p95-ms.
func reportLags(b *testing.B, lags []time.Duration) {
	if len(lags) == 0 {
		b.Fatal("no lag sampled")
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	q := func(p float64) float64 {
		return float64(lags[min(len(lags)-1, int(p*float64(len(lags))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.5), "lag-p50-ms")
	b.ReportMetric(q(0.95), "lag-p95-ms")
}

// burstEvents returns n task.succeeded events of a burst of runs runs: event i is step i/runs of
// run i%runs and reads the output of its run's previous step, so the runs progress side by side.
func burstEvents(b *testing.B, n, runs int) []events.Event {
	out := make([]events.Event, n)
	for i := range out {
		run, step := i%runs, i/runs
		in := pipelinesv1.Artifact{Name: "data", URI: fmt.Sprintf("s3://bench/%d/%d/data", run, step-1), Digest: "sha256:00", SchemaTitle: "system.Dataset"}
		o := pipelinesv1.Artifact{Name: "data", URI: fmt.Sprintf("s3://bench/%d/%d/data", run, step), Digest: "sha256:01", SchemaTitle: "system.Dataset"}
		out[i] = newEvent(b, events.PipelineTaskSucceededV1, fmt.Sprintf("runs/burst-%d", run), pipelinesv1.TaskEvent{RunID: fmt.Sprintf("burst-%d", run), PipelineName: "bench",
			TaskPath: fmt.Sprintf("step-%d", step), TaskName: "step", Image: "alpine", Fingerprint: "fp",
			InputParams: map[string]any{"n": step}, Inputs: map[string]pipelinesv1.Artifact{"data": in}, Outputs: map[string]pipelinesv1.Artifact{"data": o}})
	}
	return out
}

// publishChunks publishes evs in chunks of 500 (PublishAll), noting in published (when set)
// the time (unix ns) just before each event's chunk went out.
func publishChunks(b *testing.B, bus *events.Bus, evs []events.Event, published []atomic.Int64) {
	for lo := 0; lo < len(evs); lo += 500 {
		hi := min(lo+500, len(evs))
		t := time.Now()
		for i := lo; published != nil && i < hi; i++ {
			published[i].Store(t.UnixNano())
		}
		if err := bus.PublishAll(context.Background(), evs[lo:hi]); err != nil {
			b.Fatal(err)
		}
	}
}
