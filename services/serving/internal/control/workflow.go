package control

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/libs/events"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/serving/api/servingv1"
)

// Workflow defaults (overridable per deployment through DeploymentInput).
const (
	DefaultHeartbeatTimeout = 10 * time.Second
	DefaultLoadTimeout      = 5 * time.Minute
	// maxHistory triggers continue-as-new well below Temporal's limits.
	maxHistory = 2500
)

// Tags of the traffic targets (KServe canary tags).
const (
	TagLatest = "latest"
	TagPrev   = "prev"
)

var eventNS = uuid.MustParse("6c0b4a52-6f0e-4bde-9d3a-4f8a1e2b7c11")

// EventID is the deterministic CloudEvents id of the seq-th event of a deployment workflow.
func EventID(workflowID, eventType string, seq int64) string {
	return uuid.NewSHA1(eventNS, fmt.Appendf(nil, "%s|%s|%d", workflowID, eventType, seq)).String()
}

type deployment struct {
	ctx  workflow.Context
	wfID string
	in   servingv1.DeploymentInput
	view servingv1.DeploymentView
	seq  int64
	// known is the newest version of the watched source already handled (loaded or failed).
	known int64
	// requests are the latest applied request ids.
	requests []string
	// deleteRequested: a delete signal arrived while a load was pending (the load was abandoned).
	deleteRequested bool
	// saVersion is the GetVersion of versionSearchAttributes (nil until the first phase change); phase is
	// the SluicePhase last upserted (or carried in from the run before a continue-as-new).
	saVersion *workflow.Version
	phase     string
}

const keepRequests = 32

func (d *deployment) seen(id string) bool {
	if id == "" {
		return false
	}
	if slices.Contains(d.requests, id) {
		return true
	}
	d.requests = append(d.requests, id)
	if len(d.requests) > keepRequests {
		d.requests = d.requests[len(d.requests)-keepRequests:]
	}
	return false
}

// DeploymentWorkflow runs one deployment from creation to deletion: it loads the model, rolls
// each new revision out (at canaryTrafficPercent while the previous rolled-out revision keeps the
// rest, or at 100%), promotes on request, keeps the previous revision serving when a new one fails
// to load (BlockedByFailedLoad), watches the base path for new versions, re-applies its state when
// the service restarts, and unloads on delete. Status is served by the QueryStatus query.
func DeploymentWorkflow(ctx workflow.Context, in servingv1.DeploymentInput) error {
	d := &deployment{ctx: ctx, wfID: workflow.GetInfo(ctx).WorkflowExecution.ID, in: in}
	if in.HeartbeatTimeout <= 0 {
		d.in.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if in.LoadTimeout <= 0 {
		d.in.LoadTimeout = DefaultLoadTimeout
	}
	first := in.Carried == nil
	if first {
		now := workflow.Now(ctx)
		d.view = servingv1.DeploymentView{Namespace: in.Spec.Namespace, Name: in.Spec.Name, Spec: in.Spec, Generation: 1, Created: now}
		d.view.Status.Components.Predictor.Traffic = []servingv1.TrafficTarget{}
		d.view.Status.URL = "/v1/models/" + in.Spec.ModelName
		d.view.Status.ModelStatus = servingv1.ModelStatus{TransitionStatus: servingv1.TransitionInProgress,
			States: servingv1.ModelStates{ActiveModelState: servingv1.ModelStatePending, TargetModelState: servingv1.ModelStateLoading}}
		d.setCondition(servingv1.ConditionPredictorReady, "Unknown", "Loading", "loading "+in.Spec.StorageURI)
		d.setCondition(servingv1.ConditionReady, "Unknown", "Loading", "loading "+in.Spec.StorageURI)
	} else {
		d.view, d.seq, d.known, d.requests = in.Carried.View, in.Carried.Seq, in.Carried.Known, in.Carried.Requests
	}
	if p, ok := workflow.GetTypedSearchAttributes(ctx).GetKeyword(wf.SAPhase); ok {
		d.phase = p
	}
	if err := workflow.SetQueryHandler(ctx, servingv1.QueryStatus, func() (servingv1.DeploymentView, error) { return d.view, nil }); err != nil {
		return err
	}
	updates := workflow.GetSignalChannel(ctx, servingv1.SignalUpdate)
	promotes := workflow.GetSignalChannel(ctx, servingv1.SignalPromote)
	deletes := workflow.GetSignalChannel(ctx, servingv1.SignalDelete)
	reconciles := workflow.GetSignalChannel(ctx, servingv1.SignalReconcile)

	if first {
		d.seen(in.RequestID)
		d.rollout(nil)
		d.upsertPhase()
	}
	for {
		if d.deleteRequested { // a delete arrived while a version was loading
			return d.remove()
		}
		var watch workflow.Future
		watchCtx, cancelWatch := workflow.WithCancel(ctx)
		if des := d.desired(); des.Watch != nil {
			opts := wf.LongActivity(d.in.HeartbeatTimeout, 24*time.Hour)
			opts.RetryPolicy.MaximumAttempts = 0 // a restarted service picks the watch up again
			watch = workflow.ExecuteActivity(wf.WithSummary(workflow.WithActivityOptions(watchCtx, opts), "watch "+d.spec().StorageURI+" for new versions"), (*Activities).Watch, WatchInput{Desired: des, Known: d.known})
		}
		deleted := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(updates, func(c workflow.ReceiveChannel, _ bool) {
			var req servingv1.UpdateRequest
			c.Receive(ctx, &req)
			if d.seen(req.RequestID) {
				return
			}
			spec := req.Spec
			cancelWatch()
			d.view.Generation++
			d.view.Spec = spec
			d.known = 0
			d.rollout(nil)
		})
		sel.AddReceive(promotes, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			cancelWatch()
			d.promote()
		})
		sel.AddReceive(deletes, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			cancelWatch()
			deleted = true
		})
		sel.AddReceive(reconciles, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			cancelWatch()
			d.apply(d.desired())
		})
		if watch != nil {
			sel.AddFuture(watch, func(f workflow.Future) {
				var res LoadResult
				if err := f.Get(ctx, &res); err != nil {
					var canceled *temporal.CanceledError
					if !errors.As(err, &canceled) {
						workflow.GetLogger(ctx).Warn("watch failed", "err", err)
						_ = workflow.Sleep(ctx, time.Second)
					}
					return
				}
				d.rollout(&res)
			})
		}
		sel.Select(ctx)
		cancelWatch()
		d.upsertPhase()
		if deleted || d.deleteRequested {
			return d.remove()
		}
		if workflow.GetInfo(ctx).GetCurrentHistoryLength() > maxHistory {
			for sel.HasPending() { // handle what already arrived before moving on
				sel.Select(ctx)
			}
			if deleted {
				return d.remove()
			}
			next := d.in
			next.Spec = d.view.Spec
			next.Carried = &servingv1.Carried{View: d.view, Seq: d.seq, Known: d.known, Requests: d.requests}
			return workflow.NewContinueAsNewError(ctx, servingv1.WorkflowType, next)
		}
	}
}

func (d *deployment) spec() servingv1.Deployment { return d.view.Spec }

func (d *deployment) source() SourceSpec {
	s := d.spec()
	return SourceSpec{StorageURI: s.StorageURI, Policy: s.VersionPolicy, Labels: s.VersionLabels}
}

// revisions by name.
func (d *deployment) revision(name string) *servingv1.Revision {
	for i := range d.view.Status.Revisions {
		if d.view.Status.Revisions[i].Name == name {
			return &d.view.Status.Revisions[i]
		}
	}
	return nil
}

// desired is the data-plane state the view describes.
func (d *deployment) desired() Desired {
	return d.desiredFor(d.view.Status.Components.Predictor.Traffic)
}

// desiredFor is the data-plane state serving traffic.
func (d *deployment) desiredFor(traffic []servingv1.TrafficTarget) Desired {
	return DesiredFor(d.view, traffic)
}

func (d *deployment) setCondition(typ, status, reason, msg string) {
	now := workflow.Now(d.ctx)
	for i, c := range d.view.Status.Conditions {
		if c.Type == typ {
			if c.Status != status {
				d.view.Status.Conditions[i].LastTransitionTime = now
			}
			d.view.Status.Conditions[i].Status, d.view.Status.Conditions[i].Reason, d.view.Status.Conditions[i].Message = status, reason, msg
			d.view.Ready = d.conditionTrue(servingv1.ConditionReady)
			return
		}
	}
	d.view.Status.Conditions = append(d.view.Status.Conditions, servingv1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: now})
	d.view.Ready = d.conditionTrue(servingv1.ConditionReady)
}

func (d *deployment) conditionTrue(typ string) bool {
	c := d.view.Condition(typ)
	return c != nil && c.Status == "True"
}

func (d *deployment) publish(typ string, data any) {
	d.upsertPhase()
	d.seq++
	in := PublishInput{Type: typ, ID: EventID(d.wfID, typ, d.seq), Subject: "deployments/" + d.spec().Key(), Data: data}
	ctx := workflow.WithActivityOptions(d.ctx, wf.ShortActivity())
	if err := workflow.ExecuteActivity(wf.WithSummary(ctx, "event "+typ), (*Activities).Publish, in).Get(ctx, nil); err != nil {
		workflow.GetLogger(d.ctx).Error("publish event", "type", typ, "err", err)
	}
}

func (d *deployment) event(version int64, rev *servingv1.Revision) servingv1.ModelEvent {
	s := d.spec()
	ev := servingv1.ModelEvent{Namespace: s.Namespace, Name: s.Name, ModelName: s.ModelName, StorageURI: s.StorageURI,
		Version: version, Traffic: slices.Clone(d.view.Status.Components.Predictor.Traffic), Time: workflow.Now(d.ctx)}
	for _, t := range ev.Traffic {
		if t.Percent > 0 {
			ev.Versions = append(ev.Versions, t.Version)
		}
	}
	if rev != nil {
		ev.Revision, ev.ModelURI, ev.Digest, ev.StorageURI = rev.Name, rev.ModelURI, rev.Digest, rev.StorageURI
	}
	return ev
}

// apply pushes the desired state to the data plane; an error marks the predictor not ready.
func (d *deployment) apply(des Desired) bool {
	opts := wf.LongActivity(d.in.HeartbeatTimeout, 10*time.Minute)
	ctx := workflow.WithActivityOptions(d.ctx, opts)
	if err := workflow.ExecuteActivity(wf.WithSummary(ctx, "apply traffic split to the data plane"), (*Activities).Apply, des).Get(ctx, nil); err != nil {
		d.fail("ApplyFailed", err.Error(), 0, len(d.view.Status.Components.Predictor.Traffic) == 0)
		return false
	}
	return true
}

// fail records a failure; fatal when nothing serves.
func (d *deployment) fail(reason, msg string, version int64, nothingServes bool) {
	ms := &d.view.Status.ModelStatus
	ms.LastFailureInfo = &servingv1.FailureInfo{Reason: reason, Message: msg, Location: d.spec().StorageURI, Time: workflow.Now(d.ctx)}
	ms.States.TargetModelState = servingv1.ModelStateFailedToLoad
	if nothingServes {
		ms.TransitionStatus = servingv1.TransitionInvalidSpec
		if reason == "ModelLoadFailed" || reason == "NoVersions" {
			ms.TransitionStatus = servingv1.TransitionBlockedByFailedLoad
		}
		ms.States.ActiveModelState = servingv1.ModelStateFailedToLoad
		d.setCondition(servingv1.ConditionPredictorReady, "False", reason, msg)
		d.setCondition(servingv1.ConditionReady, "False", reason, msg)
	} else {
		ms.TransitionStatus = servingv1.TransitionBlockedByFailedLoad
	}
	ev := d.event(version, nil)
	ev.Reason, ev.Message = reason, msg
	d.publish(events.ServingModelFailedV1, ev)
}

// rollout loads the spec's source (or takes res, a version the watch found) and rolls the result
// out as a new revision; a failure keeps what serves.
func (d *deployment) rollout(res *LoadResult) {
	traffic := d.view.Status.Components.Predictor.Traffic
	if res == nil {
		d.view.Status.ModelStatus.TransitionStatus = servingv1.TransitionInProgress
		d.view.Status.ModelStatus.States.TargetModelState = servingv1.ModelStateLoading
		if len(traffic) == 0 {
			d.view.Status.ModelStatus.States.ActiveModelState = servingv1.ModelStateLoading
		}
		opts := wf.LongActivity(d.in.HeartbeatTimeout, d.in.LoadTimeout+time.Minute)
		ctx := workflow.WithActivityOptions(d.ctx, opts)
		d.upsertPhase()
		cur := d.desired()
		cur.Watch = nil
		in := LoadInput{Current: cur, Source: d.source(), Timeout: d.in.LoadTimeout}
		var r LoadResult
		var err error
		if workflow.GetVersion(d.ctx, "delete-abandons-load", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			err = workflow.ExecuteActivity(wf.WithSummary(ctx, "load model "+d.spec().ModelName), (*Activities).Load, in).Get(ctx, &r)
		} else if err = d.loadUnlessDeleted(ctx, in, &r); d.deleteRequested {
			return
		}
		if err != nil {
			d.fail("LoadFailed", err.Error(), 0, len(traffic) == 0)
			return
		}
		res = &r
	}
	if res.Version > d.known {
		d.known = res.Version
	}
	spec := d.spec()
	if res.Failed {
		reason := "ModelLoadFailed"
		if res.NoVersion {
			reason = "NoVersions"
		}
		d.fail(reason, res.Message, res.Version, len(traffic) == 0)
		return
	}
	pred := &d.view.Status.Components.Predictor
	latest := d.latestTarget()
	var rev *servingv1.Revision
	if latest != nil {
		if r := d.revision(latest.RevisionName); r != nil && r.StorageURI == spec.StorageURI && r.Version == res.Version {
			rev = r
		}
	}
	isNew := rev == nil
	if isNew {
		d.view.Status.Revisions = append(d.view.Status.Revisions, servingv1.Revision{
			Name: fmt.Sprintf("%s-predictor-%05d", spec.Name, len(d.view.Status.Revisions)+1), StorageURI: spec.StorageURI,
			Version: res.Version, ModelURI: res.ModelURI, Digest: res.Digest})
		rev = &d.view.Status.Revisions[len(d.view.Status.Revisions)-1]
		pred.LatestCreatedRevision = rev.Name
		d.publish(events.ServingModelVersionLoadedV1, d.event(res.Version, rev))
	}
	// The previous rolled-out revision keeps 100-P while the new one takes P.
	var next []servingv1.TrafficTarget
	var prev *servingv1.Revision
	if pred.LatestRolledoutRevision != rev.Name {
		prev = d.revision(pred.LatestRolledoutRevision)
	}
	p := spec.CanaryTrafficPercent
	if prev == nil || p == nil || *p >= 100 {
		next = []servingv1.TrafficTarget{{RevisionName: rev.Name, StorageURI: rev.StorageURI, Version: rev.Version, Percent: 100, Tag: TagLatest}}
	} else {
		next = []servingv1.TrafficTarget{
			{RevisionName: rev.Name, StorageURI: rev.StorageURI, Version: rev.Version, Percent: *p, Tag: TagLatest},
			{RevisionName: prev.Name, StorageURI: prev.StorageURI, Version: prev.Version, Percent: 100 - *p, Tag: TagPrev},
		}
	}
	old := pred.Traffic
	if !d.apply(d.desiredFor(next)) {
		return
	}
	pred.Traffic = next
	pred.LatestReadyRevision = rev.Name
	if next[0].Percent == 100 && pred.LatestRolledoutRevision != rev.Name {
		pred.PreviousRolledoutRevision, pred.LatestRolledoutRevision = pred.LatestRolledoutRevision, rev.Name
	}
	d.ready(fmt.Sprintf("serving %s version %d", spec.ModelName, rev.Version))
	if isNew {
		d.publish(events.ServingModelDeployedV1, d.event(rev.Version, rev))
	}
	if !slices.Equal(old, next) {
		d.publish(events.ServingModelTrafficShiftedV1, d.event(rev.Version, rev))
	}
}

// loadUnlessDeleted runs the Load activity; a delete signal that arrives meanwhile cancels the load and
// waits until the activity has stopped (so nothing it loaded outlives the deployment), then sets
// d.deleteRequested for the main loop.
func (d *deployment) loadUnlessDeleted(ctx workflow.Context, in LoadInput, r *LoadResult) error {
	loadCtx, cancel := workflow.WithCancel(ctx)
	opts := workflow.GetActivityOptions(loadCtx)
	opts.WaitForCancellation = true
	fut := workflow.ExecuteActivity(wf.WithSummary(workflow.WithActivityOptions(loadCtx, opts), "load model "+d.spec().ModelName), (*Activities).Load, in)
	var err error
	done := false
	sel := workflow.NewSelector(d.ctx)
	sel.AddFuture(fut, func(f workflow.Future) { err, done = f.Get(ctx, r), true })
	sel.AddReceive(workflow.GetSignalChannel(d.ctx, servingv1.SignalDelete), func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(d.ctx, nil)
		d.deleteRequested = true
		cancel()
		_ = fut.Get(d.ctx, nil) // the activity has stopped (cancelled or finished)
	})
	sel.Select(d.ctx)
	if !done && !d.deleteRequested {
		return errors.New("load: selector returned without a result")
	}
	return err
}

func (d *deployment) ready(msg string) {
	ms := &d.view.Status.ModelStatus
	ms.TransitionStatus = servingv1.TransitionUpToDate
	ms.States = servingv1.ModelStates{ActiveModelState: servingv1.ModelStateLoaded, TargetModelState: servingv1.ModelStateLoaded}
	ms.LastFailureInfo = nil
	d.setCondition(servingv1.ConditionPredictorReady, "True", "Ready", msg)
	d.setCondition(servingv1.ConditionReady, "True", "Ready", msg)
}

func (d *deployment) latestTarget() *servingv1.TrafficTarget {
	for i, t := range d.view.Status.Components.Predictor.Traffic {
		if t.Tag == TagLatest {
			return &d.view.Status.Components.Predictor.Traffic[i]
		}
	}
	return nil
}

// promote moves all traffic to the latest revision.
func (d *deployment) promote() {
	pred := &d.view.Status.Components.Predictor
	latest := d.latestTarget()
	if latest == nil || len(pred.Traffic) == 1 {
		return
	}
	next := []servingv1.TrafficTarget{*latest}
	next[0].Percent = 100
	if !d.apply(d.desiredFor(next)) {
		return
	}
	pred.Traffic = next
	if pred.LatestRolledoutRevision != next[0].RevisionName {
		pred.PreviousRolledoutRevision, pred.LatestRolledoutRevision = pred.LatestRolledoutRevision, next[0].RevisionName
	}
	d.publish(events.ServingModelTrafficShiftedV1, d.event(next[0].Version, d.revision(next[0].RevisionName)))
}

// remove unloads the model and publishes deployment.deleted.
func (d *deployment) remove() error {
	ctx := workflow.WithActivityOptions(d.ctx, wf.ShortActivity())
	if err := workflow.ExecuteActivity(wf.WithSummary(ctx, "unload model "+d.spec().ModelName), (*Activities).Unload, d.spec().Key()).Get(ctx, nil); err != nil {
		return err
	}
	d.view.Deleted = true
	d.view.Ready = false
	d.view.Status.Components.Predictor.Traffic = []servingv1.TrafficTarget{}
	s := d.spec()
	d.publish(events.ServingDeploymentDeletedV1, servingv1.DeploymentDeleted{Namespace: s.Namespace, Name: s.Name, ModelName: s.ModelName, Time: workflow.Now(d.ctx)})
	return nil
}
