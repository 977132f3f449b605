package control

import (
	"go.temporal.io/sdk/workflow"

	wf "github.com/sluice-ml/sluice/libs/workflow"
)

// versionSearchAttributes is the workflow.GetVersion change id of upserting SluicePhase
// (libs/workflow/visibility.go) as the deployment's state changes. The upserts are commands, so histories
// recorded before them replay at DefaultVersion, which upserts nothing.
const versionSearchAttributes = "ui-search-attributes"

// upsertPhase records the deployment's modelStatus.transitionStatus (per KServe: UpToDate when ready,
// InProgress while a revision loads or rolls out, BlockedByFailedLoad or InvalidSpec when a load failed) as
// SluicePhase when it changed. The version is asked once per run, at the first change; an upsert failure is
// logged, never fails the deployment.
func (d *deployment) upsertPhase() {
	phase := d.view.Status.ModelStatus.TransitionStatus
	if phase == "" || phase == d.phase {
		return
	}
	if d.saVersion == nil {
		v := workflow.GetVersion(d.ctx, versionSearchAttributes, workflow.DefaultVersion, 1)
		d.saVersion = &v
	}
	if *d.saVersion < 1 {
		return
	}
	d.phase = phase
	if err := workflow.UpsertTypedSearchAttributes(d.ctx, wf.SAPhase.ValueSet(phase)); err != nil {
		workflow.GetLogger(d.ctx).Warn("upsert search attributes", "error", err)
	}
}
