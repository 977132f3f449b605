package docker

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/network"
)

// EnsureNetwork creates the user-defined bridge network name (with labels) unless it exists, so
// containers attached to it (runtime.Spec.Network) reach each other by their aliases through Docker's
// embedded DNS. It is idempotent and safe to call concurrently for one name.
func (r *Runtime) EnsureNetwork(ctx context.Context, name string, labels map[string]string) error {
	// Older daemons accept two networks of one name; create one at a time.
	r.netMu.Lock()
	defer r.netMu.Unlock()
	if _, err := r.cli.NetworkInspect(ctx, name, network.InspectOptions{}); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: inspect network %s: %w", name, err)
	}
	_, err := r.cli.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: labels})
	if err != nil && !cerrdefs.IsConflict(err) && !cerrdefs.IsAlreadyExists(err) {
		// A concurrent create may have won; that network serves as well.
		if _, ierr := r.cli.NetworkInspect(ctx, name, network.InspectOptions{}); ierr == nil {
			return nil
		}
		return fmt.Errorf("docker: create network %s: %w", name, err)
	}
	return nil
}

// RemoveNetwork removes the network name if no container is attached to it any more; a missing network,
// or one still in use, is left as it is and reported as removed=false without error.
func (r *Runtime) RemoveNetwork(ctx context.Context, name string) (removed bool, err error) {
	info, err := r.cli.NetworkInspect(ctx, name, network.InspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("docker: inspect network %s: %w", name, err)
	}
	if len(info.Containers) > 0 {
		return false, nil
	}
	if err := r.cli.NetworkRemove(ctx, name); err != nil {
		if cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) || cerrdefs.IsPermissionDenied(err) || cerrdefs.IsFailedPrecondition(err) {
			return false, nil // gone, or a container attached meanwhile
		}
		return false, fmt.Errorf("docker: remove network %s: %w", name, err)
	}
	return true, nil
}
