package platform

import (
	"fmt"

	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/docker"
)

// NewRuntime returns the runtime named by SLUICE_RUNTIME: "local" (host processes, the default) or
// "docker" (Docker Engine API on the default socket).
func NewRuntime(kind string) (runtime.Runtime, error) {
	switch kind {
	case "", runtime.NameLocal:
		return runtime.NewLocal(runtime.LocalConfig{}), nil
	case runtime.NameDocker:
		rt, err := docker.New(docker.Config{})
		if err != nil {
			return nil, fmt.Errorf("SLUICE_RUNTIME=docker: %w", err)
		}
		return rt, nil
	default:
		return nil, fmt.Errorf("SLUICE_RUNTIME: %q is not supported by this binary (local, docker)", kind)
	}
}
