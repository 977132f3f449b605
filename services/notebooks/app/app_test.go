package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"go.temporal.io/api/serviceerror"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/devstack"
	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/libs/runtime/kube/kubetest"
	"github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/app"
)

func TestMain(m *testing.M) {
	code := devstacktest.Run(m)
	kubetest.Stop() // the API server of TestNotebookOnKubernetes, if it started
	os.Exit(code)
}

const (
	tokenA = "token-for-team-a-0123456789"
	tokenB = "token-for-team-b-0123456789"
)

func needJupyter(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/jupyter"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("/usr/bin/jupyter is missing (apt-get install --no-install-recommends jupyter-notebook python3-ipykernel)")
		}
		t.Skip("/usr/bin/jupyter missing; install jupyter-notebook python3-ipykernel")
	}
}

// harness is one notebooks service on the shared devstack, served through platform.Handler like sluice dev.
type harness struct {
	t     testing.TB
	stack *devstack.Stack
	deps  *platform.Deps
	svc   *app.Service
	srv   *httptest.Server
	env   map[string]string
}

func newDeps(t testing.TB, stack *devstack.Stack, dataDir string, env map[string]string) *platform.Deps {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bus, err := events.Connect(t.Context(), stack.NATSURL, "notebooks-test", log)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(t.Context()); err != nil {
		t.Fatal(err)
	}
	tc, err := workflow.Dial(t.Context(), workflow.Config{HostPort: stack.TemporalAddress, Namespace: stack.Namespace}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close(); bus.Close() })
	return &platform.Deps{Log: log, Metrics: platform.NewRegistry(), Bus: bus, Temporal: tc, Namespace: stack.Namespace,
		DataDir: dataDir, RuntimeKind: "local", Getenv: func(k string) string {
			if v, ok := env[k]; ok {
				return v
			}
			return os.Getenv(k)
		}}
}

func start(t testing.TB, dataDir string, env map[string]string) *harness {
	t.Helper()
	stack := devstacktest.Stack(t)
	allowTraverse(t, dataDir)
	if env["SLUICE_NOTEBOOKS_TOKENS"] == "" {
		env["SLUICE_NOTEBOOKS_TOKENS"] = tokenA + "=team-a;" + tokenB + "=team-b"
	}
	h := &harness{t: t, stack: stack, env: env}
	h.deps = newDeps(t, stack, dataDir, env)
	svc, err := app.New(t.Context(), h.deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	h.srv = httptest.NewServer(platform.Handler(h.deps.Metrics, h.deps.Log, nil, svc))
	t.Cleanup(h.close)
	return h
}

func (h *harness) close() {
	if h.srv != nil {
		h.srv.Close()
		h.svc.Close()
		h.srv = nil
	}
}

// forget terminates the lifecycle workflows of the given notebooks so later tests' workers never see them.
func (h *harness) forget(ns string, names ...string) {
	h.t.Cleanup(func() {
		for _, n := range names {
			_ = h.deps.Temporal.TerminateWorkflow(context.Background(), notebooksv1.WorkflowID(ns, n), "", "test over")
		}
	})
}

func (h *harness) do(method, path, token string, body any) (int, []byte) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(h.t.Context(), method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (h *harness) get(ns, name, token string) (notebooksv1.Notebook, int) {
	h.t.Helper()
	code, b := h.do("GET", "/apis/notebooks/v1/namespaces/"+ns+"/notebooks/"+name, token, nil)
	var nb notebooksv1.Notebook
	if code == 200 {
		if err := json.Unmarshal(b, &nb); err != nil {
			h.t.Fatal(err)
		}
	}
	return nb, code
}

func condition(nb notebooksv1.Notebook) (string, string) {
	if len(nb.Status.Conditions) == 0 {
		return "", ""
	}
	return nb.Status.Conditions[0].Type, nb.Status.Conditions[0].Reason
}

// waitFor polls the notebook until ok holds.
func (h *harness) waitFor(ns, name, token string, timeout time.Duration, what string, ok func(notebooksv1.Notebook, int) bool) notebooksv1.Notebook {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		nb, code := h.get(ns, name, token)
		if ok(nb, code) {
			return nb
		}
		if time.Now().After(deadline) {
			typ, reason := condition(nb)
			h.t.Fatalf("%s/%s: not %s within %s (last: %d %s/%s %+v)", ns, name, what, timeout, code, typ, reason, nb.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func running(nb notebooksv1.Notebook, code int) bool {
	typ, _ := condition(nb)
	return code == 200 && typ == notebooksv1.ConditionRunning && nb.Status.ReadyReplicas == 1
}

func terminated(reason string) func(notebooksv1.Notebook, int) bool {
	return func(nb notebooksv1.Notebook, code int) bool {
		typ, r := condition(nb)
		return code == 200 && typ == notebooksv1.ConditionTerminated && r == reason
	}
}

func (h *harness) create(ns, name, token string) {
	h.t.Helper()
	h.forget(ns, name)
	code, b := h.do("POST", "/apis/notebooks/v1/namespaces/"+ns+"/notebooks", token,
		notebooksv1.LocalNotebook{Name: name, Image: "jupyter/base-notebook", Env: map[string]string{"GREETING": "hi"}})
	if code != http.StatusCreated {
		h.t.Fatalf("create %s/%s: %d %s", ns, name, code, b)
	}
}

// kernel starts a kernel through the proxy and opens its channels WebSocket through the proxy.
func (h *harness) kernel(ns, name, token string) (string, *websocket.Conn) {
	h.t.Helper()
	code, b := h.do("POST", "/notebook/"+ns+"/"+name+"/api/kernels", token, map[string]string{"name": "python3"})
	if code != http.StatusCreated {
		h.t.Fatalf("start kernel: %d %s", code, b)
	}
	var k struct{ ID string }
	_ = json.Unmarshal(b, &k)
	ws := "ws" + strings.TrimPrefix(h.srv.URL, "http") + "/notebook/" + ns + "/" + name + "/api/kernels/" + k.ID + "/channels?session_id=" + uuid.NewString()
	conn, resp, err := websocket.DefaultDialer.DialContext(h.t.Context(), ws, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		h.t.Fatalf("kernel websocket through the proxy: %v (HTTP %d)", err, status)
	}
	h.t.Cleanup(func() { conn.Close() })
	return k.ID, conn
}

type jmsg struct {
	Header       map[string]any `json:"header"`
	ParentHeader map[string]any `json:"parent_header"`
	Metadata     map[string]any `json:"metadata"`
	Content      map[string]any `json:"content"`
	Channel      string         `json:"channel"`
	MsgType      string         `json:"msg_type,omitempty"`
}

// execute sends a Jupyter messaging protocol v5 execute_request on the shell channel and returns its msg_id.
func execute(t *testing.T, conn *websocket.Conn, code string) string {
	t.Helper()
	id := uuid.NewString()
	m := jmsg{
		Header: map[string]any{"msg_id": id, "username": "test", "session": uuid.NewString(), "msg_type": "execute_request",
			"version": "5.3", "date": time.Now().UTC().Format(time.RFC3339Nano)},
		ParentHeader: map[string]any{}, Metadata: map[string]any{},
		Content: map[string]any{"code": code, "silent": false, "store_history": true, "user_expressions": map[string]any{},
			"allow_stdin": false, "stop_on_error": true},
		Channel: "shell",
	}
	if err := conn.WriteJSON(m); err != nil {
		t.Fatal(err)
	}
	return id
}

// await reads messages until one of msgType answers parent.
func await(t *testing.T, conn *websocket.Conn, parent, msgType string, timeout time.Duration) jmsg {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		var m jmsg
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatalf("waiting for %s: %v", msgType, err)
		}
		if m.ParentHeader["msg_id"] == parent && m.Header["msg_type"] == msgType {
			return m
		}
	}
}

func TestProxyKernelAndAccess(t *testing.T) {
	needJupyter(t)
	h := start(t, t.TempDir(), map[string]string{})
	h.create("team-a", "nb1", tokenA)
	h.waitFor("team-a", "nb1", tokenA, 60*time.Second, "running", running)

	// api/status through the proxy.
	code, b := h.do("GET", "/notebook/team-a/nb1/api/status", tokenA, nil)
	if code != 200 || !strings.Contains(string(b), `"started"`) {
		t.Fatalf("api/status through the proxy: %d %s", code, b)
	}

	// Refusals never reach Jupyter: Jupyter logs every 404 it serves, so a probe path appears in its log
	// only for the one authorised request.
	probe := "/notebook/team-a/nb1/api/contents/probe-" + uuid.NewString()[:8]
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"wrong-token-wrong-token-000", 401}, {tokenB, 403}} {
		if code, b := h.do("GET", probe, tc.token, nil); code != tc.want {
			t.Errorf("token %q: %d %s, want %d", tc.token, code, b, tc.want)
		}
	}
	if code, _ := h.do("GET", "/apis/notebooks/v1/namespaces/team-a/notebooks/nb1", tokenB, nil); code != 403 {
		t.Errorf("REST get with another namespace's token: %d, want 403", code)
	}
	if code, _ := h.do("GET", probe, tokenA, nil); code != 404 {
		t.Errorf("authorised probe: %d, want Jupyter's 404", code)
	}
	logPath := filepath.Join(h.deps.DataDir, "notebooks", "servers", "team-a", "nb1", "server.log")
	deadline := time.Now().Add(5 * time.Second)
	for {
		logb, _ := os.ReadFile(logPath)
		// Tornado's access log line: "404 GET <path> (<ip>) <ms>ms referer=...".
		n := 0
		for _, line := range strings.Split(string(logb), "\n") {
			if strings.Contains(line, "404 GET "+probe+" ") && strings.Contains(line, "referer=") {
				n++
			}
		}
		if n == 1 {
			break
		}
		if n > 1 || time.Now().After(deadline) {
			t.Fatalf("Jupyter saw the probe path %d times, want exactly 1 (the authorised request)\n%s", n, logb)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A browser-style ?token= gets a cookie, and the cookie alone then works.
	resp, err := http.Get(h.srv.URL + "/notebook/team-a/nb1/api/status?token=" + tokenA)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "sluice-notebook-token" {
			cookie = c
		}
	}
	if resp.StatusCode != 200 || cookie == nil {
		t.Fatalf("?token=: %d, cookie %v", resp.StatusCode, cookie)
	}
	req, _ := http.NewRequest("GET", h.srv.URL+"/notebook/team-a/nb1/api/status", nil)
	req.AddCookie(cookie)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("cookie auth: %v %v", resp, err)
	}

	// Run a cell over the kernel WebSocket through the proxy.
	_, conn := h.kernel("team-a", "nb1", tokenA)
	id := execute(t, conn, "1+1")
	res := await(t, conn, id, "execute_result", 30*time.Second)
	data, _ := res.Content["data"].(map[string]any)
	if data["text/plain"] != "2" {
		t.Fatalf("execute_result = %v, want 2", res.Content)
	}
	id = execute(t, conn, "import os; print(os.environ['GREETING'], os.environ['NB_PREFIX'])")
	out := await(t, conn, id, "stream", 30*time.Second)
	if got := out.Content["text"]; got != "hi /notebook/team-a/nb1\n" {
		t.Errorf("env in the kernel: %q", got)
	}

	// Stop, start, delete.
	if code, b := h.do("POST", "/apis/notebooks/v1/namespaces/team-a/notebooks/nb1:stop", tokenA, nil); code != 202 {
		t.Fatalf("stop: %d %s", code, b)
	}
	nb := h.waitFor("team-a", "nb1", tokenA, 30*time.Second, "stopped", terminated(notebooksv1.ReasonStopped))
	if _, ok := nb.Metadata.Annotations[notebooksv1.AnnotationStopped]; !ok {
		t.Errorf("stopped notebook lacks %s: %v", notebooksv1.AnnotationStopped, nb.Metadata.Annotations)
	}
	if code, _ := h.do("GET", "/notebook/team-a/nb1/api/status", tokenA, nil); code != 503 {
		t.Errorf("proxy to a stopped notebook: %d, want 503", code)
	}
	if code, b := h.do("POST", "/apis/notebooks/v1/namespaces/team-a/notebooks/nb1:start", tokenA, nil); code != 202 {
		t.Fatalf("start: %d %s", code, b)
	}
	h.waitFor("team-a", "nb1", tokenA, 60*time.Second, "running again", running)
	if code, _ := h.do("GET", "/notebook/team-a/nb1/api/status", tokenA, nil); code != 200 {
		t.Errorf("proxy after start: %d", code)
	}
	code, b = h.do("GET", "/apis/notebooks/v1/namespaces/team-a/notebooks", tokenA, nil)
	var list notebooksv1.NotebookList
	_ = json.Unmarshal(b, &list)
	if code != 200 || len(list.Items) != 1 || list.Items[0].Metadata.Name != "nb1" {
		t.Errorf("list: %d %s", code, b)
	}
	if code, b := h.do("DELETE", "/apis/notebooks/v1/namespaces/team-a/notebooks/nb1", tokenA, nil); code != 202 {
		t.Fatalf("delete: %d %s", code, b)
	}
	h.waitFor("team-a", "nb1", tokenA, 30*time.Second, "deleted", func(_ notebooksv1.Notebook, code int) bool { return code == 404 })
	if code, _ := h.do("GET", "/notebook/team-a/nb1/api/status", tokenA, nil); code != 404 {
		t.Errorf("proxy to a deleted notebook: %d, want 404", code)
	}
	if os.Getenv("SLUICE_RECORD_HISTORIES") != "" {
		recordHistory(t, h, notebooksv1.WorkflowID("team-a", "nb1"), "../internal/lifecycle/testdata/histories/notebook-stop-start-delete.json")
	}
}

func TestCreateRejectsInvalidDocuments(t *testing.T) {
	h := start(t, t.TempDir(), map[string]string{})
	code, b := h.do("POST", "/apis/notebooks/v1/namespaces/team-a/notebooks", tokenA, map[string]any{
		"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "metadata": map[string]any{"name": "x"},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "x"}}}}},
	})
	if code != 400 || !strings.Contains(string(b), "spec.template.spec.containers[0].image: required") {
		t.Errorf("invalid create: %d %s", code, b)
	}
	code, b = h.do("POST", "/apis/notebooks/v1/namespaces/team-a/notebooks", tokenA, notebooksv1.LocalNotebook{Name: "x", Namespace: "team-b", Image: "i"})
	if code != 400 || !strings.Contains(string(b), "metadata.namespace") {
		t.Errorf("namespace mismatch: %d %s", code, b)
	}
	if code, _ := h.do("POST", "/apis/notebooks/v1/namespaces/team-b/notebooks", tokenA, notebooksv1.LocalNotebook{Name: "x", Image: "i"}); code != 403 {
		t.Errorf("create in another namespace: %d, want 403", code)
	}
	code, b = h.do("POST", "/apis/notebooks/v1/namespaces/team-a/notebooks", tokenA, map[string]any{"name": "x", "image": "i", "bogus_field": 1})
	if code != 400 || !strings.Contains(string(b), "bogus_field") {
		t.Errorf("unknown field: %d %s", code, b)
	}
	code, b = h.do("POST", "/apis/notebooks/v1/namespaces/team-a/notebooks", tokenA, map[string]any{"name": "x", "image": strings.Repeat("i", app.MaxBodyBytes)})
	if code != 413 || !strings.Contains(string(b), "1048576 bytes") {
		t.Errorf("large body: %d %.200s", code, b)
	}
	if code, _ := h.do("GET", "/apis/notebooks/v1/namespaces/team-a/notebooks/absent", tokenA, nil); code != 404 {
		t.Errorf("get absent: %d, want 404", code)
	}
	if code, _ := h.do("POST", "/apis/notebooks/v1/namespaces/team-a/notebooks/absent:stop", tokenA, nil); code != 404 {
		t.Errorf("stop absent: %d, want 404", code)
	}
}

func TestCullingFollowsKernelActivity(t *testing.T) {
	needJupyter(t)
	const period, idle = time.Second, 3 * time.Second
	h := start(t, t.TempDir(), map[string]string{
		"SLUICE_NOTEBOOKS_ENABLE_CULLING": "true", "SLUICE_NOTEBOOKS_CULL_IDLE_TIME": idle.String(),
		"SLUICE_NOTEBOOKS_IDLENESS_CHECK_PERIOD": period.String(),
	})
	culled := tailEvents(t, h, events.NotebookCulledV1)
	h.create("team-a", "busy", tokenA)
	h.waitFor("team-a", "busy", tokenA, 60*time.Second, "running", running)

	// A silent loop keeps the kernel busy for twice the idle time.
	_, conn := h.kernel("team-a", "busy", tokenA)
	busyFor := 2 * idle
	id := execute(t, conn, fmt.Sprintf("import time\nt0 = time.time()\nwhile time.time() - t0 < %g:\n    time.sleep(0.1)", busyFor.Seconds()))
	await(t, conn, id, "execute_reply", busyFor+30*time.Second)
	idleSince := time.Now()
	// It ran busy for longer than the idle time and was not culled.
	if nb, _ := h.get("team-a", "busy", tokenA); !running(nb, 200) {
		t.Fatalf("culled while busy: %+v", nb.Status)
	}
	nb := h.waitFor("team-a", "busy", tokenA, idle+10*period, "culled", terminated(notebooksv1.ReasonCulled))
	if took := time.Since(idleSince); took < idle-period {
		t.Errorf("culled %s after going idle, want about %s", took, idle)
	}
	if _, ok := nb.Metadata.Annotations[notebooksv1.AnnotationStopped]; !ok {
		t.Errorf("culled notebook lacks %s", notebooksv1.AnnotationStopped)
	}
	waitEvent(t, culled, named("team-a", "busy"))
	requirePhase(t, h, notebooksv1.WorkflowID("team-a", "busy"), notebooksv1.ReasonCulled)

	// Started again, it gets a fresh activity clock: still running after two check periods.
	if code, b := h.do("POST", "/apis/notebooks/v1/namespaces/team-a/notebooks/busy:start", tokenA, nil); code != 202 {
		t.Fatalf("start: %d %s", code, b)
	}
	nb = h.waitFor("team-a", "busy", tokenA, 60*time.Second, "running again", running)
	requirePhase(t, h, notebooksv1.WorkflowID("team-a", "busy"), notebooksv1.ConditionRunning)
	startedAt := nb.Status.ContainerState.Running.StartedAt
	h.waitFor("team-a", "busy", tokenA, 10*period, "probed twice", func(nb notebooksv1.Notebook, code int) bool {
		if !running(nb, code) {
			typ, reason := condition(nb)
			t.Fatalf("not running %s after a start: %s/%s", time.Since(startedAt), typ, reason)
		}
		check, _ := time.Parse(time.RFC3339Nano, nb.Metadata.Annotations[notebooksv1.AnnotationLastActivityCheck])
		return check.Sub(startedAt) >= 2*period
	})
	if code, b := h.do("DELETE", "/apis/notebooks/v1/namespaces/team-a/notebooks/busy", tokenA, nil); code != 202 {
		t.Fatalf("delete: %d %s", code, b)
	}
	h.waitFor("team-a", "busy", tokenA, 30*time.Second, "deleted", func(_ notebooksv1.Notebook, code int) bool { return code == 404 })
	if os.Getenv("SLUICE_RECORD_HISTORIES") != "" {
		recordHistory(t, h, notebooksv1.WorkflowID("team-a", "busy"), "../internal/lifecycle/testdata/histories/notebook-culling.json")
	}
}

func TestServiceRestartKeepsRecordConsistent(t *testing.T) {
	needJupyter(t)
	dir := t.TempDir()
	h := start(t, dir, map[string]string{})
	h.create("team-a", "survivor", tokenA)
	before := h.waitFor("team-a", "survivor", tokenA, 60*time.Second, "running", running)
	state, err := os.ReadFile(filepath.Join(dir, "notebooks", "servers", "team-a", "survivor", "server.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ep struct{ PID int }
	_ = json.Unmarshal(state, &ep)
	h.close()
	if err := syscall.Kill(ep.PID, 0); err == nil {
		t.Errorf("server pid %d still alive after the service closed", ep.PID)
	}

	h2 := start(t, dir, map[string]string{})
	after := h2.waitFor("team-a", "survivor", tokenA, 90*time.Second, "running after restart", func(nb notebooksv1.Notebook, code int) bool {
		return running(nb, code) && nb.Status.ContainerState.Running.StartedAt.After(before.Status.ContainerState.Running.StartedAt)
	})
	if !after.Metadata.CreationTimestamp.Equal(*before.Metadata.CreationTimestamp) {
		t.Errorf("creation time changed across restart: %v -> %v", before.Metadata.CreationTimestamp, after.Metadata.CreationTimestamp)
	}
	if code, b := h2.do("GET", "/notebook/team-a/survivor/api/status", tokenA, nil); code != 200 {
		t.Fatalf("proxy after restart: %d %s", code, b)
	}
	// The stored record (what lists show) follows the workflow's state.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, b := h2.do("GET", "/apis/notebooks/v1/namespaces/team-a/notebooks", tokenA, nil)
		var list notebooksv1.NotebookList
		_ = json.Unmarshal(b, &list)
		if code == 200 && len(list.Items) == 1 && list.Items[0].Status.ReadyReplicas == 1 &&
			list.Items[0].Status.ContainerState.Running.StartedAt.Equal(after.Status.ContainerState.Running.StartedAt) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("record after restart: %d %s", code, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, b := h2.do("DELETE", "/apis/notebooks/v1/namespaces/team-a/notebooks/survivor", tokenA, nil); code != 202 {
		t.Fatalf("delete: %d %s", code, b)
	}
	h2.waitFor("team-a", "survivor", tokenA, 30*time.Second, "deleted", func(_ notebooksv1.Notebook, code int) bool { return code == 404 })
	if os.Getenv("SLUICE_RECORD_HISTORIES") != "" {
		recordHistory(t, h2, notebooksv1.WorkflowID("team-a", "survivor"), "../internal/lifecycle/testdata/histories/notebook-service-restart.json")
	}
}

func TestRequestEvents(t *testing.T) {
	needJupyter(t)
	h := start(t, t.TempDir(), map[string]string{})
	rejected := tailEvents(t, h, events.NotebookRejectedV1)
	dead := make(chan events.Event, 4)
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go h.deps.Bus.Tail(ctx, events.DeadLetterV1, true, func(r events.Received) {
		select {
		case dead <- r.Event:
		default:
		}
	})

	bad, _ := events.New("/test", events.NotebookRequestedV1, "", map[string]any{"name": "Bad Name"})
	if err := h.deps.Bus.Publish(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	rj := waitEvent(t, rejected, rejectionOf(bad.ID()))
	var r notebooksv1.Rejection
	_ = rj.DataAs(&r)
	if r.RequestID != bad.ID() || r.Reason != "Invalid" || !strings.Contains(r.Message, "metadata.name") {
		t.Errorf("rejection = %+v", r)
	}
	dl := waitEvent(t, dead, func(ev events.Event) bool {
		var d events.DeadLetter
		_ = ev.DataAs(&d)
		return d.Event != nil && d.Event.ID() == bad.ID()
	})
	var d events.DeadLetter
	_ = dl.DataAs(&d)
	if !strings.Contains(d.Reason, "metadata.name") {
		t.Errorf("dead letter reason %q does not name the field", d.Reason)
	}

	doc := []byte("apiVersion: kubeflow.org/v1\nkind: Notebook\nmetadata:\n  name: from-event\n  namespace: team-b\nspec:\n  template:\n    spec:\n      containers:\n      - name: nb\n        image: kubeflownotebookswg/jupyter-scipy:v1.8.0\n")
	h.forget("team-b", "from-event")
	ev, _ := events.New("/test", events.NotebookRequestedV1, "", nil)
	_ = ev.SetData("application/yaml", doc)
	if err := h.deps.Bus.Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	h.waitFor("team-b", "from-event", tokenB, 60*time.Second, "running", running)
	// A second request for the same notebook is refused.
	again, _ := events.New("/test", events.NotebookRequestedV1, "", nil)
	_ = again.SetData("application/yaml", doc)
	if err := h.deps.Bus.Publish(t.Context(), again); err != nil {
		t.Fatal(err)
	}
	rj = waitEvent(t, rejected, rejectionOf(again.ID()))
	_ = rj.DataAs(&r)
	if r.RequestID != again.ID() || r.Reason != "AlreadyExists" {
		t.Errorf("second request: %+v", r)
	}
}

func TestCrashLoopStopsServer(t *testing.T) {
	h := start(t, t.TempDir(), map[string]string{
		"SLUICE_NOTEBOOKS_JUPYTER": "/bin/false", "SLUICE_NOTEBOOKS_CRASH_LIMIT": "3",
		"SLUICE_NOTEBOOKS_CRASH_BACKOFF": "50ms", "SLUICE_NOTEBOOKS_CRASH_WINDOW": "1m",
	})
	failed := tailEvents(t, h, events.NotebookFailedV1)
	h.create("team-a", "crashy", tokenA)
	nb := h.waitFor("team-a", "crashy", tokenA, 60*time.Second, "stopped by the crash policy", terminated(notebooksv1.ReasonCrashLoopBackOff))
	if nb.Status.Restarts != 3 || nb.Status.ContainerState.Terminated == nil || nb.Status.ContainerState.Terminated.ExitCode != 1 {
		t.Errorf("status = %+v", nb.Status)
	}
	requirePhase(t, h, notebooksv1.WorkflowID("team-a", "crashy"), notebooksv1.ReasonCrashLoopBackOff)
	ev := waitEvent(t, failed, named("team-a", "crashy"))
	var data notebooksv1.Event
	_ = ev.DataAs(&data)
	if data.Reason != notebooksv1.ReasonCrashLoopBackOff {
		t.Errorf("failed event = %+v", data)
	}
	if code, b := h.do("DELETE", "/apis/notebooks/v1/namespaces/team-a/notebooks/crashy", tokenA, nil); code != 202 {
		t.Fatalf("delete: %d %s", code, b)
	}
	h.waitFor("team-a", "crashy", tokenA, 30*time.Second, "deleted", func(_ notebooksv1.Notebook, code int) bool { return code == 404 })
	requirePhase(t, h, notebooksv1.WorkflowID("team-a", "crashy"), notebooksv1.ReasonDeleted)
	if os.Getenv("SLUICE_RECORD_HISTORIES") != "" {
		// notebook-crash-loop.json is the same scenario recorded before the SluicePhase upserts.
		recordHistory(t, h, notebooksv1.WorkflowID("team-a", "crashy"), "../internal/lifecycle/testdata/histories/notebook-crash-loop-phase.json")
	}
}

// tailEvents collects events of one type (replaying what the stream holds, so nothing is missed).
func tailEvents(t *testing.T, h *harness, typ string) chan events.Event {
	ch := make(chan events.Event, 64)
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go func() {
		_ = h.deps.Bus.Tail(ctx, typ, true, func(r events.Received) {
			select {
			case ch <- r.Event:
			default:
			}
		})
	}()
	return ch
}

// waitEvent returns the next event that matches.
func waitEvent(t *testing.T, ch chan events.Event, match func(events.Event) bool) events.Event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-ch:
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatal("no matching event")
		}
	}
}

func named(ns, name string) func(events.Event) bool {
	return func(ev events.Event) bool {
		var d notebooksv1.Event
		_ = ev.DataAs(&d)
		return d.Namespace == ns && d.Name == name
	}
}

func rejectionOf(id string) func(events.Event) bool {
	return func(ev events.Event) bool {
		var r notebooksv1.Rejection
		_ = ev.DataAs(&r)
		return r.RequestID == id
	}
}

// allowTraverse lets other users walk through dir and its parents (t.TempDir is 0700): as root the
// servers run as per-namespace users, which must reach their own directories under dir.
func allowTraverse(t testing.TB, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestRequestEventOwner: a notebook requested by an event carrying the authcontext the event gateway sets
// (events.SetAuthContext) is owned (SluiceOwner) by its publisher; one without authcontext by nobody.
func TestRequestEventOwner(t *testing.T) {
	h := start(t, t.TempDir(), map[string]string{})
	request := func(name string, id *auth.Identity) (string, bool) {
		t.Helper()
		h.forget("team-b", name)
		doc := "apiVersion: kubeflow.org/v1\nkind: Notebook\nmetadata:\n  name: " + name + "\n  namespace: team-b\nspec:\n  template:\n    spec:\n      containers:\n      - name: nb\n        image: kubeflownotebookswg/jupyter-scipy:v1.8.0\n"
		ev, err := events.New("/test", events.NotebookRequestedV1, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ev.SetData("application/yaml", []byte(doc)); err != nil {
			t.Fatal(err)
		}
		if id != nil {
			events.SetAuthContext(&ev, *id)
		}
		if err := h.deps.Bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			v, ok, err := workflow.KeywordOf(t.Context(), h.deps.Temporal, notebooksv1.WorkflowID("team-b", name), workflow.SAOwner)
			var nf *serviceerror.NotFound
			switch {
			case err == nil:
				return v, ok
			case !errors.As(err, &nf):
				t.Fatal(err)
			case time.Now().After(deadline):
				t.Fatalf("notebook %s never started", name)
			}
			time.Sleep(100 * time.Millisecond) // polling the condition, not waiting for it
		}
	}
	sfx := strconv.FormatInt(time.Now().UnixNano(), 36)
	if got, ok := request("owned-"+sfx, &auth.Identity{Subject: "carl"}); !ok || got != "carl" {
		t.Fatalf("owner = %q (%v), want carl", got, ok)
	}
	if got, ok := request("unowned-"+sfx, nil); ok {
		t.Fatalf("no authcontext, no owner; got %q", got)
	}
}

// TestRequestEventNamespace: a notebook is created in the namespace the event gateway authorised the
// publisher in (events.Namespace) and no other: a document naming none, published with the namespace
// extension team-b, would land in the default namespace and is rejected.
func TestRequestEventNamespace(t *testing.T) {
	h := start(t, t.TempDir(), map[string]string{})
	rejected := tailEvents(t, h, events.NotebookRejectedV1)
	ev, err := events.New("/test", events.NotebookRequestedV1, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = ev.SetData("application/yaml", []byte("apiVersion: kubeflow.org/v1\nkind: Notebook\nmetadata:\n  name: nowhere\nspec:\n  template:\n    spec:\n      containers:\n      - name: nb\n        image: kubeflownotebookswg/jupyter-scipy:v1.8.0\n"))
	ev.SetExtension("namespace", "team-b")
	h.forget("default", "nowhere")
	if err := h.deps.Bus.Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	var r notebooksv1.Rejection
	_ = waitEvent(t, rejected, rejectionOf(ev.ID())).DataAs(&r)
	if r.Reason != "Invalid" || !strings.Contains(r.Message, "metadata.namespace") || !strings.Contains(r.Message, `"team-b"`) {
		t.Fatalf("rejection = %+v", r)
	}
}
