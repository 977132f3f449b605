// Package jobevents follows the training service's job events (stream SLUICE_TRAINING) for the tuning
// service: one ordered JetStream consumer per service process, fanned out in process to the trials
// that watch their job. A trial learns its job's state from these events (created, running,
// succeeded, failed, deleted, and rejected for its own request) instead of polling the training API.
//
// The consumer delivers new events only: an event stored before a trial started watching (a retried
// activity whose job already finished) is not replayed, so a watcher reads the job once through the
// training API after it starts watching (see the experiments package). The ordered consumer resumes
// after the last event it delivered when it is reset (NATS reconnect), so nothing is skipped while the
// process runs.
package jobevents

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// Watcher fans the training job events out to the watches open on them.
type Watcher struct {
	cc jetstream.ConsumeContext

	mu        sync.Mutex
	bySubject map[string]map[*Watch]struct{}
	byRequest map[string]map[*Watch]struct{}
}

// subjects are the NATS subjects followed: every job transition and rejection.
var subjects = []string{"sluice.training.job.>"}

// Start creates the ordered consumer (new events only) on bus and returns the running Watcher; Stop ends it.
func Start(ctx context.Context, bus *events.Bus) (*Watcher, error) {
	w := &Watcher{bySubject: map[string]map[*Watch]struct{}{}, byRequest: map[string]map[*Watch]struct{}{}}
	cons, err := bus.JetStream().OrderedConsumer(ctx, events.StreamTraining, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return nil, fmt.Errorf("jobevents: consumer on %s: %w", events.StreamTraining, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		ev, err := events.Decode(context.Background(), m.Headers(), m.Data())
		if err != nil || ev.Type() == events.TrainingJobRequestedV1 {
			return
		}
		w.dispatch(ev)
	})
	if err != nil {
		return nil, fmt.Errorf("jobevents: consume %s: %w", events.StreamTraining, err)
	}
	w.cc = cc
	return w, nil
}

// Stop ends the consumer; open watches receive nothing more.
func (w *Watcher) Stop() {
	if w != nil && w.cc != nil {
		w.cc.Stop()
	}
}

func (w *Watcher) dispatch(ev events.Event) {
	w.mu.Lock()
	targets := make([]*Watch, 0, 2)
	for x := range w.bySubject[ev.Subject()] {
		targets = append(targets, x)
	}
	if ev.Type() == events.TrainingJobRejectedV1 {
		var r trainingv1.Rejected
		if ev.DataAs(&r) == nil {
			for x := range w.byRequest[r.RequestID] {
				if _, dup := w.bySubject[ev.Subject()][x]; !dup {
					targets = append(targets, x)
				}
			}
		}
	}
	w.mu.Unlock()
	for _, x := range targets {
		x.push(ev)
	}
}

// Watch opens a watch on the events of the job whose CloudEvents subject is subject
// (trainingv1.EventSubject) and on the rejection of the request requestID (a job.requested CE id;
// "" for none). Close it when done.
func (w *Watcher) Watch(subject, requestID string) *Watch {
	x := &Watch{w: w, subject: subject, requestID: requestID, ready: make(chan struct{}, 1)}
	w.mu.Lock()
	defer w.mu.Unlock()
	add := func(m map[string]map[*Watch]struct{}, k string) {
		if m[k] == nil {
			m[k] = map[*Watch]struct{}{}
		}
		m[k][x] = struct{}{}
	}
	add(w.bySubject, subject)
	if requestID != "" {
		add(w.byRequest, requestID)
	}
	return x
}

// Watch receives the events of one job, in stream order, without ever blocking the consumer.
type Watch struct {
	w                  *Watcher
	subject, requestID string

	mu    sync.Mutex
	queue []events.Event
	ready chan struct{}
}

func (x *Watch) push(ev events.Event) {
	x.mu.Lock()
	x.queue = append(x.queue, ev)
	x.mu.Unlock()
	select {
	case x.ready <- struct{}{}:
	default:
	}
}

// Ready is signalled when events are queued; drain them with Take.
func (x *Watch) Ready() <-chan struct{} { return x.ready }

// Take returns the queued events (oldest first) and empties the queue.
func (x *Watch) Take() []events.Event {
	x.mu.Lock()
	defer x.mu.Unlock()
	q := x.queue
	x.queue = nil
	return q
}

// Close ends the watch.
func (x *Watch) Close() {
	w := x.w
	w.mu.Lock()
	defer w.mu.Unlock()
	remove := func(m map[string]map[*Watch]struct{}, k string) {
		delete(m[k], x)
		if len(m[k]) == 0 {
			delete(m, k)
		}
	}
	remove(w.bySubject, x.subject)
	if x.requestID != "" {
		remove(w.byRequest, x.requestID)
	}
}
