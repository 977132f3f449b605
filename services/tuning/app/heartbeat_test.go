package app_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"

	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/libs/workflow/hbfault"
	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
)

// A heartbeat of a running trial that fails makes the SDK cancel RunTrial's context, but nobody stopped
// the trial: its training job runs on and the trial succeeds. (RunTrial used to delete the job as if
// the experiment had killed the trial.)
func TestAFailedHeartbeatDoesNotKillTheTrial(t *testing.T) {
	var h hbfault.Faults
	e := newEnvDeps(t, nil, nil, func(d platform.Deps) *platform.Deps {
		st := devstacktest.Stack(t)
		tc, err := client.DialContext(t.Context(), client.Options{HostPort: st.TemporalAddress, Namespace: st.Namespace,
			ConnectionOptions: client.ConnectionOptions{DialOptions: []grpc.DialOption{h.DialOption()}}})
		require.NoError(t, err)
		t.Cleanup(tc.Close)
		d.Temporal = tc
		return &d
	})
	trainer := buildTrainer(t)
	// 3 epochs of 15 s: the SDK sends RunTrial's heartbeats at most every 24 s (0.8 × its 30 s timeout),
	// so one is sent while the trial runs after the first.
	doc := fmt.Sprintf(`apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: hb
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
  algorithm:
    algorithmName: grid
  parallelTrialCount: 1
  maxTrialCount: 1
  maxFailedTrialCount: 0
  parameters:
    - name: lr
      parameterType: discrete
      feasibleSpace:
        list: ["0.01"]
  trialTemplate:
    trialParameters:
      - name: learningRate
        reference: lr
    trialSpec:
      apiVersion: kubeflow.org/v1
      kind: TFJob
      spec:
        tfReplicaSpecs:
          Worker:
            replicas: 1
            restartPolicy: Never
            template:
              spec:
                containers:
                  - name: tensorflow
                    image: example.org/trainer:latest
                    command: [%q, "--lr=${trialParameters.learningRate}", "--epoch-delay=15s"]
`, trainer)
	code, body := e.do(http.MethodPost, e.experiments(), doc, nil)
	require.Equal(t, http.StatusCreated, code, body)
	var v tuningv1.ExperimentView
	require.Eventually(t, func() bool {
		code, _ := e.do(http.MethodGet, e.experiments()+"/hb", "", &v)
		return code == http.StatusOK && v.Status.TrialsRunning == 1 && h.Sent() > 0
	}, time.Minute, 100*time.Millisecond, "the trial runs and heartbeats")
	h.Fail(1)

	require.Eventually(t, func() bool {
		code, _ := e.do(http.MethodGet, e.experiments()+"/hb", "", &v)
		return code == http.StatusOK && v.Status.TrialsRunning == 0 && (v.State() == tuningv1.ConditionSucceeded || v.State() == tuningv1.ConditionFailed)
	}, 3*time.Minute, 100*time.Millisecond)
	require.Equal(t, 1, h.Failed(), "the trial's heartbeat failed")
	require.Equal(t, tuningv1.ConditionSucceeded, v.State(), "%+v", v.Status)
	require.Equal(t, int32(1), v.Status.TrialsSucceeded, "%+v", v.Status)
	require.Zero(t, v.Status.TrialsKilled)
	code, body = e.do(http.MethodGet, "/apis/training/v1/namespaces/"+e.ns+"/jobs/"+v.TrialsView[0].Name, "", nil)
	require.Equal(t, http.StatusOK, code, "the trial's job was not deleted: %s", body)
}
