package platform_test

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/kube"
	"github.com/sluice-ml/sluice/libs/runtime/kube/kubetest"
)

// SLUICE_RUNTIME=kubernetes reaches the API server of KUBECONFIG and maps namespaces as configured.
func TestKubernetesRuntimeFromKubeconfig(t *testing.T) {
	srv := kubetest.Start(t)
	env := map[string]string{platform.EnvKubeconfig: srv.Kubeconfig, platform.EnvKubeNamespacePrefix: "sluice-"}
	rt, err := platform.NewRuntimeEnv(runtime.NameKubernetes, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	kr := rt.(*kube.Runtime)
	if got := kr.NamespaceOf("team-a"); got != "sluice-team-a" {
		t.Fatalf("NamespaceOf(team-a) = %q", got)
	}
	if _, err := kr.Client().CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("the runtime's client does not reach the API server: %v", err)
	}
	env[platform.EnvKubeNamespace] = "ml"
	rt, err = platform.NewRuntimeEnv(runtime.NameKubernetes, func(k string) string { return env[k] })
	if err != nil || rt.(*kube.Runtime).NamespaceOf("team-a") != "ml" {
		t.Fatalf("SLUICE_KUBE_NAMESPACE: %v", err)
	}
}

func TestKubernetesRuntimeWithoutConfigSaysWhy(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	_, err := platform.NewRuntimeEnv(runtime.NameKubernetes, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "KUBECONFIG") {
		t.Fatalf("err = %v, want one naming KUBECONFIG", err)
	}
	env := map[string]string{platform.EnvKubeconfig: "/nonexistent/kubeconfig"}
	if _, err := platform.NewRuntimeEnv(runtime.NameKubernetes, func(k string) string { return env[k] }); err == nil {
		t.Fatal("a missing kubeconfig file was accepted")
	}
}
