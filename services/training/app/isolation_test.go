package app_test

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// As root, the local runtime runs each namespace's replicas as its own Unix user with a private work
// dir: a replica of one namespace cannot read the work dir of another namespace's running replica.
func TestReplicasOfOtherNamespacesCannotReadEachOther(t *testing.T) {
	if !runtime.CanIsolate() {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs tests as root: the isolation test must run")
		}
		t.Skip("not root: the local runtime cannot isolate namespaces")
	}
	dataDir := t.TempDir()
	for d := dataDir; d != filepath.Dir(d); d = filepath.Dir(d) { // t.TempDir is 0700
		fi, err := os.Stat(d)
		require.NoError(t, err)
		require.NoError(t, os.Chmod(d, fi.Mode().Perm()|0o001))
	}
	require.Empty(t, platform.EnableLocalIsolation(dataDir, "local", slog.New(slog.DiscardHandler)))
	t.Cleanup(platform.DisableLocalIsolation)
	e := newEnvAt(t, dataDir, "training-iso-"+uuid.NewString()[:8])

	require.Equal(t, 201, e.do(http.MethodPost, e.jobs(), job("a", "", `echo secret-a > secret; while [ ! -f go ]; do sleep 0.05; done`, ""), nil))
	v := e.waitState("a", trainingv1.JobRunning)
	workA := filepath.Join(dataDir, "training", "work", e.ns, "tfjob", "a", string(v.Job.Meta().UID), "worker-0")
	require.Eventually(t, func() bool { _, err := os.Stat(filepath.Join(workA, "secret")); return err == nil }, 60e9, 50e6)

	nsB := "t" + uuid.NewString()[:8]
	jobsB := "/apis/training/v1/namespaces/" + nsB + "/jobs"
	probe := `if cat ` + workA + `/secret; then echo READ; else echo DENIED; fi; if ls ` + workA + `; then echo LISTED; fi; echo uid=$(id -u)`
	require.Equal(t, 201, e.do(http.MethodPost, jobsB, job("b", nsB, probe, ""), nil))
	eB := &env{t: t, srv: e.srv, deps: e.deps, app: e.app, ns: nsB, store: e.store}
	eB.waitState("b", trainingv1.JobSucceeded)
	var logs string
	require.Equal(t, 200, e.do(http.MethodGet, jobsB+"/b/logs?replica=worker-0&attempt=1", "", &logs))
	credB, err := runtime.EnsureUser(runtime.NamespaceUser(nsB))
	require.NoError(t, err)
	require.Contains(t, logs, "DENIED", logs)
	require.NotContains(t, logs, "secret-a")
	require.NotContains(t, logs, "LISTED")
	require.Contains(t, logs, "uid="+strconv.Itoa(int(credB.UID)))

	fi, err := os.Stat(workA)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	require.NoError(t, os.WriteFile(filepath.Join(workA, "go"), nil, 0o644))
	e.waitState("a", trainingv1.JobSucceeded)
	require.False(t, strings.Contains(logs, "READ\n"), logs)
}
