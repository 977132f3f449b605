package events

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Received is an event read by [Bus.Tail], with where it was stored.
type Received struct {
	Stream   string
	Subject  string
	Sequence uint64
	Stored   time.Time
	Event    Event
	// Err is set when the message is not a valid CloudEvent (Event is then zero).
	Err error
}

// Tail follows every stream with ordered ephemeral consumers and calls fn for each event whose type matches
// the glob typeGlob (path.Match syntax, e.g. "io.sluice.pipeline.*"; "" matches all). With all=true it first
// replays what the streams hold, else it starts with new events. Tail returns when ctx ends.
func (b *Bus) Tail(ctx context.Context, typeGlob string, all bool, fn func(Received)) error {
	if typeGlob != "" {
		if _, err := path.Match(typeGlob, ""); err != nil {
			return fmt.Errorf("events: bad type glob %q: %w", typeGlob, err)
		}
	}
	out := make(chan Received, 256)
	var stops []jetstream.ConsumeContext
	defer func() {
		for _, s := range stops {
			s.Stop()
		}
	}()
	for _, s := range Streams {
		policy := jetstream.DeliverNewPolicy
		if all {
			policy = jetstream.DeliverAllPolicy
		}
		cons, err := b.js.OrderedConsumer(ctx, s.Name, jetstream.OrderedConsumerConfig{DeliverPolicy: policy})
		if err != nil {
			return fmt.Errorf("events: tail %s: %w", s.Name, err)
		}
		stream := s.Name
		cc, err := cons.Consume(func(m jetstream.Msg) {
			r := Received{Stream: stream, Subject: m.Subject()}
			if md, err := m.Metadata(); err == nil {
				r.Sequence, r.Stored = md.Sequence.Stream, md.Timestamp
			}
			r.Event, r.Err = Decode(ctx, m.Headers(), m.Data())
			select {
			case out <- r:
			case <-ctx.Done():
			}
		})
		if err != nil {
			return fmt.Errorf("events: tail %s: %w", s.Name, err)
		}
		stops = append(stops, cc)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-out:
			if typeGlob != "" && r.Err == nil {
				if ok, _ := path.Match(typeGlob, r.Event.Type()); !ok {
					continue
				}
			}
			fn(r)
		}
	}
}
