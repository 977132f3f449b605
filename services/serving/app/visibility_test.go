package app_test

import (
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/serving/api/servingv1"
)

// requirePhase waits until the deployment workflow's SluicePhase search attribute, as
// DescribeWorkflowExecution reports it, is want.
func (e *env) requirePhase(name, want string) {
	e.t.Helper()
	require.EventuallyWithT(e.t, func(c *assert.CollectT) {
		p, err := wf.Phase(e.t.Context(), e.deps.Temporal, servingv1.WorkflowID(e.ns, name))
		require.NoError(c, err)
		require.Equal(c, want, p)
	}, time.Minute, 50*time.Millisecond, "SluicePhase of deployment %s", name)
}
