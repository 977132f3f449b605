package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/libs/runtime/kube"
	"github.com/sluice-ml/sluice/services/notebooks/internal/cluster"
	"github.com/sluice-ml/sluice/services/notebooks/internal/spawner"
)

// Variables of the Kubernetes runtime (SLUICE_RUNTIME=kubernetes; the cluster itself is chosen by
// KUBECONFIG, SLUICE_KUBE_CONTEXT and the namespace mapping of libs/platform):
//
//	SLUICE_NOTEBOOKS_CLUSTER_DOMAIN   the cluster DNS domain of the notebooks' Services (default cluster.local;
//	                                  Kubeflow's CLUSTER_DOMAIN)
//	SLUICE_NOTEBOOKS_READY_TIMEOUT    start-to-ready limit, image pull included (default 10m on Kubernetes)
const envClusterDomain = "SLUICE_NOTEBOOKS_CLUSTER_DOMAIN"

func newCluster(cfg Config, getenv func(string) string, log *slog.Logger) (*cluster.Servers, error) {
	rt, err := platform.NewKubeRuntime(getenv)
	if err != nil {
		return nil, fmt.Errorf("SLUICE_RUNTIME=kubernetes: %w", err)
	}
	ready := 10 * time.Minute
	if getenv("SLUICE_NOTEBOOKS_READY_TIMEOUT") != "" {
		ready = cfg.ReadyTimeout
	}
	return cluster.New(cluster.Config{Runtime: rt, Domain: getenv(envClusterDomain), ReadyTimeout: ready, Log: log})
}

// SetClusterDial makes the proxy and the culler reach the notebooks' Services (<name>.<namespace>.svc.<domain>:80)
// through dial instead of the cluster's DNS and network: for a service running outside the cluster behind a
// tunnel, and for tests. It must be called before Start; it is a no-op unless SLUICE_RUNTIME=kubernetes.
func (s *Service) SetClusterDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) error {
	if s.cluster == nil {
		return nil
	}
	c, err := s.cluster.WithDial(dial)
	if err != nil {
		return err
	}
	s.cluster = c
	return nil
}

// KubeRuntime is the Kubernetes runtime the notebooks run on (nil unless SLUICE_RUNTIME=kubernetes).
func (s *Service) KubeRuntime() *kube.Runtime {
	if s.cluster == nil {
		return nil
	}
	return s.cluster.Runtime()
}

// lookup is where the proxy finds a running server.
func (s *Service) lookup(ctx context.Context, ns, name string) (spawner.Endpoint, bool) {
	if s.cluster != nil {
		return s.cluster.Lookup(ctx, ns, name)
	}
	return s.spawner.Lookup(ns, name)
}
