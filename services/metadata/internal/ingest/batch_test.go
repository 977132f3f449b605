package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/services/metadata/internal/ingest"
	"github.com/sluice-ml/sluice/services/metadata/internal/metastore"
	"github.com/sluice-ml/sluice/services/metadata/internal/metastore/metastoretest"
	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
)

// dump renders every record of s without ids and timestamps (nodes with their properties,
// events by the external ids of their ends, links by names), so two stores holding the same
// lineage dump equal whatever order their rows were written in.
func dump(t testing.TB, s *metastore.Store) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	arts, err := s.ListArtifacts(ctx, mlmd.ListRequest{PageSize: mlmd.MaxPageSize})
	require.NoError(t, err)
	execs, err := s.ListExecutions(ctx, mlmd.ListRequest{PageSize: mlmd.MaxPageSize})
	require.NoError(t, err)
	ctxs, err := s.ListContexts(ctx, mlmd.ListRequest{PageSize: mlmd.MaxPageSize})
	require.NoError(t, err)
	artExt, execExt := map[int64]string{}, map[int64]string{}
	for _, a := range arts.Items {
		artExt[a.ID] = a.ExternalID
		a.ID, a.TypeID, a.CreateTimeSinceEpoch, a.LastUpdateTimeSinceEpoch = 0, 0, 0, 0
		b, _ := json.Marshal(a)
		out = append(out, "artifact "+string(b))
	}
	var ids []int64
	for _, e := range execs.Items {
		ids = append(ids, e.ID)
		execExt[e.ID] = e.ExternalID
		e.ID, e.TypeID, e.CreateTimeSinceEpoch, e.LastUpdateTimeSinceEpoch = 0, 0, 0, 0
		b, _ := json.Marshal(e)
		out = append(out, "execution "+string(b))
	}
	for _, c := range ctxs.Items {
		in, err := s.ListArtifacts(ctx, mlmd.ListRequest{PageSize: mlmd.MaxPageSize, Filter: mlmd.Filter{ContextID: c.ID}})
		require.NoError(t, err)
		for _, a := range in.Items {
			out = append(out, "attribution "+c.Name+" "+a.ExternalID)
		}
		ex, err := s.ListExecutions(ctx, mlmd.ListRequest{PageSize: mlmd.MaxPageSize, Filter: mlmd.Filter{ContextID: c.ID}})
		require.NoError(t, err)
		for _, e := range ex.Items {
			out = append(out, "association "+c.Name+" "+e.ExternalID)
		}
		c.ID, c.TypeID, c.CreateTimeSinceEpoch, c.LastUpdateTimeSinceEpoch = 0, 0, 0, 0
		b, _ := json.Marshal(c)
		out = append(out, "context "+string(b))
	}
	evs, err := s.GetEventsByExecutionIDs(ctx, ids)
	require.NoError(t, err)
	for _, e := range evs {
		p, _ := json.Marshal(e.Path)
		out = append(out, fmt.Sprintf("event %s %s %s %s", artExt[e.ArtifactID], execExt[e.ExecutionID], e.Type, p))
	}
	n, err := s.IngestedCount(ctx)
	require.NoError(t, err)
	out = append(out, fmt.Sprintf("sources %d", n))
	slices.Sort(out)
	return out
}

// overlapping returns the quickstart events and a chain of task events (started and succeeded
// of each task, each task reading the previous one's output) over three runs, in an order where
// started arrives after succeeded for some tasks, with every fifth event repeated.
func overlapping(t testing.TB) []events.Event {
	evs := quickstart(t)
	for i := range 30 {
		run := fmt.Sprintf("run-%d", i%3)
		in := pipelinesv1.Artifact{Name: "data", URI: fmt.Sprintf("s3://b/%s/%d", run, i-3), Digest: "sha256:00", SchemaTitle: "system.Dataset"}
		out := pipelinesv1.Artifact{Name: "data", URI: fmt.Sprintf("s3://b/%s/%d", run, i), Digest: fmt.Sprintf("sha256:%02d", i), SchemaTitle: "system.Dataset"}
		te := pipelinesv1.TaskEvent{RunID: run, PipelineName: "chain", TaskPath: fmt.Sprintf("t%d", i), TaskName: "step", Image: "alpine",
			Fingerprint: fmt.Sprintf("fp%d", i), InputParams: map[string]any{"n": i}, Inputs: map[string]pipelinesv1.Artifact{"data": in}}
		started := newEvent(t, events.PipelineTaskStartedV1, "runs/"+run, te)
		te.Outputs = map[string]pipelinesv1.Artifact{"data": out}
		te.InputParams = map[string]any{"n": i, "done": true}
		succeeded := newEvent(t, events.PipelineTaskSucceededV1, "runs/"+run, te)
		if i%4 == 0 {
			evs = append(evs, succeeded, started)
		} else {
			evs = append(evs, started, succeeded)
		}
		if i%5 == 0 {
			evs = append(evs, succeeded)
		}
	}
	return evs
}

// oneByOne is the reference the batch paths are compared with: evs ingested one transaction
// each, in order, into a fresh SQLite store.
func oneByOne(t *testing.T, evs []events.Event) *metastore.Store {
	t.Helper()
	want := metastoretest.SQLite(t)
	one := ingest.New(want, nil)
	for _, ev := range evs {
		require.NoError(t, one.Handle(context.Background(), ev))
	}
	return want
}

// TestBatchMatchesOneByOne: one batch leaves exactly the records of its events ingested one
// transaction each, a repeated event inside the batch and the whole batch delivered again
// change nothing.
func TestBatchMatchesOneByOne(t *testing.T) {
	metastoretest.Each(t, func(t *testing.T, s *metastore.Store) {
		ctx := context.Background()
		evs := overlapping(t)
		want := oneByOne(t, evs)
		c := ingest.New(s, nil)
		for _, err := range c.HandleBatch(ctx, evs) {
			require.NoError(t, err)
		}
		got := dump(t, s)
		assert.Equal(t, dump(t, want), got)
		for _, err := range c.HandleBatch(ctx, evs) {
			require.NoError(t, err)
		}
		assert.Equal(t, got, dump(t, s), "a redelivered batch changes nothing")
		// Split into batches of 7 in a second store: the same records.
		split := metastoretest.SQLite(t)
		cs := ingest.New(split, nil)
		for lo := 0; lo < len(evs); lo += 7 {
			for _, err := range cs.HandleBatch(ctx, evs[lo:min(lo+7, len(evs))]) {
				require.NoError(t, err)
			}
		}
		assert.Equal(t, got, dump(t, split))
	})
}

// poisoned returns n good task events and one the store refuses: its execution's type and
// name are taken by another execution (recorded through the API under another external id).
func poisoned(t testing.TB, s *metastore.Store, n int) (good []events.Event, poison events.Event) {
	_, err := s.PutExecutions(context.Background(), []mlmd.Execution{{Type: "system.ContainerExecution", Name: "run-p/clash", ExternalID: "someone-else"}})
	require.NoError(t, err)
	for i := range n {
		good = append(good, newEvent(t, events.PipelineTaskSucceededV1, "runs/run-p", pipelinesv1.TaskEvent{RunID: "run-p", PipelineName: "p",
			TaskPath: fmt.Sprintf("t%d", i), TaskName: "step", Outputs: map[string]pipelinesv1.Artifact{"data": {Name: "data", URI: fmt.Sprintf("s3://b/p/%d", i)}}}))
	}
	poison = newEvent(t, events.PipelineTaskSucceededV1, "runs/run-p", pipelinesv1.TaskEvent{RunID: "run-p", PipelineName: "p", TaskPath: "clash", TaskName: "step"})
	return good, poison
}

// TestPoisonEventInBatch: a batch holding an event the store refuses records every other event
// (one by one after the batch transaction fails) and fails only the poison one, permanently.
func TestPoisonEventInBatch(t *testing.T) {
	metastoretest.Each(t, func(t *testing.T, s *metastore.Store) {
		ctx := context.Background()
		good, poison := poisoned(t, s, 20)
		batch := slices.Insert(slices.Clone(good), 7, poison)
		errs := ingest.New(s, nil).HandleBatch(ctx, batch)
		for i, err := range errs {
			if i == 7 {
				require.Error(t, err)
				assert.True(t, events.IsPermanent(err), "the poison event is dead-lettered, not retried: %v", err)
				assert.ErrorIs(t, err, mlmd.ErrAlreadyExists)
				continue
			}
			assert.NoError(t, err, "event %d", i)
		}
		n, err := s.IngestedCount(ctx)
		require.NoError(t, err)
		assert.EqualValues(t, len(good), n)
	})
}

// TestPoisonEventInBatchIsDeadLettered: through JetStream, with every event published before
// the consumer starts (so they arrive in batches) and each delivered twice, the poison event is
// dead-lettered with the store's reason, and every good event is recorded exactly once.
func TestPoisonEventInBatchIsDeadLettered(t *testing.T) {
	s := metastoretest.Postgres(t)
	bus := startNATS(t)
	var mu sync.Mutex
	var letters []events.DeadLetter
	sub, err := bus.Conn().Subscribe(events.DeadLetterPrefix+">", func(m *nats.Msg) {
		ev, err := events.Decode(context.Background(), m.Header, m.Data)
		if err != nil {
			return
		}
		var dl events.DeadLetter
		if json.Unmarshal(ev.Data(), &dl) == nil {
			mu.Lock()
			letters = append(letters, dl)
			mu.Unlock()
		}
	})
	require.NoError(t, err)
	defer sub.Unsubscribe()
	good, poison := poisoned(t, s, 200)
	for i, ev := range good {
		if i == 100 {
			publishTwice(t, bus, poison)
		}
		publishTwice(t, bus, ev)
	}
	startConsumers(t, bus, s, "metadata")
	drain(t, bus, "metadata")
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(letters) >= 2
	}, 20*time.Second, 20*time.Millisecond)
	mu.Lock()
	for _, dl := range letters {
		require.NotNil(t, dl.Event)
		assert.Equal(t, poison.ID(), dl.Event.ID())
		assert.Contains(t, dl.Reason, "already exists")
	}
	mu.Unlock()
	n, err := s.IngestedCount(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, len(good), n, "every good event recorded once")
	execs, err := s.ListExecutions(context.Background(), mlmd.ListRequest{PageSize: mlmd.MaxPageSize})
	require.NoError(t, err)
	assert.Equal(t, len(good)+1, len(execs.Items), "the good tasks and the clashing execution")
}

// TestIdentityIsSourceAndID: per CloudEvents 1.0 an event is its source and id. Two events with
// one id from two sources are both recorded, in one batch and one by one; a batch repeating an
// event, and the whole batch redelivered, record nothing more.
func TestIdentityIsSourceAndID(t *testing.T) {
	metastoretest.Each(t, func(t *testing.T, s *metastore.Store) {
		ctx := context.Background()
		task := func(source, id, path string) events.Event {
			ev := newEvent(t, events.PipelineTaskSucceededV1, "runs/run-s", pipelinesv1.TaskEvent{RunID: "run-s", PipelineName: "p", TaskPath: path, TaskName: "step",
				Outputs: map[string]pipelinesv1.Artifact{"data": {Name: "data", URI: "s3://b/s/" + path}}})
			ev.SetSource(source)
			ev.SetID(id)
			return ev
		}
		a := task("/sluice/pipelines-a", "same-id", "a")
		b := task("/sluice/pipelines-b", "same-id", "b")
		other := task("/sluice/pipelines-a", "other-id", "c")
		c := ingest.New(s, nil)
		batch := []events.Event{a, b, a, other, b}
		for i, err := range c.HandleBatch(ctx, batch) {
			require.NoError(t, err, "event %d", i)
		}
		counts := func() (sources int64, execs int) {
			n, err := s.IngestedCount(ctx)
			require.NoError(t, err)
			es, err := s.ListExecutions(ctx, mlmd.ListRequest{PageSize: mlmd.MaxPageSize})
			require.NoError(t, err)
			return n, len(es.Items)
		}
		n, e := counts()
		assert.EqualValues(t, 3, n, "a and b share an id but not a source: two events; the repeats are one")
		assert.Equal(t, 3, e)
		got := dump(t, s)
		for _, err := range c.HandleBatch(ctx, batch) {
			require.NoError(t, err)
		}
		assert.Equal(t, got, dump(t, s), "a redelivered batch changes nothing")
		for _, ev := range batch {
			require.NoError(t, c.Handle(ctx, ev))
		}
		assert.Equal(t, got, dump(t, s), "redelivered one by one: nothing")

		// One by one into an empty store: the same identity rule.
		one := metastoretest.SQLite(t)
		oc := ingest.New(one, nil)
		for _, ev := range batch {
			require.NoError(t, oc.Handle(ctx, ev))
		}
		assert.Equal(t, got, dump(t, one))
	})
}
