package events

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// BatchHandler processes the events of one batch and returns one error per event, in order,
// each meaning what a [Handler]'s error means (nil acks, [Permanent] dead-letters, anything else
// redelivers). Handlers must be idempotent by ev.ID(): JetStream delivers at least once, and a
// redelivered event may share a batch with its first delivery.
type BatchHandler func(ctx context.Context, evs []Event) []error

// DefaultMaxBatch is ConsumeBatch's batch size when maxBatch is 0.
const DefaultMaxBatch = 256

// ConsumeBatch is [Bus.Consume] for handlers that write many events at once. Messages are
// pulled ahead (twice maxBatch) and handed to h in batches of up to maxBatch: a batch is
// whatever has arrived when h is free (at least one event), so an idle consumer adds no
// delay and a busy one gets larger batches. Batches of one subscription are handled one at a
// time (cfg.Concurrency is not used); each event is settled as Consume settles it, only after h
// returns, so an event is acknowledged only once the batch holding it is stored.
func (b *Bus) ConsumeBatch(ctx context.Context, cfg ConsumerConfig, maxBatch int, h BatchHandler) (*Subscription, error) {
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	cons, err := b.durable(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ch := make(chan jetstream.Msg, maxBatch)
	wg := &sync.WaitGroup{}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case ch <- m:
		case <-hctx.Done(): // stopping: the message is redelivered after AckWait
		}
	}, jetstream.PullMaxMessages(max(64, 2*maxBatch)))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("events: consume %s: %w", cfg.Durable, err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			var batch []jetstream.Msg
			select {
			case m := <-ch:
				batch = append(batch, m)
			case <-hctx.Done():
				// Stopping: what was pulled but not handled is handed back at once rather than after AckWait.
				for {
					select {
					case m := <-ch:
						_ = m.Nak()
					default:
						return
					}
				}
			}
		fill:
			for len(batch) < maxBatch {
				select {
				case m := <-ch:
					batch = append(batch, m)
				default:
					break fill
				}
			}
			b.handleBatch(hctx, cfg, batch, h)
		}
	}()
	return &Subscription{cc: cc, wg: wg, stop: cancel}, nil
}

func (b *Bus) handleBatch(ctx context.Context, cfg ConsumerConfig, batch []jetstream.Msg, h BatchHandler) {
	evs := make([]Event, 0, len(batch))
	msgs := make([]jetstream.Msg, 0, len(batch))
	deliveries := make([]uint64, 0, len(batch))
	for _, m := range batch {
		var n uint64 = 1
		if md, err := m.Metadata(); err == nil {
			n = md.NumDelivered
		}
		ev, err := Decode(ctx, m.Headers(), m.Data())
		if err != nil {
			b.deadLetter(ctx, cfg, m, nil, n, fmt.Sprintf("malformed CloudEvent: %v", err))
			continue
		}
		evs, msgs, deliveries = append(evs, ev), append(msgs, m), append(deliveries, n)
	}
	if len(evs) == 0 {
		return
	}
	errs := safeHandleBatch(ctx, h, evs)
	for i, m := range msgs {
		b.settle(ctx, cfg, m, evs[i], deliveries[i], errs[i])
	}
}

// safeHandleBatch calls h; a panic, or a result of the wrong length, fails every event of the
// batch with a transient error, so each is redelivered (and dead-lettered after MaxDeliver).
func safeHandleBatch(ctx context.Context, h BatchHandler, evs []Event) (errs []error) {
	defer func() {
		if r := recover(); r != nil {
			errs = failAll(len(evs), fmt.Errorf("batch handler panic: %v", r))
		}
	}()
	errs = h(ctx, evs)
	if len(errs) != len(evs) {
		return failAll(len(evs), fmt.Errorf("batch handler returned %d results for %d events", len(errs), len(evs)))
	}
	return errs
}

func failAll(n int, err error) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}
