package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/libs/events"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
	"github.com/sluice-ml/sluice/services/pipelines/internal/spec"
)

// DAGWorkflowType is the child workflow that runs a nested DAG component or a batch of loop iterations.
const DAGWorkflowType = "PipelineDAG"

// maxBatchSteps bounds the activities one loop-batch child workflow runs (about 6 history events each),
// keeping every history well under 4,096 events.
const maxBatchSteps = 200

// stepHeartbeat is how often a running step must heartbeat; a worker that dies is noticed after this.
const stepHeartbeat = 10 * time.Second

// ErrTypeRunFailed is the application error type of a run that finished with failed tasks.
const ErrTypeRunFailed = "sluice.RunFailed"

// taskResult is the final state of one task inside a DAG scope.
type taskResult struct {
	State   string
	Error   string
	Outputs outputs
}

// scope is one DAG being walked: the root DAG or a nested DAG / loop iteration body.
type scope struct {
	Path   string
	Comp   *dag.Component
	Params map[string]any
	Arts   map[string][]Artifact
}

// versionEdgeSemantics is the workflow.GetVersion change id of: a task.cancelled or task.failed event
// for every task that ends so without its step activity publishing it; cancellation that starts only
// real exit handlers; a scope with a cancelled task never succeeding; the run's final event after all
// task events; retry reusing succeeded loop iterations; scheduled runs' own names in their memo.
// Version 2 adds KFP driver rules: component input defaults apply to unbound inputs of every task
// (nested pipelines included), and an ALL_UPSTREAM_TASKS_COMPLETED task's input from a producer that
// did not succeed stays unbound (so its default applies).
const versionEdgeSemantics = "edge-semantics"

// versionKFPOutputs is the workflow.GetVersion change id (asked only by KFP IR runs) of steps applying
// KFP's launcher rules to their outputs (StepInput.KFP).
const versionKFPOutputs = "kfp-launcher-outputs"

// versionWorkspace is the workflow.GetVersion change id of removing a run's workspace when it ends; it is
// only asked for by runs of pipelines that use {{$.workspace_path}} (refused before it existed).
const versionWorkspace = "kfp-workspace"

// versionKubernetesNames is the workflow.GetVersion change id of resolving the object names of
// kfp-kubernetes settings that come from a component input or a task output (a CreatePVC task's "name"
// mounted by pvcMount, a secret name passed as a parameter) before a step starts; a name that cannot be
// resolved fails the task. It is only asked for by tasks with such names (refused before it existed).
const versionKubernetesNames = "kfp-kubernetes-names"

// versionPodSettings is the workflow.GetVersion change id of steps carrying their executor's pod-only
// kfp-kubernetes settings (StepInput.Pod: nodeSelector, tolerations, podMetadata labels and annotations
// apart, imagePullPolicy) for the kubernetes runtime. It is only asked for by runs of pipelines that
// have such settings.
const versionPodSettings = "kfp-kubernetes-pod-settings"

type runner struct {
	// pod is set for runs since versionPodSettings whose pipeline has pod-only settings.
	pod bool
	// kubeNames holds, per task path, the resolved kfp-kubernetes object names (dag.KubernetesNameRefs).
	kubeNames map[string]map[string]string
	// v is the workflow.GetVersion of versionEdgeSemantics for this execution.
	v workflow.Version
	// kfp is set for KFP IR runs started since versionKFPOutputs.
	kfp      bool
	in       pipelinesv1.RunInput
	p        *dag.Pipeline
	state    pipelinesv1.RunState
	index    map[string]int
	pending  []workflow.Future
	canceled bool
	// sa is set for run workflows at versionSearchAttributes >= 1 (visibility.go); failed lists the
	// task paths upserted as SluiceFailedTasks.
	sa     bool
	failed []string
}

func compileSpec(src string) (*dag.Pipeline, error) {
	p, err := spec.Parse([]byte(src))
	if err != nil {
		return nil, err
	}
	return p, nil
}

// RunWorkflow runs one pipeline run. Its workflow ID is the run ID; its state is served by the "state"
// query as a pipelinesv1.RunState. It fails when a task fails and reports canceled when cancelled (exit
// handlers still run).
func RunWorkflow(ctx workflow.Context, in pipelinesv1.RunInput) (pipelinesv1.RunResult, error) {
	v := workflow.GetVersion(ctx, versionEdgeSemantics, workflow.DefaultVersion, 2)
	scheduled := false
	if in.RunID == "" || in.RunID != workflow.GetInfo(ctx).WorkflowExecution.ID {
		// Runs started by a schedule get their workflow ID (schedule ID + time) as run ID.
		in.RunID = workflow.GetInfo(ctx).WorkflowExecution.ID
		scheduled = true
	}
	p, err := compileSpec(in.Spec)
	if err != nil {
		return pipelinesv1.RunResult{State: pipelinesv1.RunFailed, Error: err.Error()}, wf.NonRetryable(wf.ErrTypeInvalidSpec, err)
	}
	params, err := p.ResolveInputs(in.Parameters)
	if err != nil {
		return pipelinesv1.RunResult{State: pipelinesv1.RunFailed, Error: err.Error()}, wf.NonRetryable(wf.ErrTypeInvalidSpec, err)
	}
	if scheduled && v >= 1 {
		// Every scheduled run has its own name: the schedule's run name plus its scheduled time.
		if _, at, ok := strings.Cut(in.RunID, "-run-"); ok {
			in.RunName += " " + at
		}
		if err := workflow.UpsertMemo(ctx, map[string]any{"run_name": in.RunName, "pipeline_name": p.Name}); err != nil {
			return pipelinesv1.RunResult{}, err
		}
	}
	r := newRunner(in, p)
	r.v = v
	r.kfp = kfpOutputs(ctx, p)
	r.pod = podSettings(ctx, p)
	r.state.State = pipelinesv1.RunRunning
	r.state.CreatedAt = workflow.Now(ctx)
	if err := workflow.SetQueryHandler(ctx, pipelinesv1.QueryState, func() (pipelinesv1.RunState, error) {
		return r.snapshot(), nil
	}); err != nil {
		return pipelinesv1.RunResult{}, err
	}
	r.sa = workflow.GetVersion(ctx, versionSearchAttributes, workflow.DefaultVersion, 1) >= 1
	if _, ok := workflow.GetTypedSearchAttributes(ctx).GetKeyword(wf.SAPipeline); !ok {
		// A schedule's start sets no search attributes, and a start without in.PipelineName lacks that one.
		in.PipelineName = p.Name
		r.upsertRunAttributes(ctx, runAttributes(in, "")...)
	}
	r.notifyRun(ctx, events.PipelineRunStartedV1, pipelinesv1.RunRunning, "")

	st, msg, _ := r.runDAG(ctx, scope{Comp: p.Root, Params: params, Arts: rootArtifacts(in.InputArtifacts)})

	now := workflow.Now(ctx)
	r.state.FinishedAt = &now
	r.state.State, r.state.Error = st, msg
	res := pipelinesv1.RunResult{State: st, Error: msg, Tasks: map[string]pipelinesv1.TaskOutputs{}}
	for _, t := range r.state.Tasks {
		if t.Outputs != nil && (t.State == pipelinesv1.TaskSucceeded || t.State == pipelinesv1.TaskCached) {
			res.Tasks[t.Path] = *t.Outputs
		}
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if dag.UsesWorkspace(p) && workflow.GetVersion(ctx, versionWorkspace, workflow.DefaultVersion, 1) >= 1 {
		// The run's workspace lives as long as the run: removed once every task has ended.
		var a *Activities
		if err := workflow.ExecuteActivity(withSummary(workflow.WithActivityOptions(dctx, wf.ShortActivity()), "remove the run's workspace"), a.RemoveWorkspace, in.RunID).Get(dctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("remove the run's workspace", "error", err)
		}
	}
	if r.v >= 1 {
		r.wait(dctx) // the run's final event comes after every task event
	}
	r.upsertRunAttributes(dctx, wf.SAPhase.ValueSet(st))
	switch st {
	case pipelinesv1.RunSucceeded:
		r.notifyRun(dctx, events.PipelineRunSucceededV1, st, "")
	case pipelinesv1.RunCancelled:
		r.notifyRun(dctx, events.PipelineRunCancelledV1, st, msg)
	default:
		r.notifyRun(dctx, events.PipelineRunFailedV1, st, msg)
	}
	r.wait(dctx)
	switch st {
	case pipelinesv1.RunSucceeded:
		return res, nil
	case pipelinesv1.RunCancelled:
		return res, temporal.NewCanceledError(msg)
	default:
		return res, temporal.NewNonRetryableApplicationError(msg, ErrTypeRunFailed, nil, res)
	}
}

// DAGWorkflow runs a nested DAG component once, or a batch of loop iterations, for its parent run.
func DAGWorkflow(ctx workflow.Context, in ScopeInput) (ScopeResult, error) {
	v := workflow.GetVersion(ctx, versionEdgeSemantics, workflow.DefaultVersion, 2)
	p, err := compileSpec(in.Run.Spec)
	if err != nil {
		return ScopeResult{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, err)
	}
	comp, ok := p.Component(in.Component)
	if !ok {
		return ScopeResult{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, fmt.Errorf("unknown component %q", in.Component))
	}
	r := newRunner(in.Run, p)
	r.v = v
	r.kfp = kfpOutputs(ctx, p)
	r.pod = podSettings(ctx, p)
	if err := workflow.SetQueryHandler(ctx, pipelinesv1.QueryState, func() (pipelinesv1.RunState, error) {
		return r.snapshot(), nil
	}); err != nil {
		return ScopeResult{}, err
	}
	var res ScopeResult
	if in.Loop == nil {
		st, msg, out := r.runDAG(ctx, scope{Path: in.Path, Comp: comp, Params: in.Params, Arts: in.Artifacts})
		res = ScopeResult{State: st, Error: msg, Outputs: out}
	} else {
		res = r.runBatch(ctx, in, comp)
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	r.wait(dctx)
	res.Tasks = r.state.Tasks
	return res, nil
}

// kfpOutputs reports whether the steps of a KFP IR run apply KFP's launcher output rules (runs started
// before versionKFPOutputs keep failing on an unwritten output artifact).
func kfpOutputs(ctx workflow.Context, p *dag.Pipeline) bool {
	return p.Format == dag.FormatKFP && workflow.GetVersion(ctx, versionKFPOutputs, workflow.DefaultVersion, 1) >= 1
}

// podSettings reports whether steps carry their pod-only settings (see versionPodSettings).
func podSettings(ctx workflow.Context, p *dag.Pipeline) bool {
	return dag.UsesPodSettings(p) && workflow.GetVersion(ctx, versionPodSettings, workflow.DefaultVersion, 1) >= 1
}

func newRunner(in pipelinesv1.RunInput, p *dag.Pipeline) *runner {
	return &runner{
		in: in, p: p, index: map[string]int{},
		state: pipelinesv1.RunState{RunID: in.RunID, RunName: in.RunName, PipelineName: p.Name, ExperimentID: in.ExperimentID, State: pipelinesv1.RunPending},
	}
}

func (r *runner) snapshot() pipelinesv1.RunState {
	s := r.state
	s.Tasks = append([]pipelinesv1.TaskState(nil), r.state.Tasks...)
	return s
}

// setTask records a task transition for the state query.
func (r *runner) setTask(ctx workflow.Context, path, name, state string, mutate func(*pipelinesv1.TaskState)) {
	i, ok := r.index[path]
	if !ok {
		r.state.Tasks = append(r.state.Tasks, pipelinesv1.TaskState{Path: path, Name: name})
		i = len(r.state.Tasks) - 1
		r.index[path] = i
	}
	t := &r.state.Tasks[i]
	now := workflow.Now(ctx)
	t.State = state
	switch state {
	case pipelinesv1.TaskRunning:
		if t.StartedAt == nil {
			t.StartedAt = &now
		}
	case pipelinesv1.TaskPending:
	default:
		t.FinishedAt = &now
	}
	if mutate != nil {
		mutate(t)
	}
	if state == pipelinesv1.TaskFailed {
		r.taskFailed(ctx, path)
	}
}

func (r *runner) mergeTasks(tasks []pipelinesv1.TaskState) {
	for _, t := range tasks {
		if i, ok := r.index[t.Path]; ok {
			r.state.Tasks[i] = t
			continue
		}
		r.state.Tasks = append(r.state.Tasks, t)
		r.index[t.Path] = len(r.state.Tasks) - 1
	}
}

// wait blocks until every fire-and-forget notification activity finished.
func (r *runner) wait(ctx workflow.Context) {
	for _, f := range r.pending {
		_ = f.Get(ctx, nil)
	}
	r.pending = nil
}

func (r *runner) notifyRun(ctx workflow.Context, typ, state, msg string) {
	ev := &pipelinesv1.RunEvent{RunID: r.in.RunID, RunName: r.in.RunName, PipelineName: r.p.Name, ExperimentID: r.in.ExperimentID,
		Namespace: r.in.Namespace, State: state, Error: msg, Time: workflow.Now(ctx)}
	r.notify(ctx, NotifyInput{Run: ev, RunType: typ})
}

func (r *runner) notifyTask(ctx workflow.Context, typ string, ev pipelinesv1.TaskEvent) {
	ev.RunID, ev.Namespace, ev.PipelineName, ev.Time = r.in.RunID, r.in.Namespace, r.p.Name, workflow.Now(ctx)
	r.notify(ctx, NotifyInput{Tasks: []pipelinesv1.TaskEvent{ev}, TaskType: typ})
}

func (r *runner) notify(ctx workflow.Context, in NotifyInput) {
	var a *Activities
	actx := withSummary(workflow.WithActivityOptions(ctx, wf.ShortActivity()), notifySummary(in))
	r.pending = append(r.pending, workflow.ExecuteActivity(actx, a.Notify, in))
}

func joinPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "/" + name
}

type taskDone struct {
	Name   string
	Result taskResult
	single bool
}

// versionLargeDAG is the workflow.GetVersion change id (asked only by DAG scopes of more than
// largeDAGTasks tasks) of running their ready container steps fused, fusedChunk to a RunSteps activity,
// and at most maxDAGInFlight other tasks at once, so a 2,000-task DAG stays far below Temporal's
// history (4,096 events suggested, 51,200 hard) and pending-activity (2,000) limits.
const versionLargeDAG = "large-dag-fused-steps"

// largeDAGTasks is the size above which a DAG scope runs its steps fused (about 3 history events per
// step activity: 500 separate steps stay under 4,096 events).
const largeDAGTasks = 500

// maxDAGInFlight bounds the tasks of a large DAG scope that run on their own at once (each is at
// least one pending activity or child workflow; Temporal refuses more than 2,000 per workflow).
const maxDAGInFlight = 1000

// fusedTask is a ready container task of a large DAG waiting for its RunSteps activity.
type fusedTask struct {
	task   *dag.Task
	path   string
	comp   *dag.Component
	params map[string]any
	arts   map[string][]Artifact
}

// fusable reports a task of a large DAG whose first attempt may run in a shared RunSteps activity: a
// plain container step without retries that is not an exit handler, a loop or reused from a previous run.
func (r *runner) fusable(t *dag.Task, path string) (*dag.Component, bool) {
	if t.Iterator != nil || r.isExit(t) || (t.Retry != nil && t.Retry.MaxRetryCount > 0) {
		return nil, false
	}
	if _, ok := r.in.Reuse[path]; ok {
		return nil, false
	}
	comp, ok := r.p.TaskComponent(t)
	if !ok || comp.Kind != dag.KindContainer {
		return nil, false
	}
	return comp, true
}

// runWave starts the ready container tasks of a large DAG in RunSteps activities of fusedChunk steps,
// each chunk reporting its tasks' results on done as soon as it ends.
func (r *runner) runWave(ctx workflow.Context, wave []fusedTask, done workflow.Channel) {
	for first := 0; first < len(wave); first += fusedChunk {
		chunk := wave[first:min(len(wave), first+fusedChunk)]
		steps := make([]StepInput, len(chunk))
		for i, ft := range chunk {
			r.setTask(ctx, ft.path, ft.task.Name, pipelinesv1.TaskRunning, nil)
			steps[i] = r.stepInput(ft.task.Name, ft.path, ft.comp, ft.task.EnableCache, ft.params, ft.arts)
		}
		workflow.Go(ctx, func(gctx workflow.Context) {
			for i, res := range r.runFused(gctx, steps, nil) {
				res = r.finish(gctx, chunk[i].path, chunk[i].task.Name, res)
				done.Send(gctx, taskDone{Name: chunk[i].task.Name, Result: res})
			}
		})
	}
}

// runDAG walks one DAG scope: tasks start as soon as their upstream tasks are final, independent tasks
// run in parallel. It returns the scope's state, error text and DAG outputs.
func (r *runner) runDAG(ctx workflow.Context, sc scope) (string, string, outputs) {
	d := sc.Comp.DAG
	results := map[string]*taskResult{}
	started := map[string]bool{}
	done := workflow.NewBufferedChannel(ctx, len(d.Tasks)+1)
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	running := 0
	// A large DAG runs the plain container steps that become ready together in RunSteps activities
	// (versionLargeDAG); only such DAGs ask for the version, so smaller ones keep their commands.
	large := len(d.Tasks) > largeDAGTasks && workflow.GetVersion(ctx, versionLargeDAG, workflow.DefaultVersion, 1) >= 1
	var wave []fusedTask
	single := 0 // tasks running on their own (large DAGs cap them below Temporal's pending limit)
	for {
		for progressed := true; progressed; {
			progressed = false
			for _, t := range d.Tasks {
				if started[t.Name] || !depsFinal(t, results) {
					continue
				}
				if large && single >= maxDAGInFlight {
					break
				}
				started[t.Name] = true
				path := joinPath(sc.Path, t.Name)
				state, why, params, arts := r.prepare(ctx, sc, t, results)
				if state == "" {
					state, why = r.resolveKubeNames(ctx, sc, t, path, results)
				}
				if state != "" {
					results[t.Name] = &taskResult{State: state, Error: why}
					r.setTask(ctx, path, t.Name, state, func(ts *pipelinesv1.TaskState) { ts.Error = why })
					switch {
					case state == pipelinesv1.TaskSkipped || state == pipelinesv1.TaskOmitted:
						r.notifyTask(dctx, events.PipelineTaskSkippedV1, pipelinesv1.TaskEvent{TaskPath: path, TaskName: t.Name, State: state, Error: why})
					case r.v >= 1:
						r.notifyEnd(dctx, path, t.Name, state, why)
					}
					progressed = true
					continue
				}
				running++
				if large {
					if comp, ok := r.fusable(t, path); ok {
						wave = append(wave, fusedTask{task: t, path: path, comp: comp, params: params, arts: arts})
						continue
					}
					single++
				}
				tctx := ctx
				if r.isExit(t) {
					tctx = dctx // exit handlers run even when the run is cancelled
				}
				task := t
				workflow.Go(tctx, func(gctx workflow.Context) {
					res := r.runTask(gctx, sc, task, path, params, arts)
					done.Send(gctx, taskDone{Name: task.Name, Result: res, single: true})
				})
			}
		}
		if len(wave) > 0 {
			r.runWave(ctx, wave, done)
			wave = nil
		}
		if running == 0 {
			break
		}
		var td taskDone
		done.Receive(dctx, &td)
		for ok := true; ok; ok = large && done.ReceiveAsync(&td) { // a large DAG takes every ended task before looking again
			running--
			if td.single {
				single--
			}
			res := td.Result
			results[td.Name] = &res
		}
	}
	if ctx.Err() != nil {
		r.canceled = true
	}
	return r.scopeState(d, results, sc)
}

func depsFinal(t *dag.Task, results map[string]*taskResult) bool {
	for _, dep := range t.DependsOn {
		if results[dep] == nil {
			return false
		}
	}
	return true
}

func succeeded(state string) bool {
	return state == pipelinesv1.TaskSucceeded || state == pipelinesv1.TaskCached
}

// prepare decides whether task t runs: it returns a final state (SKIPPED, OMITTED, CANCELED, FAILED)
// with the reason when it does not, else its resolved inputs.
func (r *runner) prepare(ctx workflow.Context, sc scope, t *dag.Task, results map[string]*taskResult) (string, string, map[string]any, map[string][]Artifact) {
	if !r.isExit(t) && ctx.Err() != nil {
		return pipelinesv1.TaskCancelled, "run cancelled before the task started", nil, nil
	}
	if t.Strategy != dag.AllUpstreamCompleted {
		for _, dep := range t.DependsOn {
			switch st := results[dep].State; {
			case succeeded(st):
			case st == pipelinesv1.TaskSkipped:
				return pipelinesv1.TaskSkipped, fmt.Sprintf("upstream task %q was skipped", dep), nil, nil
			default:
				return pipelinesv1.TaskOmitted, fmt.Sprintf("upstream task %q is %s", dep, st), nil, nil
			}
		}
	}
	params, arts, err := r.resolveInputs(sc, t, results)
	if err != nil {
		return pipelinesv1.TaskFailed, err.Error(), nil, nil
	}
	if t.Condition != "" {
		ok, err := dag.EvalCondition(t.Condition, params)
		if err != nil {
			return pipelinesv1.TaskFailed, fmt.Sprintf("condition %q: %v", t.Condition, err), nil, nil
		}
		if !ok {
			return pipelinesv1.TaskSkipped, fmt.Sprintf("condition %q is false", t.Condition), nil, nil
		}
	}
	return "", "", params, arts
}

// resolveKubeNames resolves the object names of a container task's kfp-kubernetes settings that come
// from an input of the enclosing DAG or an upstream task's output parameter, as KFP's driver does when it
// builds the pod (resolveInputParameterStr), into r.kubeNames[path]. It returns TaskFailed with the
// reason when one has no value.
func (r *runner) resolveKubeNames(ctx workflow.Context, sc scope, t *dag.Task, path string, results map[string]*taskResult) (string, string) {
	comp, ok := r.p.TaskComponent(t)
	if !ok || comp.Executor == nil || t.Iterator != nil {
		return "", ""
	}
	refs := dag.KubernetesNameRefs(comp.Executor.Kubernetes)
	if len(refs) == 0 || workflow.GetVersion(ctx, versionKubernetesNames, workflow.DefaultVersion, 1) < 1 {
		return "", ""
	}
	names := map[string]string{}
	for _, ref := range sortedKeys(refs) {
		src := refs[ref]
		var v any
		var found bool
		switch src.Kind {
		case dag.SourceComponentInput:
			v, found = sc.Params[src.Input]
		case dag.SourceTaskOutputParameter:
			if res := results[src.Task]; res != nil && succeeded(res.State) {
				v, found = res.Outputs.Params[src.Output]
			}
		}
		s, isString := v.(string)
		if !found || !isString || s == "" {
			what := fmt.Sprintf("input %q of the enclosing DAG", src.Input)
			if src.Kind == dag.SourceTaskOutputParameter {
				what = fmt.Sprintf("output parameter %q of task %q", src.Output, src.Task)
			}
			return pipelinesv1.TaskFailed, fmt.Sprintf("kfp-kubernetes %s: the name comes from %s, which has no string value", ref, what)
		}
		names[ref] = s
	}
	if r.kubeNames == nil {
		r.kubeNames = map[string]map[string]string{}
	}
	r.kubeNames[path] = names
	return "", ""
}

// upstreamIgnored reports an input of an ALL_UPSTREAM_TASKS_COMPLETED task whose producer did not
// succeed: as KFP's driver (ignore_upstream_failure), the input stays unbound and its default applies.
func (r *runner) upstreamIgnored(t *dag.Task, producer *taskResult) bool {
	return r.v >= 2 && t.Strategy == dag.AllUpstreamCompleted && (producer == nil || !succeeded(producer.State))
}

// isExit reports a task that still starts after a cancel: a real exit handler (dsl.ExitHandler, the
// native exitHandler). Before versionEdgeSemantics every ALL_UPSTREAM_TASKS_COMPLETED task did.
func (r *runner) isExit(t *dag.Task) bool {
	if r.v >= 1 {
		return t.ExitHandler
	}
	return t.ExitHandler || t.Strategy == dag.AllUpstreamCompleted
}

// notifyEnd publishes the terminal event of a task that ended CANCELED or FAILED. A container step's
// last failed attempt has the same event id as the one its activity publishes, so the stream keeps one.
func (r *runner) notifyEnd(ctx workflow.Context, path, name, state, why string) {
	ev := pipelinesv1.TaskEvent{TaskPath: path, TaskName: name, State: state, Error: why}
	if i, ok := r.index[path]; ok {
		ev.Attempt = r.state.Tasks[i].Attempts
	}
	switch state {
	case pipelinesv1.TaskCancelled:
		r.notifyTask(ctx, events.PipelineTaskCancelledV1, ev)
	case pipelinesv1.TaskFailed:
		r.notifyTask(ctx, events.PipelineTaskFailedV1, ev)
	}
}

// resolveInputs computes the values of a task's input bindings.
func (r *runner) resolveInputs(sc scope, t *dag.Task, results map[string]*taskResult) (map[string]any, map[string][]Artifact, error) {
	params := map[string]any{}
	arts := map[string][]Artifact{}
	var templated []dag.Binding
	for _, b := range t.Inputs {
		src := b.Source
		var v any
		var list []Artifact
		switch src.Kind {
		case dag.SourceConstant:
			if b.Templated {
				templated = append(templated, b)
				continue
			}
			v = src.Constant
		case dag.SourceComponentInput:
			if b.Kind == dag.IOArtifact {
				a, ok := sc.Arts[src.Input]
				if !ok {
					return nil, nil, fmt.Errorf("input artifact %q: enclosing input %q has no value", b.Name, src.Input)
				}
				list = a
			} else {
				pv, ok := sc.Params[src.Input]
				if !ok {
					continue // optional input without value
				}
				v = pv
			}
		case dag.SourceTaskOutputParameter:
			res := results[src.Task]
			if r.upstreamIgnored(t, res) {
				continue
			}
			if res == nil || res.Outputs.Params == nil {
				return nil, nil, fmt.Errorf("input %q: task %q produced no parameters", b.Name, src.Task)
			}
			pv, ok := res.Outputs.Params[src.Output]
			if !ok {
				return nil, nil, fmt.Errorf("input %q: task %q has no output parameter %q", b.Name, src.Task, src.Output)
			}
			v = pv
		case dag.SourceTaskOutputArtifact:
			res := results[src.Task]
			if r.upstreamIgnored(t, res) {
				continue
			}
			if res == nil || len(res.Outputs.Artifacts[src.Output]) == 0 && !isLoopOutput(res) {
				return nil, nil, fmt.Errorf("input %q: task %q has no output artifact %q", b.Name, src.Task, src.Output)
			}
			list = res.Outputs.Artifacts[src.Output]
		case dag.SourceTaskFinalStatus:
			res := results[src.Task]
			st := dag.TaskFinalStatus{State: finalStatusState(res.State), PipelineJobResourceName: JobResourceName(r.p.Name, r.in.RunID), PipelineTaskName: src.Task}
			if res.Error != "" {
				st.Error = &dag.StatusError{Code: 2, Message: res.Error}
			}
			raw, _ := json.Marshal(st)
			var m map[string]any
			_ = json.Unmarshal(raw, &m)
			v = m
		default:
			return nil, nil, fmt.Errorf("input %q: unsupported source %q", b.Name, src.Kind)
		}
		if b.Kind == dag.IOArtifact {
			arts[b.Name] = list
			continue
		}
		if b.Selector != "" {
			sv, err := dag.EvalSelector(b.Selector, v)
			if err != nil {
				return nil, nil, fmt.Errorf("input %q: selector: %w", b.Name, err)
			}
			v = sv
		}
		if _, isString := v.(string); b.Type == dag.ParamString && !isString && v != nil {
			// KFP's driver: any value bound to a STRING input is consumed as its JSON text (a struct
			// loop item, a list, a number).
			text, err := json.Marshal(v)
			if err != nil {
				return nil, nil, fmt.Errorf("input %q: %w", b.Name, err)
			}
			v = string(text)
		}
		if b.Type != "" {
			cv, err := dag.CoerceValue(v, b.Type)
			if err != nil {
				return nil, nil, fmt.Errorf("input %q: %w", b.Name, err)
			}
			v = cv
		}
		params[b.Name] = v
	}
	if comp, ok := r.p.TaskComponent(t); ok && r.v >= 2 {
		for _, def := range comp.InputParams {
			if _, bound := params[def.Name]; !bound && def.HasDefault {
				params[def.Name] = dag.NormalizeValue(def.Default)
			}
		}
	}
	for _, b := range templated {
		s, _ := b.Source.Constant.(string)
		v, err := dag.RenderString(s, dag.ExecutorContext{Parameters: params, Job: r.jobContext(t, joinPath(sc.Path, t.Name))})
		if err != nil {
			return nil, nil, fmt.Errorf("input %q: %w", b.Name, err)
		}
		params[b.Name] = v
	}
	return params, arts, nil
}

// rootArtifacts are the pipeline's input artifacts given at run creation (nil when none were).
func rootArtifacts(m map[string]Artifact) map[string][]Artifact {
	if len(m) == 0 {
		return nil
	}
	out := map[string][]Artifact{}
	for _, k := range sortedKeys(m) {
		out[k] = []Artifact{m[k]}
	}
	return out
}

func isLoopOutput(res *taskResult) bool { return res.Outputs.Artifacts != nil }

// finalStatusState is the state a PipelineTaskFinalStatus carries: as KFP's open-source backend
// (driver, resolve.go), the MLMD execution state of the task — COMPLETE, CACHED, FAILED or CANCELED
// (a skipped task never ran: CANCELED, as the metadata service records it).
func finalStatusState(s string) string {
	switch s {
	case pipelinesv1.TaskSucceeded:
		return "COMPLETE"
	case pipelinesv1.TaskCached:
		return "CACHED"
	case pipelinesv1.TaskCancelled, pipelinesv1.TaskSkipped, pipelinesv1.TaskOmitted:
		return "CANCELED"
	default:
		return "FAILED"
	}
}

// JobResourceName is a run's {{$.pipeline_job_resource_name}} and the pipelineJobResourceName of a
// final status: like the KFP backend's run resource name, it starts with the pipeline name.
func JobResourceName(pipeline, runID string) string { return pipeline + "-" + runID }

// jobContext is what the job and task placeholders of a task's constant inputs resolve to, as in the
// step's executor (KFP's driver substitutes them in runtimeValue constants).
func (r *runner) jobContext(t *dag.Task, path string) dag.JobContext {
	return dag.JobContext{JobName: r.p.Name, JobResourceName: JobResourceName(r.p.Name, r.in.RunID), JobUUID: r.in.RunID,
		TaskName: t.Name, TaskUUID: path, CreateTimeUTC: createTime(r.state.CreatedAt)}
}

// scopeState folds task results into the scope's state and selects the DAG outputs.
func (r *runner) scopeState(d *dag.DAG, results map[string]*taskResult, sc scope) (string, string, outputs) {
	var failed []string
	cancelled := false
	for _, t := range d.Tasks {
		res := results[t.Name]
		if res == nil {
			continue
		}
		if res.State == pipelinesv1.TaskFailed {
			failed = append(failed, fmt.Sprintf("%s: %s", joinPath(sc.Path, t.Name), res.Error))
		}
		if res.State == pipelinesv1.TaskCancelled && r.v >= 1 {
			cancelled = true
		}
	}
	out := outputs{}
	for _, op := range d.Outputs.Parameters {
		for _, sel := range op.Selectors {
			res := results[sel.Task]
			if res == nil || res.Outputs.Params == nil {
				continue
			}
			if v, ok := res.Outputs.Params[sel.Output]; ok {
				if out.Params == nil {
					out.Params = map[string]any{}
				}
				out.Params[op.Name] = v
				break
			}
		}
	}
	for _, oa := range d.Outputs.Artifacts {
		for _, sel := range oa.Selectors {
			res := results[sel.Task]
			if res == nil {
				continue
			}
			if l := res.Outputs.Artifacts[sel.Output]; len(l) > 0 {
				if out.Artifacts == nil {
					out.Artifacts = map[string][]Artifact{}
				}
				out.Artifacts[oa.Name] = append(out.Artifacts[oa.Name], l...)
			}
		}
	}
	switch {
	case r.canceled:
		return pipelinesv1.RunCancelled, "run cancelled", out
	case cancelled && len(failed) == 0:
		return pipelinesv1.RunCancelled, "a task was cancelled", out
	case len(failed) > 0:
		return pipelinesv1.RunFailed, strings.Join(failed, "; "), out
	default:
		return pipelinesv1.RunSucceeded, "", out
	}
}

// runTask runs one started task: a loop, a nested DAG, a training job or a container step.
func (r *runner) runTask(ctx workflow.Context, sc scope, t *dag.Task, path string, params map[string]any, arts map[string][]Artifact) taskResult {
	comp, ok := r.p.TaskComponent(t)
	if !ok {
		return r.finish(ctx, path, t.Name, taskResult{State: pipelinesv1.TaskFailed, Error: fmt.Sprintf("unknown component %q", t.ComponentRef)})
	}
	if prev, ok := r.in.Reuse[path]; ok && t.Iterator == nil {
		res := taskResult{State: pipelinesv1.TaskSucceeded, Outputs: fromPublic(prev)}
		return r.finish(ctx, path, t.Name, res)
	}
	r.setTask(ctx, path, t.Name, pipelinesv1.TaskRunning, nil)
	switch {
	case t.Iterator != nil:
		return r.finish(ctx, path, t.Name, r.runLoop(ctx, t, comp, path, params, arts))
	case comp.Kind == dag.KindDAG:
		in := ScopeInput{Run: r.in, PipelineName: r.p.Name, Component: comp.Name, TaskName: t.Name, Path: path, Params: params, Artifacts: arts}
		res := r.runChild(ctx, path, childSummary(in, 0, 1), in)
		return r.finish(ctx, path, t.Name, taskResult{State: taskStateOf(res.State), Error: res.Error, Outputs: res.Outputs})
	case comp.Kind == dag.KindTrainingJob:
		return r.finish(ctx, path, t.Name, r.runTrainingJob(ctx, t, comp, path))
	case comp.Kind == dag.KindImporter:
		return r.finish(ctx, path, t.Name, r.runImport(ctx, t, comp, path, params))
	default:
		return r.finish(ctx, path, t.Name, r.runStep(ctx, t.Name, path, comp, t.Retry, t.EnableCache, params, arts))
	}
}

func taskStateOf(scopeState string) string {
	switch scopeState {
	case pipelinesv1.RunSucceeded:
		return pipelinesv1.TaskSucceeded
	case pipelinesv1.RunCancelled:
		return pipelinesv1.TaskCancelled
	default:
		return pipelinesv1.TaskFailed
	}
}

func (r *runner) finish(ctx workflow.Context, path, name string, res taskResult) taskResult {
	r.setTask(ctx, path, name, res.State, func(ts *pipelinesv1.TaskState) {
		ts.Error = res.Error
		if succeeded(res.State) {
			ts.Outputs = res.Outputs.public()
		}
	})
	if r.v >= 1 {
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		r.notifyEnd(dctx, path, name, res.State, res.Error)
	}
	return res
}

// reused returns the outputs a retried run takes over from its previous run for a succeeded task or
// loop iteration at path (versionEdgeSemantics; before it, loop iterations always ran again).
func (r *runner) reused(path string) (taskResult, bool) {
	prev, ok := r.in.Reuse[path]
	if !ok || r.v < 1 {
		return taskResult{}, false
	}
	return taskResult{State: pipelinesv1.TaskSucceeded, Outputs: fromPublic(prev)}, true
}

// runChild runs a DAG child workflow and merges its task states into this run's state.
func (r *runner) runChild(ctx workflow.Context, id, summary string, in ScopeInput) ScopeResult {
	childID := r.in.RunID + "/" + id
	// The task lists its running children so a state query can follow them (see State).
	r.setTask(ctx, in.Path, in.TaskName, pipelinesv1.TaskRunning, func(ts *pipelinesv1.TaskState) {
		if ts.Extra == nil {
			ts.Extra = map[string]string{}
		}
		ts.Extra["child_workflows"] = strings.TrimPrefix(ts.Extra["child_workflows"]+","+childID, ",")
	})
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:          childID,
		TaskQueue:           pipelinesv1.TaskQueue,
		ParentClosePolicy:   enums.PARENT_CLOSE_POLICY_TERMINATE,
		WaitForCancellation: true,
		StaticSummary:       summary,
		StaticDetails: wf.Details(summary, [][2]string{{"Run ID", r.in.RunID}, {"Pipeline", r.p.Name}, {"Task", in.Path},
			{"Component", in.Component}}, [2]string{"Run page (dashboard)", "/ui/runs/" + url.PathEscape(r.in.RunID)}),
		TypedSearchAttributes: childAttributes(in),
	})
	var res ScopeResult
	err := workflow.ExecuteChildWorkflow(cctx, DAGWorkflowType, in).Get(ctx, &res)
	r.mergeTasks(res.Tasks)
	for _, t := range res.Tasks {
		if t.State == pipelinesv1.TaskFailed {
			r.taskFailed(ctx, t.Path)
		}
	}
	if err != nil {
		var ce *temporal.CanceledError
		if errors.As(err, &ce) || ctx.Err() != nil {
			return ScopeResult{State: pipelinesv1.RunCancelled, Error: "cancelled"}
		}
		return ScopeResult{State: pipelinesv1.RunFailed, Error: err.Error()}
	}
	return res
}

// runLoop fans a task out over its items (ParallelFor) in child workflows of at most maxBatchSteps
// steps each, then merges the iterations' outputs in item order.
func (r *runner) runLoop(ctx workflow.Context, t *dag.Task, comp *dag.Component, path string, params map[string]any, arts map[string][]Artifact) taskResult {
	it := t.Iterator
	var items []any
	var itemArts []Artifact
	n := 0
	switch {
	case it.Artifact:
		itemArts = arts[it.InputArtifact]
		n = len(itemArts)
	case it.HasRaw:
		items = it.Raw
		n = len(items)
	default:
		v, ok := params[it.InputParameter]
		if !ok {
			return taskResult{State: pipelinesv1.TaskFailed, Error: fmt.Sprintf("loop items %q have no value", it.InputParameter)}
		}
		list, err := asList(v)
		if err != nil {
			return taskResult{State: pipelinesv1.TaskFailed, Error: fmt.Sprintf("loop items %q: %v", it.InputParameter, err)}
		}
		items = list
		n = len(items)
	}
	base := map[string]any{}
	for _, k := range sortedKeys(params) {
		if k != it.InputParameter {
			base[k] = params[k]
		}
	}
	perIter := 1
	if comp.Kind == dag.KindDAG {
		perIter = max(1, countSteps(r.p, comp))
	}
	size := max(1, maxBatchSteps/perIter)
	if it.ParallelismLimit > 0 {
		size = max(size, it.ParallelismLimit)
	}
	var batches []ScopeInput
	for first := 0; first < n; first += size {
		last := min(n, first+size)
		b := &LoopBatch{ItemInput: it.ItemInput, Artifact: it.Artifact, First: first, Parallelism: it.ParallelismLimit}
		if it.Artifact {
			b.ItemArtifacts = itemArts[first:last]
		} else {
			b.Items = items[first:last]
		}
		batches = append(batches, ScopeInput{Run: r.in, PipelineName: r.p.Name, Component: comp.Name, TaskName: t.Name, Path: path,
			Params: base, Artifacts: arts, Loop: b, Retry: t.Retry, EnableCache: t.EnableCache})
	}
	results := make([]ScopeResult, len(batches))
	if it.ParallelismLimit > 0 {
		for i, b := range batches { // one batch at a time keeps the global limit
			results[i] = r.runChild(ctx, fmt.Sprintf("%s/batch-%d", path, i), childSummary(b, i, len(batches)), b)
		}
	} else {
		futures := make([]workflow.Channel, len(batches))
		for i, b := range batches {
			ch := workflow.NewBufferedChannel(ctx, 1)
			futures[i] = ch
			i, b := i, b
			workflow.Go(ctx, func(gctx workflow.Context) {
				ch.Send(gctx, r.runChild(gctx, fmt.Sprintf("%s/batch-%d", path, i), childSummary(b, i, len(batches)), b))
			})
		}
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		for i, ch := range futures {
			ch.Receive(dctx, &results[i])
		}
	}
	merged := outputs{Params: map[string]any{}, Artifacts: map[string][]Artifact{}}
	for _, op := range comp.OutputParams {
		merged.Params[op.Name] = []any{}
	}
	for _, oa := range comp.OutputArtifacts {
		merged.Artifacts[oa.Name] = []Artifact{}
	}
	state := pipelinesv1.TaskSucceeded
	var errs []string
	for _, res := range results {
		switch res.State {
		case pipelinesv1.RunCancelled:
			state = pipelinesv1.TaskCancelled
		case pipelinesv1.RunFailed:
			if state != pipelinesv1.TaskCancelled {
				state = pipelinesv1.TaskFailed
			}
			errs = append(errs, res.Error)
		}
		for _, io := range res.Iterations {
			for _, op := range comp.OutputParams {
				merged.Params[op.Name] = append(merged.Params[op.Name].([]any), io.Params[op.Name])
			}
			for _, oa := range comp.OutputArtifacts {
				merged.Artifacts[oa.Name] = append(merged.Artifacts[oa.Name], io.Artifacts[oa.Name]...)
			}
		}
	}
	return taskResult{State: state, Error: strings.Join(errs, "; "), Outputs: merged}
}

// runBatch runs a slice of loop iterations inside a DAG child workflow.
func (r *runner) runBatch(ctx workflow.Context, in ScopeInput, comp *dag.Component) ScopeResult {
	b := in.Loop
	n := len(b.Items)
	if b.Artifact {
		n = len(b.ItemArtifacts)
	}
	iters := make([]outputs, n)
	states := make([]string, n)
	errs := make([]string, n)
	done := workflow.NewBufferedChannel(ctx, n+1)
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if comp.Kind != dag.KindDAG && b.Parallelism <= 0 && n > 1 {
		var steps []StepInput
		var index []int
		for i := 0; i < n; i++ {
			path := in.Path + "/" + strconv.Itoa(b.First+i)
			if res, ok := r.reused(path); ok {
				res = r.finish(ctx, path, in.TaskName, res)
				iters[i], states[i], errs[i] = res.Outputs, res.State, res.Error
				continue
			}
			params, arts := iterationInputs(in, i)
			steps = append(steps, r.stepInput(in.TaskName, path, comp, in.EnableCache, params, arts))
			index = append(index, i)
		}
		for k, res := range r.runFused(ctx, steps, in.Retry) {
			res = r.finish(ctx, steps[k].TaskPath, in.TaskName, res)
			i := index[k]
			iters[i], states[i], errs[i] = res.Outputs, res.State, res.Error
		}
		return batchResult(in, iters, states, errs)
	}
	limit := b.Parallelism
	if limit <= 0 {
		limit = n
	}
	next, running := 0, 0
	for next < n || running > 0 {
		for running < limit && next < n {
			i := next
			next++
			running++
			path := in.Path + "/" + strconv.Itoa(b.First+i)
			params, arts := iterationInputs(in, i)
			workflow.Go(ctx, func(gctx workflow.Context) {
				var res taskResult
				if prev, ok := r.reused(path); ok && comp.Kind != dag.KindDAG {
					res = r.finish(gctx, path, in.TaskName, prev)
				} else if ctx.Err() != nil {
					res = taskResult{State: pipelinesv1.TaskCancelled}
				} else if comp.Kind == dag.KindDAG {
					st, msg, out := r.runDAG(gctx, scope{Path: path, Comp: comp, Params: params, Arts: arts})
					res = taskResult{State: taskStateOf(st), Error: msg, Outputs: out}
				} else {
					r.setTask(gctx, path, in.TaskName, pipelinesv1.TaskRunning, nil)
					res = r.finish(gctx, path, in.TaskName, r.runStep(gctx, in.TaskName, path, comp, in.Retry, in.EnableCache, params, arts))
				}
				done.Send(gctx, iterDone{Index: i, Result: res})
			})
		}
		var d iterDone
		done.Receive(dctx, &d)
		running--
		iters[d.Index], states[d.Index], errs[d.Index] = d.Result.Outputs, d.Result.State, d.Result.Error
	}
	return batchResult(in, iters, states, errs)
}

// iterationInputs are the inputs of iteration i of a loop batch: the task's inputs plus the item.
func iterationInputs(in ScopeInput, i int) (map[string]any, map[string][]Artifact) {
	b := in.Loop
	params := map[string]any{}
	for _, k := range sortedKeys(in.Params) {
		params[k] = in.Params[k]
	}
	arts := map[string][]Artifact{}
	for _, k := range sortedKeys(in.Artifacts) {
		arts[k] = in.Artifacts[k]
	}
	if b.Artifact {
		arts[b.ItemInput] = []Artifact{b.ItemArtifacts[i]}
	} else {
		params[b.ItemInput] = b.Items[i]
	}
	return params, arts
}

func batchResult(in ScopeInput, iters []outputs, states, errs []string) ScopeResult {
	res := ScopeResult{State: pipelinesv1.RunSucceeded, Iterations: iters, IterStates: states}
	var msgs []string
	for i, st := range states {
		switch st {
		case pipelinesv1.TaskCancelled:
			res.State = pipelinesv1.RunCancelled
		case pipelinesv1.TaskFailed:
			if res.State != pipelinesv1.RunCancelled {
				res.State = pipelinesv1.RunFailed
			}
			msgs = append(msgs, fmt.Sprintf("%s/%d: %s", in.Path, in.Loop.First+i, errs[i]))
		}
	}
	res.Error = strings.Join(msgs, "; ")
	return res
}

type iterDone struct {
	Index  int
	Result taskResult
}

// runStep runs a container task: cache lookup and attempts with the task's retry policy. Backoff waits
// are workflow timers, so a cancel during backoff starts no new attempt.
func (r *runner) runStep(ctx workflow.Context, name, path string, comp *dag.Component, retry *dag.RetryPolicy, enableCache bool, params map[string]any, arts map[string][]Artifact) taskResult {
	return r.attempts(ctx, r.stepInput(name, path, comp, enableCache, params, arts), retry, 1)
}

// stepInput builds the activity input of a container step.
func (r *runner) stepInput(name, path string, comp *dag.Component, enableCache bool, params map[string]any, arts map[string][]Artifact) StepInput {
	ex := comp.Executor
	in := StepInput{
		RunID: r.in.RunID, Namespace: r.in.Namespace, PipelineName: r.p.Name, TaskPath: path, TaskName: name, Component: comp.Name,
		Image: ex.Image, Command: ex.Command, Args: ex.Args, Params: params, Artifacts: arts,
		OutputParams: map[string]string{}, OutputArtifacts: map[string]string{}, KFP: r.kfp,
	}
	if len(ex.Env) > 0 {
		in.Env = map[string]string{}
		for _, e := range ex.Env {
			in.Env[e.Name] = e.Value
		}
	}
	if len(ex.Kubernetes) > 0 {
		k, _ := dag.KubernetesForDocker(ex.Kubernetes, r.kubeNames[path])
		in.Volumes, in.Labels, in.EnvFrom, in.ObjectVolumes = k.Volumes, k.Labels, k.EnvFrom, k.ObjectVolumes
		if r.pod {
			if ps, _ := dag.PodSettingsOf(ex.Kubernetes); !ps.Empty() {
				in.Pod = &ps
			}
		}
	}
	in.Workspace = dag.UsesWorkspace(r.p)
	if len(ex.Resources) > 0 {
		res, _ := dag.ResourcesForDocker(ex.Resources)
		in.Resources = &res
	}
	for _, op := range comp.OutputParams {
		in.OutputParams[op.Name] = string(op.Type)
	}
	for _, oa := range comp.OutputArtifacts {
		in.OutputArtifacts[oa.Name] = oa.SchemaTitle
	}
	if enableCache && !r.in.DisableCache && dag.PVCOperation(ex) == "" { // PVC operations are never cached
		digests := map[string][]string{}
		for _, k := range sortedKeys(arts) {
			for _, a := range arts[k] {
				digests[k] = append(digests[k], a.Digest)
			}
		}
		in.Fingerprint = dag.Fingerprint(comp, params, digests)
		in.MaxStaleness = int64(r.in.CacheMaxStaleness)
	}
	return in
}

func stepActivityOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, wf.LongActivity(stepHeartbeat, 7*24*time.Hour))
}

// attempts runs attempts first, first+1, ... of a step until one succeeds or the retry policy is spent.
func (r *runner) attempts(ctx workflow.Context, in StepInput, retry *dag.RetryPolicy, first int) taskResult {
	maxRetries := 0
	if retry != nil {
		maxRetries = retry.MaxRetryCount
	}
	var a *Activities
	actx := stepActivityOptions(ctx)
	var lastErr string
	for attempt := first; ; attempt++ {
		if attempt > first || first > 1 {
			if d := retry.Delay(attempt - 1); d > 0 {
				if err := sleep(ctx, d, fmt.Sprintf("backoff %s before attempt %d of step %s", d, attempt, in.TaskPath)); err != nil {
					return taskResult{State: pipelinesv1.TaskCancelled, Error: "cancelled during retry backoff after: " + lastErr}
				}
			}
		}
		in.Attempt = attempt
		in.LastAttempt = attempt > maxRetries
		r.setTask(ctx, in.TaskPath, in.TaskName, pipelinesv1.TaskRunning, func(ts *pipelinesv1.TaskState) { ts.Attempts = attempt })
		var out StepResult
		err := workflow.ExecuteActivity(withSummary(actx, stepSummary(in.TaskPath, attempt)), a.RunStep, in).Get(ctx, &out)
		if err == nil {
			return r.stepDone(ctx, in, out)
		}
		var ce *temporal.CanceledError
		if errors.As(err, &ce) || ctx.Err() != nil {
			return taskResult{State: pipelinesv1.TaskCancelled, Error: "cancelled"}
		}
		lastErr = rootMessage(err)
		if uri := LogOf(err); uri != "" { // the failed attempt's log, for `run logs`
			r.setTask(ctx, in.TaskPath, in.TaskName, pipelinesv1.TaskRunning, func(ts *pipelinesv1.TaskState) { ts.LogURI = uri })
		}
		if wf.ErrorType(err) == wf.ErrTypeInvalidSpec || attempt > maxRetries {
			return taskResult{State: pipelinesv1.TaskFailed, Error: lastErr}
		}
		r.setTask(ctx, in.TaskPath, in.TaskName, pipelinesv1.TaskRunning, func(ts *pipelinesv1.TaskState) { ts.Error = lastErr })
	}
}

func (r *runner) stepDone(ctx workflow.Context, in StepInput, out StepResult) taskResult {
	res := taskResult{State: pipelinesv1.TaskSucceeded, Outputs: out.Outputs}
	if out.Cached {
		res.State = pipelinesv1.TaskCached
	}
	r.setTask(ctx, in.TaskPath, in.TaskName, pipelinesv1.TaskRunning, func(ts *pipelinesv1.TaskState) { ts.LogURI = out.LogURI })
	return res
}

// fusedChunk is how many loop iterations one RunSteps activity runs (their first attempt only).
const fusedChunk = 50

// runFused runs the first attempt of many container iterations in RunSteps activities of fusedChunk
// steps each, so a large ParallelFor costs a few dozen history events instead of thousands; an
// iteration that fails there continues with attempt 2 on its own, under the task's retry policy.
func (r *runner) runFused(ctx workflow.Context, steps []StepInput, retry *dag.RetryPolicy) []taskResult {
	results := make([]taskResult, len(steps))
	var a *Activities
	actx := stepActivityOptions(ctx)
	type chunkDone struct {
		First    int
		Outcomes []StepOutcome
		Err      error
	}
	done := workflow.NewBufferedChannel(ctx, len(steps)/fusedChunk+1)
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	chunks := 0
	for first := 0; first < len(steps); first += fusedChunk {
		last := min(len(steps), first+fusedChunk)
		chunk := append([]StepInput(nil), steps[first:last]...)
		maxRetries := 0
		if retry != nil {
			maxRetries = retry.MaxRetryCount
		}
		for i := range chunk {
			chunk[i].Attempt, chunk[i].LastAttempt = 1, maxRetries == 0
			r.setTask(ctx, chunk[i].TaskPath, chunk[i].TaskName, pipelinesv1.TaskRunning, func(ts *pipelinesv1.TaskState) { ts.Attempts = 1 })
		}
		chunks++
		first := first
		workflow.Go(ctx, func(gctx workflow.Context) {
			var outs []StepOutcome
			summary := fmt.Sprintf("steps %s … %s (%d iterations, attempt 1)", chunk[0].TaskPath, chunk[len(chunk)-1].TaskPath, len(chunk))
			err := workflow.ExecuteActivity(withSummary(actx, summary), a.RunSteps, StepsInput{Steps: chunk}).Get(gctx, &outs)
			done.Send(gctx, chunkDone{First: first, Outcomes: outs, Err: err})
		})
	}
	var retries []int
	for c := 0; c < chunks; c++ {
		var cd chunkDone
		done.Receive(dctx, &cd)
		for k := 0; k < fusedChunkLen(cd.First, len(steps)); k++ {
			i := cd.First + k
			in := steps[i]
			switch {
			case cd.Err != nil:
				var ce *temporal.CanceledError
				if errors.As(cd.Err, &ce) || ctx.Err() != nil {
					results[i] = taskResult{State: pipelinesv1.TaskCancelled, Error: "cancelled"}
				} else {
					results[i] = taskResult{State: pipelinesv1.TaskFailed, Error: rootMessage(cd.Err)}
				}
			case cd.Outcomes[k].Error == "":
				in.Attempt = 1
				results[i] = r.stepDone(ctx, in, cd.Outcomes[k].Result)
			default:
				results[i] = taskResult{State: pipelinesv1.TaskFailed, Error: cd.Outcomes[k].Error}
				if uri := cd.Outcomes[k].LogURI; uri != "" {
					r.setTask(ctx, in.TaskPath, in.TaskName, pipelinesv1.TaskRunning, func(ts *pipelinesv1.TaskState) { ts.LogURI = uri })
				}
				if retry != nil && retry.MaxRetryCount > 0 && cd.Outcomes[k].ErrType != wf.ErrTypeInvalidSpec {
					retries = append(retries, i)
				}
			}
		}
	}
	// Failed first attempts continue one by one, with backoff timers, in parallel.
	rdone := workflow.NewBufferedChannel(ctx, len(retries)+1)
	for _, i := range retries {
		i := i
		workflow.Go(ctx, func(gctx workflow.Context) {
			rdone.Send(gctx, iterDone{Index: i, Result: r.attempts(gctx, steps[i], retry, 2)})
		})
	}
	for range retries {
		var d iterDone
		rdone.Receive(dctx, &d)
		results[d.Index] = d.Result
	}
	return results
}

func fusedChunkLen(first, n int) int { return min(n, first+fusedChunk) - first }

// rootMessage returns the innermost application error message (Temporal wraps activity errors).
func rootMessage(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Message()
	}
	return err.Error()
}

func countSteps(p *dag.Pipeline, c *dag.Component) int {
	if c.DAG == nil {
		return 1
	}
	n := 0
	for _, t := range c.DAG.Tasks {
		sub, ok := p.TaskComponent(t)
		if !ok {
			continue
		}
		n += countSteps(p, sub)
	}
	return n
}

// asList reads loop items: a JSON list value or a string holding a JSON list.
func asList(v any) ([]any, error) {
	switch x := v.(type) {
	case []any:
		return x, nil
	case string:
		var l []any
		if err := json.Unmarshal([]byte(x), &l); err != nil {
			return nil, fmt.Errorf("not a JSON list: %w", err)
		}
		return l, nil
	default:
		return nil, fmt.Errorf("not a list: %T", v)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func createTime(t time.Time) string {
	if t.IsZero() { // a DAG child workflow: its run's time is not known here
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
