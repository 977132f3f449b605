package events_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/events"
)

// TestConsumeBatch: events published before the consumer starts arrive in batches of at most
// maxBatch; each event is settled by its own result (acked, dead-lettered, redelivered until it
// succeeds), a batch whose handler panics is redelivered whole, and a malformed message never
// reaches the handler.
func TestConsumeBatch(t *testing.T) {
	t.Parallel()
	b := newBus(t, startNATS(t))
	dls := collectDeadLetters(t, b)
	pub := func(text string) string {
		ev, err := events.New("/sluice/test", events.PipelineRunRequestedV1, "runs/x", payload{Text: text})
		require.NoError(t, err)
		require.NoError(t, b.Publish(t.Context(), ev))
		return ev.ID()
	}
	for range 40 {
		pub("ok")
	}
	pub("poison")
	flaky := pub("flaky")
	pub("panics-once")
	_, err := b.JetStream().Publish(t.Context(), events.SubjectFor(events.PipelineRunRequestedV1), []byte("garbage"))
	require.NoError(t, err)

	var mu sync.Mutex
	acked := map[string]int{}
	var largest, flakyTries atomic.Int32
	var panicked atomic.Bool
	sub, err := b.ConsumeBatch(t.Context(), events.ConsumerConfig{
		Stream: events.StreamPipeline, Durable: "test-batch",
		FilterSubjects: []string{events.SubjectFor(events.PipelineRunRequestedV1)},
		NakDelay:       50 * time.Millisecond, MaxDeliver: 5,
	}, 16, func(ctx context.Context, evs []events.Event) []error {
		if int32(len(evs)) > largest.Load() {
			largest.Store(int32(len(evs)))
		}
		errs := make([]error, len(evs))
		for i, ev := range evs {
			var p payload
			if err := ev.DataAs(&p); err != nil {
				errs[i] = events.Permanent(err)
				continue
			}
			switch p.Text {
			case "poison":
				errs[i] = events.Permanent(errors.New("spec.tasks: invalid"))
			case "flaky":
				if flakyTries.Add(1) < 3 {
					errs[i] = errors.New("transient")
				}
			case "panics-once":
				if panicked.CompareAndSwap(false, true) {
					panic("boom")
				}
			}
		}
		mu.Lock()
		for i, ev := range evs {
			if errs[i] == nil {
				acked[ev.ID()]++
			}
		}
		mu.Unlock()
		return errs
	})
	require.NoError(t, err)
	t.Cleanup(sub.Stop)

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) == 42 // 40 ok, flaky, panics-once
	}, 20*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return len(dls()) == 2 }, 15*time.Second, 20*time.Millisecond)
	reasons := map[string]bool{}
	for _, d := range dls() {
		reasons[d.Reason] = true
	}
	require.True(t, reasons["spec.tasks: invalid"], "%v", reasons)
	require.EqualValues(t, 3, flakyTries.Load(), "flaky is redelivered twice, then acked")
	mu.Lock()
	require.Equal(t, 1, acked[flaky])
	mu.Unlock()
	require.LessOrEqual(t, largest.Load(), int32(16))
	require.Greater(t, largest.Load(), int32(1), "events waiting when the consumer starts come in batches")
}

// TestConsumeBatchPartitions: with Concurrency 4, batches of different partitions (here the
// CloudEvent subject, the default) are handled at once, while the events of one partition are
// never in two batches at once and arrive in publish order; every event is acknowledged once.
func TestConsumeBatchPartitions(t *testing.T) {
	t.Parallel()
	b := newBus(t, startNATS(t))
	const subjects, perSubject = 40, 10
	var all []events.Event
	for n := range perSubject {
		for s := range subjects {
			ev, err := events.New("/sluice/test", events.PipelineRunRequestedV1, fmt.Sprintf("runs/r%d", s), payload{N: n})
			require.NoError(t, err)
			all = append(all, ev)
		}
	}
	require.NoError(t, b.PublishAll(t.Context(), all))

	var mu sync.Mutex
	inFlight := map[string]bool{} // subjects of the batches being handled
	next := map[string]int{}      // next N expected per subject
	acked := map[string]int{}
	var problems []string
	handling, overlapped := 0, false
	sub, err := b.ConsumeBatch(t.Context(), events.ConsumerConfig{
		Stream: events.StreamPipeline, Durable: "test-partitions", Concurrency: 4,
		FilterSubjects: []string{events.SubjectFor(events.PipelineRunRequestedV1)},
	}, 8, func(ctx context.Context, evs []events.Event) []error {
		mu.Lock()
		handling++
		overlapped = overlapped || handling > 1
		mine := map[string]bool{}
		for _, ev := range evs {
			var p payload
			require.NoError(t, ev.DataAs(&p))
			if inFlight[ev.Subject()] && !mine[ev.Subject()] {
				problems = append(problems, "two batches hold "+ev.Subject())
			}
			if p.N != next[ev.Subject()] {
				problems = append(problems, fmt.Sprintf("%s: got %d, want %d", ev.Subject(), p.N, next[ev.Subject()]))
			}
			next[ev.Subject()] = p.N + 1
			inFlight[ev.Subject()], mine[ev.Subject()] = true, true
		}
		mu.Unlock()
		// Hold the batch until another is being handled (or a generous deadline passes), so a
		// consumer that handled one batch at a time fails the overlap check below.
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			o := overlapped
			mu.Unlock()
			if o {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		handling--
		for s := range mine {
			delete(inFlight, s)
		}
		for _, ev := range evs {
			acked[ev.ID()]++
		}
		return make([]error, len(evs))
	})
	require.NoError(t, err)
	t.Cleanup(sub.Stop)

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) == len(all)
	}, 60*time.Second, 20*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, problems)
	require.True(t, overlapped, "batches of different partitions are handled at once")
	for _, ev := range all {
		require.Equal(t, 1, acked[ev.ID()], ev.ID())
	}
	for s := range subjects {
		require.Equal(t, perSubject, next[fmt.Sprintf("runs/r%d", s)])
	}
}
