package lifecycle

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/libs/events"
	sluicewf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/internal/culling"
)

// HistoryLimit is the history length after which a lifecycle run continues as new (well below 4,096).
const HistoryLimit = 2000

// Activity names (method names of Activities).
const (
	activityStartServer  = "StartServer"
	activityWatchServer  = "WatchServer"
	activityStopServer   = "StopServer"
	activityProbeKernels = "ProbeKernels"
	activityReport       = "Report"
)

// Lifecycle is the notebook lifecycle workflow (registered as notebooksv1.WorkflowType). It starts the server
// unless the notebook carries the kubeflow-resource-stopped annotation, restarts it when it exits (stopping
// it with condition Terminated/CrashLoopBackOff after Crash.MaxRestarts exits within Crash.Window), culls it
// per Kubeflow when idle, and obeys stop/start/delete control signals. It ends when the notebook is deleted.
//
// The culler runs here, with a durable timer per IDLENESS_CHECK_PERIOD and a local-activity probe, so the
// last-activity clock is part of the workflow's state: it survives service restarts and continue-as-new,
// needs no second store, and a stop decided by the culler is ordered with user signals.
func Lifecycle(ctx workflow.Context, in notebooksv1.LifecycleInput) (notebooksv1.LifecycleResult, error) {
	l := &lifecycle{in: in, nb: in.Notebook, wfID: workflow.GetInfo(ctx).WorkflowExecution.ID}
	if in.Carry != nil {
		l.carry = *in.Carry
	}
	if l.nb.Metadata.Annotations == nil {
		l.nb.Metadata.Annotations = map[string]string{}
	}
	if p, ok := workflow.GetTypedSearchAttributes(ctx).GetKeyword(sluicewf.SAPhase); ok {
		l.phase = p
	}
	if err := workflow.SetQueryHandler(ctx, notebooksv1.QueryNotebook, func() (notebooksv1.Notebook, error) {
		return l.nb, nil
	}); err != nil {
		return notebooksv1.LifecycleResult{}, err
	}
	ctl := workflow.GetSignalChannel(ctx, notebooksv1.SignalControl)
	_, stopped := l.nb.Metadata.Annotations[notebooksv1.AnnotationStopped]
	l.desired = !stopped
	now := workflow.Now(ctx)
	if in.Carry == nil {
		if l.nb.Metadata.CreationTimestamp == nil {
			t := now.UTC()
			l.nb.Metadata.CreationTimestamp = &t
		}
		l.carry.PendingSpawn = true
		if stopped {
			l.nb.Metadata.Annotations[notebooksv1.AnnotationStopped] = now.UTC().Format(time.RFC3339)
			l.setTerminated(now, notebooksv1.ReasonStopped, "created stopped (kubeflow-resource-stopped)", 0)
		} else {
			l.setWaiting(now, notebooksv1.ReasonStarting, "starting the notebook server")
		}
		if err := l.report(ctx, "", notebooksv1.Event{}); err != nil {
			return notebooksv1.LifecycleResult{}, err
		}
	} else if l.carry.Serving {
		l.watch(ctx)
	}

	for {
		if l.deleted && l.startFut == nil {
			return l.finishDelete(ctx)
		}
		if l.desired && !l.carry.Serving && l.startFut == nil && l.backoffFut == nil {
			l.start(ctx)
		}
		if l.carry.Serving && l.in.Culling.Enabled && l.tickFut == nil {
			tctx, cancel := workflow.WithCancel(ctx)
			l.tickFut, l.tickCancel = workflow.NewTimerWithOptions(tctx, l.in.Culling.CheckPeriod,
				workflow.TimerOptions{Summary: fmt.Sprintf("culling: check idleness in %s", l.in.Culling.CheckPeriod)}), cancel
		}
		var stepErr error
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(ctl, func(c workflow.ReceiveChannel, _ bool) {
			var x notebooksv1.Control
			c.Receive(ctx, &x)
			stepErr = l.control(ctx, x)
		})
		if l.startFut != nil {
			sel.AddFuture(l.startFut, func(f workflow.Future) { l.startFut = nil; stepErr = l.onStarted(ctx, f) })
		}
		if l.watchFut != nil {
			sel.AddFuture(l.watchFut, func(f workflow.Future) { l.watchFut = nil; stepErr = l.onExited(ctx, f) })
		}
		if l.tickFut != nil {
			sel.AddFuture(l.tickFut, func(f workflow.Future) {
				l.tickFut = nil
				if f.Get(ctx, nil) == nil {
					stepErr = l.probe(ctx)
				}
			})
		}
		if l.backoffFut != nil {
			sel.AddFuture(l.backoffFut, func(f workflow.Future) { l.backoffFut = nil })
		}
		sel.Select(ctx)
		if stepErr != nil {
			return notebooksv1.LifecycleResult{}, stepErr
		}
		if workflow.GetInfo(ctx).GetCurrentHistoryLength() > HistoryLimit && l.startFut == nil && ctl.Len() == 0 && !l.deleted {
			return notebooksv1.LifecycleResult{}, l.continueAsNew(ctx)
		}
	}
}

type lifecycle struct {
	in      notebooksv1.LifecycleInput
	nb      notebooksv1.Notebook
	carry   notebooksv1.LifecycleCarry
	wfID    string
	desired bool
	deleted bool
	// spawnFrom is when the pending start was asked for (request-to-ready figure).
	spawnFrom time.Time

	startFut    workflow.Future
	watchFut    workflow.Future
	watchCancel workflow.CancelFunc
	tickFut     workflow.Future
	tickCancel  workflow.CancelFunc
	backoffFut  workflow.Future
	backoffStop workflow.CancelFunc

	// saVersion is the GetVersion of versionSearchAttributes (nil until the first state is reported);
	// phase is the SluicePhase last upserted (or carried in from the run before a continue-as-new).
	saVersion *workflow.Version
	phase     string
}

func (l *lifecycle) ns() string   { return l.nb.Metadata.Namespace }
func (l *lifecycle) name() string { return l.nb.Metadata.Name }

// startOptions retry a start without limit: an attempt fails only when its worker goes away (a server
// that cannot start is a result, judged by the crash policy).
func startOptions() workflow.ActivityOptions {
	o := sluicewf.LongActivity(20*time.Second, 3*time.Minute)
	o.RetryPolicy.MaximumAttempts = 0
	o.RetryPolicy.MaximumInterval = 5 * time.Second
	return o
}

func watchOptions() workflow.ActivityOptions {
	o := sluicewf.LongActivity(20*time.Second, time.Hour)
	// Cancelling a watch only ends the watch; the server is ended by StopServer.
	o.WaitForCancellation = false
	return o
}

func (l *lifecycle) start(ctx workflow.Context) {
	now := workflow.Now(ctx)
	l.carry.Generation++
	if l.carry.PendingSpawn && !l.in.RequestedAt.IsZero() {
		l.spawnFrom = l.in.RequestedAt
	} else if l.spawnFrom.IsZero() {
		l.spawnFrom = now
	}
	opts := startOptions()
	opts.Summary = fmt.Sprintf("start notebook server %s/%s (generation %d)", l.ns(), l.name(), l.carry.Generation)
	actx := workflow.WithActivityOptions(ctx, opts)
	l.startFut = workflow.ExecuteActivity(actx, activityStartServer, StartServerInput{Notebook: l.nb, Generation: l.carry.Generation})
}

func (l *lifecycle) watch(ctx workflow.Context) {
	wctx, cancel := workflow.WithCancel(ctx)
	wopts := watchOptions()
	wopts.Summary = fmt.Sprintf("watch notebook server %s/%s (generation %d)", l.ns(), l.name(), l.carry.Generation)
	wctx = workflow.WithActivityOptions(wctx, wopts)
	l.watchFut, l.watchCancel = workflow.ExecuteActivity(wctx, activityWatchServer,
		WatchServerInput{Namespace: l.ns(), Name: l.name(), Generation: l.carry.Generation}), cancel
}

// onStarted handles the StartServer outcome.
func (l *lifecycle) onStarted(ctx workflow.Context, f workflow.Future) error {
	var res StartServerResult
	if err := f.Get(ctx, &res); err != nil {
		if sluicewf.ErrorType(err) == sluicewf.ErrTypeInvalidSpec {
			l.desired = false
			now := workflow.Now(ctx)
			l.nb.Metadata.Annotations[notebooksv1.AnnotationStopped] = now.UTC().Format(time.RFC3339)
			l.setTerminated(now, notebooksv1.ReasonError, err.Error(), -1)
			return l.report(ctx, events.NotebookFailedV1, notebooksv1.Event{Reason: notebooksv1.ReasonError, Message: err.Error(), ExitCode: -1})
		}
		return l.crashed(ctx, -1, notebooksv1.ReasonError, "start failed: "+err.Error())
	}
	if !res.Ready {
		return l.crashed(ctx, res.ExitCode, res.Reason, res.Message)
	}
	l.carry.Serving = true
	l.carry.ServerStart = res.StartedAt
	if !l.desired {
		// Stopped or deleted while starting.
		if l.deleted {
			return nil
		}
		return l.stopServer(ctx, notebooksv1.ReasonStopped, "stopped by request", events.NotebookStoppedV1)
	}
	now := workflow.Now(ctx)
	spawn := now.Sub(l.spawnFrom)
	l.spawnFrom = time.Time{}
	l.carry.PendingSpawn = false
	// A (re)started server begins with a fresh activity clock, so it is not culled at once.
	stamp := now.UTC().Format(time.RFC3339Nano)
	l.nb.Metadata.Annotations[notebooksv1.AnnotationLastActivity] = stamp
	l.nb.Metadata.Annotations[notebooksv1.AnnotationLastActivityCheck] = stamp
	l.setRunning(now, res.StartedAt)
	l.watch(ctx)
	return l.report(ctx, events.NotebookRunningV1, notebooksv1.Event{URL: l.nb.Status.URL, SpawnSeconds: spawn.Seconds()})
}

// onExited handles the end of a WatchServer.
func (l *lifecycle) onExited(ctx workflow.Context, f workflow.Future) error {
	l.watchCancel = nil
	var res WatchServerResult
	if err := f.Get(ctx, &res); err != nil {
		var ce *temporal.CanceledError
		if errors.As(err, &ce) {
			return nil
		}
		// The watch itself failed (timeout, worker trouble): watch again; Gone tells if the server is lost.
		l.watch(ctx)
		return nil
	}
	l.carry.Serving = false
	l.cancelTick()
	if res.Gone {
		// The worker that ran it went away (service restart): start a new server; this is not a crash.
		l.setWaiting(workflow.Now(ctx), notebooksv1.ReasonRestarting, "the service restarted; starting the server again")
		return l.report(ctx, "", notebooksv1.Event{})
	}
	if !l.desired {
		return nil
	}
	msg := fmt.Sprintf("server exited with code %d", res.ExitCode)
	if res.Message != "" {
		msg += ": " + res.Message
	}
	return l.crashed(ctx, res.ExitCode, res.Reason, msg)
}

// crashed records an unexpected exit and restarts with backoff, or stops after too many.
func (l *lifecycle) crashed(ctx workflow.Context, code int, reason, msg string) error {
	now := workflow.Now(ctx)
	l.carry.Serving = false
	if l.deleted {
		return nil
	}
	if !l.desired {
		// Stopped while starting, and the start failed anyway.
		l.dropActivity()
		l.setTerminated(now, notebooksv1.ReasonStopped, "stopped by request", code)
		return l.report(ctx, events.NotebookStoppedV1, notebooksv1.Event{Reason: notebooksv1.ReasonStopped})
	}
	kept := l.carry.CrashTimes[:0]
	for _, t := range l.carry.CrashTimes {
		if now.Sub(t) < l.in.Crash.Window {
			kept = append(kept, t)
		}
	}
	l.carry.CrashTimes = append(kept, now)
	l.nb.Status.Restarts++
	n := len(l.carry.CrashTimes)
	if n >= l.in.Crash.MaxRestarts {
		l.desired = false
		l.nb.Metadata.Annotations[notebooksv1.AnnotationStopped] = now.UTC().Format(time.RFC3339)
		l.dropActivity()
		full := fmt.Sprintf("stopped after %d exits within %s; last: %s", n, l.in.Crash.Window, msg)
		l.setTerminated(now, notebooksv1.ReasonCrashLoopBackOff, full, code)
		return l.report(ctx, events.NotebookFailedV1, notebooksv1.Event{Reason: notebooksv1.ReasonCrashLoopBackOff, Message: full, ExitCode: code})
	}
	delay := l.in.Crash.Backoff << (n - 1)
	bctx, cancel := workflow.WithCancel(ctx)
	l.backoffFut, l.backoffStop = workflow.NewTimerWithOptions(bctx, delay,
		workflow.TimerOptions{Summary: fmt.Sprintf("backoff %s before restart of notebook server %s/%s", delay, l.ns(), l.name())}), cancel
	if reason != "" {
		msg = reason + ": " + msg
	}
	l.setWaiting(now, notebooksv1.ReasonRestarting, fmt.Sprintf("%s; restart %d in %s", msg, n, delay))
	return l.report(ctx, "", notebooksv1.Event{})
}

func (l *lifecycle) control(ctx workflow.Context, x notebooksv1.Control) error {
	now := workflow.Now(ctx)
	reason := x.Reason
	switch x.Action {
	case notebooksv1.ActionStop:
		if !l.desired {
			return nil
		}
		l.desired = false
		l.nb.Metadata.Annotations[notebooksv1.AnnotationStopped] = now.UTC().Format(time.RFC3339)
		if l.startFut != nil {
			return nil // onStarted stops it
		}
		if reason == "" {
			reason = "stopped by request"
		}
		return l.stopServer(ctx, notebooksv1.ReasonStopped, reason, events.NotebookStoppedV1)
	case notebooksv1.ActionStart:
		if l.desired {
			return nil
		}
		l.desired = true
		delete(l.nb.Metadata.Annotations, notebooksv1.AnnotationStopped)
		l.dropActivity()
		l.carry.CrashTimes = nil
		l.nb.Status.Restarts = 0
		l.spawnFrom = now
		if l.backoffStop != nil {
			l.backoffStop()
			l.backoffFut, l.backoffStop = nil, nil
		}
		l.setWaiting(now, notebooksv1.ReasonStarting, "starting the notebook server")
		return l.report(ctx, "", notebooksv1.Event{})
	case notebooksv1.ActionDelete:
		l.deleted = true
		l.desired = false
		return nil
	}
	return nil
}

// stopServer ends the server and records the stop (a user stop, a cull).
func (l *lifecycle) stopServer(ctx workflow.Context, reason, msg, eventType string) error {
	l.cancelWatch()
	l.cancelTick()
	if l.backoffStop != nil {
		l.backoffStop()
		l.backoffFut, l.backoffStop = nil, nil
	}
	actx := workflow.WithActivityOptions(ctx, sluicewf.ShortActivity())
	if err := workflow.ExecuteActivity(summarized(actx, "stop notebook server"), activityStopServer, StopServerInput{Namespace: l.ns(), Name: l.name()}).Get(ctx, nil); err != nil {
		return err
	}
	l.carry.Serving = false
	now := workflow.Now(ctx)
	l.dropActivity()
	l.setTerminated(now, reason, msg, 0)
	return l.report(ctx, eventType, notebooksv1.Event{Reason: reason, Message: msg})
}

func (l *lifecycle) finishDelete(ctx workflow.Context) (notebooksv1.LifecycleResult, error) {
	l.cancelWatch()
	l.cancelTick()
	if l.backoffStop != nil {
		l.backoffStop()
	}
	actx := workflow.WithActivityOptions(ctx, sluicewf.ShortActivity())
	if err := workflow.ExecuteActivity(summarized(actx, "remove notebook server"), activityStopServer, StopServerInput{Namespace: l.ns(), Name: l.name(), Remove: true}).Get(ctx, nil); err != nil {
		return notebooksv1.LifecycleResult{}, err
	}
	l.carry.Serving = false
	l.setTerminated(workflow.Now(ctx), notebooksv1.ReasonDeleted, "deleted", 0)
	if err := l.reportDelete(ctx); err != nil {
		return notebooksv1.LifecycleResult{}, err
	}
	return notebooksv1.LifecycleResult{Notebook: l.nb}, nil
}

// probe is one culler check, per Kubeflow's notebook-controller.
func (l *lifecycle) probe(ctx workflow.Context) error {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var res ProbeResult
	perr := workflow.ExecuteLocalActivity(lctx, activityProbeKernels, ProbeInput{Namespace: l.ns(), Name: l.name()}).Get(ctx, &res)
	if perr == nil && res.Error != "" {
		perr = errors.New(res.Error)
	}
	if !l.carry.Serving || !l.desired {
		return nil
	}
	now := workflow.Now(ctx)
	last, _ := time.Parse(time.RFC3339Nano, l.nb.Metadata.Annotations[notebooksv1.AnnotationLastActivity])
	next := culling.NextActivity(last, now, res.Kernels, perr)
	l.nb.Metadata.Annotations[notebooksv1.AnnotationLastActivity] = next.UTC().Format(time.RFC3339Nano)
	l.nb.Metadata.Annotations[notebooksv1.AnnotationLastActivityCheck] = now.UTC().Format(time.RFC3339Nano)
	for i := range l.nb.Status.Conditions {
		l.nb.Status.Conditions[i].LastProbeTime = now.UTC()
	}
	if !culling.Idle(l.in.Culling, next, now) {
		return nil
	}
	l.desired = false
	l.nb.Metadata.Annotations[notebooksv1.AnnotationStopped] = now.UTC().Format(time.RFC3339)
	msg := fmt.Sprintf("idle since %s (more than %s)", next.UTC().Format(time.RFC3339), l.in.Culling.IdleTime)
	return l.stopServer(ctx, notebooksv1.ReasonCulled, msg, events.NotebookCulledV1)
}

func (l *lifecycle) continueAsNew(ctx workflow.Context) error {
	l.cancelWatch()
	l.cancelTick()
	if l.backoffStop != nil {
		l.backoffStop()
	}
	next := l.in
	next.Notebook = l.nb
	c := l.carry
	next.Carry = &c
	return workflow.NewContinueAsNewError(ctx, notebooksv1.WorkflowType, next)
}

func (l *lifecycle) cancelWatch() {
	if l.watchCancel != nil {
		l.watchCancel()
	}
	l.watchFut, l.watchCancel = nil, nil
}

func (l *lifecycle) cancelTick() {
	if l.tickCancel != nil {
		l.tickCancel()
	}
	l.tickFut, l.tickCancel = nil, nil
}

// dropActivity removes the culler's annotations (Kubeflow drops them from a stopped notebook).
func (l *lifecycle) dropActivity() {
	delete(l.nb.Metadata.Annotations, notebooksv1.AnnotationLastActivity)
	delete(l.nb.Metadata.Annotations, notebooksv1.AnnotationLastActivityCheck)
}

func (l *lifecycle) setCondition(now time.Time, typ, reason, msg string) {
	now = now.UTC()
	c := notebooksv1.Condition{Type: typ, Status: "True", Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now}
	if len(l.nb.Status.Conditions) > 0 {
		prev := l.nb.Status.Conditions[0]
		if prev.Type == typ && prev.Reason == reason {
			c.LastTransitionTime = prev.LastTransitionTime
		}
	}
	l.nb.Status.Conditions = []notebooksv1.Condition{c}
}

func (l *lifecycle) setRunning(now, startedAt time.Time) {
	l.setCondition(now, notebooksv1.ConditionRunning, notebooksv1.ReasonReady, "the notebook server answers api/status")
	l.nb.Status.ReadyReplicas = 1
	l.nb.Status.ContainerState = notebooksv1.ContainerState{Running: &notebooksv1.ContainerStateRunning{StartedAt: startedAt.UTC()}}
	l.nb.Status.URL = notebooksv1.PathPrefix(l.ns(), l.name())
}

func (l *lifecycle) setWaiting(now time.Time, reason, msg string) {
	l.setCondition(now, notebooksv1.ConditionWaiting, reason, msg)
	l.nb.Status.ReadyReplicas = 0
	l.nb.Status.ContainerState = notebooksv1.ContainerState{Waiting: &notebooksv1.ContainerStateWaiting{Reason: reason, Message: msg}}
	l.nb.Status.URL = ""
}

func (l *lifecycle) setTerminated(now time.Time, reason, msg string, code int) {
	l.setCondition(now, notebooksv1.ConditionTerminated, reason, msg)
	l.nb.Status.ReadyReplicas = 0
	l.nb.Status.ContainerState = notebooksv1.ContainerState{Terminated: &notebooksv1.ContainerStateTerminated{
		ExitCode: code, Reason: reason, Message: msg, StartedAt: l.carry.ServerStart.UTC(), FinishedAt: now.UTC()}}
	l.nb.Status.URL = ""
}

func (l *lifecycle) report(ctx workflow.Context, eventType string, ev notebooksv1.Event) error {
	l.upsertPhase(ctx)
	in := ReportInput{Notebook: l.nb}
	if eventType != "" {
		l.carry.EventSeq++
		ev.Namespace, ev.Name = l.ns(), l.name()
		in.EventType, in.Event = eventType, ev
		in.EventKey = fmt.Sprintf("%s/%s/%d", l.wfID, l.in.RequestID, l.carry.EventSeq)
	}
	actx := workflow.WithActivityOptions(ctx, sluicewf.ShortActivity())
	return workflow.ExecuteActivity(summarized(actx, strings.TrimSpace("report status "+in.EventType)), activityReport, in).Get(ctx, nil)
}

func (l *lifecycle) reportDelete(ctx workflow.Context) error {
	l.upsertPhase(ctx)
	l.carry.EventSeq++
	in := ReportInput{Notebook: l.nb, Delete: true, EventType: events.NotebookDeletedV1,
		Event:    notebooksv1.Event{Namespace: l.ns(), Name: l.name(), Reason: notebooksv1.ReasonDeleted},
		EventKey: fmt.Sprintf("%s/%s/%d", l.wfID, l.in.RequestID, l.carry.EventSeq)}
	actx := workflow.WithActivityOptions(ctx, sluicewf.ShortActivity())
	return workflow.ExecuteActivity(summarized(actx, strings.TrimSpace("report status "+in.EventType)), activityReport, in).Get(ctx, nil)
}

// summarized returns ctx with its activity options' summary (shown in the Temporal Web UI) set.
func summarized(ctx workflow.Context, summary string) workflow.Context {
	opts := workflow.GetActivityOptions(ctx)
	opts.Summary = summary
	return workflow.WithActivityOptions(ctx, opts)
}
