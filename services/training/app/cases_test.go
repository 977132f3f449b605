package app_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/netport"
	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/docker"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/app"
	"github.com/sluice-ml/sluice/services/training/internal/lifecycle"
)

// Case stale-log-after-name-reuse: a job re-created under a deleted job's
// name serves its own replica's log, never the deleted job's; the deleted
// job's logs are removed.
func TestReusedNameNeverServesOldLogs(t *testing.T) {
	e := newEnv(t)
	require.Equal(t, http.StatusCreated, e.do(http.MethodPost, e.jobs(), job("lc-k", "", "echo OLD-RUN-OUTPUT", ""), nil))
	old := e.waitState("lc-k", trainingv1.JobSucceeded)
	oldUID := string(old.Job.Meta().UID)
	require.NotEmpty(t, oldUID)
	require.Equal(t, http.StatusOK, e.do(http.MethodDelete, e.jobs()+"/lc-k", "", nil))

	require.Equal(t, http.StatusCreated, e.do(http.MethodPost, e.jobs(), job("lc-k", "", "echo NEW-RUN-OUTPUT; sleep 60", ""), nil))
	v := e.waitState("lc-k", trainingv1.JobRunning)
	require.NotEqual(t, oldUID, string(v.Job.Meta().UID), "a re-created job has a new UID")
	var logs string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		if e.do(http.MethodGet, e.jobs()+"/lc-k/logs?replica=worker-0", "", &logs) == http.StatusOK && logs != "" {
			break
		}
	}
	require.Equal(t, "NEW-RUN-OUTPUT\n", logs)
	objs, err := e.store.List(t.Context(), lifecycle.JobKeyPrefix(e.ns, "tfjob", "lc-k", oldUID))
	require.NoError(t, err)
	require.Empty(t, objs, "the deleted job's logs are removed")
}

// freeAddr is a free loopback address for a service binary, which binds it itself.
func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := netport.Free("127.0.0.1")
	require.NoError(t, err)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(b), ") Z ")
}

func pidsIn(t *testing.T, path string) []int {
	b, _ := os.ReadFile(path)
	var out []int
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		require.NoError(t, err)
		out = append(out, n)
	}
	return out
}

// Case ps-orphan-after-crash: the training service is killed (SIGKILL)
// while a TFJob runs; restarted on the same data dir, it ends every
// process the killed instance's replicas left (the PS's grandchild
// included), the job recreates its lost replicas and succeeds, and no
// process of any replica attempt is left.
// adminToken is the static admin token given to the service binaries these tests start.
const adminToken = "training-test-admin-token-0123456789"

func TestCrashedServiceLeavesNoReplicaProcess(t *testing.T) {
	st := devstacktest.Stack(t)
	bin := filepath.Join(t.TempDir(), "training")
	build := exec.Command("go", "build", "-o", bin, "../cmd/training")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	dataDir, side := t.TempDir(), t.TempDir()
	addr := freeAddr(t)
	svc := exec.Command(bin)
	svc.Env = append(os.Environ(), "SLUICE_HTTP_ADDR="+addr, "NATS_URL="+st.NATSURL, "TEMPORAL_ADDRESS="+st.TemporalAddress,
		"TEMPORAL_NAMESPACE="+st.Namespace, "S3_ENDPOINT="+st.S3Endpoint, "S3_ACCESS_KEY="+st.S3AccessKey, "S3_SECRET_KEY="+st.S3SecretKey,
		"S3_BUCKET="+st.S3Bucket, "S3_REGION="+st.S3Region, "SLUICE_DATA_DIR="+dataDir, "SLUICE_RUNTIME=local",
		"SLUICE_TRAINING_HEARTBEAT_TIMEOUT=2s", "SLUICE_TRAINING_RESTART_BACKOFF=50ms", "SLUICE_LOG_LEVEL=warn",
		"SLUICE_AUTH_TOKENS="+adminToken+"=system:admin") // a service binary authenticates every API call
	logf, err := os.Create(filepath.Join(t.TempDir(), "service.log"))
	require.NoError(t, err)
	defer logf.Close()
	svc.Stdout, svc.Stderr = logf, logf
	require.NoError(t, svc.Start())
	t.Cleanup(func() { _ = svc.Process.Kill(); _ = svc.Wait() })
	base := "http://" + addr
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "service did not become ready")
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
	}
	ns := "relns-" + strconv.Itoa(os.Getpid())
	doc := fmt.Sprintf(`apiVersion: kubeflow.org/v1
kind: TFJob
metadata: {name: orph, namespace: %s}
spec:
  runPolicy: {cleanPodPolicy: Running}
  tfReplicaSpecs:
    Chief:
      replicas: 1
      restartPolicy: OnFailure
      template: {spec: {containers: [{name: tensorflow, image: busybox, command: [sh, -c, 'sleep 4 & echo $! >> %[2]s/chief.pids; wait']}]}}
    Ps:
      replicas: 1
      restartPolicy: OnFailure
      template: {spec: {containers: [{name: tensorflow, image: busybox, command: [sh, -c, 'sleep 311 & echo $! >> %[2]s/ps.pids; wait']}]}}
`, ns, side)
	req, err := http.NewRequest(http.MethodPost, base+"/apis/training/v1/namespaces/"+ns+"/jobs", strings.NewReader(doc))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/yaml")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	for deadline := time.Now().Add(time.Minute); len(pidsIn(t, filepath.Join(side, "ps.pids"))) == 0; time.Sleep(20 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "PS never started")
	}
	firstPS := pidsIn(t, filepath.Join(side, "ps.pids"))[0]

	require.NoError(t, svc.Process.Signal(syscall.SIGKILL)) // kill -9 the service
	_ = svc.Wait()
	require.True(t, alive(firstPS), "precondition: the PS grandchild outlives the killed service")

	e := newEnvAt(t, dataDir, trainingv1.TaskQueue)
	e.ns = ns
	for deadline := time.Now().Add(30 * time.Second); alive(firstPS); time.Sleep(20 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "orphaned PS process %d still running after restart", firstPS)
	}
	v := e.waitStateWithin("orph", trainingv1.JobSucceeded, 2*time.Minute)
	require.Equal(t, trainingv1.JobSucceeded, v.State)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var left []int
		for _, f := range []string{"ps.pids", "chief.pids"} {
			for _, pid := range pidsIn(t, filepath.Join(side, f)) {
				if alive(pid) {
					left = append(left, pid)
				}
			}
		}
		if len(left) == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "replica processes %v still running after the job finished", left)
	}
	require.GreaterOrEqual(t, len(pidsIn(t, filepath.Join(side, "ps.pids"))), 2, "the lost PS was recreated")
}

// Under Docker, replica containers an earlier (crashed) instance of the
// service left running are removed when the service starts on the same
// data dir, so a recreated replica never runs beside its old container.
func TestDockerOrphanedReplicaContainersRemovedAtStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	ok := docker.Available(ctx)
	cancel()
	if !ok {
		if os.Getenv("CI") == "true" {
			t.Fatal("docker daemon unreachable under CI=true")
		}
		t.Skip("docker daemon unreachable")
	}
	rt, err := docker.New(docker.Config{GracePeriod: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	img := probeImage(t)
	dataDir := t.TempDir()
	name := fmt.Sprintf("sluice-training-test-orphan-%d", os.Getpid())
	p, err := rt.Start(t.Context(), runtime.Spec{Name: name, Image: img, Command: []string{"/probe", "sleep"},
		Labels: map[string]string{app.OwnerLabel: app.OwnerOf(filepath.Join(dataDir, "training"))}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Kill() })
	newEnvOn(t, dataDir, "training-test-"+strconv.Itoa(os.Getpid()), "docker")
	select {
	case <-p.Done():
	case <-time.After(time.Minute):
		t.Fatalf("orphaned container %s still running after the service started", name)
	}
	_, err = rt.Client().ContainerInspect(t.Context(), name)
	require.Error(t, err, "container removed")
}
