package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A pvcMount naming its PVC by CreatePVC's output is accepted for Docker when the producer is upstream
// and declares the output; dropping the dependency, naming an undeclared output or an input the DAG
// does not have is refused at upload, naming the task and the setting.
func TestKubernetesNameRefsAreChecked(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "refused", "k8s-pvcMount-task-output.yaml"))
	require.NoError(t, err)
	src := string(b)
	check := func(s string) error {
		p, err := Parse([]byte(s))
		require.NoError(t, err)
		return CheckRuntime(p, "docker")
	}
	require.NoError(t, check(src))
	for _, c := range []struct{ from, to, want string }{
		{"        dependentTasks: [createpvc]\n", "", `task a: kfp-kubernetes pvcMount[0]: the name comes from task "createpvc", which is not upstream of it`},
		{"outputParameterKey: name}", "outputParameterKey: pvc}", `the name comes from output "pvc" of task "createpvc", which it does not declare`},
		{"taskOutputParameter: {producerTask: createpvc, outputParameterKey: name}", "componentInputParameter: pvc", `the name comes from input "pvc", which the enclosing DAG does not declare`},
	} {
		changed := strings.Replace(src, c.from, c.to, 1)
		require.NotEqual(t, src, changed, c.from)
		require.ErrorContains(t, check(changed), c.want)
	}
}

// Under the kubernetes runtime, the pod settings given as constants are applied and the ones KFP
// resolves at run time from a parameter (nodeSelectorJson, tolerationJson), invalid operators and
// effects, and CreatePVC are refused at upload, naming the task and the setting.
func TestKubernetesRuntimePodSettings(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "refused", "k8s-tolerations.yaml"))
	require.NoError(t, err)
	src := string(b)
	check := func(s string) error {
		p, err := Parse([]byte(s))
		require.NoError(t, err)
		return CheckRuntime(p, "kubernetes")
	}
	require.NoError(t, check(src))
	for _, c := range []struct{ from, to, want string }{
		{"tolerations:\n", "tolerations:\n          - tolerationJson: {componentInputParameter: t}\n", "tolerations[0].tolerationJson: a toleration set at run time from a parameter is not supported"},
		{"tolerations:\n", "tolerations:\n          - {key: a, operator: Like}\n", `tolerations[0].operator "Like": want Equal or Exists`},
		{"tolerations:\n", "nodeSelector: {nodeSelectorJson: {componentInputParameter: ns}}\n          tolerations:\n", "nodeSelector.nodeSelectorJson: a node selector set at run time"},
		{"tolerations:\n", "nodeAffinity: [{}]\n          tolerations:\n", "kfp-kubernetes nodeAffinity is not supported by the kubernetes runtime (the kubernetes runtime does not apply it yet)"},
	} {
		changed := strings.Replace(src, c.from, c.to, 1)
		require.NotEqual(t, src, changed, c.from)
		err := check(changed)
		require.Error(t, err, c.to)
		require.Contains(t, err.Error(), "task a: kfp-kubernetes")
		require.Contains(t, err.Error(), c.want)
	}
}
