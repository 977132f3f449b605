package spawner

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
)

func needJupyter(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/jupyter"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("/usr/bin/jupyter is missing (apt-get install --no-install-recommends jupyter-notebook python3-ipykernel)")
		}
		t.Skip("/usr/bin/jupyter missing; install jupyter-notebook python3-ipykernel")
	}
}

// traversableTempDir is a temp dir whose ancestors per-namespace users may traverse (t.TempDir's parent
// is 0700), as the isolation needs when the test runs as root.
func traversableTempDir(t *testing.T) string {
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func notebook(ns, name string) notebooksv1.Notebook {
	var nb notebooksv1.Notebook
	nb.Metadata.Namespace, nb.Metadata.Name = ns, name
	nb.Spec.Template.Spec.Containers = []notebooksv1.Container{{Image: "jupyter", Env: []notebooksv1.EnvVar{{Name: "GREETING", Value: ns}}}}
	return nb
}

// procStatus returns the value of a /proc/<pid>/status field ("Uid", "Gid").
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.Fields(v)[0]
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return ""
}

// TestWarmPool starts two namespaces' notebooks from a pool of two: each becomes a working Jupyter server
// at its own base_url with its own token, in its own process (as its namespace's user under isolation),
// and the pool refills with fresh processes.
func TestWarmPool(t *testing.T) {
	needJupyter(t)
	dir := traversableTempDir(t)
	rt := runtime.NewLocal(runtime.LocalConfig{GracePeriod: 5 * time.Second, LedgerDir: t.TempDir()})
	s := New(Config{Dir: filepath.Join(dir, "servers"), PATH: runtime.DefaultPath, WarmPool: 2, ReadyTimeout: 3 * time.Minute},
		rt, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	t.Cleanup(s.Close)
	if s.pool == nil {
		t.Fatal("no warm pool with WarmPool 2 and the local runtime")
	}
	waitUntil(t, 3*time.Minute, "2 warm servers ready", func() bool { return s.WarmReady() == 2 })
	s.pool.mu.Lock()
	warm := map[string]int{}
	for _, z := range s.pool.idle {
		pid, _ := strconv.Atoi(z.proc.ID())
		warm[z.id] = pid
	}
	s.pool.mu.Unlock()

	nbs := []notebooksv1.Notebook{notebook("team-a", "lab"), notebook("team-b", "lab")}
	res := make([]StartResult, len(nbs))
	errs := make([]error, len(nbs))
	var wg sync.WaitGroup
	for i, nb := range nbs {
		wg.Go(func() { res[i], errs[i] = s.Start(t.Context(), nb, 1, nil) })
	}
	wg.Wait()
	for i, r := range res {
		if errs[i] != nil || !r.Ready {
			t.Fatalf("start %s: %v %+v", nbs[i].Metadata.Namespace, errs[i], r)
		}
		if pid, ok := warm[r.Endpoint.Zygote]; !ok || pid != r.Endpoint.PID {
			t.Fatalf("%s did not start from the pool: zygote %q pid %d, pool %v", nbs[i].Metadata.Namespace, r.Endpoint.Zygote, r.Endpoint.PID, warm)
		}
	}
	a, b := res[0].Endpoint, res[1].Endpoint
	if a.PID == b.PID || a.Zygote == b.Zygote || a.Token == b.Token {
		t.Fatalf("two namespaces share a server process or token: %+v %+v", a, b)
	}

	get := func(url, token string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		req.Header.Set("Authorization", "token "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, ep := range []Endpoint{a, b} {
		dir := s.Dir(ep.Namespace, ep.Name)
		if err := os.WriteFile(filepath.Join(dir, "work", "mine-"+ep.Namespace+".txt"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		// The right base_url and token; its notebook dir is its own work/.
		if code, body := get(ep.BaseURL()+"api/contents", ep.Token); code != 200 || !strings.Contains(body, "mine-"+ep.Namespace+".txt") {
			t.Fatalf("%s: api/contents: %d %s", ep.Namespace, code, body)
		}
		other := a
		if ep == a {
			other = b
		}
		if code, _ := get(ep.BaseURL()+"api/status", other.Token); code != http.StatusForbidden {
			t.Fatalf("%s answered another namespace's token: %d", ep.Namespace, code)
		}
		wrong := "http://127.0.0.1:" + strconv.Itoa(ep.Port) + notebooksv1.PathPrefix(other.Namespace, other.Name) + "api/status"
		if code, _ := get(wrong, ep.Token); code != http.StatusNotFound {
			t.Fatalf("%s answered at another base_url: %d", ep.Namespace, code)
		}
		// Its Jupyter environment: the runtime dir of this notebook holds the server's info file.
		if _, err := os.Stat(filepath.Join(dir, "runtime", fmt.Sprintf("nbserver-%d.json", ep.PID))); err != nil {
			t.Fatalf("%s: server info not in its JUPYTER_RUNTIME_DIR: %v", ep.Namespace, err)
		}
		if log, _ := os.ReadFile(filepath.Join(dir, "server.log")); !strings.Contains(string(log), notebooksv1.PathPrefix(ep.Namespace, ep.Name)) {
			t.Fatalf("%s: server.log does not show the server:\n%s", ep.Namespace, log)
		}
		if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", ep.PID)); err != nil || cwd != filepath.Join(dir, "work") {
			t.Fatalf("%s: cwd %q %v", ep.Namespace, cwd, err)
		}
		if Isolated() {
			cred, err := runtime.EnsureUser(runtime.NamespaceUser(ep.Namespace))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"Uid", "Gid"} {
				want := strconv.Itoa(int(cred.UID))
				if f == "Gid" {
					want = strconv.Itoa(int(cred.GID))
				}
				if got := procStatus(t, ep.PID, f); got != want {
					t.Fatalf("%s: server %s %s, want %s (the namespace's user)", ep.Namespace, f, got, want)
				}
			}
		} else {
			t.Log("not root: the local runtime cannot isolate namespaces; the user check is skipped")
		}
	}

	// The pool refills with new processes; the claimed ones are never handed out again.
	waitUntil(t, 3*time.Minute, "the pool refilled to 2", func() bool { return s.WarmReady() == 2 })
	s.pool.mu.Lock()
	for _, z := range s.pool.idle {
		if z.id == a.Zygote || z.id == b.Zygote || z.proc.ID() == strconv.Itoa(a.PID) || z.proc.ID() == strconv.Itoa(b.PID) {
			t.Errorf("a claimed server is back in the pool: %s", z.id)
		}
	}
	s.pool.mu.Unlock()

	// A pooled server stops like any other, and its orphan check recognises it.
	s.Stop("team-a", "lab")
	if _, ok := s.Lookup("team-a", "lab"); ok {
		t.Fatal("team-a still runs after Stop")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", a.PID)); err == nil {
		if st := procStatus(t, a.PID, "State"); st != "Z" {
			t.Fatalf("team-a's server %d still runs (state %s)", a.PID, st)
		}
	}

	// An orphan left by an earlier process of the service is recognised by its zygote id and ended.
	other := New(Config{Dir: filepath.Join(dir, "servers"), PATH: runtime.DefaultPath}, rt, slog.New(slog.DiscardHandler))
	other.reapOrphan("team-b", "lab")
	s.mu.Lock()
	sv := s.servers[key("team-b", "lab")]
	s.mu.Unlock()
	select {
	case <-sv.proc.Done():
	case <-time.After(time.Minute):
		t.Fatalf("the orphan check did not end team-b's pooled server %d", b.PID)
	}
}

// TestInterpreter reads the Python of a jupyter launcher from its "#!" line; anything else turns the pool off.
func TestInterpreter(t *testing.T) {
	dir := t.TempDir()
	py := filepath.Join(dir, "python3")
	if err := os.WriteFile(py, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ script, want string }{
		{"#!/usr/bin/python3\nimport sys\n", "/usr/bin/python3"},
		{"#!/usr/bin/python3.11 -s\n", "/usr/bin/python3.11"},
		{"#!/usr/bin/env python3\n", py},
		{"#!/bin/sh\nexec python3 -m jupyter \"$@\"\n", ""},
		{"\x7fELF binary", ""},
	} {
		launcher := filepath.Join(dir, "jupyter")
		if err := os.WriteFile(launcher, []byte(tc.script), 0o755); err != nil {
			t.Fatal(err)
		}
		if got := interpreter(launcher, dir); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.script, got, tc.want)
		}
	}
	if got := interpreter(filepath.Join(dir, "missing"), dir); got != "" {
		t.Errorf("missing launcher: %q", got)
	}
}
