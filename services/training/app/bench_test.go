package app_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

const benchJob = `apiVersion: kubeflow.org/v1
kind: TFJob
metadata: {name: %s, namespace: %s}
spec:
  runPolicy: {cleanPodPolicy: All}
  tfReplicaSpecs:
    Chief: {replicas: 1, template: {spec: {containers: [{name: tensorflow, image: busybox, command: [sleep, "60"]}]}}}
    PS: {replicas: 1, template: {spec: {containers: [{name: tensorflow, image: busybox, command: [sleep, "60"]}]}}}
    Worker: {replicas: 2, template: {spec: {containers: [{name: tensorflow, image: busybox, command: [sleep, "60"]}]}}}
`

// BenchmarkEventToAllReplicasRunning measures, for a 4-replica TFJob (chief,
// PS, 2 workers), the time from publishing io.sluice.training.job.requested.v1
// to the moment the last replica's process is running (the watcher's start
// time, reported to the workflow), through the consumer, the workflow and
// the local runtime. Reports p50 and p99 in ms.
func BenchmarkEventToAllReplicasRunning(b *testing.B) {
	e := newBenchEnv(b)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := -1; i < b.N; i++ { // i = -1 warms the consumer and worker up, unmeasured
		name := fmt.Sprintf("bench-%d", i+1)
		ev := cloudevents.NewEvent()
		ev.SetID(uuid.NewString())
		ev.SetSource("/bench")
		ev.SetType(events.TrainingJobRequestedV1)
		if err := ev.SetData("application/yaml", []byte(fmt.Sprintf(benchJob, name, e.ns))); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := e.deps.Bus.Publish(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
		var last time.Time
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("job %s: replicas not all running", name)
			}
			var v trainingv1.JobView
			if e.get(name, &v) != http.StatusOK {
				continue
			}
			running := 0
			for _, r := range v.Replicas {
				if r.State == trainingv1.ReplicaRunning && r.StartedAt != nil {
					running++
					if r.StartedAt.After(last) {
						last = *r.StartedAt
					}
				}
			}
			if running == 4 {
				break
			}
		}
		if i >= 0 {
			lat = append(lat, last.Sub(t0))
		}
		if testing.Verbose() {
			d, err := e.deps.Temporal.DescribeWorkflowExecution(context.Background(), trainingv1.WorkflowID(e.ns, name), "")
			if err == nil {
				b.Logf("%s: workflow started +%v, all running +%v", name, d.WorkflowExecutionInfo.StartTime.AsTime().Sub(t0), last.Sub(t0))
			}
		}
		b.StopTimer()
		_ = e.deps.Temporal.SignalWorkflow(context.Background(), trainingv1.WorkflowID(e.ns, name), "", trainingv1.SignalDelete, nil)
		b.StartTimer()
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
