package command

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/platform"
	trainingapp "github.com/sluice-ml/sluice/services/training/app"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Run(m)) }

// routePatterns finds every mux.Handle/HandleFunc pattern registered by the API code of the services
// and the shared libs (constants and concatenations of constants are evaluated from the source).
func routePatterns(t *testing.T) map[string]string {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	type pkg struct {
		files  []*ast.File
		consts map[string]ast.Expr
	}
	pkgs := map[string]*pkg{} // by repo-relative dir
	fset := token.NewFileSet()
	var dirs []string
	for _, top := range []string{"services", "libs/events", "libs/platform"} {
		_ = filepath.WalkDir(filepath.Join(root, top), func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || d.Name() == "cmd") {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
				rel, _ := filepath.Rel(root, filepath.Dir(p))
				f, err := parser.ParseFile(fset, p, nil, 0)
				if err != nil {
					t.Fatal(err)
				}
				if pkgs[rel] == nil {
					pkgs[rel] = &pkg{consts: map[string]ast.Expr{}}
					dirs = append(dirs, rel)
				}
				pkgs[rel].files = append(pkgs[rel].files, f)
				for _, decl := range f.Decls {
					if gd, ok := decl.(*ast.GenDecl); ok && gd.Tok == token.CONST {
						for _, spec := range gd.Specs {
							vs := spec.(*ast.ValueSpec)
							for i, n := range vs.Names {
								if i < len(vs.Values) {
									pkgs[rel].consts[n.Name] = vs.Values[i]
								}
							}
						}
					}
				}
			}
			return nil
		})
	}
	const module = "github.com/sluice-ml/sluice/"
	out := map[string]string{}
	for _, dir := range dirs {
		p := pkgs[dir]
		for _, f := range p.files {
			imports := map[string]string{} // local name → repo dir
			for _, is := range f.Imports {
				path, _ := strconv.Unquote(is.Path.Value)
				rel, ok := strings.CutPrefix(path, module)
				if !ok {
					continue
				}
				rel = strings.TrimPrefix(rel, "libs/../") // module roots: libs, services/<name>, cli
				name := filepath.Base(rel)
				if is.Name != nil {
					name = is.Name.Name
				}
				imports[name] = rel
			}
			var eval func(e ast.Expr, locals map[string]ast.Expr, in *pkg) (string, bool)
			eval = func(e ast.Expr, locals map[string]ast.Expr, in *pkg) (string, bool) {
				switch x := e.(type) {
				case *ast.BasicLit:
					s, err := strconv.Unquote(x.Value)
					return s, err == nil
				case *ast.BinaryExpr:
					a, ok1 := eval(x.X, locals, in)
					b, ok2 := eval(x.Y, locals, in)
					return a + b, ok1 && ok2 && x.Op == token.ADD
				case *ast.ParenExpr:
					return eval(x.X, locals, in)
				case *ast.Ident:
					if v, ok := locals[x.Name]; ok {
						return eval(v, nil, in)
					}
					if v, ok := in.consts[x.Name]; ok {
						return eval(v, nil, in)
					}
				case *ast.SelectorExpr:
					if id, ok := x.X.(*ast.Ident); ok {
						if other := pkgs[imports[id.Name]]; other != nil {
							if v, ok := other.consts[x.Sel.Name]; ok {
								return eval(v, nil, other)
							}
						}
					}
				}
				return "", false
			}
			for _, decl := range f.Decls {
				fd, ok := decl.(*ast.FuncDecl)
				if !ok || fd.Body == nil {
					continue
				}
				locals := map[string]ast.Expr{}
				ast.Inspect(fd.Body, func(n ast.Node) bool {
					if as, ok := n.(*ast.AssignStmt); ok && as.Tok == token.DEFINE && len(as.Lhs) == 1 && len(as.Rhs) == 1 {
						if id, ok := as.Lhs[0].(*ast.Ident); ok {
							locals[id.Name] = as.Rhs[0]
						}
					}
					call, ok := n.(*ast.CallExpr)
					if !ok || len(call.Args) < 2 {
						return true
					}
					sel, ok := call.Fun.(*ast.SelectorExpr)
					if !ok || (sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle") {
						return true
					}
					if recv, ok := sel.X.(*ast.Ident); !ok || recv.Name != "mux" {
						return true
					}
					pos := fset.Position(call.Pos())
					pat, ok := eval(call.Args[0], locals, p)
					if !ok {
						t.Errorf("%s: cannot evaluate the route pattern; make it a constant expression", pos)
						return true
					}
					out[pat] = fmt.Sprintf("%s:%d", filepath.Base(pos.Filename), pos.Line)
					return true
				})
			}
		}
	}
	return out
}

// TestEveryRouteHasAnAuthorizationRule: each pattern a service registers has an entry in
// platform.Rules, and each entry is a route some service registers. Together with the guard refusing
// unlisted routes, a new route cannot be served without deciding who may call it.
func TestEveryRouteHasAnAuthorizationRule(t *testing.T) {
	t.Parallel()
	registered := routePatterns(t)
	if len(registered) < 40 {
		t.Fatalf("found only %d routes: the source scan is broken", len(registered))
	}
	rules := map[string]bool{}
	for _, r := range platform.Rules {
		rules[r.Pattern] = true
	}
	for pat, where := range registered {
		if !rules[pat] {
			t.Errorf("route %q (%s) has no entry in platform.Rules", pat, where)
		}
	}
	for pat := range rules {
		if _, ok := registered[pat]; !ok {
			t.Errorf("platform.Rules has %q, which no service registers", pat)
		}
	}
}

// gatewayEnv is `sluice dev`'s gateway over the real training service on the shared test stack.
type gatewayEnv struct {
	url, admin, shim string
	deps             *platform.Deps
}

func startGateway(t *testing.T) *gatewayEnv {
	t.Helper()
	st := devstacktest.Stack(t)
	ctx := t.Context()
	dataDir := t.TempDir()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	deps, err := platform.Connect(ctx, st.PlatformConfig(dataDir, "127.0.0.1:0", "local", "warn"), "gwtest", log, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(deps.Close)
	admin, err := enableDevAuth(ctx, deps, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := trainingapp.Build(ctx, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h := platform.NewHandler(platform.HandlerConfig{Registry: deps.Metrics, Log: log, Checks: deps.Checks(), Guard: deps.Guard()},
		svc, busService{deps.Bus}, platform.AuthService(deps))
	var api serviceHandler
	api.set(h)
	shims, err := startServiceShims(ctx, deps, &api, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &gatewayEnv{url: srv.URL, admin: admin, deps: deps, shim: shims["SLUICE_PIPELINES_TRAINING_URL"]}
}

func (g *gatewayEnv) call(t *testing.T, method, path, token string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, g.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// security/cross-namespace-jobs: without a credential 401; with a credential not granted victim-ns 403
// for list, suspend and delete, and the job is untouched. Namespaces are profiles: the owner adds a
// viewer, who may read but not write.
func TestCrossNamespaceJobs(t *testing.T) {
	g := startGateway(t)
	const alice, bob = "alice-token-000000000001", "bob-token-00000000000002"
	g.deps.Guard().Authenticator().AddToken(alice, auth.Identity{Subject: "alice"})
	g.deps.Guard().Authenticator().AddToken(bob, auth.Identity{Subject: "bob"})

	if code, body := g.call(t, "POST", "/apis/auth/v1/namespaces", g.admin, map[string]string{"name": "victim-ns", "owner": "victor"}); code != 201 {
		t.Fatalf("create victim-ns: %d %s", code, body)
	}
	if code, body := g.call(t, "POST", "/apis/auth/v1/namespaces", alice, map[string]string{"name": "team-a"}); code != 201 {
		t.Fatalf("alice creates team-a: %d %s", code, body)
	}
	job := map[string]any{"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "metadata": map[string]string{"name": "vjob", "namespace": "victim-ns"},
		"spec": map[string]any{"runPolicy": map[string]any{"suspend": true}, "tfReplicaSpecs": map[string]any{"Worker": map[string]any{"replicas": 1,
			"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "tensorflow", "image": "x", "command": []string{"true"}}}}}}}}}
	if code, body := g.call(t, "POST", "/apis/training/v1/namespaces/victim-ns/jobs", g.admin, job); code/100 != 2 {
		t.Fatalf("admin creates vjob: %d %s", code, body)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/apis/training/v1/namespaces/victim-ns/jobs"},
		{"GET", "/apis/training/v1/namespaces/victim-ns/jobs/vjob"},
		{"POST", "/apis/training/v1/namespaces/victim-ns/jobs/vjob/suspend"},
		{"DELETE", "/apis/training/v1/namespaces/victim-ns/jobs/vjob"},
		{"DELETE", "/apis/training/v1/namespaces/victim-ns/jobs/no-such-job"},
	} {
		if code, body := g.call(t, c.method, c.path, "", nil); code != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d %s, want 401", c.method, c.path, code, body)
		}
		if code, body := g.call(t, c.method, c.path, alice, nil); code != http.StatusForbidden || strings.Contains(body, "not found") {
			t.Errorf("%s %s as alice: %d %s, want 403", c.method, c.path, code, body)
		}
	}
	if code, body := g.call(t, "GET", "/apis/training/v1/namespaces/victim-ns/jobs/vjob", g.admin, nil); code != 200 {
		t.Fatalf("vjob after the attempts: %d %s", code, body)
	}
	// A service's own calls carry its signed identity.
	resp, err := g.deps.ServiceClient("pipelines").Get(g.url + "/apis/training/v1/namespaces/victim-ns/jobs/vjob")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("service identity: %d", resp.StatusCode)
	}

	// So do pipelines' calls through sluice dev's private service URL; a wrong secret is a 404.
	for u, want := range map[string]int{g.shim + "/apis/training/v1/namespaces/victim-ns/jobs/vjob": 200,
		g.shim[:len(g.shim)-4] + "0000/apis/training/v1/namespaces/victim-ns/jobs/vjob": 404} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("service shim %s: %d, want %d", u, resp.StatusCode, want)
		}
	}

	// Profiles: bob gets viewer in team-a from its owner.
	if code, body := g.call(t, "POST", "/apis/auth/v1/namespaces/team-a/members", bob, map[string]string{"user": "bob", "role": "owner"}); code != http.StatusForbidden {
		t.Fatalf("bob makes himself owner: %d %s", code, body)
	}
	if code, body := g.call(t, "POST", "/apis/auth/v1/namespaces/team-a/members", alice, map[string]string{"user": "bob", "role": "viewer"}); code != 200 {
		t.Fatalf("alice adds bob: %d %s", code, body)
	}
	if code, body := g.call(t, "GET", "/apis/training/v1/namespaces/team-a/jobs", bob, nil); code != 200 {
		t.Fatalf("viewer lists: %d %s", code, body)
	}
	job["metadata"] = map[string]string{"name": "bjob", "namespace": "team-a"}
	if code, body := g.call(t, "POST", "/apis/training/v1/namespaces/team-a/jobs", bob, job); code != http.StatusForbidden {
		t.Fatalf("viewer creates: %d %s", code, body)
	}
	code, body := g.call(t, "GET", "/apis/auth/v1/namespaces", bob, nil)
	if code != 200 || !strings.Contains(body, `"team-a"`) || strings.Contains(body, "victim-ns") {
		t.Fatalf("bob's namespaces: %d %s", code, body)
	}
	// /metrics needs an admin on the API port.
	if code, _ := g.call(t, "GET", "/metrics", bob, nil); code != http.StatusForbidden {
		t.Fatalf("/metrics as bob: %d", code)
	}
	if code, body := g.call(t, "DELETE", "/apis/training/v1/namespaces/victim-ns/jobs/vjob", g.admin, nil); code/100 != 2 {
		t.Fatalf("admin deletes vjob: %d %s", code, body)
	}
}
