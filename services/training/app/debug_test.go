package app_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

func TestDebugDelete(t *testing.T) {
	e := newEnv(t)
	e.do(http.MethodPost, e.jobs(), job("hello", "", "true", ""), nil)
	e.waitState("hello", trainingv1.JobSucceeded)
	time.Sleep(time.Second)
	d, err := e.deps.Temporal.DescribeWorkflowExecution(t.Context(), trainingv1.WorkflowID(e.ns, "hello"), "")
	t.Logf("before: %v %v %v", d.WorkflowExecutionInfo.Status, d.WorkflowExecutionInfo.Memo, err)
	var s string
	code := e.do(http.MethodDelete, e.jobs()+"/hello", "", &s)
	t.Logf("delete: %d %s", code, s)
	d, err = e.deps.Temporal.DescribeWorkflowExecution(t.Context(), trainingv1.WorkflowID(e.ns, "hello"), "")
	if d != nil {
		t.Logf("after: %v %v %v", d.WorkflowExecutionInfo.Status, d.WorkflowExecutionInfo.Memo, err)
	} else {
		t.Logf("after: %v", err)
	}
}
