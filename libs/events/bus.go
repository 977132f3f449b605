package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DuplicateWindow is how long a stream remembers message ids (Nats-Msg-Id = [MsgID]: the CE source and id)
// to drop re-publishes.
const DuplicateWindow = 10 * time.Minute

// Bus publishes and consumes Sluice events on NATS JetStream.
type Bus struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	log   *slog.Logger
	owned bool
}

// Connect dials NATS at url (e.g. "nats://127.0.0.1:4222") and returns a Bus that owns the connection.
// The client reconnects forever.
func Connect(ctx context.Context, url, name string, log *slog.Logger) (*Bus, error) {
	nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false))
	if err != nil {
		return nil, fmt.Errorf("events: connect %s: %w", url, err)
	}
	b, err := NewBus(nc, log)
	if err != nil {
		nc.Close()
		return nil, err
	}
	b.owned = true
	return b, nil
}

// NewBus wraps an existing connection; Close then leaves the connection open.
func NewBus(nc *nats.Conn, log *slog.Logger) (*Bus, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		return nil, fmt.Errorf("events: jetstream: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bus{nc: nc, js: js, log: log}, nil
}

// Conn returns the NATS connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream returns the JetStream context.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Close drains and closes the connection when the Bus owns it.
func (b *Bus) Close() {
	if b.owned {
		_ = b.nc.Drain()
	}
}

// EnsureStreams creates or updates every stream in [Streams] (file storage, DuplicateWindow). It is
// idempotent: run it at every start-up.
func (b *Bus) EnsureStreams(ctx context.Context) error {
	for _, s := range Streams {
		cfg := jetstream.StreamConfig{
			Name:       s.Name,
			Subjects:   s.Subjects,
			Storage:    jetstream.FileStorage,
			Retention:  jetstream.LimitsPolicy,
			Duplicates: DuplicateWindow,
			MaxAge:     30 * 24 * time.Hour,
		}
		if _, err := b.js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("events: ensure stream %s: %w", s.Name, err)
		}
	}
	return nil
}

// MsgID is the JetStream message id of ev: its identity as CloudEvents 1.0 defines it, source and id
// (length-prefixed so no two pairs collide). Two events with the same id from different sources are both kept.
func MsgID(ev Event) string {
	return fmt.Sprintf("%d:%s%s", len(ev.Source()), ev.Source(), ev.ID())
}

// Publish writes ev durably on SubjectFor(ev.Type()) and waits for the stream's ack. The message id is
// [MsgID] (source + id), so a re-publish within DuplicateWindow is dropped by the server and reported here
// as success.
func (b *Bus) Publish(ctx context.Context, ev Event) error {
	return b.PublishOn(ctx, SubjectFor(ev.Type()), ev)
}

// PublishOn is [Bus.Publish] on an explicit subject (dead letters use it).
func (b *Bus) PublishOn(ctx context.Context, subj string, ev Event) error {
	msg, err := Encode(ctx, &ev, subj)
	if err != nil {
		return err
	}
	ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(MsgID(ev)))
	if err != nil {
		return fmt.Errorf("events: publish %s %s: %w", ev.Type(), ev.ID(), err)
	}
	if ack.Duplicate {
		b.log.DebugContext(ctx, "duplicate event dropped by stream", "event_type", ev.Type(), "event_id", ev.ID())
	}
	return nil
}

// PublishAll publishes a burst of events asynchronously and waits until every one is acked (duplicates
// count as acked). It returns the joined errors of the events that failed.
func (b *Bus) PublishAll(ctx context.Context, evs []Event) error {
	futures := make([]jetstream.PubAckFuture, 0, len(evs))
	var errs []error
	for i := range evs {
		msg, err := Encode(ctx, &evs[i], SubjectFor(evs[i].Type()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f, err := b.js.PublishMsgAsync(msg, jetstream.WithMsgID(MsgID(evs[i])))
		if err != nil {
			errs = append(errs, fmt.Errorf("events: publish %s: %w", evs[i].ID(), err))
			continue
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, fmt.Errorf("events: publish %s: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err))
		case <-ctx.Done():
			return errors.Join(append(errs, ctx.Err())...)
		}
	}
	return errors.Join(errs...)
}

// PublishAsync starts publishing ev and returns at once; the returned wait reports the stream's ack
// (duplicates count as acked). Call wait before relying on the event being stored.
func (b *Bus) PublishAsync(ctx context.Context, ev Event) (wait func(context.Context) error) {
	msg, err := Encode(ctx, &ev, SubjectFor(ev.Type()))
	if err != nil {
		return func(context.Context) error { return err }
	}
	f, err := b.js.PublishMsgAsync(msg, jetstream.WithMsgID(MsgID(ev)))
	if err != nil {
		return func(context.Context) error { return fmt.Errorf("events: publish %s: %w", ev.ID(), err) }
	}
	return func(ctx context.Context) error {
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return fmt.Errorf("events: publish %s %s: %w", ev.Type(), ev.ID(), err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
