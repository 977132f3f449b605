// Module manifests tests deploy/kubernetes: it renders the kustomizations with kustomize's library
// (sigs.k8s.io/kustomize/api/krusty) and applies the result to the test API server
// (libs/runtime/kube/kubetest, a workspace module like every service's).
module github.com/sluice-ml/sluice/deploy/kubernetes/manifests

go 1.26.8

require (
	sigs.k8s.io/kustomize/api v0.21.2
	sigs.k8s.io/kustomize/kyaml v0.21.2
)
