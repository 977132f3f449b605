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
