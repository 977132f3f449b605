package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/events"
)

// startNATS runs a real in-process JetStream server with a file store in a temp dir.
func startNATS(tb testing.TB) string {
	tb.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: tb.TempDir(), NoLog: true, NoSigs: true}
	s, err := server.NewServer(opts)
	require.NoError(tb, err)
	go s.Start()
	require.True(tb, s.ReadyForConnections(10*time.Second))
	tb.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

func newBus(tb testing.TB, url string) *events.Bus {
	tb.Helper()
	b, err := events.Connect(tb.Context(), url, "test", nil)
	require.NoError(tb, err)
	tb.Cleanup(b.Close)
	require.NoError(tb, b.EnsureStreams(tb.Context()))
	return b
}

type payload struct {
	N    int    `json:"n"`
	Text string `json:"text"`
}

func TestSubjectsAndTokens(t *testing.T) {
	t.Parallel()
	require.Equal(t, "sluice.pipeline.run.requested.v1", events.SubjectFor(events.PipelineRunRequestedV1))
	require.Equal(t, events.StreamPipeline, events.StreamFor(events.PipelineRunRequestedV1))
	require.Equal(t, events.StreamNotebook, events.StreamFor(events.NotebookRequestedV1))
	for name, want := range map[string]string{
		"simple":      "simple",
		"my model.v1": "my_20model_2Ev1",
		"a*b>c":       "a_2Ab_3Ec",
		"x_y":         "x_5Fy",
		"":            "_",
	} {
		got := events.Token(name)
		require.Equal(t, want, got, name)
		require.NoError(t, events.ValidateToken(got))
	}
	require.Error(t, events.ValidateToken("a.b"))
	require.Error(t, events.ValidateType("io.sluice.nope.x.y.v1"))
	require.NoError(t, events.ValidateType(events.TrainingJobFailedV1))
}

func TestRoundTripBinaryMode(t *testing.T) {
	t.Parallel()
	url := startNATS(t)
	b := newBus(t, url)
	ev, err := events.New("/sluice/test", events.PipelineRunRequestedV1, "runs/r1", payload{N: 7, Text: "héllo \"x\"\n"})
	require.NoError(t, err)
	ev.SetExtension("sluicerunid", "r1")
	require.NoError(t, b.Publish(t.Context(), ev))

	// The raw message carries ce-* headers (binary mode) and the JSON body.
	raw, err := b.JetStream().Stream(t.Context(), events.StreamPipeline)
	require.NoError(t, err)
	m, err := raw.GetLastMsgForSubject(t.Context(), events.SubjectFor(events.PipelineRunRequestedV1))
	require.NoError(t, err)
	require.Equal(t, ev.ID(), m.Header.Get("ce-id"))
	require.Equal(t, "1.0", m.Header.Get("ce-specversion"))
	require.Equal(t, events.PipelineRunRequestedV1, m.Header.Get("ce-type"))
	require.Equal(t, "application/json", m.Header.Get("content-type"))
	require.Equal(t, events.MsgID(ev), m.Header.Get(jetstream.MsgIDHeader), "identity is source + id")
	require.JSONEq(t, `{"n":7,"text":"héllo \"x\"\n"}`, string(m.Data))

	got, err := events.Decode(t.Context(), m.Header, m.Data)
	require.NoError(t, err)
	require.Equal(t, ev.ID(), got.ID())
	require.Equal(t, "runs/r1", got.Subject())
	require.Equal(t, "r1", got.Extensions()["sluicerunid"])
	require.True(t, ev.Time().Equal(got.Time()))
	var p payload
	require.NoError(t, got.DataAs(&p))
	require.Equal(t, payload{N: 7, Text: "héllo \"x\"\n"}, p)
}

func TestPublishDedupByID(t *testing.T) {
	t.Parallel()
	b := newBus(t, startNATS(t))
	ev, err := events.New("/sluice/test", events.TrainingJobRequestedV1, "jobs/a", payload{N: 1})
	require.NoError(t, err)
	require.NoError(t, b.Publish(t.Context(), ev))
	require.NoError(t, b.Publish(t.Context(), ev), "a duplicate publish is success")
	require.NoError(t, b.PublishAll(t.Context(), []events.Event{ev, ev}))
	s, err := b.JetStream().Stream(t.Context(), events.StreamTraining)
	require.NoError(t, err)
	info, err := s.Info(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, 1, info.State.Msgs)
}

func collectDeadLetters(t *testing.T, b *events.Bus) func() []events.DeadLetter {
	t.Helper()
	var mu sync.Mutex
	var got []events.DeadLetter
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go func() {
		_ = b.Tail(ctx, events.DeadLetterV1, true, func(r events.Received) {
			var dl events.DeadLetter
			if r.Err == nil && r.Event.DataAs(&dl) == nil {
				mu.Lock()
				got = append(got, dl)
				mu.Unlock()
			}
		})
	}()
	return func() []events.DeadLetter {
		mu.Lock()
		defer mu.Unlock()
		return append([]events.DeadLetter(nil), got...)
	}
}

func TestConsumerAckNakTermDeadLetter(t *testing.T) {
	t.Parallel()
	b := newBus(t, startNATS(t))
	dls := collectDeadLetters(t, b)

	var attempts sync.Map // id -> *atomic.Int32
	handled := make(chan string, 16)
	sub, err := b.Consume(t.Context(), events.ConsumerConfig{
		Stream: events.StreamPipeline, Durable: "test-runs",
		FilterSubjects: []string{events.SubjectFor(events.PipelineRunRequestedV1)},
		NakDelay:       50 * time.Millisecond, MaxDeliver: 5,
	}, func(ctx context.Context, ev events.Event) error {
		n, _ := attempts.LoadOrStore(ev.ID(), new(atomic.Int32))
		c := n.(*atomic.Int32).Add(1)
		var p payload
		if err := ev.DataAs(&p); err != nil {
			return events.Permanent(err)
		}
		switch p.Text {
		case "poison":
			return events.Permanent(errors.New("spec.tasks: invalid"))
		case "flaky":
			if c < 3 {
				return errors.New("transient: temporal unavailable")
			}
		case "always-fails":
			return errors.New("still down")
		}
		handled <- p.Text
		return nil
	})
	require.NoError(t, err)
	t.Cleanup(sub.Stop)

	pub := func(text string) string {
		ev, err := events.New("/sluice/test", events.PipelineRunRequestedV1, "runs/x", payload{Text: text})
		require.NoError(t, err)
		require.NoError(t, b.Publish(t.Context(), ev))
		return ev.ID()
	}
	pub("ok")
	flaky := pub("flaky")
	pub("poison")
	pub("always-fails")
	// A CloudEvent whose JSON data is not JSON: refused by the handler, dead-lettered raw.
	badJSON, err := events.New("/sluice/test", events.PipelineRunRequestedV1, "runs/x", nil)
	require.NoError(t, err)
	badMsg, err := events.Encode(t.Context(), &badJSON, events.SubjectFor(events.PipelineRunRequestedV1))
	require.NoError(t, err)
	badMsg.Header.Set("content-type", "application/json")
	badMsg.Data = []byte("{not json")
	_, err = b.JetStream().PublishMsg(t.Context(), badMsg)
	require.NoError(t, err)
	// A message that is no CloudEvent at all.
	_, err = b.JetStream().Publish(t.Context(), events.SubjectFor(events.PipelineRunRequestedV1), []byte("garbage"))
	require.NoError(t, err)

	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case s := <-handled:
			got[s] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("handled only %v", got)
		}
	}
	require.True(t, got["ok"] && got["flaky"])
	n, _ := attempts.Load(flaky)
	require.EqualValues(t, 3, n.(*atomic.Int32).Load(), "flaky is nak'ed twice then acked")

	require.Eventually(t, func() bool { return len(dls()) == 4 }, 15*time.Second, 20*time.Millisecond)
	reasons := map[string]events.DeadLetter{}
	for _, d := range dls() {
		reasons[d.Reason] = d
	}
	require.Contains(t, reasons, "spec.tasks: invalid")
	var sawMalformed, sawGaveUp bool
	for r, d := range reasons {
		require.Equal(t, "test-runs", d.Consumer)
		require.Equal(t, "sluice.pipeline.run.requested.v1", d.Subject)
		if d.Event == nil && strings.Contains(r, "malformed CloudEvent") {
			sawMalformed = true
		} else if d.Event == nil {
			require.NotEmpty(t, d.DataBase64, "an event that cannot be re-encoded is carried raw")
		} else if d.Deliveries == 5 {
			sawGaveUp = true
			require.Contains(t, r, "gave up after 5 deliveries")
		}
	}
	require.True(t, sawMalformed && sawGaveUp, "%v", reasons)
}

func TestRedeliveryAfterCrashBeforeAck(t *testing.T) {
	t.Parallel()
	url := startNATS(t)
	b := newBus(t, url)
	cfg := events.ConsumerConfig{Stream: events.StreamServing, Durable: "test-crash", AckWait: 300 * time.Millisecond}

	ev, err := events.New("/sluice/test", events.ServingDeploymentRequestedV1, "deployments/m", payload{N: 1})
	require.NoError(t, err)
	require.NoError(t, b.Publish(t.Context(), ev))

	// First consumer process "crashes": it receives the event and never acks (its connection dies).
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	crashing, err := events.NewBus(nc, nil)
	require.NoError(t, err)
	received := make(chan struct{}, 1)
	block := make(chan struct{})
	_, err = crashing.Consume(t.Context(), cfg, func(ctx context.Context, e events.Event) error {
		received <- struct{}{}
		<-block
		return nil
	})
	require.NoError(t, err)
	<-received
	nc.Close()
	defer close(block)

	// A restarted consumer with the same durable gets it again.
	second := newBus(t, url)
	got := make(chan events.Event, 1)
	sub, err := second.Consume(t.Context(), cfg, func(ctx context.Context, e events.Event) error {
		got <- e
		return nil
	})
	require.NoError(t, err)
	defer sub.Stop()
	select {
	case e := <-got:
		require.Equal(t, ev.ID(), e.ID())
	case <-time.After(10 * time.Second):
		t.Fatal("event not redelivered after crash")
	}
}

func BenchmarkPublishBurst(b *testing.B) {
	url := startNATS(b)
	bus := newBus(b, url)
	const burst = 10000
	evs := make([]events.Event, burst)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := range evs {
			ev, err := events.New("/sluice/bench", events.PipelineTaskSucceededV1, "runs/bench", payload{N: j, Text: "x"})
			if err != nil {
				b.Fatal(err)
			}
			evs[j] = ev
		}
		b.StartTimer()
		if err := bus.PublishAll(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(burst*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRawNATSAsyncPublish is the baseline: nats.go jetstream async publish of the same JSON body with a
// message id and no CloudEvents encoding.
func BenchmarkRawNATSAsyncPublish(b *testing.B) {
	url := startNATS(b)
	bus := newBus(b, url)
	js := bus.JetStream()
	const burst = 10000
	body, _ := json.Marshal(payload{N: 1, Text: "x"})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		futures := make([]jetstream.PubAckFuture, 0, burst)
		for j := 0; j < burst; j++ {
			m := nats.NewMsg(events.SubjectFor(events.PipelineTaskSucceededV1))
			m.Data = body
			f, err := js.PublishMsgAsync(m, jetstream.WithMsgID(fmt.Sprintf("raw-%d-%d", i, j)))
			if err != nil {
				b.Fatal(err)
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(burst*b.N)/b.Elapsed().Seconds(), "events/s")
}
