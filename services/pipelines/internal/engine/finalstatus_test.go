package engine_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine/enginetest"
)

// subPipelineExit is KFP IR as kfp.compiler writes a pipeline whose sub-pipeline wraps a failing task in
// dsl.ExitHandler; the exit task takes dsl.PipelineTaskFinalStatus typed STRUCT with isOptional (the
// kfp 2.0-2.4 compilers) or TASK_FINAL_STATUS (later ones).
const subPipelineExit = `
components:
  comp-exit-handler-1:
    dag:
      tasks:
        fail-op:
          componentRef: {name: comp-fail-op}
          inputs:
            parameters:
              message: {runtimeValue: {constant: boom}}
          taskInfo: {name: fail-op}
    inputDefinitions:
      parameters:
        pipelinechannel--msg: {parameterType: STRING}
  comp-fail-op:
    executorLabel: exec-fail-op
    inputDefinitions:
      parameters:
        message: {parameterType: STRING}
  comp-print-status:
    executorLabel: exec-print-status
    inputDefinitions:
      parameters:
        msg: {parameterType: STRING}
        status: {parameterType: STATUS_TYPE, isOptional: true}
  comp-sub-pipeline:
    dag:
      tasks:
        exit-handler-1:
          componentRef: {name: comp-exit-handler-1}
          inputs:
            parameters:
              pipelinechannel--msg: {componentInputParameter: msg}
          taskInfo: {name: exit-handler-1}
        print-status:
          componentRef: {name: comp-print-status}
          dependentTasks: [exit-handler-1]
          inputs:
            parameters:
              msg: {componentInputParameter: msg}
              status:
                taskFinalStatus: {producerTask: exit-handler-1}
          taskInfo: {name: print-status}
          triggerPolicy: {strategy: ALL_UPSTREAM_TASKS_COMPLETED}
    inputDefinitions:
      parameters:
        msg: {parameterType: STRING}
deploymentSpec:
  executors:
    exec-fail-op:
      container:
        image: alpine
        command: [sh, -c, 'echo "$0"; exit 1', "{{$.inputs.parameters['message']}}"]
    exec-print-status:
      container:
        image: alpine
        command: [sh, -c, 'echo "$0 $1"', "{{$.inputs.parameters['msg']}}", "{{$.inputs.parameters['status']}}"]
pipelineInfo:
  name: sub-pipeline-exit
root:
  dag:
    tasks:
      sub-pipeline:
        componentRef: {name: comp-sub-pipeline}
        inputs:
          parameters:
            msg: {runtimeValue: {constant: sub-exit}}
        taskInfo: {name: sub-pipeline}
schemaVersion: 2.1.0
`

// A sub-pipeline's exit task runs after its body failed and receives the PipelineTaskFinalStatus of
// the exit-handler DAG, whether the input is typed STRUCT (isOptional) or TASK_FINAL_STATUS.
func TestSubPipelineExitTaskGetsFinalStatus(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	for _, typ := range []string{"STRUCT", "TASK_FINAL_STATUS"} {
		t.Run(typ, func(t *testing.T) {
			id, run := e.start(t, strings.Replace(subPipelineExit, "STATUS_TYPE", typ, 1), nil)
			_, err := e.wait(t, run)
			require.Error(t, err, "the body failed")
			st := e.state(t, id)
			exit := st["sub-pipeline/print-status"]
			require.Equal(t, pipelinesv1.TaskSucceeded, exit.State, "%v", st)
			require.Equal(t, pipelinesv1.TaskFailed, st["sub-pipeline/exit-handler-1/fail-op"].State)
			log := e.read(t, exit.LogURI)
			msg, status, ok := strings.Cut(strings.TrimSpace(log), " ")
			require.True(t, ok, log)
			require.Equal(t, "sub-exit", msg)
			var fs struct {
				State                   string `json:"state"`
				PipelineTaskName        string `json:"pipelineTaskName"`
				PipelineJobResourceName string `json:"pipelineJobResourceName"`
				Error                   struct {
					Message string `json:"message"`
				} `json:"error"`
			}
			require.NoError(t, json.Unmarshal([]byte(status), &fs), status)
			require.Equal(t, "FAILED", fs.State)
			require.Equal(t, "exit-handler-1", fs.PipelineTaskName)
			require.Equal(t, "sub-pipeline-exit-"+id, fs.PipelineJobResourceName)
			require.Contains(t, fs.Error.Message, "fail-op")
			enginetest.RecordHistory(t, e.tc, id, "kfp-sub-pipeline-exit-"+strings.ToLower(typ))
		})
	}
}
