package engine

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
)

// What a run looks like in the Temporal Web UI: the run workflow's static summary and Markdown details,
// its search attributes (libs/workflow/visibility.go), and a summary on every activity, timer and child
// workflow so the timeline reads as the pipeline does. User metadata is not part of what replay compares,
// so summaries need no workflow.GetVersion; search-attribute upserts are commands and do
// (versionSearchAttributes).

// KindPipelineRun and KindPipelineDAG are the SluiceKind of a run's workflow and of its nested-DAG and
// loop-batch child workflows (filter `SluiceKind = "PipelineRun"` to list runs only).
const (
	KindPipelineRun = "PipelineRun"
	KindPipelineDAG = "PipelineDAG"
)

// versionSearchAttributes is the workflow.GetVersion change id of the run workflow upserting
// SluiceFailedTasks as tasks fail and SluicePhase when it ends (and the full set for a scheduled run,
// whose start carries none).
const versionSearchAttributes = "ui-search-attributes"

// runSummary is a run's one-line summary: `download-and-join · run "quickstart" · experiment default`.
func runSummary(in pipelinesv1.RunInput) string {
	s := in.PipelineName
	if s == "" {
		s = "pipeline"
	}
	if in.RunName != "" {
		s += fmt.Sprintf(" · run %q", in.RunName)
	}
	if in.ExperimentID != "" {
		s += " · experiment " + in.ExperimentID
	}
	return s
}

// runDetails is a run's Markdown details: names, parameters and links to its API resource and dashboard page.
func runDetails(in pipelinesv1.RunInput) string {
	pairs := [][2]string{
		{"Run ID", in.RunID}, {"Run name", in.RunName}, {"Pipeline", in.PipelineName}, {"Pipeline ID", in.PipelineID},
		{"Version ID", in.VersionID}, {"Experiment", in.ExperimentID}, {"Namespace", in.Namespace},
	}
	keys := make([]string, 0, len(in.Parameters))
	for k := range in.Parameters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, _ := json.Marshal(in.Parameters[k])
		pairs = append(pairs, [2]string{"Parameter " + k, string(v)})
	}
	for _, k := range sortedKeys(in.InputArtifacts) {
		pairs = append(pairs, [2]string{"Input artifact " + k, in.InputArtifacts[k].URI})
	}
	if in.DisableCache {
		pairs = append(pairs, [2]string{"Cache", "disabled"})
	}
	id := url.PathEscape(in.RunID)
	return wf.Details("Pipeline run "+in.RunName, pairs,
		[2]string{"Run (Sluice API)", "/apis/v1/runs/" + id}, [2]string{"Run page (dashboard)", "/ui/runs/" + id})
}

// runAttributes are a run's search attributes at start.
func runAttributes(in pipelinesv1.RunInput, owner string) []temporal.SearchAttributeUpdate {
	return wf.AttributeUpdates(KindPipelineRun, runNamespace(in),
		wf.Keyword(wf.SAPipeline, in.PipelineName), wf.Keyword(wf.SAExperiment, in.ExperimentID),
		wf.Keyword(wf.SARunName, in.RunName), wf.Keyword(wf.SAOwner, owner), wf.SAPhase.ValueSet(pipelinesv1.RunRunning))
}

func runNamespace(in pipelinesv1.RunInput) string {
	if in.Namespace == "" {
		return "default"
	}
	return in.Namespace
}

// childSummary names a nested DAG or a loop batch: `loop loop-1 batch 3/10` (1-based) or `dag inner`.
func childSummary(in ScopeInput, batch, batches int) string {
	if in.Loop != nil {
		return fmt.Sprintf("loop %s batch %d/%d", in.Path, batch+1, batches)
	}
	return "dag " + in.Path
}

// childAttributes are a DAG child's search attributes: its run's, with kind PipelineDAG.
func childAttributes(in ScopeInput) temporal.SearchAttributes {
	return wf.Attributes(KindPipelineDAG, runNamespace(in.Run),
		wf.Keyword(wf.SAPipeline, in.PipelineName), wf.Keyword(wf.SAExperiment, in.Run.ExperimentID),
		wf.Keyword(wf.SARunName, in.Run.RunName))
}

// stepSummary names a step attempt: `step download1 (attempt 2)`.
func stepSummary(path string, attempt int) string {
	return fmt.Sprintf("step %s (attempt %d)", path, attempt)
}

// withSummary returns ctx with its activity options' summary set.
func withSummary(ctx workflow.Context, summary string) workflow.Context {
	opts := workflow.GetActivityOptions(ctx)
	opts.Summary = summary
	return workflow.WithActivityOptions(ctx, opts)
}

// sleep is workflow.Sleep with a summary on its timer (the same StartTimer command).
func sleep(ctx workflow.Context, d time.Duration, summary string) error {
	return workflow.NewTimerWithOptions(ctx, d, workflow.TimerOptions{Summary: summary}).Get(ctx, nil)
}

// upsertRunAttributes records a run's attributes the workflow changes: failed task paths while it runs,
// its final phase at the end, and everything a start without SluicePipeline (a schedule's) did not set. Only for
// executions at versionSearchAttributes >= 1 (r.sa); an upsert failure is logged, never fails the run.
func (r *runner) upsertRunAttributes(ctx workflow.Context, ups ...temporal.SearchAttributeUpdate) {
	if !r.sa {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, ups...); err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes", "error", err)
	}
}

// taskFailed adds path to the run's SluiceFailedTasks (once).
func (r *runner) taskFailed(ctx workflow.Context, path string) {
	if !r.sa || slices.Contains(r.failed, path) {
		return
	}
	r.failed = append(r.failed, path)
	r.upsertRunAttributes(ctx, wf.SAFailedTasks.ValueSet(append([]string(nil), r.failed...)))
}

// notifySummary names a Notify activity by its event: `event pipeline.task.succeeded download1`.
func notifySummary(in NotifyInput) string {
	if in.Run != nil {
		return "event " + in.RunType
	}
	paths := make([]string, 0, len(in.Tasks))
	for _, t := range in.Tasks {
		paths = append(paths, t.TaskPath)
	}
	return "event " + in.TaskType + " " + strings.Join(paths, ", ")
}
