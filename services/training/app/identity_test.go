package app_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/services/training/api/jobspec"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/app"
)

// pytorchJob is a PyTorchJob with one Master running `sh -c script`.
func pytorchJob(name, script string) string {
	return fmt.Sprintf(`apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {name: %s}
spec:
  pytorchReplicaSpecs:
    Master:
      template:
        spec:
          containers:
            - name: pytorch
              image: busybox
              command: [sh, -c, %q]
`, name, script)
}

func (e *env) waitKindState(kind, name string, want trainingv1.JobConditionType) trainingv1.JobView {
	e.t.Helper()
	var v trainingv1.JobView
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		if e.do(http.MethodGet, e.jobs()+"/"+name+"?kind="+kind, "", &v) == 200 && v.State == want {
			return v
		}
	}
	e.t.Fatalf("%s %s never reached %s: %+v", kind, name, want, v)
	return v
}

func (e *env) logsOf(kind, name, replica string) string {
	e.t.Helper()
	var logs string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		if e.do(http.MethodGet, e.jobs()+"/"+name+"/logs?replica="+replica+"&kind="+kind, "", &logs) == http.StatusOK && logs != "" {
			return logs
		}
	}
	e.t.Fatalf("no log for %s %s %s", kind, name, replica)
	return ""
}

// A TFJob and a PyTorchJob may share a name (in Kubernetes the kind is
// part of an object's identity): both run to completion independently,
// each has its own workflow, UID, logs and events; a request naming only
// the name is refused as ambiguous (409) while both exist; logs, get and
// delete of one leave the other alone.
func TestTFJobAndPyTorchJobShareAName(t *testing.T) {
	e := newEnv(t)
	var created app.JobCreated
	require.Equal(t, http.StatusCreated, e.do(http.MethodPost, e.jobs(), job("twin", "", "echo TF-OUTPUT", ""), &created))
	require.Equal(t, trainingv1.WorkflowID(trainingv1.KindTFJob, e.ns, "twin"), created.WorkflowID)
	require.Equal(t, "trainjob/"+e.ns+"/tfjob/twin", created.WorkflowID)
	require.Equal(t, http.StatusCreated, e.do(http.MethodPost, e.jobs(), pytorchJob("twin", "echo PT-OUTPUT"), &created))
	require.Equal(t, "trainjob/"+e.ns+"/pytorchjob/twin", created.WorkflowID)
	require.Equal(t, http.StatusConflict, e.do(http.MethodPost, e.jobs(), job("twin", "", "true", ""), nil), "a second TFJob of that name")

	tf := e.waitKindState("TFJob", "twin", trainingv1.JobSucceeded)
	pt := e.waitKindState("pytorchjob", "twin", trainingv1.JobSucceeded)
	require.Equal(t, trainingv1.KindTFJob, tf.Kind)
	require.Equal(t, trainingv1.KindPyTorchJob, pt.Kind)
	require.NotEqual(t, tf.Job.Meta().UID, pt.Job.Meta().UID)
	require.Equal(t, "TF-OUTPUT\n", e.logsOf("TFJob", "twin", "worker-0"))
	require.Equal(t, "PT-OUTPUT\n", e.logsOf("PyTorchJob", "twin", "master-0"))

	var problem struct{ Error string }
	require.Equal(t, http.StatusConflict, e.do(http.MethodGet, e.jobs()+"/twin", "", &problem))
	require.Equal(t, http.StatusBadRequest, e.do(http.MethodGet, e.jobs()+"/twin?kind=MPIJob", "", nil))
	var list app.JobList
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, e.jobs(), "", &list))
	require.Len(t, list.Jobs, 2)
	require.Equal(t, []string{"PyTorchJob", "TFJob"}, []string{list.Jobs[0].Kind, list.Jobs[1].Kind})
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, e.jobs()+"?kind=TFJob", "", &list))
	require.Len(t, list.Jobs, 1)
	require.Equal(t, "TFJob", list.Jobs[0].Kind)

	// Events carry the kind in their subject.
	e.waitEvent(events.TrainingJobSucceededV1, "jobs/"+e.ns+"/tfjob/twin")
	e.waitEvent(events.TrainingJobSucceededV1, "jobs/"+e.ns+"/pytorchjob/twin")

	// Deleting the TFJob leaves the PyTorchJob, its logs and its name.
	require.Equal(t, http.StatusOK, e.do(http.MethodDelete, e.jobs()+"/twin?kind=TFJob", "", nil))
	e.waitEvent(events.TrainingJobDeletedV1, "jobs/"+e.ns+"/tfjob/twin")
	require.Equal(t, http.StatusNotFound, e.do(http.MethodGet, e.jobs()+"/twin?kind=TFJob", "", nil))
	var v trainingv1.JobView
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, e.jobs()+"/twin", "", &v), "the name is no longer ambiguous")
	require.Equal(t, trainingv1.KindPyTorchJob, v.Kind)
	require.Equal(t, trainingv1.JobSucceeded, v.State)
	require.Equal(t, "PT-OUTPUT\n", e.logsOf("PyTorchJob", "twin", "master-0"))
	require.Equal(t, http.StatusOK, e.do(http.MethodDelete, e.jobs()+"/twin", "", nil))
	require.Equal(t, http.StatusNotFound, e.do(http.MethodGet, e.jobs()+"/twin", "", nil))
}

// A job whose workflow was started before the kind was part of a job's
// identity (legacy ID trainjob/<ns>/<name>) is still found, suspended,
// resumed and deleted; its kind (from the workflow memo) still blocks a
// second job of that kind and name, and a job of the other kind may take
// the name meanwhile.
func TestLegacyWorkflowIDJobKeepsWorking(t *testing.T) {
	e := newEnv(t)
	parsed, err := jobspec.Parse([]byte(job("old", e.ns, "sleep 300", "")))
	require.NoError(t, err)
	id := trainingv1.LegacyWorkflowID(e.ns, "old")
	_, err = e.deps.Temporal.ExecuteWorkflow(t.Context(), client.StartWorkflowOptions{ID: id, TaskQueue: e.queue,
		WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		Memo:                  map[string]any{trainingv1.MemoRequestID: "legacy", trainingv1.MemoKind: trainingv1.KindTFJob, trainingv1.MemoDeleted: false}},
		trainingv1.WorkflowType, trainingv1.JobInput{Job: *parsed, RequestID: "legacy", HeartbeatTimeout: 2 * time.Second})
	require.NoError(t, err)

	v := e.waitState("old", trainingv1.JobRunning)
	require.Equal(t, trainingv1.KindTFJob, v.Kind)
	e.waitKindState("TFJob", "old", trainingv1.JobRunning)
	require.Equal(t, http.StatusConflict, e.do(http.MethodPost, e.jobs(), job("old", "", "true", ""), nil), "the legacy TFJob holds its name")
	require.Equal(t, http.StatusCreated, e.do(http.MethodPost, e.jobs(), pytorchJob("old", "true"), nil))
	e.waitKindState("PyTorchJob", "old", trainingv1.JobSucceeded)

	require.Equal(t, http.StatusAccepted, e.do(http.MethodPost, e.jobs()+"/old/suspend?kind=TFJob", "", nil))
	e.waitKindState("TFJob", "old", trainingv1.JobSuspended)
	require.Equal(t, http.StatusAccepted, e.do(http.MethodPost, e.jobs()+"/old/resume?kind=tfjob", "", nil))
	e.waitKindState("TFJob", "old", trainingv1.JobRunning)
	e.waitEvent(events.TrainingJobResumedV1, "jobs/"+e.ns+"/old") // the legacy job keeps its subject

	var list app.JobList
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, e.jobs(), "", &list))
	require.Len(t, list.Jobs, 2)

	require.Equal(t, http.StatusOK, e.do(http.MethodDelete, e.jobs()+"/old?kind=TFJob", "", nil))
	require.Equal(t, http.StatusNotFound, e.do(http.MethodGet, e.jobs()+"/old?kind=TFJob", "", nil))
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, e.jobs()+"/old", "", &v))
	require.Equal(t, trainingv1.KindPyTorchJob, v.Kind)
	require.Equal(t, http.StatusCreated, e.do(http.MethodPost, e.jobs(), job("old", "", "true", ""), nil), "a deleted legacy job's name can be reused")
	e.waitKindState("TFJob", "old", trainingv1.JobSucceeded)
}
