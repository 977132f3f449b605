package docker

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
)

// RemoveVolume removes the named volume (created on first use by a Mount.Volume). A missing volume is
// not an error; a volume still used by a container is (Docker refuses to remove it).
func (r *Runtime) RemoveVolume(ctx context.Context, name string) error {
	if err := r.cli.VolumeRemove(ctx, name, false); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: remove volume %s: %w", name, err)
	}
	return nil
}
