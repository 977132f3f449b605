package devstack_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/common/dynamicconfig"
	"google.golang.org/grpc"

	"github.com/sluice-ml/sluice/libs/devstack"
	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	wf "github.com/sluice-ml/sluice/libs/workflow"
)

// The compose/Kubernetes dynamic config must be valid for Temporal's file-based loader (every key
// registered, every value valid) and carry exactly the embedded server's values.
func TestDynamicConfigFileMatchesDevstack(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "temporal", "dynamicconfig.yaml"))
	require.NoError(t, err)
	lr := dynamicconfig.LoadYamlFile(b)
	require.NoError(t, lr.Err())
	require.Empty(t, lr.Warnings, "unregistered keys or invalid values")
	file := map[string]any{}
	for k, cvs := range lr.Map {
		require.Len(t, cvs, 1, "%s: one unconstrained value expected", k)
		require.Empty(t, cvs[0].Constraints, "%s: constraints", k)
		file[k.String()] = cvs[0].Value
	}
	require.Equal(t, devstack.TemporalDynamicConfig(), file)
}

// chainQueue is the task queue of the bare chain below.
const chainQueue = "devstack-test-bare-chain"

// bareChain runs n no-op activities one after another: the baseline cost of a Temporal step.
func bareChain(ctx workflow.Context, n int) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	for range n {
		if err := workflow.ExecuteActivity(ctx, noopActivity).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

func noopActivity(context.Context) error { return nil }

// A sequential chain of no-op activities on the dev stack's Temporal must not be paced by production
// rate limits (case perf/temporal-chain-100ms-per-activity). Wall time is no test on a shared 2-core
// machine (a tuned activity costs ~5 ms idle and 35-85 ms at a load average of 30), so the test checks
// what the throttles leave in the history instead. A throttled workflow task waits for the transfer
// queue's rate limiter (20 reads/s per shard: ~47 ms on average, whatever the load) before a worker
// starts it, several times longer than the worker then spends on it; untuned, the wait was 3x (loaded)
// to 20x (idle) the processing time, tuned it is below 1x at any load. At extreme load (a load average of
// 45 on 2 cores) CPU starvation hides the limiter too (wait 29 ms, processing 35 ms, untuned); the second
// check does not depend on timing: the activities must come back eagerly with the workflow-task
// completions (0 of 100 untuned, 100 of 100 tuned). The figures themselves are measured by the benchmarks.
func TestBareChainIsNotThrottled(t *testing.T) {
	st := devstacktest.Stack(t)
	// Count the activity tasks the server hands back eagerly in RespondWorkflowTaskCompleted responses.
	var eager atomic.Int64
	countEager := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if r, ok := reply.(*workflowservice.RespondWorkflowTaskCompletedResponse); ok && err == nil {
			eager.Add(int64(len(r.GetActivityTasks())))
		}
		return err
	}
	c, err := sdkclient.DialContext(t.Context(), sdkclient.Options{
		HostPort: st.TemporalAddress, Namespace: st.Namespace, Logger: wf.NewLogger(slog.New(slog.DiscardHandler)),
		ConnectionOptions: sdkclient.ConnectionOptions{DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(countEager)}},
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	w := worker.New(c, chainQueue, wf.WorkerOptions())
	w.RegisterWorkflow(bareChain)
	w.RegisterActivity(noopActivity)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	run := func(n int) (time.Duration, sdkclient.WorkflowRun) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		start := time.Now()
		r, err := c.ExecuteWorkflow(ctx, sdkclient.StartWorkflowOptions{ID: "bare-chain-" + uuid.NewString(), TaskQueue: chainQueue}, bareChain, n)
		require.NoError(t, err)
		require.NoError(t, r.Get(ctx, nil))
		return time.Since(start), r
	}
	run(10) // warm-up: task queue loaded, sticky cache filled
	const n = 100
	eager.Store(0)
	d, r := run(n)
	perActivity := d / n
	gaps, summary := historyGaps(t, c, r)
	t.Logf("bare chain of %d no-op activities: %v per activity; history gaps:%s", n, perActivity, summary)
	wait := gaps["EVENT_TYPE_WORKFLOW_TASK_SCHEDULED->EVENT_TYPE_WORKFLOW_TASK_STARTED"]
	work := gaps["EVENT_TYPE_WORKFLOW_TASK_STARTED->EVENT_TYPE_WORKFLOW_TASK_COMPLETED"]
	if wait > 2*work {
		t.Fatalf("workflow tasks wait %v for dispatch but take %v to process: dispatch is throttled", wait, work)
	}
	// Eager activity execution (server and worker both opted in): the activities come back in the
	// responses to the workflow-task completions that schedule them, not through matching.
	t.Logf("%d of %d activity tasks dispatched eagerly", eager.Load(), n)
	if eager.Load() < n*9/10 {
		t.Fatalf("%d of %d activity tasks dispatched eagerly, want >= 90%%", eager.Load(), n)
	}
}

// historyGaps returns the mean time between consecutive event types of a run ("A->B"), and a summary.
func historyGaps(t *testing.T, c sdkclient.Client, r sdkclient.WorkflowRun) (map[string]time.Duration, string) {
	it := c.GetWorkflowHistory(t.Context(), r.GetID(), r.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	type gap struct {
		total time.Duration
		n     int
	}
	gaps := map[string]*gap{}
	var prev time.Time
	var prevType enumspb.EventType
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if !prev.IsZero() {
			k := prevType.String() + "->" + ev.GetEventType().String()
			if gaps[k] == nil {
				gaps[k] = &gap{}
			}
			gaps[k].total += ev.GetEventTime().AsTime().Sub(prev)
			gaps[k].n++
		}
		prev, prevType = ev.GetEventTime().AsTime(), ev.GetEventType()
	}
	means := map[string]time.Duration{}
	out := ""
	for k, g := range gaps {
		means[k] = g.total / time.Duration(g.n)
		out += fmt.Sprintf("\n  %s: mean %v over %d", k, means[k], g.n)
	}
	return means, out
}
