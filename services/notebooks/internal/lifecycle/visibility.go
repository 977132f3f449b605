package lifecycle

import (
	"go.temporal.io/sdk/workflow"

	sluicewf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
)

// versionSearchAttributes is the workflow.GetVersion change id of upserting SluicePhase
// (libs/workflow/visibility.go) as the notebook's state changes. The upserts are commands, so histories
// recorded before them replay at DefaultVersion, which upserts nothing.
const versionSearchAttributes = "ui-search-attributes"

// notebookPhase is the notebook's state as the notebooks API reports it: "Running" while its server
// answers, otherwise the reason of its Waiting or Terminated condition (ContainerCreating, Restarting,
// Stopped, Culled, CrashLoopBackOff, Error, Deleted). Empty before any condition.
func notebookPhase(nb notebooksv1.Notebook) string {
	if len(nb.Status.Conditions) == 0 {
		return ""
	}
	c := nb.Status.Conditions[0]
	if c.Type == notebooksv1.ConditionRunning {
		return notebooksv1.ConditionRunning
	}
	if c.Reason != "" {
		return c.Reason
	}
	return c.Type
}

// upsertPhase records the notebook's current state as SluicePhase when it changed. The version is asked
// once per run, at the first state reported; an upsert failure is logged, never fails the lifecycle.
func (l *lifecycle) upsertPhase(ctx workflow.Context) {
	phase := notebookPhase(l.nb)
	if phase == "" || phase == l.phase {
		return
	}
	if l.saVersion == nil {
		v := workflow.GetVersion(ctx, versionSearchAttributes, workflow.DefaultVersion, 1)
		l.saVersion = &v
	}
	if *l.saVersion < 1 {
		return
	}
	l.phase = phase
	if err := workflow.UpsertTypedSearchAttributes(ctx, sluicewf.SAPhase.ValueSet(phase)); err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes", "error", err)
	}
}
