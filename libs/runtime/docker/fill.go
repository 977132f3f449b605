package docker

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"

	"github.com/sluice-ml/sluice/libs/runtime"
)

// fillImage is an image with an empty root file system, imported locally (never pulled): the image of
// the never-started containers FillVolume copies through.
const fillImage = "sluice/volume-fill:empty"

// fillMount is where FillVolume's container mounts the volume.
const fillMount = "/volume"

// FillVolume copies the contents of the host directory dir into the named volume (created if missing),
// keeping relative paths and overwriting files that exist. It copies through a created, never started
// container that mounts the volume (the Engine API's archive upload, as `docker cp` into a stopped
// container), so it works wherever the Docker daemon runs; the container is removed afterwards.
func (r *Runtime) FillVolume(ctx context.Context, volume, dir string) error {
	if err := r.ensureFillImage(ctx); err != nil {
		return err
	}
	created, err := r.cli.ContainerCreate(ctx,
		&container.Config{Image: fillImage, Cmd: []string{"/none"}, Labels: map[string]string{runtime.LabelName: "fill-" + volume}},
		&container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: volume, Target: fillMount}}}, nil, nil, "")
	if err != nil {
		return fmt.Errorf("docker: fill volume %s: create container: %w", volume, err)
	}
	defer func() {
		_ = r.cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true})
	}()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarDir(pw, dir)) }()
	err = r.cli.CopyToContainer(ctx, created.ID, fillMount, pr, container.CopyToContainerOptions{})
	_ = pr.CloseWithError(err)
	if err != nil {
		return fmt.Errorf("docker: fill volume %s: %w", volume, err)
	}
	return nil
}

// ensureFillImage imports fillImage from an empty tar archive unless it exists.
func (r *Runtime) ensureFillImage(ctx context.Context) error {
	if _, err := r.cli.ImageInspect(ctx, fillImage); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: inspect %s: %w", fillImage, err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tar.NewWriter(pw).Close()) }() // an empty archive: two zero blocks
	rc, err := r.cli.ImageImport(ctx, image.ImportSource{Source: pr, SourceName: "-"}, fillImage, image.ImportOptions{})
	if err != nil {
		return fmt.Errorf("docker: import %s: %w", fillImage, err)
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// tarDir writes the directories and regular files under dir as a tar archive with paths relative to
// dir.
func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.IsDir() && !info.Mode().IsRegular() {
			return nil // links and special files are not artifact content
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name = strings.TrimSuffix(hdr.Name, "/") + "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
