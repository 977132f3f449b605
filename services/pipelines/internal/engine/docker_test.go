package engine_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/runtime/docker"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
)

// stepImage is a FROM-scratch image with a static busybox as /bin/sh, built locally (no registry).
const stepImage = "sluice-test/pipeline-step:busybox"

func buildStepImage(t *testing.T) { buildImage(t, stepImage) }

// buildImage builds the busybox step image as tag, with extra Dockerfile lines.
func buildImage(t *testing.T, tag string, extra ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !docker.Available(ctx) {
		if os.Getenv("CI") == "true" {
			t.Fatal("Docker Engine is not reachable (required under CI=true)")
		}
		t.Skip("Docker Engine is not reachable")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Fatalf("static busybox missing (make deps installs busybox-static): %v", err)
	}
	dir := t.TempDir()
	b, err := os.ReadFile("/bin/busybox")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "busybox"), b, 0o755))
	dockerfile := "FROM scratch\nCOPY busybox /bin/sh\nCOPY busybox /bin/busybox\n"
	for _, line := range extra { // further Dockerfile lines: a different image under the same tag
		dockerfile += line + "\n"
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644))
	out, err := exec.Command("docker", "build", "-q", "-t", tag, dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// TestDockerRuntimeRunsTheComponentImage runs a two-step pipeline whose steps run in the component's
// image through the Docker Engine API: the artifact written in one container reaches the next.
func TestDockerRuntimeRunsTheComponentImage(t *testing.T) {
	buildStepImage(t)
	e := newEnv(t)
	rt, err := docker.New(docker.Config{})
	require.NoError(t, err)
	e.acts.Runtime = rt
	e.acts.WorkDir = filepath.Join(t.TempDir(), "work")
	e.startWorker(t)
	id, run := e.start(t, `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: in-docker}
spec:
  tasks:
    write:
      image: `+stepImage+`
      command: [sh, -c, 'echo "from $(busybox uname -s) container" > "$0"']
      args: ["{{outputs.out}}"]
      outputs: {artifacts: [out]}
    read:
      image: `+stepImage+`
      command: [sh, -c, 'busybox cat "$0" > "$1"; echo read >> "$1"']
      args: ["{{inputs.in}}", "{{outputs.out}}"]
      inputs: {in: {fromTask: write.out}}
      outputs: {artifacts: [out]}
`, nil)
	res, err := e.wait(t, run)
	require.NoError(t, err, "%+v", e.state(t, id))
	require.Equal(t, pipelinesv1.RunSucceeded, res.State)
	require.Equal(t, "from Linux container\nread\n", e.read(t, res.Tasks["read"].Artifacts["out"].URI))
}

// kfp-kubernetes pvcMount with a constant PVC name runs under the Docker runtime as the named volume of
// that name: what one step writes at the mount path the next step (another container) reads there.
func TestDockerRuntimeMountsPVCAsNamedVolume(t *testing.T) {
	buildStepImage(t)
	e := newEnv(t)
	rt, err := docker.New(docker.Config{})
	require.NoError(t, err)
	e.acts.Runtime = rt
	e.acts.WorkDir = filepath.Join(t.TempDir(), "work")
	e.startWorker(t)
	vol := "sluice-test-pvc-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))[:12] + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Cleanup(func() { _ = exec.Command("docker", "volume", "rm", "-f", vol).Run() })
	spec := `
components:
  comp-write:
    executorLabel: exec-write
  comp-read:
    executorLabel: exec-read
    outputDefinitions:
      parameters:
        Output: {parameterType: STRING}
deploymentSpec:
  executors:
    exec-write:
      container:
        image: ` + stepImage + `
        command: [sh, -c, 'printf shared > /data/file']
    exec-read:
      container:
        image: ` + stepImage + `
        command: [sh, -c, 'busybox cat /data/file > "$0"', "{{$.outputs.parameters['Output'].output_file}}"]
pipelineInfo:
  name: pvc-docker
root:
  dag:
    tasks:
      write:
        componentRef: {name: comp-write}
        taskInfo: {name: write}
      read:
        componentRef: {name: comp-read}
        dependentTasks: [write]
        taskInfo: {name: read}
schemaVersion: 2.1.0
---
platforms:
  kubernetes:
    deploymentSpec:
      executors:
        exec-write:
          pvcMount:
          - {constant: ` + vol + `, mountPath: /data}
          podMetadata: {labels: {team: ml}}
        exec-read:
          pvcMount:
          - pvcNameParameter: {runtimeValue: {constant: ` + vol + `}}
            mountPath: /data
          imagePullPolicy: IfNotPresent
`
	id, run := e.start(t, spec, nil)
	res, err := e.wait(t, run)
	require.NoError(t, err, "%+v", e.state(t, id))
	require.Equal(t, "shared", res.Tasks["read"].Parameters["Output"])
}

// Issue #21 (cache keys): under the Docker runtime the step's cache key includes the image ID the tag
// resolves to, and the step runs that ID: the same tag rebuilt with other content is a cache miss, an
// unchanged image a hit.
func TestDockerCacheKeyPinsTheImageID(t *testing.T) {
	const image = "sluice-test/pipeline-step:cache-key" // its own tag: this test rebuilds it
	buildImage(t, image)
	e := newEnv(t)
	rt, err := docker.New(docker.Config{})
	require.NoError(t, err)
	e.acts.Runtime = rt
	e.acts.WorkDir = filepath.Join(t.TempDir(), "work")
	e.startWorker(t)
	spec := `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: docker-cache}
spec:
  tasks:
    probe:
      image: ` + image + `
      command: [sh, -c, 'if [ -e /marker ]; then echo rebuilt > "$0"; else echo original > "$0"; fi']
      args: ["{{outputs.out}}"]
      outputs: {artifacts: [out]}
      cache: true
`
	runOnce := func() pipelinesv1.TaskState {
		id, run := e.start(t, spec, nil)
		_, err := e.wait(t, run)
		require.NoError(t, err, "%+v", e.state(t, id))
		return e.state(t, id)["probe"]
	}
	first := runOnce()
	require.Equal(t, pipelinesv1.TaskSucceeded, first.State)
	require.Equal(t, "original\n", e.read(t, first.Outputs.Artifacts["out"].URI))
	require.Equal(t, pipelinesv1.TaskCached, runOnce().State, "same image: a hit")

	buildImage(t, image, "COPY busybox /marker")
	rebuilt := runOnce()
	require.Equal(t, pipelinesv1.TaskSucceeded, rebuilt.State, "the tag now names another image: a miss")
	require.Equal(t, "rebuilt\n", e.read(t, rebuilt.Outputs.Artifacts["out"].URI))
	require.Equal(t, pipelinesv1.TaskCached, runOnce().State)
}

// Container resources under the Docker runtime: cpuLimit and memoryLimit (as the kfp 2.0-2.3 compilers
// write them: cores and GB) and resourceMemoryLimit (a quantity) become the container's cgroup limits.
func TestDockerRuntimeAppliesResourceLimits(t *testing.T) {
	buildStepImage(t)
	e := newEnv(t)
	rt, err := docker.New(docker.Config{})
	require.NoError(t, err)
	e.acts.Runtime = rt
	e.acts.WorkDir = filepath.Join(t.TempDir(), "work")
	e.startWorker(t)
	const read = `m=$(busybox cat /sys/fs/cgroup/memory.max 2>/dev/null || busybox cat /sys/fs/cgroup/memory/memory.limit_in_bytes); c=$(busybox cat /sys/fs/cgroup/cpu.max 2>/dev/null || busybox cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us); printf "%s %s" "$m" "$c" > "$0"`
	spec := `
components:
  comp-a:
    executorLabel: exec-a
    outputDefinitions:
      parameters:
        Output: {parameterType: STRING}
  comp-b:
    executorLabel: exec-b
    outputDefinitions:
      parameters:
        Output: {parameterType: STRING}
deploymentSpec:
  executors:
    exec-a:
      container:
        image: ` + stepImage + `
        command: [sh, -c, '` + read + `', "{{$.outputs.parameters['Output'].output_file}}"]
        resources: {cpuLimit: 0.5, memoryLimit: 0.268435456}
    exec-b:
      container:
        image: ` + stepImage + `
        command: [sh, -c, '` + read + `', "{{$.outputs.parameters['Output'].output_file}}"]
        resources: {resourceCpuLimit: 250m, resourceMemoryLimit: 128Mi, resourceMemoryRequest: 64Mi}
pipelineInfo:
  name: resources-docker
root:
  dag:
    tasks:
      a:
        componentRef: {name: comp-a}
        taskInfo: {name: a}
      b:
        componentRef: {name: comp-b}
        taskInfo: {name: b}
schemaVersion: 2.1.0
`
	id, run := e.start(t, spec, nil)
	res, err := e.wait(t, run)
	require.NoError(t, err, "%+v", e.state(t, id))
	require.Regexp(t, `^268435456 50000( 100000)?$`, res.Tasks["a"].Parameters["Output"])
	require.Regexp(t, `^134217728 25000( 100000)?$`, res.Tasks["b"].Parameters["Output"])
}
