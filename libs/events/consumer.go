package events

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Handler processes one event. Return nil to ack it, an error wrapped by [Permanent] to dead-letter it
// (the input can never succeed: bad payload, invalid spec), or any other error to have it redelivered
// after the consumer's NakDelay. Handlers must be idempotent by ev.ID(): JetStream delivers at least once.
type Handler func(ctx context.Context, ev Event) error

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as poison: the consumer terminates the message and publishes a dead letter.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err (or an error it wraps) was marked by [Permanent].
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// ConsumerConfig describes a durable pull consumer.
type ConsumerConfig struct {
	// Stream holds the events, e.g. StreamPipeline.
	Stream string
	// Durable names the consumer, "<service>-<purpose>" under 32 characters (e.g. "pipelines-runs").
	Durable string
	// FilterSubjects restricts delivery, e.g. SubjectFor(PipelineRunRequestedV1). Empty means all.
	FilterSubjects []string
	// MaxDeliver bounds redeliveries (default 10); after the last failed delivery the event is dead-lettered.
	MaxDeliver int
	// NakDelay is the redelivery delay after a transient error (default 1s).
	NakDelay time.Duration
	// AckWait is how long a delivery may stay unacked before redelivery (default 30s).
	AckWait time.Duration
	// Concurrency is how many events are handled at once (default 1: in stream order). For
	// [Bus.ConsumeBatch] it is how many batches are handled at once, each from its own partition
	// of the events (see PartitionKey).
	Concurrency int
	// PartitionKey, for [Bus.ConsumeBatch] with Concurrency > 1, names the partition of an event:
	// events of one partition are handled by one worker, in delivery order, so only events of
	// different partitions are handled concurrently. Nil partitions by CloudEvent subject.
	PartitionKey func(Event) string

	maxAckPending int // set by ConsumeBatch: at least what its workers may hold
}

func (c *ConsumerConfig) defaults() {
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 10
	}
	if c.NakDelay == 0 {
		c.NakDelay = time.Second
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
}

// DeadLetter is the data of a dead-letter event.
type DeadLetter struct {
	// Reason says why the event was refused.
	Reason string `json:"reason"`
	// Consumer is the durable that refused it; Stream its stream; Deliveries how often it was tried.
	Consumer   string `json:"consumer"`
	Stream     string `json:"stream"`
	Deliveries uint64 `json:"deliveries"`
	// Subject is the original subject.
	Subject string `json:"subject"`
	// Event is the original event when it could be decoded.
	Event *Event `json:"event,omitempty"`
	// Headers and DataBase64 carry the raw message when it could not be decoded as a CloudEvent.
	Headers    map[string][]string `json:"headers,omitempty"`
	DataBase64 string              `json:"data_base64,omitempty"`
}

// Subscription is a running consumer; Stop ends delivery after in-flight handlers return.
type Subscription struct {
	cc   jetstream.ConsumeContext
	wg   *sync.WaitGroup
	stop context.CancelFunc
}

// Stop stops fetching and waits for the handlers in flight.
func (s *Subscription) Stop() {
	s.cc.Stop()
	s.stop()
	s.wg.Wait()
}

// Consume creates (or updates) the durable pull consumer cfg and calls h for each event with explicit
// acks: Ack on nil, Term plus a dead letter on a [Permanent] error, a malformed CloudEvent or the last
// allowed delivery, NakWithDelay otherwise.
func (b *Bus) Consume(ctx context.Context, cfg ConsumerConfig, h Handler) (*Subscription, error) {
	cons, err := b.durable(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	sem := make(chan struct{}, cfg.Concurrency)
	wg := &sync.WaitGroup{}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			b.handle(hctx, cfg, m, h)
		}()
	}, jetstream.PullMaxMessages(max(64, cfg.Concurrency*2)))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("events: consume %s: %w", cfg.Durable, err)
	}
	return &Subscription{cc: cc, wg: wg, stop: cancel}, nil
}

// durable applies cfg's defaults and creates (or updates) its durable pull consumer.
func (b *Bus) durable(ctx context.Context, cfg *ConsumerConfig) (jetstream.Consumer, error) {
	cfg.defaults()
	if cfg.Stream == "" || cfg.Durable == "" {
		return nil, fmt.Errorf("events: consumer needs Stream and Durable")
	}
	ccfg := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxDeliver:    cfg.MaxDeliver,
		AckWait:       cfg.AckWait,
		MaxAckPending: max(1000, cfg.Concurrency*4),
	}
	if len(cfg.FilterSubjects) == 1 {
		ccfg.FilterSubject = cfg.FilterSubjects[0]
	} else {
		ccfg.FilterSubjects = cfg.FilterSubjects
	}
	if cfg.maxAckPending > ccfg.MaxAckPending {
		ccfg.MaxAckPending = cfg.maxAckPending
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, cfg.Stream, ccfg)
	if err != nil {
		return nil, fmt.Errorf("events: consumer %s on %s: %w", cfg.Durable, cfg.Stream, err)
	}
	return cons, nil
}

func (b *Bus) handle(ctx context.Context, cfg ConsumerConfig, m jetstream.Msg, h Handler) {
	var deliveries uint64 = 1
	if md, err := m.Metadata(); err == nil {
		deliveries = md.NumDelivered
	}
	ev, err := Decode(ctx, m.Headers(), m.Data())
	if err != nil {
		b.deadLetter(ctx, cfg, m, nil, deliveries, fmt.Sprintf("malformed CloudEvent: %v", err))
		return
	}
	b.settle(ctx, cfg, m, ev, deliveries, safeHandle(ctx, h, ev))
}

// settle acknowledges m by the handler's result herr: Ack on nil, a dead letter on a
// [Permanent] error or the last allowed delivery, NakWithDelay otherwise.
func (b *Bus) settle(ctx context.Context, cfg ConsumerConfig, m jetstream.Msg, ev Event, deliveries uint64, herr error) {
	switch {
	case herr == nil:
		if err := m.Ack(); err != nil {
			b.log.WarnContext(ctx, "ack failed", "event_id", ev.ID(), "err", err)
		}
	case IsPermanent(herr):
		b.deadLetter(ctx, cfg, m, &ev, deliveries, herr.Error())
	case deliveries >= uint64(cfg.MaxDeliver):
		b.deadLetter(ctx, cfg, m, &ev, deliveries, fmt.Sprintf("gave up after %d deliveries: %v", deliveries, herr))
	default:
		b.log.WarnContext(ctx, "event handler failed, will retry", "consumer", cfg.Durable,
			"event_type", ev.Type(), "event_id", ev.ID(), "deliveries", deliveries, "err", herr)
		if err := m.NakWithDelay(cfg.NakDelay); err != nil {
			b.log.WarnContext(ctx, "nak failed", "event_id", ev.ID(), "err", err)
		}
	}
}

func safeHandle(ctx context.Context, h Handler, ev Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Permanent(fmt.Errorf("handler panic: %v", r))
		}
	}()
	return h(ctx, ev)
}

// deadLetter publishes the dead letter first and terminates the message only once it is stored, so the
// event is never lost: if the dead letter cannot be written the message is redelivered.
func (b *Bus) deadLetter(ctx context.Context, cfg ConsumerConfig, m jetstream.Msg, ev *Event, deliveries uint64, reason string) {
	dl := DeadLetter{Reason: reason, Consumer: cfg.Durable, Stream: cfg.Stream, Deliveries: deliveries, Subject: m.Subject(), Event: ev}
	if ev == nil {
		dl.Headers = map[string][]string(m.Headers())
		dl.DataBase64 = base64.StdEncoding.EncodeToString(m.Data())
	}
	subject := "deadletter/" + m.Subject()
	if ev != nil {
		subject = "deadletter/" + ev.ID()
	}
	out, err := New("/sluice/"+cfg.Durable, DeadLetterV1, subject, dl)
	if err != nil && ev != nil {
		// The event itself cannot be re-encoded (e.g. its JSON data is invalid): carry it raw.
		dl.Event, dl.Headers, dl.DataBase64 = nil, map[string][]string(m.Headers()), base64.StdEncoding.EncodeToString(m.Data())
		out, err = New("/sluice/"+cfg.Durable, DeadLetterV1, subject, dl)
	}
	if err == nil {
		err = b.PublishOn(ctx, DeadLetterPrefix+m.Subject(), out)
	}
	if err != nil {
		b.log.ErrorContext(ctx, "dead letter not stored, event will be redelivered", "consumer", cfg.Durable, "subject", m.Subject(), "err", err)
		_ = m.NakWithDelay(cfg.NakDelay)
		return
	}
	b.log.WarnContext(ctx, "event dead-lettered", "consumer", cfg.Durable, "subject", m.Subject(), "reason", reason)
	if err := m.Term(); err != nil {
		b.log.WarnContext(ctx, "term failed", "subject", m.Subject(), "err", err)
	}
}
