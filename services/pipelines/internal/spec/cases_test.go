package spec_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
	"github.com/sluice-ml/sluice/services/pipelines/internal/spec"
)

// Case pipelines/output-unknown-keys-ignored: an unknown key under outputs.parameters.<name> (a typo of
// type, an output default that the format does not have, any other key) is an error naming its path.
func TestCaseOutputUnknownKeysAreErrors(t *testing.T) {
	src, err := os.ReadFile("../../testdata/cases/pipelines/output-unknown-keys-ignored/pipeline.yaml")
	require.NoError(t, err)
	_, err = spec.Parse(src)
	require.Error(t, err)
	var paths []string
	for _, fe := range dag.AsFieldErrors(err) {
		paths = append(paths, fe.Path)
	}
	require.ElementsMatch(t, []string{
		"spec.tasks.p.outputs.parameters.x.bogus",
		"spec.tasks.p.outputs.parameters.x.default",
		"spec.tasks.p.outputs.parameters.x.tpye",
	}, paths, err.Error())
}

func TestOutputUnknownKeysEverywhere(t *testing.T) {
	for name, tc := range map[string]struct{ outputs, path string }{
		"artifact map":         {`{artifacts: {m: {type: system.Model, metadata: {}}}}`, "spec.tasks.p.outputs.artifacts.m.metadata"},
		"parameter scalar":     {`{parameters: {x: STRING}}`, "spec.tasks.p.outputs.parameters.x"},
		"unknown outputs kind": {`{params: [x]}`, "line 9"},
	} {
		t.Run(name, func(t *testing.T) {
			src := `apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: strict}
spec:
  tasks:
    p:
      image: alpine
      command: [sh, -c, 'true']
      outputs: ` + tc.outputs + "\n"
			_, err := spec.Parse([]byte(src))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.path)
		})
	}
	ok := `apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: strict}
spec:
  tasks:
    p:
      image: alpine
      command: [sh, -c, 'echo 1 > "$0"']
      args: ["{{outputs.x}}"]
      outputs: {parameters: {x: {type: NUMBER_INTEGER, description: a number}, y: null}}
`
	_, err := spec.Parse([]byte(ok))
	require.NoError(t, err)
}

// Case pipelines/empty-artifact-loop (submission part): a single-artifact placeholder ({{inputs.x}},
// the .path alias) on the fan-in of a loop's artifacts is refused, naming the task's argument.
func TestCaseSingleArtifactPlaceholderOnListIsRefused(t *testing.T) {
	src, err := os.ReadFile("../../testdata/cases/pipelines/empty-artifact-loop/pipeline.yaml")
	require.NoError(t, err)
	_, err = spec.Parse(src)
	require.Error(t, err)
	var paths []string
	for _, fe := range dag.AsFieldErrors(err) {
		paths = append(paths, fe.Path)
		require.Contains(t, fe.Message, "list of artifacts")
	}
	require.ElementsMatch(t, []string{"spec.tasks.aggempty.args[0]", "spec.tasks.aggpath.args[0]"}, paths, err.Error())
}

// Case kfp/pvc-stub-executor: the kfp-kubernetes stub executors (argostub/createpvc) are accepted and run
// under the docker runtime (a PVC is a Docker named volume; engine TestDockerRuntimeCreatesMountsDeletesPVC
// runs them) and the kubernetes runtime (a PersistentVolumeClaim; engine TestKubernetesCreateMountDeletePVC);
// the local runtime refuses them at upload, naming the task and the runtimes to use.
func TestCasePVCStubExecutor(t *testing.T) {
	src, err := os.ReadFile("../../testdata/cases/kfp/pvc-stub-executor/pipeline.yaml")
	require.NoError(t, err)
	p, err := spec.Parse(src)
	require.NoError(t, err)
	require.NoError(t, spec.CheckRuntime(p, "docker"))
	require.NoError(t, spec.CheckRuntime(p, "kubernetes"))
	err = spec.CheckRuntime(p, "local")
	require.Error(t, err)
	require.Contains(t, err.Error(), "task createpvc")
	require.Contains(t, err.Error(), "argostub/createpvc")
	require.Contains(t, err.Error(), "--runtime docker")
	require.Contains(t, err.Error(), "--runtime kubernetes")
}
