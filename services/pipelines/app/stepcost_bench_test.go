package app_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
)

// BenchmarkStepCost splits the per-step time of a linear pipeline of no-op steps, run by the service
// (its own worker options) from a published event, into what the run's workflow history shows:
//
//   - in-step-ms/step: ActivityTaskStarted -> ActivityTaskCompleted of the step activities (RunStep /
//     RunSteps): Sluice's own work per step — work dir, process start and wait, log upload to S3 with its
//     digest, task events published and acknowledged;
//   - orchestration-ms/step: the rest of the run's wall time per step — Temporal round trips for the step
//     activity and for the workflow's other activities (activities/step counts every activity the run's
//     workflows scheduled, per step), and workflow-task processing.
func BenchmarkStepCost(b *testing.B) {
	const n = 50
	d, _ := newService(b)
	var spec strings.Builder
	spec.WriteString("apiVersion: sluice.io/v1\nkind: Pipeline\nmetadata: {name: stepcost}\nspec:\n  tasks:\n")
	for i := range n {
		fmt.Fprintf(&spec, "    s%d:\n      image: alpine\n      command: [\"true\"]\n", i)
		if i > 0 {
			fmt.Fprintf(&spec, "      dependsOn: [s%d]\n", i-1)
		}
	}
	done := map[string]time.Time{}
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = d.Bus.Tail(ctx, "io.sluice.pipeline.run.*", true, func(r events.Received) {
			var re pipelinesv1.RunEvent
			if r.Err == nil && r.Event.DataAs(&re) == nil && (r.Event.Type() == events.PipelineRunSucceededV1 || r.Event.Type() == events.PipelineRunFailedV1) {
				mu.Lock()
				done[re.RunID] = r.Stored
				mu.Unlock()
			}
		})
	}()
	var wall, inStep time.Duration
	var activities int
	for i := 0; i < b.N; i++ {
		ev, err := events.New("/bench", events.PipelineRunRequestedV1, "", pipelinesv1.RunRequest{Spec: spec.String(), DisableCache: true})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := d.Bus.Publish(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Minute)
		for {
			mu.Lock()
			at, ok := done[ev.ID()]
			mu.Unlock()
			if ok {
				wall += at.Sub(t0)
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("run %s did not finish", ev.ID())
			}
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		in, acts := stepActivityTime(b, d.Temporal, ev.ID())
		inStep += in
		activities += acts
		b.StartTimer()
	}
	per := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 / float64(b.N*n) }
	b.ReportMetric(per(wall), "ms/step")
	b.ReportMetric(per(inStep), "in-step-ms/step")
	b.ReportMetric(per(wall-inStep), "orchestration-ms/step")
	b.ReportMetric(float64(activities)/float64(b.N*n), "activities/step")
}

// stepActivityTime sums Started->Completed of the step activities (RunStep, RunSteps) in the run's
// history and counts every activity the run workflow scheduled.
func stepActivityTime(b *testing.B, c client.Client, id string) (time.Duration, int) {
	it := c.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	typeOf := map[int64]string{}       // scheduled event id -> activity type
	startedAt := map[int64]time.Time{} // scheduled event id -> started time
	var total time.Duration
	var n int
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			b.Fatal(err)
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			typeOf[ev.GetEventId()] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			n++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			startedAt[ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId()] = ev.GetEventTime().AsTime()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			sid := ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
			if t := typeOf[sid]; t == "RunStep" || t == "RunSteps" {
				total += ev.GetEventTime().AsTime().Sub(startedAt[sid])
			}
		}
	}
	return total, n
}
