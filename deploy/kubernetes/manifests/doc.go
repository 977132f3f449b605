// Package manifests holds the tests of Sluice's Kubernetes manifests (deploy/kubernetes): the base and
// overlay kustomizations are rendered with kustomize's own library and applied to a real API server.
package manifests
