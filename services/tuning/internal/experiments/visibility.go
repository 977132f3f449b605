package experiments

import (
	"go.temporal.io/sdk/workflow"

	wf "github.com/sluice-ml/sluice/libs/workflow"
)

// versionSearchAttributes is the workflow.GetVersion change id of upserting SluicePhase
// (libs/workflow/visibility.go) as the experiment's condition changes (Created, Running, Succeeded,
// Failed). The upserts are commands, so histories recorded before them replay at DefaultVersion, which
// upserts nothing.
const versionSearchAttributes = "ui-search-attributes"

// phaseRecorder upserts an experiment's phase as SluicePhase when it changes. The version is asked once
// per workflow run, at the first change.
type phaseRecorder struct {
	version *workflow.Version
	// phase is the SluicePhase last upserted (or carried in from the run before a continue-as-new).
	phase string
}

func newPhaseRecorder(ctx workflow.Context) *phaseRecorder {
	p := &phaseRecorder{}
	if v, ok := workflow.GetTypedSearchAttributes(ctx).GetKeyword(wf.SAPhase); ok {
		p.phase = v
	}
	return p
}

// upsert records phase (the type of the experiment's last true condition, as Experiment.State reports
// it); an upsert failure is logged, never fails the experiment.
func (p *phaseRecorder) upsert(ctx workflow.Context, phase string) {
	if phase == "" || phase == p.phase {
		return
	}
	if p.version == nil {
		v := workflow.GetVersion(ctx, versionSearchAttributes, workflow.DefaultVersion, 1)
		p.version = &v
	}
	if *p.version < 1 {
		return
	}
	p.phase = phase
	if err := workflow.UpsertTypedSearchAttributes(ctx, wf.SAPhase.ValueSet(phase)); err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes", "error", err)
	}
}
