package metastore

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
)

// benchSizes are the generated graph sizes in artifacts (METADATA_BENCH_SIZES, comma-separated;
// default 10000,100000).
func benchSizes(b *testing.B) []int {
	raw := os.Getenv("METADATA_BENCH_SIZES")
	if raw == "" {
		raw = "10000,100000"
	}
	var out []int
	for _, f := range strings.Split(raw, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 10 {
			b.Fatalf("METADATA_BENCH_SIZES: bad size %q", f)
		}
		out = append(out, n)
	}
	return out
}

type benchBackend struct {
	name string
	open func(b *testing.B) *Store
}

func benchBackends(b *testing.B) []benchBackend {
	backends := []benchBackend{{"sqlite", func(b *testing.B) *Store {
		s, err := OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}}}
	if url := os.Getenv("METADATA_TEST_DATABASE_URL"); url != "" {
		backends = append(backends, benchBackend{"postgres", func(b *testing.B) *Store {
			schema := SchemaNameForTest(b.Name())
			dsn, err := CreateTestSchema(context.Background(), url, schema)
			if err != nil {
				b.Fatal(err)
			}
			s, err := OpenPostgres(context.Background(), dsn)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				s.Close()
				_ = DropTestSchema(context.Background(), url, schema)
			})
			return s
		}})
	}
	return backends
}

// generateGraph bulk-loads a lineage graph of n artifacts, n executions and about 3n events:
// execution i outputs artifact i and reads artifact i-1 and one random earlier artifact within
// the previous 1,000, so lineage is deep and every node has a few neighbours. It writes with
// multi-row inserts in one transaction per table and returns the load time.
func generateGraph(b testing.TB, s *Store, n int) time.Duration {
	ctx := context.Background()
	start := time.Now()
	types, err := s.PutTypes(ctx, []mlmd.Type{{Kind: metadatav1.ArtifactKind, Name: "system.Dataset"}, {Kind: metadatav1.ExecutionKind, Name: "system.ContainerExecution"}})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now().UnixMilli()
	in, out := slices.Index(metadatav1.EventTypes, metadatav1.EventInput), slices.Index(metadatav1.EventTypes, metadatav1.EventOutput)
	live := slices.Index(metadatav1.ArtifactStates, metadatav1.ArtifactLive)
	complete := slices.Index(metadatav1.ExecutionStates, metadatav1.ExecutionComplete)
	bulk := func(table, cols string, rows int, row func(i int) []any) {
		ncol := len(strings.Split(cols, ","))
		const batch = 500
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			for lo := 1; lo <= rows; lo += batch {
				hi := min(lo+batch-1, rows)
				var sb strings.Builder
				args := make([]any, 0, (hi-lo+1)*ncol)
				sb.WriteString("INSERT INTO " + table + " (" + cols + ") VALUES ")
				for i := lo; i <= hi; i++ {
					if i > lo {
						sb.WriteByte(',')
					}
					sb.WriteString("(" + placeholders(ncol) + ")")
					args = append(args, row(i)...)
				}
				if _, err := tx.ExecContext(ctx, s.rebind(sb.String()), args...); err != nil {
					return fmt.Errorf("%s: %w", table, err)
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	bulk("artifact", "id, type_id, uri, state, name, create_time_ms, last_update_time_ms", n, func(i int) []any {
		return []any{i, types[0], fmt.Sprintf("s3://bench/a/%d", i), live, fmt.Sprintf("a%d", i), now, now}
	})
	bulk("artifact_property", "artifact_id, name, is_custom, string_value", n, func(i int) []any {
		return []any{i, "digest", true, fmt.Sprintf("sha256:%064x", i)}
	})
	bulk("execution", "id, type_id, last_known_state, name, create_time_ms, last_update_time_ms", n, func(i int) []any {
		return []any{i, types[1], complete, fmt.Sprintf("e%d", i), now, now}
	})
	// Events in recorded order: execution i's inputs, then its output.
	type ev struct{ a, e, t int }
	evs := make([]ev, 0, 3*n)
	for i := 1; i <= n; i++ {
		if i > 1 {
			evs = append(evs, ev{i - 1, i, in})
			if i > 2 {
				lo := max(1, i-1000)
				evs = append(evs, ev{lo + rng.IntN(i-1-lo), i, in})
			}
		}
		evs = append(evs, ev{i, i, out})
	}
	bulk("event", "id, artifact_id, execution_id, type, time_ms, path", len(evs), func(i int) []any {
		e := evs[i-1]
		return []any{i, e.a, e.e, e.t, now, nil}
	})
	if s.dialect == dialectPostgres {
		for _, t := range []string{"artifact", "execution", "event"} {
			if _, err := s.w.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('`+t+`', 'id'), (SELECT max(id) FROM `+t+`))`); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := s.w.ExecContext(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func percentile(ds []time.Duration, p float64) float64 {
	slices.Sort(ds)
	i := int(float64(len(ds)-1) * p)
	return float64(ds[i]) / float64(time.Millisecond)
}

// BenchmarkLineage reports p50/p99 latency (ms) of upstream lineage at 1 and 5 hops from random
// artifacts on generated graphs of each size, on SQLite and (with METADATA_TEST_DATABASE_URL)
// PostgreSQL, plus the bulk load rate of the generator.
func BenchmarkLineage(b *testing.B) {
	for _, be := range benchBackends(b) {
		for _, n := range benchSizes(b) {
			b.Run(fmt.Sprintf("%s/%dk", be.name, n/1000), func(b *testing.B) {
				s := be.open(b)
				load := generateGraph(b, s, n)
				b.Logf("%s: loaded %d artifacts, %d executions, ~%d events in %v (%.0f rows/s)", be.name, n, n, 3*n, load.Round(time.Millisecond), float64(6*n)/load.Seconds())
				for _, hops := range []int{1, 5} {
					b.Run(fmt.Sprintf("upstream-%dhop", hops), func(b *testing.B) {
						rng := rand.New(rand.NewPCG(3, 4))
						var ds []time.Duration
						nodes := 0
						for b.Loop() {
							id := int64(n/2 + rng.IntN(n/2))
							t0 := time.Now()
							g, err := s.GetLineageSubgraph(context.Background(), mlmd.LineageQuery{ArtifactIDs: []int64{id}, Direction: mlmd.Upstream, MaxHops: hops})
							ds = append(ds, time.Since(t0))
							if err != nil {
								b.Fatal(err)
							}
							nodes += len(g.Artifacts) + len(g.Executions)
						}
						b.ReportMetric(percentile(ds, 0.50), "p50-ms")
						b.ReportMetric(percentile(ds, 0.99), "p99-ms")
						b.ReportMetric(float64(nodes)/float64(len(ds)), "nodes/op")
					})
				}
			})
		}
	}
}

// BenchmarkIngest reports the write rate in records/s (nodes + events) of the atomic
// PutExecution (one transaction per execution: 1 execution, 1 new artifact, 2 input and 1
// output events, 2 contexts) and of batched writes (500 executions, 500 artifacts and 1,500
// events per three transactions).
func BenchmarkIngest(b *testing.B) {
	for _, be := range benchBackends(b) {
		b.Run(be.name+"/put-execution", func(b *testing.B) {
			s := be.open(b)
			ctx := context.Background()
			seed, err := s.PutArtifacts(ctx, []mlmd.Artifact{{Type: "system.Dataset", URI: "s3://bench/seed0"}, {Type: "system.Dataset", URI: "s3://bench/seed1"}})
			if err != nil {
				b.Fatal(err)
			}
			prev := seed
			i := 0
			start := time.Now()
			for b.Loop() {
				i++
				res, err := s.PutExecution(ctx, mlmd.PutExecutionRequest{
					Execution: mlmd.Execution{Type: "system.ContainerExecution", ExternalID: fmt.Sprintf("run/%d", i), LastKnownState: metadatav1.ExecutionComplete},
					ArtifactEventPairs: []mlmd.ArtifactAndEvent{
						{Event: &mlmd.Event{ArtifactID: prev[0], Type: metadatav1.EventInput}},
						{Event: &mlmd.Event{ArtifactID: prev[1], Type: metadatav1.EventInput}},
						{Artifact: &mlmd.Artifact{Type: "system.Dataset", ExternalID: fmt.Sprintf("s3://bench/%d", i), URI: fmt.Sprintf("s3://bench/%d", i)}, Event: &mlmd.Event{Type: metadatav1.EventOutput}},
					},
					Contexts: []mlmd.Context{{Type: "system.Pipeline", Name: "bench"}, {Type: "system.PipelineRun", Name: fmt.Sprintf("run-%d", i/100)}},
				})
				if err != nil {
					b.Fatal(err)
				}
				prev = []int64{prev[1], res.ArtifactIDs[2]}
			}
			b.ReportMetric(float64(5*i)/time.Since(start).Seconds(), "records/s")
		})
		b.Run(be.name+"/batched", func(b *testing.B) {
			s := be.open(b)
			ctx := context.Background()
			const batch = 500
			records := 0
			start := time.Now()
			for b.Loop() {
				arts := make([]mlmd.Artifact, batch)
				execs := make([]mlmd.Execution, batch)
				for j := range arts {
					arts[j] = mlmd.Artifact{Type: "system.Dataset", URI: fmt.Sprintf("s3://bench/%d/%d", records, j)}
					execs[j] = mlmd.Execution{Type: "system.ContainerExecution", LastKnownState: metadatav1.ExecutionComplete}
				}
				aids, err := s.PutArtifacts(ctx, arts)
				if err != nil {
					b.Fatal(err)
				}
				eids, err := s.PutExecutions(ctx, execs)
				if err != nil {
					b.Fatal(err)
				}
				evs := make([]mlmd.Event, 0, 3*batch)
				for j := range eids {
					evs = append(evs, mlmd.Event{ArtifactID: aids[j], ExecutionID: eids[j], Type: metadatav1.EventOutput})
					if j > 0 {
						evs = append(evs, mlmd.Event{ArtifactID: aids[j-1], ExecutionID: eids[j], Type: metadatav1.EventInput})
					}
					if j > 1 {
						evs = append(evs, mlmd.Event{ArtifactID: aids[j-2], ExecutionID: eids[j], Type: metadatav1.EventInput})
					}
				}
				if err := s.PutEvents(ctx, evs); err != nil {
					b.Fatal(err)
				}
				records += len(arts) + len(execs) + len(evs)
			}
			b.ReportMetric(float64(records)/time.Since(start).Seconds(), "records/s")
		})
	}
}
