package events_test

import (
	"context"
	"errors"
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
