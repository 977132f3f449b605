package app_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/services/notebooks/internal/spawner"
)

// TestCredentialsAndIsolation re-expresses security/jupyter-token-in-argv, query-token-with-header,
// proxy-encoded-name-oracle and kernel-cross-namespace.
func TestCredentialsAndIsolation(t *testing.T) {
	needJupyter(t)
	h := start(t, t.TempDir(), map[string]string{})
	h.create("team-a", "lat2", tokenA)
	h.create("team-b", "nbb", tokenB)
	h.waitFor("team-a", "lat2", tokenA, 90*time.Second, "running", running)
	h.waitFor("team-b", "nbb", tokenB, 90*time.Second, "running", running)
	servers := filepath.Join(h.deps.DataDir, "notebooks", "servers")

	// jupyter-token-in-argv: the Jupyter token is in no process's argv, and its config file is 0600.
	for _, nb := range []string{"team-a/lat2", "team-b/nbb"} {
		var ep spawner.Endpoint
		b, err := os.ReadFile(filepath.Join(servers, nb, "server.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &ep); err != nil || ep.Token == "" || ep.PID == 0 {
			t.Fatalf("server.json of %s: %v %+v", nb, err, ep)
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ep.PID))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(cmdline), ep.Token) {
			t.Errorf("%s: the Jupyter token is in argv: %q", nb, cmdline)
		}
		fi, err := os.Stat(filepath.Join(servers, nb, "config", "jupyter_notebook_config.json"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: token config %v %v, want mode 0600", nb, fi, err)
		}
	}

	// query-token-with-header: a Sluice token in the query next to the header is removed before Jupyter.
	code, b := h.do("GET", "/notebook/team-a/lat2/api/contents?token="+tokenA, tokenA, nil)
	if code != 200 {
		t.Fatalf("header + ?token=: %d %s", code, b)
	}
	code, b = h.do("GET", "/notebook/team-a/lat2/api/status", tokenA, nil)
	if code != 200 {
		t.Fatalf("api/status: %d %s", code, b)
	}
	logPath := filepath.Join(servers, "team-a", "lat2", "server.log")
	if logb, _ := os.ReadFile(logPath); strings.Contains(string(logb), tokenA) {
		t.Errorf("the Sluice token reached Jupyter's log:\n%s", logb)
	}

	// proxy-encoded-name-oracle: a team-a token learns nothing about team-b through an encoded name.
	var answers []string
	for _, name := range []string{"nbb", "nope"} {
		code, b := h.do("GET", "/notebook/team-a/..%2fteam-b%2f"+name+"/api/status", tokenA, nil)
		answers = append(answers, fmt.Sprintf("%d %s", code, strings.ReplaceAll(string(b), name, "NAME")))
		if code != 404 {
			t.Errorf("encoded name %s: %d %s, want 404", name, code, b)
		}
	}
	if answers[0] != answers[1] {
		t.Errorf("answers differ by existence: %q", answers)
	}

	// kernel-cross-namespace: team-a's kernel cannot read team-b's files, token or the service's environment.
	if !spawner.Isolated() {
		t.Log("not root: the local runtime cannot isolate namespaces (README: trust model); skipping the kernel probe")
		return
	}
	_, conn := h.kernel("team-a", "lat2", tokenA)
	probe := fmt.Sprintf(`
import glob, os
out = []
for p in [%q, %q, %q]:
    try:
        open(p).read(); out.append('READ ' + p)
    except Exception as e:
        out.append(type(e).__name__)
try:
    os.listdir(%q); out.append('LISTED')
except Exception as e:
    out.append(type(e).__name__)
print(out, os.getuid())
`, filepath.Join(servers, "team-b", "nbb", "server.json"), filepath.Join(servers, "team-b", "nbb", "config", "jupyter_notebook_config.json"),
		fmt.Sprintf("/proc/%d/environ", os.Getpid()), filepath.Join(servers, "team-b"))
	id := execute(t, conn, probe)
	out := await(t, conn, id, "stream", 30*time.Second)
	text, _ := out.Content["text"].(string)
	if strings.Contains(text, "READ") || strings.Contains(text, "LISTED") || !strings.Contains(text, "PermissionError") || strings.HasSuffix(strings.TrimSpace(text), " 0") {
		t.Fatalf("team-a's kernel reached team-b or the service: %s", text)
	}
}
