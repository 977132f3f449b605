package engine_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/runtime/docker"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine/enginetest"
)

// workspaceSpec is KFP IR as the compiler writes a pipeline with dsl.PipelineConfig(workspace=...) whose
// first task gets f"{dsl.WORKSPACE_PATH_PLACEHOLDER}/data/x" as a constant and whose second task's
// command uses the placeholder directly; SH is the shell prefix for the image's tools.
const workspaceSpec = `
components:
  comp-write:
    executorLabel: exec-write
    inputDefinitions:
      parameters:
        path: {parameterType: STRING}
  comp-read:
    executorLabel: exec-read
    outputDefinitions:
      parameters:
        Output: {parameterType: STRING}
deploymentSpec:
  executors:
    exec-write:
      container:
        image: IMAGE
        command: [sh, -c, 'BBmkdir -p "$(BBdirname "$0")" && printf from-write > "$0"', "{{$.inputs.parameters['path']}}"]
    exec-read:
      container:
        image: IMAGE
        command: [sh, -c, 'BBcat "$0/data/x" > "$2"; printf " %s" "$1" >> "$2"', "{{$.workspace_path}}", "{{$.workspace_path}}", "{{$.outputs.parameters['Output'].output_file}}"]
pipelineInfo:
  name: workspace
root:
  dag:
    tasks:
      write:
        componentRef: {name: comp-write}
        inputs:
          parameters:
            path: {runtimeValue: {constant: "{{$.workspace_path}}/data/x"}}
        taskInfo: {name: write}
      read:
        componentRef: {name: comp-read}
        dependentTasks: [write]
        taskInfo: {name: read}
schemaVersion: 2.1.0
---
platforms:
  kubernetes:
    pipelineConfig:
      workspace:
        size: 1Gi
`

// {{$.workspace_path}} under the local runtime: a run-scoped host directory shared by the run's steps,
// substituted in constant inputs and in commands, removed when the run ends.
func TestWorkspaceLocal(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	spec := strings.NewReplacer("IMAGE", "alpine", "BB", "").Replace(workspaceSpec)
	id, run := e.start(t, spec, nil)
	res, err := e.wait(t, run)
	require.NoError(t, err, "%+v", e.state(t, id))
	ws, err := filepath.Abs(filepath.Join(e.acts.WorkDir, id, "workspace"))
	require.NoError(t, err)
	require.Equal(t, "from-write "+ws, res.Tasks["read"].Parameters["Output"])
	_, err = os.Stat(ws)
	require.ErrorIs(t, err, os.ErrNotExist, "the workspace is removed with the run")
	enginetest.RecordHistory(t, e.tc, id, "kfp-workspace")
}

// Under the Docker runtime the workspace is a named volume mounted at /kfp-workspace in every step's
// container, removed when the run ends.
func TestWorkspaceDocker(t *testing.T) {
	buildStepImage(t)
	e := newEnv(t)
	rt, err := docker.New(docker.Config{})
	require.NoError(t, err)
	e.acts.Runtime = rt
	e.acts.WorkDir = filepath.Join(t.TempDir(), "work")
	e.startWorker(t)
	spec := strings.NewReplacer("IMAGE", stepImage, "BB", "busybox ").Replace(workspaceSpec)
	id, run := e.start(t, spec, nil)
	res, err := e.wait(t, run)
	require.NoError(t, err, "%+v", e.state(t, id))
	require.Equal(t, "from-write /kfp-workspace", res.Tasks["read"].Parameters["Output"])
	h := sha256.Sum256([]byte(id))
	vol := "sluice-ws-" + hex.EncodeToString(h[:6])
	out, err := exec.Command("docker", "volume", "inspect", vol).CombinedOutput()
	require.Error(t, err, "volume %s is removed with the run: %s", vol, out)
}
