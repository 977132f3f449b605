package events

import (
	"context"
	"fmt"
	"hash/fnv"
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
// pulled ahead and handed to h in batches of up to maxBatch: a batch is whatever has arrived
// when h is free (at least one event), so an idle consumer adds no delay and a busy one gets
// larger batches. With cfg.Concurrency n > 1, n batches are handled at once: every event goes
// to the worker of its partition (cfg.PartitionKey, by default its CloudEvent subject), so the
// events of one partition are handled one batch at a time in delivery order, and only events
// of different partitions concurrently (a worker whose queue is full holds up the delivery to
// the others until it takes its next batch). Each event is settled as Consume settles it, only
// after h returns, so an event is acknowledged only once the batch holding it is stored.
func (b *Bus) ConsumeBatch(ctx context.Context, cfg ConsumerConfig, maxBatch int, h BatchHandler) (*Subscription, error) {
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	workers := max(1, cfg.Concurrency)
	key := cfg.PartitionKey
	if key == nil {
		key = Event.Subject
	}
	// Pulled ahead: enough for every worker's next batch and one more, so a worker that finishes
	// finds its next batch waiting. Unacknowledged at most: what was pulled, what waits in the
	// workers' queues and what they handle.
	pull := max(64, (workers+1)*maxBatch)
	cfg.maxAckPending = pull + 2*workers*maxBatch
	cons, err := b.durable(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	queues := make([]chan delivery, workers)
	for i := range queues {
		queues[i] = make(chan delivery, maxBatch)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		d := delivery{m: m, n: 1}
		if md, err := m.Metadata(); err == nil {
			d.n = md.NumDelivered
		}
		ev, err := Decode(hctx, m.Headers(), m.Data())
		if err != nil {
			b.deadLetter(hctx, cfg, m, nil, d.n, fmt.Sprintf("malformed CloudEvent: %v", err))
			return
		}
		d.ev = ev
		q := queues[0]
		if workers > 1 {
			f := fnv.New32a()
			_, _ = f.Write([]byte(key(ev)))
			q = queues[f.Sum32()%uint32(workers)]
		}
		select {
		case q <- d:
		case <-hctx.Done(): // stopping: handed back at once rather than after AckWait
			_ = m.Nak()
		}
	}, jetstream.PullMaxMessages(pull))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("events: consume %s: %w", cfg.Durable, err)
	}
	wg := &sync.WaitGroup{}
	for _, q := range queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var batch []delivery
				select {
				case d := <-q:
					batch = append(batch, d)
				case <-hctx.Done():
					// Stopping: what was pulled but not handled is handed back at once rather than after AckWait.
					for {
						select {
						case d := <-q:
							_ = d.m.Nak()
						default:
							return
						}
					}
				}
			fill:
				for len(batch) < maxBatch {
					select {
					case d := <-q:
						batch = append(batch, d)
					default:
						break fill
					}
				}
				b.handleBatch(hctx, cfg, batch, h)
			}
		}()
	}
	return &Subscription{cc: cc, wg: wg, stop: cancel}, nil
}

// delivery is a pulled message with its decoded event and delivery count.
type delivery struct {
	m  jetstream.Msg
	ev Event
	n  uint64
}

func (b *Bus) handleBatch(ctx context.Context, cfg ConsumerConfig, batch []delivery, h BatchHandler) {
	evs := make([]Event, len(batch))
	for i, d := range batch {
		evs[i] = d.ev
	}
	errs := safeHandleBatch(ctx, h, evs)
	for i, d := range batch {
		b.settle(ctx, cfg, d.m, d.ev, d.n, errs[i])
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
