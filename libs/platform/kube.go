package platform

import (
	"errors"
	"fmt"
	"os"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sluice-ml/sluice/libs/runtime/kube"
)

// Variables of the Kubernetes runtime (SLUICE_RUNTIME=kubernetes).
const (
	// EnvKubeconfig is the kubeconfig file (kubectl's KUBECONFIG; `--kubeconfig` on `sluice dev`).
	// Without one the runtime uses the in-cluster config (the pod's service account).
	EnvKubeconfig = "KUBECONFIG"
	// EnvKubeContext picks a context of the kubeconfig (default: its current-context).
	EnvKubeContext = "SLUICE_KUBE_CONTEXT"
	// EnvKubeNamespace, when set, puts every pod in that one Kubernetes namespace; by default each
	// Sluice namespace maps to the Kubernetes namespace SLUICE_KUBE_NAMESPACE_PREFIX+<namespace>.
	EnvKubeNamespace = "SLUICE_KUBE_NAMESPACE"
	// EnvKubeNamespacePrefix is prepended to Sluice namespaces to name their Kubernetes namespaces.
	EnvKubeNamespacePrefix = "SLUICE_KUBE_NAMESPACE_PREFIX"
)

// KubeRESTConfig loads the API server's address and credentials: the kubeconfig at path (or the
// KUBECONFIG list when path is empty, merged as kubectl merges it) at context ctxName, else the
// in-cluster config. It names what it tried when none works.
func KubeRESTConfig(path, ctxName string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	if path != "" || len(rules.Precedence) > 0 && anyExists(rules.Precedence) {
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: ctxName})
		cfg, err := cc.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("no kubeconfig (set KUBECONFIG or --kubeconfig) and not in a cluster: %w", err)
	}
	return cfg, nil
}

func anyExists(paths []string) bool {
	for _, p := range paths {
		if fileExists(p) {
			return true
		}
	}
	return false
}

// NewKubeRuntime builds the Kubernetes runtime from the variables above, read through getenv.
func NewKubeRuntime(getenv func(string) string) (*kube.Runtime, error) {
	cfg, err := KubeRESTConfig(getenv(EnvKubeconfig), getenv(EnvKubeContext))
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = "sluice"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	rt, err := kube.New(kube.Config{Client: cs, Dynamic: dyn, Namespace: getenv(EnvKubeNamespace), NamespacePrefix: getenv(EnvKubeNamespacePrefix)})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("%s: invalid", EnvKubeNamespace), err)
	}
	return rt, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
