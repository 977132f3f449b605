package boards

import (
	"time"

	"go.temporal.io/sdk/workflow"

	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
)

// Lifecycle is the workflow of one Tensorboard: probe the logs path (Available or ReplicaFailure), record
// the board, serve it until the delete signal, then remove the record. The query QueryTensorboard returns
// the live resource.
func Lifecycle(ctx workflow.Context, in notebooksv1.TensorboardInput) (notebooksv1.TensorboardResult, error) {
	tb := in.Tensorboard
	ns, name := tb.Metadata.Namespace, tb.Metadata.Name
	now := workflow.Now(ctx).UTC()
	if tb.Metadata.CreationTimestamp == nil {
		tb.Metadata.CreationTimestamp = &now
	}
	tb.Status = notebooksv1.TensorboardStatus{
		Conditions: []notebooksv1.TensorboardCondition{{DeploymentState: notebooksv1.TensorboardProgressing, LastProbeTime: now}},
		URL:        notebooksv1.TensorboardPathPrefix(ns, name),
	}
	if err := workflow.SetQueryHandler(ctx, notebooksv1.QueryTensorboard, func() (notebooksv1.Tensorboard, error) {
		return tb, nil
	}); err != nil {
		return notebooksv1.TensorboardResult{}, err
	}
	actx := workflow.WithActivityOptions(ctx, wf.ShortActivity())
	var a *Activities

	var probe ProbeResult
	if err := workflow.ExecuteActivity(wf.WithSummary(actx, "probe logs "+tb.Spec.LogsPath), a.Probe, ProbeInput{Tensorboard: tb}).Get(ctx, &probe); err != nil {
		probe = ProbeResult{Message: err.Error()}
	}
	state, ready := notebooksv1.TensorboardAvailable, int32(1)
	if probe.Message != "" {
		state, ready = notebooksv1.TensorboardReplicaFailure, 0
	}
	tb.Status.Conditions = append(tb.Status.Conditions, notebooksv1.TensorboardCondition{DeploymentState: state, LastProbeTime: workflow.Now(ctx).UTC()})
	tb.Status.ReadyReplicas, tb.Status.Message = ready, probe.Message
	// SluicePhase is the board's deployment state (executions at versionSearchAttributes >= 1; asked once).
	if workflow.GetVersion(ctx, versionSearchAttributes, workflow.DefaultVersion, 1) >= 1 {
		if err := workflow.UpsertTypedSearchAttributes(ctx, wf.SAPhase.ValueSet(state)); err != nil {
			workflow.GetLogger(ctx).Warn("upsert search attributes", "error", err)
		}
	}
	if err := workflow.ExecuteActivity(wf.WithSummary(actx, "record status"), a.Record, RecordInput{Tensorboard: tb}).Get(ctx, nil); err != nil {
		return notebooksv1.TensorboardResult{}, err
	}

	workflow.GetSignalChannel(ctx, notebooksv1.SignalTensorboardDelete).Receive(ctx, nil)

	tb.Status.ReadyReplicas = 0
	if err := workflow.ExecuteActivity(wf.WithSummary(actx, "record deletion"), a.Record, RecordInput{Tensorboard: tb, Deleted: true}).Get(ctx, nil); err != nil {
		return notebooksv1.TensorboardResult{}, err
	}
	return notebooksv1.TensorboardResult{Deleted: true}, nil
}

// versionSearchAttributes is the workflow.GetVersion change id of upserting SluicePhase
// (libs/workflow/visibility.go) to the board's deployment state (Available or ReplicaFailure) once probed.
const versionSearchAttributes = "ui-search-attributes"

// probeTimeout bounds one probe of the logs path.
const probeTimeout = 30 * time.Second
