package app_test

import (
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"

	"github.com/sluice-ml/sluice/services/serving/api/servingv1"
)

// requirePhase waits until the deployment workflow's SluicePhase search attribute, as
// DescribeWorkflowExecution reports it, is want.
func (e *env) requirePhase(name, want string) {
	e.t.Helper()
	var got any
	require.Eventually(e.t, func() bool {
		desc, err := e.deps.Temporal.DescribeWorkflowExecution(e.t.Context(), servingv1.WorkflowID(e.ns, name), "")
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
	}, time.Minute, 50*time.Millisecond, "SluicePhase of deployment %s: got %v, want %s", name, &got, want)
}
