package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	wf "github.com/sluice-ml/sluice/libs/workflow"
)

// requirePhase waits until the workflow's SluicePhase search attribute (of its latest run), as
// DescribeWorkflowExecution reports it, is want.
func requirePhase(t *testing.T, e *env, id, want string) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		p, err := wf.Phase(t.Context(), e.deps.Temporal, id)
		require.NoError(c, err)
		require.Equal(c, want, p)
	}, time.Minute, 50*time.Millisecond, "SluicePhase of %s", id)
}
