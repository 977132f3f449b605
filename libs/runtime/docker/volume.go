package docker

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/volume"
)

// RemoveVolume removes the named volume (created on first use by a Mount.Volume). A missing volume is
// not an error; a volume still used by a container is (Docker refuses to remove it).
func (r *Runtime) RemoveVolume(ctx context.Context, name string) error {
	if err := r.cli.VolumeRemove(ctx, name, false); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: remove volume %s: %w", name, err)
	}
	return nil
}

// CreateVolume creates the named volume (local driver) with labels; creating one that exists returns
// it unchanged, so a retried create succeeds.
func (r *Runtime) CreateVolume(ctx context.Context, name string, labels map[string]string) error {
	if _, err := r.cli.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: labels}); err != nil {
		return fmt.Errorf("docker: create volume %s: %w", name, err)
	}
	return nil
}

// VolumeLabels returns the labels of the named volume; found is false when there is no such volume.
func (r *Runtime) VolumeLabels(ctx context.Context, name string) (labels map[string]string, found bool, err error) {
	v, err := r.cli.VolumeInspect(ctx, name)
	if cerrdefs.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("docker: inspect volume %s: %w", name, err)
	}
	return v.Labels, true, nil
}
