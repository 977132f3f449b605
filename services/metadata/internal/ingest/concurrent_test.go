package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/services/metadata/internal/ingest"
	"github.com/sluice-ml/sluice/services/metadata/internal/metastore"
	"github.com/sluice-ml/sluice/services/metadata/internal/metastore/metastoretest"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
)

// sharedEvents returns task.succeeded events of runs runs of one pipeline, steps steps each,
// every task reading the same dataset (one artifact shared by all batches) and its run's
// previous output. Applied in any order they leave the same records.
func sharedEvents(t testing.TB, runs, steps int) []events.Event {
	var out []events.Event
	for step := range steps {
		for r := range runs {
			run := fmt.Sprintf("run-%d", r)
			prev := pipelinesv1.Artifact{Name: "prev", URI: fmt.Sprintf("s3://b/%s/%d", run, step-1), Digest: "sha256:01", SchemaTitle: "system.Dataset"}
			shared := pipelinesv1.Artifact{Name: "data", URI: "s3://b/shared", Digest: "sha256:ff", SchemaTitle: "system.Dataset"}
			o := pipelinesv1.Artifact{Name: "out", URI: fmt.Sprintf("s3://b/%s/%d", run, step), Digest: "sha256:01", SchemaTitle: "system.Dataset"}
			out = append(out, newEvent(t, events.PipelineTaskSucceededV1, "runs/"+run+"/tasks/t", pipelinesv1.TaskEvent{RunID: run, PipelineName: "shared",
				TaskPath: fmt.Sprintf("t%d", step), TaskName: "step", Image: "alpine", Fingerprint: "fp", InputParams: map[string]any{"n": step},
				Inputs: map[string]pipelinesv1.Artifact{"prev": prev, "data": shared}, Outputs: map[string]pipelinesv1.Artifact{"out": o}}))
		}
	}
	return out
}

// TestConcurrentBatchesExactlyOnce: four writers (as four replicas, or a redelivery meeting
// its first delivery) handle the same events at once, each in its own order and batch sizes,
// on one store: every event is applied once, the records are those of the events ingested one
// by one, and the shared pipeline context and dataset do not fail a batch (a deadlock is
// retried, never dead-lettered).
func TestConcurrentBatchesExactlyOnce(t *testing.T) {
	metastoretest.Each(t, func(t *testing.T, s *metastore.Store) {
		ctx := context.Background()
		evs := sharedEvents(t, 12, 5)
		want := oneByOne(t, evs)
		var logs lockedBuffer
		c := ingest.New(s, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
		var wg sync.WaitGroup
		errs := make(chan error, 4*len(evs))
		for w := range 4 {
			mine := slices.Clone(evs)
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			rng.Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
			size := 5 + 6*w
			wg.Add(1)
			go func() {
				defer wg.Done()
				for lo := 0; lo < len(mine); lo += size {
					for _, err := range c.HandleBatch(ctx, mine[lo:min(lo+size, len(mine))]) {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		n, err := s.IngestedCount(ctx)
		require.NoError(t, err)
		assert.EqualValues(t, len(evs), n, "each event recorded once")
		assert.Equal(t, dump(t, want), dump(t, s))
		assert.Empty(t, logs.String(), "no batch fell back to one by one")
	})
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestConcurrentConsumerMatchesOneByOne: the service's consumer (4 batches at once,
// partitioned by run) delivered every event twice leaves the records of the events ingested
// one by one in stream order: a run's started and succeeded events, whose order matters for
// the task's properties, stay in order, and redeliveries are recorded once.
func TestConcurrentConsumerMatchesOneByOne(t *testing.T) {
	metastoretest.Each(t, func(t *testing.T, s *metastore.Store) {
		ctx := context.Background()
		evs := overlapping(t)
		want := oneByOne(t, evs)
		bus := startNATS(t)
		for _, ev := range evs {
			publishTwice(t, bus, ev)
		}
		c := ingest.New(s, nil)
		c.Concurrency, c.MaxBatch = 4, 3
		subs, err := c.Start(ctx, bus, "metadata")
		require.NoError(t, err)
		t.Cleanup(func() {
			for _, sub := range subs {
				sub.Stop()
			}
		})
		drain(t, bus, "metadata")
		assert.Equal(t, dump(t, want), dump(t, s))
	})
}

func TestPartitionKey(t *testing.T) {
	for subject, want := range map[string]string{
		"runs/r1":               "runs/r1",
		"runs/r1/tasks/a/b":     "runs/r1",
		"tfjobs/default/mnist":  "tfjobs/default/mnist",
		"deployments/ns/served": "deployments/ns/served",
	} {
		ev := newEvent(t, events.PipelineTaskSucceededV1, subject, pipelinesv1.TaskEvent{RunID: "r1"})
		assert.Equal(t, want, ingest.PartitionKey(ev), subject)
	}
}
