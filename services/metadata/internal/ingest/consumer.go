package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
)

// Consumer applies bus events to an mlmd.Ingester.
type Consumer struct {
	repo mlmd.Ingester
	log  *slog.Logger
}

// New returns a Consumer writing to repo; log may be nil.
func New(repo mlmd.Ingester, log *slog.Logger) *Consumer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Consumer{repo: repo, log: log}
}

// Handle is the events.Handler of every ingest consumer: nil once the event is recorded (or
// was already), events.Permanent for an event that can never be recorded (malformed data, a
// record the store refuses), and the store's error otherwise so the bus redelivers it.
func (c *Consumer) Handle(ctx context.Context, ev events.Event) error {
	req, ok, err := Record(ev)
	if err != nil {
		return events.Permanent(fmt.Errorf("%s %s: %w", ev.Type(), ev.ID(), err))
	}
	if !ok {
		return nil
	}
	res, err := c.repo.Ingest(ctx, req)
	switch {
	case errors.Is(err, mlmd.ErrInvalidArgument), errors.Is(err, mlmd.ErrAlreadyExists):
		return events.Permanent(fmt.Errorf("%s %s: %w", ev.Type(), ev.ID(), err))
	case err != nil:
		return fmt.Errorf("%s %s: %w", ev.Type(), ev.ID(), err)
	}
	if res.Applied {
		c.log.DebugContext(ctx, "event recorded", "event_type", ev.Type(), "event_id", ev.ID(), "execution_id", res.ExecutionID, "artifacts", len(res.ArtifactIDs))
	}
	return nil
}

// Consumers returns the durable consumers of the ingest, one per stream, named
// "<prefix>-pipeline", "<prefix>-training" and "<prefix>-serving" (the service uses prefix
// "metadata"), each filtered to the event types Record maps.
func Consumers(prefix string) []events.ConsumerConfig {
	types := Types()
	var out []events.ConsumerConfig
	for _, s := range []struct{ stream, suffix string }{
		{events.StreamPipeline, "pipeline"},
		{events.StreamTraining, "training"},
		{events.StreamServing, "serving"},
	} {
		cfg := events.ConsumerConfig{Stream: s.stream, Durable: prefix + "-" + s.suffix}
		for _, t := range types[s.stream] {
			cfg.FilterSubjects = append(cfg.FilterSubjects, events.SubjectFor(t))
		}
		out = append(out, cfg)
	}
	return out
}

// Start runs the consumers of Consumers(prefix) on bus until the returned subscriptions are
// stopped. On error the consumers already started are stopped.
func (c *Consumer) Start(ctx context.Context, bus *events.Bus, prefix string) ([]*events.Subscription, error) {
	var subs []*events.Subscription
	for _, cfg := range Consumers(prefix) {
		sub, err := bus.Consume(ctx, cfg, c.Handle)
		if err != nil {
			for _, s := range subs {
				s.Stop()
			}
			return nil, fmt.Errorf("metadata ingest: %w", err)
		}
		subs = append(subs, sub)
	}
	return subs, nil
}
