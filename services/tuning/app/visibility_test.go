package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
)

// requirePhase waits until the workflow's SluicePhase search attribute (of its latest run), as
// DescribeWorkflowExecution reports it, is want.
func requirePhase(t *testing.T, e *env, id, want string) {
	t.Helper()
	var got any
	require.Eventually(t, func() bool {
		desc, err := e.deps.Temporal.DescribeWorkflowExecution(t.Context(), id, "")
		if err != nil {
			return false
		}
		got = nil
		if p, ok := desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()["SluicePhase"]; ok {
			if err := converter.GetDefaultDataConverter().FromPayload(p, &got); err != nil {
				return false
			}
		}
		return got == want
	}, time.Minute, 50*time.Millisecond, "SluicePhase of %s: got %v, want %s", id, &got, want)
}
