package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
)

// layeredSpec is a DAG (no loop) of layers×width no-op steps: every step of layer k > 0 depends on two
// steps of layer k-1 (same column and the next one), so each layer starts as its upstream steps end.
func layeredSpec(layers, width int) string {
	var b strings.Builder
	b.WriteString("apiVersion: sluice.io/v1\nkind: Pipeline\nmetadata: {name: layered}\nspec:\n  tasks:\n")
	for k := 0; k < layers; k++ {
		for i := 0; i < width; i++ {
			fmt.Fprintf(&b, "    l%d-s%d:\n      image: alpine\n      command: [\"true\"]\n", k, i)
			if k > 0 {
				fmt.Fprintf(&b, "      dependsOn: [l%d-s%d, l%d-s%d]\n", k-1, i, k-1, (i+1)%width)
			}
		}
	}
	return b.String()
}

// historyStats is what a run's largest workflow history looked like: Temporal's limits are per
// workflow execution (events, bytes, pending activities and children).
type historyStats struct {
	workflows     int
	maxEvents     int
	maxBytes      int
	maxPending    int // activities plus child workflows scheduled and not yet closed, at any point
	largestWorkID string
	// bytesByType splits the largest history in bytes by event type.
	bytesByType  map[string]int
	largestBytes string
}

// walkHistories reads the history of the workflow id and, recursively, of every child workflow it
// started, keeping the largest figures of any one of them.
func (e *env) walkHistories(tb testing.TB, id string, st *historyStats) {
	tb.Helper()
	it := e.tc.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	events, bytes, pending, maxPending := 0, 0, 0, 0
	var children []string
	byType := map[string]int{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			tb.Fatalf("history of %s: %v", id, err)
		}
		events++
		bytes += proto.Size(ev)
		byType[ev.GetEventType().String()] += proto.Size(ev)
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
			pending++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED,
			enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT, enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
			enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
			enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
			enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED, enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
			pending--
		}
		maxPending = max(maxPending, pending)
		if a := ev.GetChildWorkflowExecutionStartedEventAttributes(); a != nil {
			children = append(children, a.GetWorkflowExecution().GetWorkflowId())
		}
	}
	st.workflows++
	if events > st.maxEvents {
		st.maxEvents, st.largestWorkID = events, id
	}
	if bytes > st.maxBytes {
		st.maxBytes, st.bytesByType, st.largestBytes = bytes, byType, id
	}
	st.maxPending = max(st.maxPending, maxPending)
	for _, c := range children {
		e.walkHistories(tb, c, st)
	}
}

// runLarge runs spec b.N times and reports the wall time per run and the largest workflow history of
// any run (events, bytes, most activities and children pending at once), against Temporal's limits
// (docs: suggest continue-as-new at 4,096 events / 4 MB; hard 51,200 events / 50 MB; 2,000 pending).
func runLarge(b *testing.B, spec string) {
	e := newBenchEnv(b)
	var total time.Duration
	var st historyStats
	for i := 0; i < b.N; i++ {
		id := uuid.NewString()
		start := time.Now()
		run, err := engine.Start(context.Background(), e.tc, pipelinesv1.RunInput{RunID: id, Spec: spec})
		if err != nil {
			b.Fatal(err)
		}
		var res pipelinesv1.RunResult
		for {
			err = run.Get(context.Background(), &res)
			if !errors.Is(err, context.DeadlineExceeded) {
				break
			}
			// A long poll for the result that timed out on the loaded server: the run goes on, poll again.
			d, derr := e.tc.DescribeWorkflowExecution(context.Background(), id, "")
			if derr != nil || d.WorkflowExecutionInfo.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				b.Fatalf("run %s: %v (describe: %v)", id, err, derr)
			}
			b.Logf("run %s: result poll timed out, still running (%d history events)", id, d.WorkflowExecutionInfo.HistoryLength)
			run = e.tc.GetWorkflow(context.Background(), id, "")
		}
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		if res.State != pipelinesv1.RunSucceeded {
			b.Fatalf("run %s: %s %s", id, res.State, res.Error)
		}
		e.walkHistories(b, id, &st)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/run")
	b.ReportMetric(float64(st.maxEvents), "max-history-events")
	b.ReportMetric(float64(st.maxBytes)/1024, "max-history-KiB")
	b.ReportMetric(float64(st.maxPending), "max-pending")
	b.ReportMetric(float64(st.workflows)/float64(b.N), "workflows/run")
	b.Logf("longest history: %s (%d events); largest: %s (%d bytes: %v)", st.largestWorkID, st.maxEvents, st.largestBytes, st.maxBytes, st.bytesByType)
}

// BenchmarkParallelFor10000 measures a ParallelFor over 10,000 no-op steps: wall time and the largest
// workflow history involved (the loop runs in child workflows of at most 200 iterations).
func BenchmarkParallelFor10000(b *testing.B) { runLarge(b, fanOutSpec(10000)) }

// BenchmarkDAG2000 measures a 2,000-task DAG that is not a loop (20 layers of 100 no-op steps, each
// step depending on two of the layer before): wall time and the largest workflow history involved.
func BenchmarkDAG2000(b *testing.B) { runLarge(b, layeredSpec(20, 100)) }
