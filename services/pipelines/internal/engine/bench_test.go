package engine_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/google/uuid"

	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
)

// linearSpec is an n-step chain of no-op steps (`true`), each depending on the previous one.
func linearSpec(n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: sluice.io/v1\nkind: Pipeline\nmetadata: {name: linear}\nspec:\n  tasks:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "    s%d:\n      image: alpine\n      command: [\"true\"]\n", i)
		if i > 0 {
			fmt.Fprintf(&b, "      dependsOn: [s%d]\n", i-1)
		}
	}
	return b.String()
}

// fanOutSpec is a ParallelFor over n items of a no-op step.
func fanOutSpec(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprint(i)
	}
	return fmt.Sprintf(`apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: fanout}
spec:
  tasks:
    noop:
      image: alpine
      forEach: {items: [%s], as: i, type: NUMBER_INTEGER}
      command: ["true"]
      args: ["{{inputs.i}}"]
`, strings.Join(items, ","))
}

const bareQueue = "bench-bare-temporal"

// BareChain is the baseline: a plain Temporal workflow chaining n no-op activities, one after another.
func BareChain(ctx workflow.Context, n int) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	for i := 0; i < n; i++ {
		if err := workflow.ExecuteActivity(ctx, NoopActivity).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// NoopActivity does nothing.
func NoopActivity(context.Context) error { return nil }

func quantile(d []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// BenchmarkLinear100 measures a 100-step linear pipeline of no-op steps against a bare Temporal workflow
// chaining 100 no-op activities in the same run; it reports both per-step times and their ratio.
func BenchmarkLinear100(b *testing.B) {
	e := newBenchEnv(b)
	const n = 100
	bw := worker.New(e.tc, bareQueue, worker.Options{})
	bw.RegisterWorkflow(BareChain)
	bw.RegisterActivity(NoopActivity)
	if err := bw.Start(); err != nil {
		b.Fatal(err)
	}
	defer bw.Stop()
	spec := linearSpec(n)
	var sluice, bare time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		run, err := e.tc.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: "bare-" + uuid.NewString(), TaskQueue: bareQueue}, BareChain, n)
		if err != nil {
			b.Fatal(err)
		}
		if err := run.Get(context.Background(), nil); err != nil {
			b.Fatal(err)
		}
		bare += time.Since(start)

		start = time.Now()
		run, err = engine.Start(context.Background(), e.tc, pipelinesv1.RunInput{RunID: uuid.NewString(), Spec: spec})
		if err != nil {
			b.Fatal(err)
		}
		if err := run.Get(context.Background(), nil); err != nil {
			b.Fatal(err)
		}
		sluice += time.Since(start)
	}
	perStep := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N*n) }
	b.ReportMetric(perStep(sluice), "ms/step")
	b.ReportMetric(perStep(bare), "bare-ms/step")
	b.ReportMetric(float64(sluice)/float64(bare), "ratio")
}

// BenchmarkParallelFor1000 measures the wall time of a 1,000-way ParallelFor of no-op steps.
func BenchmarkParallelFor1000(b *testing.B) {
	e := newBenchEnv(b)
	spec := fanOutSpec(1000)
	var total time.Duration
	var maxHistory int64
	for i := 0; i < b.N; i++ {
		id := uuid.NewString()
		start := time.Now()
		run, err := engine.Start(context.Background(), e.tc, pipelinesv1.RunInput{RunID: id, Spec: spec})
		if err != nil {
			b.Fatal(err)
		}
		if err := run.Get(context.Background(), nil); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		maxHistory = max(maxHistory, e.historyLength(b, id))
		for k := 0; k < 5; k++ {
			maxHistory = max(maxHistory, e.historyLength(b, fmt.Sprintf("%s/noop/batch-%d", id, k)))
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/run")
	b.ReportMetric(float64(maxHistory), "max-history-events")
}

func (e *env) historyLength(tb testing.TB, id string) int64 {
	d, err := e.tc.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		return 0
	}
	return d.WorkflowExecutionInfo.HistoryLength
}
