package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"

	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/docker"
	"github.com/sluice-ml/sluice/libs/runtime/runtimetest"
)

// testImage is built FROM scratch by TestMain with the probe at /probe and, when the host has a static
// busybox (Debian's busybox-static), /bin/busybox.
var (
	testImage   = fmt.Sprintf("sluice-runtime-probe:test-%d", os.Getpid())
	skipReason  string
	hasBusybox  bool
	namePrefix  = fmt.Sprintf("rt%d", os.Getpid())
	testRuntime *docker.Runtime
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	available := docker.Available(ctx)
	cancel()
	if !available {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "docker daemon unreachable and CI=true: failing instead of skipping")
			return 1
		}
		skipReason = "docker daemon unreachable (set CI=true to fail instead)"
		return m.Run()
	}
	rt, err := docker.New(docker.Config{GracePeriod: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer rt.Close()
	testRuntime = rt
	dir, err := os.MkdirTemp("", "docker-probe-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := buildImage(rt, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		_, _ = rt.Client().ImageRemove(context.Background(), testImage, image.RemoveOptions{Force: true, PruneChildren: true})
	}()
	return m.Run()
}

func buildImage(rt *docker.Runtime, dir string) error {
	probe, err := runtimetest.BuildProbe(dir)
	if err != nil {
		return err
	}
	files := map[string]string{"probe": probe}
	dockerfile := "FROM scratch\nCOPY probe /probe\n"
	if _, err := os.Stat("/bin/busybox"); err == nil {
		hasBusybox = true
		files["busybox"] = "/bin/busybox"
		dockerfile += "COPY busybox /bin/busybox\n"
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, mode int64, body []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body))}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	if err := add("Dockerfile", 0o644, []byte(dockerfile)); err != nil {
		return err
	}
	for _, name := range []string{"probe", "busybox"} {
		src, ok := files[name]
		if !ok {
			continue
		}
		body, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := add(name, 0o755, body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := rt.Client().ImageBuild(ctx, &buf, build.ImageBuildOptions{Tags: []string{testImage}, Remove: true, ForceRemove: true})
	if err != nil {
		return fmt.Errorf("build test image: %w", err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("build test image: read progress: %w", err)
		}
		if msg.Error != "" {
			return fmt.Errorf("build test image: %s", msg.Error)
		}
	}
}

func requireDocker(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

func TestDockerContract(t *testing.T) {
	requireDocker(t)
	runtimetest.Contract(t, runtimetest.Target{Runtime: testRuntime, Image: testImage, Probe: "/probe", Prefix: namePrefix + "-ct", Timeout: time.Minute})
}

func startAndWait(t *testing.T, s runtime.Spec) (runtime.ExitStatus, string, string) {
	t.Helper()
	var stdout, stderr runtimetest.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	p, err := testRuntime.Start(context.Background(), s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return st, stdout.String(), stderr.String()
}

func TestDockerBusyboxEcho(t *testing.T) {
	requireDocker(t)
	if !hasBusybox {
		if os.Getenv("CI") == "true" {
			t.Fatal("no /bin/busybox on the host under CI=true (make deps installs busybox-static)")
		}
		t.Skip("no /bin/busybox on the host (apt-get install busybox-static)")
	}
	t.Parallel()
	st, out, _ := startAndWait(t, runtime.Spec{Name: namePrefix + "-echo", Image: testImage, Command: []string{"busybox", "echo", "hi"}})
	if st.Code != 0 || out != "hi\n" {
		t.Fatalf("status %+v output %q", st, out)
	}
}

func TestDockerMountAndWorkDir(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, out, _ := startAndWait(t, runtime.Spec{
		Name: namePrefix + "-mount", Image: testImage, Command: []string{"/probe"}, Args: []string{"cat", "in.txt"},
		WorkDir: "/data", Mounts: []runtime.Mount{{HostPath: dir, ContainerPath: "/data", ReadOnly: true}},
	})
	if st.Code != 0 || out != "from the host" {
		t.Fatalf("status %+v output %q", st, out)
	}
	st, _, errOut := startAndWait(t, runtime.Spec{
		Name: namePrefix + "-mount-ro", Image: testImage, Command: []string{"/probe"}, Args: []string{"write", "/data/out.txt", "x"},
		Mounts: []runtime.Mount{{HostPath: dir, ContainerPath: "/data", ReadOnly: true}},
	})
	if st.Code == 0 || !strings.Contains(errOut, "read-only") {
		t.Fatalf("write to a read-only mount: status %+v stderr %q", st, errOut)
	}
}

func TestDockerStartIsIdempotentPerName(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	var out runtimetest.Buffer
	s := runtime.Spec{Name: namePrefix + "-adopt", Image: testImage, Command: []string{"/probe"}, Args: []string{"sleep"}, Stdout: &out}
	// The first handle stands for an earlier instance that keeps its containers; the second adopts.
	keeper, err := docker.New(docker.Config{GracePeriod: time.Second, KeepExited: true})
	if err != nil {
		t.Fatal(err)
	}
	defer keeper.Close()
	first, err := keeper.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	out.WaitFor(t, "ready", time.Minute)
	second, err := testRuntime.Start(context.Background(), s)
	if err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if first.ID() != second.ID() {
		t.Fatalf("second Start made container %s, want the first one %s", second.ID(), first.ID())
	}
	if err := second.Kill(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []runtime.Process{first, second} {
		st, err := p.Wait(context.Background())
		if err != nil || st.Code != 137 {
			t.Fatalf("Wait = %+v, %v; want 137", st, err)
		}
	}
	// The exited container was removed.
	if _, err := testRuntime.Client().ContainerInspect(context.Background(), first.ID()); err == nil {
		t.Fatalf("container %s still exists after exit", first.ID())
	}
}

func TestDockerRejectsForeignContainerAndMissingExecutable(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	ctx := context.Background()
	name := namePrefix + "-foreign"
	created, err := testRuntime.Client().ContainerCreate(ctx, &container.Config{Image: testImage, Cmd: []string{"/probe", "sleep"}}, nil, nil, nil, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = testRuntime.Client().ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true})
	})
	if _, err := testRuntime.Start(ctx, runtime.Spec{Name: name, Image: testImage, Command: []string{"/probe"}}); !errors.Is(err, runtime.ErrNameInUse) {
		t.Fatalf("Start over a foreign container = %v, want ErrNameInUse", err)
	}

	// docker-init reports an executable it cannot find as a shell would.
	st, _, errOut := startAndWait(t, runtime.Spec{Name: namePrefix + "-missing", Image: testImage, Command: []string{"/no/such/program"}})
	if st.Code != 127 || st.Reason != runtime.ReasonError {
		t.Fatalf("missing executable: status %+v stderr %q, want 127 Error", st, errOut)
	}
	if _, err := testRuntime.Start(ctx, runtime.Spec{Name: namePrefix + "-noimage", Command: []string{"/probe"}}); !errors.Is(err, runtime.ErrInvalidSpec) || !strings.Contains(err.Error(), "spec.image:") {
		t.Fatalf("Start without image = %v, want ErrInvalidSpec naming spec.image", err)
	}
}

// TestDockerNetworkAliases: a container attached to a user-defined network
// is known there by its aliases; the network is removed only once unused.
func TestDockerNetworkAliases(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	ctx := context.Background()
	netName := namePrefix + "-net"
	require := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	require(testRuntime.EnsureNetwork(ctx, netName, map[string]string{"sluice.io/test": "1"}))
	require(testRuntime.EnsureNetwork(ctx, netName, nil)) // idempotent
	t.Cleanup(func() { _, _ = testRuntime.RemoveNetwork(context.Background(), netName) })
	var out runtimetest.Buffer
	p, err := testRuntime.Start(ctx, runtime.Spec{Name: namePrefix + "-aliased", Image: testImage, Command: []string{"/probe"}, Args: []string{"sleep"},
		Network: netName, Aliases: []string{"job-worker-0"}, Hostname: "job-worker-0", Stdout: &out})
	require(err)
	out.WaitFor(t, "ready", time.Minute)
	info, err := testRuntime.Client().ContainerInspect(ctx, p.ID())
	require(err)
	ep := info.NetworkSettings.Networks[netName]
	if ep == nil || !slicesContains(ep.Aliases, "job-worker-0") || info.Config.Hostname != "job-worker-0" {
		t.Fatalf("endpoint %+v hostname %q: want alias and hostname job-worker-0", ep, info.Config.Hostname)
	}
	if removed, err := testRuntime.RemoveNetwork(ctx, netName); err != nil || removed {
		t.Fatalf("RemoveNetwork while in use = %v, %v; want false, nil", removed, err)
	}
	require(p.Kill())
	_, _ = p.Wait(ctx)
	if removed, err := testRuntime.RemoveNetwork(ctx, netName); err != nil || !removed {
		t.Fatalf("RemoveNetwork when unused = %v, %v; want true, nil", removed, err)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestDockerNamedVolume: what one container writes to a named volume the
// next one reads.
func TestDockerNamedVolume(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	vol := namePrefix + "-vol"
	t.Cleanup(func() { _ = testRuntime.Client().VolumeRemove(context.Background(), vol, true) })
	m := []runtime.Mount{{Volume: vol, ContainerPath: "/data"}}
	st, _, errOut := startAndWait(t, runtime.Spec{Name: namePrefix + "-vol-w", Image: testImage, Command: []string{"/probe"}, Args: []string{"write", "/data/f", "shared"}, Mounts: m})
	if st.Code != 0 {
		t.Fatalf("write: %+v %s", st, errOut)
	}
	st, out, _ := startAndWait(t, runtime.Spec{Name: namePrefix + "-vol-r", Image: testImage, Command: []string{"/probe"}, Args: []string{"cat", "/data/f"}, Mounts: m})
	if st.Code != 0 || out != "shared" {
		t.Fatalf("read: %+v %q", st, out)
	}
}
