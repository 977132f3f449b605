package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
)

// Consumer applies bus events to an mlmd.Ingester.
type Consumer struct {
	// MaxBatch bounds the events written per transaction (0: events.DefaultMaxBatch; 1 writes
	// one transaction per event).
	MaxBatch int
	// Concurrency is how many batches each consumer writes at once (0: DefaultConcurrency; 1
	// writes one at a time in stream order). Events are partitioned by PartitionKey: the events
	// of one run (or job, or deployment) are written one batch at a time, in delivery order.
	Concurrency int

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

// HandleBatch is the events.BatchHandler of every ingest consumer: the events' records are
// written in one transaction (mlmd.Ingester.IngestBatch) and each event gets the error Handle
// would give it. When the batch transaction fails (a record the store refuses, a lost
// connection), the events are applied one by one with Handle instead, so one poison event is
// dead-lettered with its reason and the others are still recorded.
func (c *Consumer) HandleBatch(ctx context.Context, evs []events.Event) []error {
	errs := make([]error, len(evs))
	reqs := make([]mlmd.IngestRequest, 0, len(evs))
	idx := make([]int, 0, len(evs))
	for i, ev := range evs {
		req, ok, err := Record(ev)
		switch {
		case err != nil:
			errs[i] = events.Permanent(fmt.Errorf("%s %s: %w", ev.Type(), ev.ID(), err))
		case ok:
			reqs, idx = append(reqs, req), append(idx, i)
		}
	}
	if len(reqs) == 0 {
		return errs
	}
	res, rerrs, err := c.repo.IngestBatch(ctx, reqs)
	if err != nil {
		c.log.WarnContext(ctx, "batch not recorded, recording its events one by one", "events", len(reqs), "err", err)
		for _, i := range idx {
			errs[i] = c.Handle(ctx, evs[i])
		}
		return errs
	}
	applied := 0
	for j, i := range idx {
		if rerrs[j] != nil {
			errs[i] = events.Permanent(fmt.Errorf("%s %s: %w", evs[i].Type(), evs[i].ID(), rerrs[j]))
			continue
		}
		if res[j].Applied {
			applied++
		}
	}
	c.log.DebugContext(ctx, "batch recorded", "events", len(evs), "applied", applied)
	return errs
}

// DefaultConcurrency is the batches a Consumer writes at once by default: enough to keep the
// store busy while a batch is decoded, waits for its commit or is acknowledged.
const DefaultConcurrency = 4

// PartitionKey is the partition of an event for concurrent batches: "runs/<id>" for the events
// of a pipeline run and its tasks (subjects runs/<id> and runs/<id>/tasks/<path>), the
// CloudEvent subject otherwise (a training job, a deployment). Events recording the same nodes
// (a run's contexts, a task's execution, the artifacts a run's tasks pass on) thus stay in
// order. Events of different partitions that share a node (a pipeline context, an artifact
// read by several runs) are applied in the order their batches commit, as between replicas of
// the service; the store's row locks serialise the writes to such a node.
func PartitionKey(ev events.Event) string {
	s := ev.Subject()
	if rest, ok := strings.CutPrefix(s, "runs/"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			return s[:len("runs/")+i]
		}
	}
	return s
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

// Start runs the consumers of Consumers(prefix) on bus, in batches (HandleBatch), c.Concurrency
// batches at once per consumer, partitioned by PartitionKey, until the returned subscriptions
// are stopped. On error the consumers already started are stopped.
func (c *Consumer) Start(ctx context.Context, bus *events.Bus, prefix string) ([]*events.Subscription, error) {
	var subs []*events.Subscription
	for _, cfg := range Consumers(prefix) {
		cfg.Concurrency, cfg.PartitionKey = c.Concurrency, PartitionKey
		if cfg.Concurrency == 0 {
			cfg.Concurrency = DefaultConcurrency
		}
		sub, err := bus.ConsumeBatch(ctx, cfg, c.MaxBatch, c.HandleBatch)
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
