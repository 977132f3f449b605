package platform_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/platform"
)

// staticDecider is a fixed set of profiles (the NATS KV store is exercised in the gateway tests).
type staticDecider map[string]auth.Profile

func (d staticDecider) Role(id auth.Identity, ns string) auth.Role {
	if id.Admin || id.Service {
		return auth.RoleOwner
	}
	if p, ok := d[ns]; ok {
		return p.RoleOf(id.Subject)
	}
	return auth.RoleNone
}

const (
	ownerTok       = "owner-token-0000000001"
	contributorTok = "contrib-token-00000002"
	viewerTok      = "viewer-token-000000003"
	otherTok       = "other-token-0000000004"
	adminTok       = "admin-token-0000000005"
	testKey        = "0123456789abcdef0123456789abcdef"
)

// stubRoutes registers every pattern of the table with a handler that answers 299, so the matrix sees
// exactly what the guard let through. A ScopeResource route's handler acts on a resource of team-a, as
// the services do: platform.Authorize, then 404 (the answer for a missing resource) or 403.
type stubRoutes struct{ rules []platform.Rule }

var errStubNotFound = errors.New("resource not found")

func stubResource(w http.ResponseWriter, r *http.Request) {
	switch err := platform.Authorize(r, "team-a", errStubNotFound); {
	case errors.Is(err, errStubNotFound):
		platform.WriteError(w, http.StatusNotFound, err)
	case errors.Is(err, platform.ErrForbidden):
		platform.WriteError(w, http.StatusForbidden, err)
	case err != nil:
		platform.WriteError(w, http.StatusInternalServerError, err)
	default:
		w.WriteHeader(299)
	}
}

func (s stubRoutes) Name() string { return "stub" }
func (s stubRoutes) Routes(mux *http.ServeMux) {
	for _, r := range s.rules {
		if r.Pattern == "GET /healthz" || r.Pattern == "GET /readyz" || r.Pattern == "GET /metrics" {
			continue // the platform handler registers these itself
		}
		if r.Scope == platform.ScopeResource {
			mux.HandleFunc(r.Pattern, stubResource)
			continue
		}
		mux.HandleFunc(r.Pattern, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	}
}
func (s stubRoutes) Start(context.Context) error { return nil }
func (s stubRoutes) Ready(context.Context) error { return nil }
func (s stubRoutes) Close() error                { return nil }

func newTestGuard(t testing.TB) (*platform.Guard, *auth.Signer) {
	a, err := auth.NewAuthenticator(context.Background(), auth.Config{Key: testKey,
		Tokens: strings.Join([]string{ownerTok + "=olivia", contributorTok + "=carl", viewerTok + "=vera", otherTok + "=mallory", adminTok + "=" + auth.AdminSubject}, ";")})
	if err != nil {
		t.Fatal(err)
	}
	d := staticDecider{
		"team-a":  {Name: "team-a", Owner: "olivia", Contributors: []string{"carl"}, Viewers: []string{"vera"}},
		"team-b":  {Name: "team-b", Owner: "mallory"},
		"default": {Name: "default", Owner: "olivia", Contributors: []string{"carl"}, Viewers: []string{"vera"}},
	}
	return platform.NewGuard(a, d, platform.Rules, slog.New(slog.DiscardHandler)), a.Signer()
}

// samplePath fills a pattern's wildcards: {ns} with ns, others with "x".
func samplePath(pattern, ns string) (method, path string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "GET", pattern
	}
	exact := strings.HasSuffix(path, "/{$}") // matches the path ending in "/" only
	path = strings.TrimSuffix(path, "{$}")
	segs := strings.Split(path, "/")
	for i, s := range segs {
		switch {
		case s == "{ns}":
			segs[i] = ns
		case strings.HasPrefix(s, "{"):
			segs[i] = "x"
		}
	}
	path = strings.Join(segs, "/")
	if strings.HasSuffix(path, "/") && path != "/" && !exact {
		path += "x"
	}
	return method, path
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestAuthorizationMatrix is generated from platform.Rules: every route × {no token, a contributor of
// another namespace, viewer, contributor, owner, service identity, admin}. A route added without an entry
// is refused for everyone (TestRouteWithoutRuleIsRefused), so it cannot ship unnoticed. ScopeResource
// routes (runs, experiments, pipelines, lineage) act on a team-a resource: a caller that may not read
// team-a gets the resource's 404, a reader without the route's role 403. The services' own matrices
// (pipelines TestNamespaceMatrix, metadata TestNamespaceMatrix) run the same callers against the real
// handlers.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	g, signer := newTestGuard(t)
	srv := httptest.NewServer(platform.NewHandler(platform.HandlerConfig{Registry: platform.NewRegistry(), Log: slog.New(slog.DiscardHandler), Guard: g}, stubRoutes{platform.Rules}))
	defer srv.Close()
	svcHeader, err := signer.Sign(auth.Identity{Subject: auth.ServiceSubject("pipelines"), Service: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	type caller struct {
		name string
		set  func(*http.Request)
		role auth.Role // role in team-a / default
		ok   bool      // a valid identity
		priv bool      // admin or service
	}
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	callers := []caller{
		{name: "no token", set: func(*http.Request) {}},
		{name: "forged identity header", set: func(r *http.Request) { r.Header.Set(auth.IdentityHeader, "eyJhbGciOiJub25lIn0.e30.") }},
		{name: "other namespace's owner", set: bearer(otherTok), ok: true},
		{name: "viewer", set: bearer(viewerTok), role: auth.RoleViewer, ok: true},
		{name: "contributor", set: bearer(contributorTok), role: auth.RoleContributor, ok: true},
		{name: "owner", set: bearer(ownerTok), role: auth.RoleOwner, ok: true},
		{name: "service identity", set: func(r *http.Request) { r.Header.Set(auth.IdentityHeader, svcHeader) }, role: auth.RoleOwner, ok: true, priv: true},
		{name: "admin", set: bearer(adminTok), role: auth.RoleOwner, ok: true, priv: true},
	}
	for _, rule := range platform.Rules {
		for _, c := range callers {
			t.Run(rule.Pattern+"/"+c.name, func(t *testing.T) {
				method, path := samplePath(rule.Pattern, "team-a")
				req, _ := http.NewRequest(method, srv.URL+path, nil)
				c.set(req)
				resp, err := noRedirect.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var want int
				switch {
				case rule.Scope == platform.ScopePublic && (rule.Pattern == "GET /healthz" || rule.Pattern == "GET /readyz"):
					want = http.StatusOK
				case rule.Scope == platform.ScopePublic:
					want = 299 // let through to a route that authenticates by itself (the gateway's verify)
				case !c.ok && rule.LoginPage != "" && method == http.MethodGet:
					want = http.StatusSeeOther // a browser page sends the browser to sign in
					if loc := resp.Header.Get("Location"); loc != rule.LoginPage+"?next="+url.QueryEscape(path) {
						t.Errorf("redirected to %q, want %s?next=%s", loc, rule.LoginPage, url.QueryEscape(path))
					}
				case !c.ok:
					want = http.StatusUnauthorized
				case rule.Scope == platform.ScopeAuthenticated:
					want = 299
				case rule.Scope == platform.ScopeAdmin:
					want = map[bool]int{true: 299, false: http.StatusForbidden}[c.priv]
				case rule.Scope == platform.ScopeResource && c.role == auth.RoleNone:
					want = http.StatusNotFound
				case rule.Scope == platform.ScopeResource && c.role < rule.Role:
					want = http.StatusForbidden
				case c.role >= rule.Role:
					want = 299
				default:
					want = http.StatusForbidden
				}
				if rule.Pattern == "GET /metrics" && want == 299 {
					want = http.StatusOK
				}
				if resp.StatusCode != want {
					t.Fatalf("%s %s as %s: %d %s, want %d", method, path, c.name, resp.StatusCode, body, want)
				}
				if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("no X-Content-Type-Options: nosniff")
				}
			})
		}
	}
}

// TestCrossNamespaceIsDeniedWithoutOracle: a caller not granted team-b gets the same 403 for a resource
// that exists and one that does not (the guard decides before the handler looks).
func TestCrossNamespaceIsDeniedWithoutOracle(t *testing.T) {
	t.Parallel()
	g, _ := newTestGuard(t)
	srv := httptest.NewServer(platform.NewHandler(platform.HandlerConfig{Registry: platform.NewRegistry(), Log: slog.New(slog.DiscardHandler), Guard: g}, stubRoutes{platform.Rules}))
	defer srv.Close()
	var bodies []string
	for _, name := range []string{"vjob", "nope"} {
		for _, m := range []string{"GET", "DELETE"} {
			req, _ := http.NewRequest(m, srv.URL+"/apis/training/v1/namespaces/team-b/jobs/"+name, nil)
			req.Header.Set("Authorization", "Bearer "+contributorTok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%s %s: %d %s, want 403", m, name, resp.StatusCode, b)
			}
			bodies = append(bodies, m+string(b))
		}
	}
	if bodies[0] != bodies[2] || bodies[1] != bodies[3] {
		t.Fatalf("answers differ by existence: %q", bodies)
	}
}

type extraRoute struct{}

func (extraRoute) Name() string { return "extra" }
func (extraRoute) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /apis/new/v1/things", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
}
func (extraRoute) Start(context.Context) error { return nil }
func (extraRoute) Ready(context.Context) error { return nil }
func (extraRoute) Close() error                { return nil }

func TestRouteWithoutRuleIsRefused(t *testing.T) {
	t.Parallel()
	g, _ := newTestGuard(t)
	srv := httptest.NewServer(platform.NewHandler(platform.HandlerConfig{Registry: platform.NewRegistry(), Log: slog.New(slog.DiscardHandler), Guard: g}, extraRoute{}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/apis/new/v1/things", nil)
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "no authorization rule") {
		t.Fatalf("%d %s, want 403 naming the missing rule", resp.StatusCode, b)
	}
}

func TestRulesAreUniqueAndComplete(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, r := range platform.Rules {
		if seen[r.Pattern] {
			t.Errorf("duplicate rule %q", r.Pattern)
		}
		seen[r.Pattern] = true
		if r.Verb == "" {
			t.Errorf("%q: no verb", r.Pattern)
		}
		if r.Scope == platform.ScopeResource && r.Role == auth.RoleNone {
			t.Errorf("%q: a resource rule needs a role", r.Pattern)
		}
		if (r.Scope == platform.ScopePath || r.Scope == platform.ScopeFixed) && (r.Role == auth.RoleNone || r.Namespace == "") {
			t.Errorf("%q: a namespaced rule needs a role and a namespace", r.Pattern)
		}
		if r.Scope == platform.ScopePath && !strings.Contains(r.Pattern, "{"+r.Namespace+"}") {
			t.Errorf("%q: no {%s} wildcard", r.Pattern, r.Namespace)
		}
	}
}

// FuzzGuard feeds arbitrary paths, methods and credentials through the guard: it must never panic, never
// let an unauthenticated request reach a non-public route, and never authorise a namespace the
// path-value extraction did not validate.
func FuzzGuard(f *testing.F) {
	g, signer := newTestGuard(f)
	h, _ := signer.Sign(auth.Identity{Subject: "carl"}, time.Now())
	for _, s := range []string{"/apis/training/v1/namespaces/team-a/jobs/x", "/notebook/team-a/..%2fteam-b%2fnbb/api/status",
		"/apis/training/v1/namespaces/%2e%2e/jobs", "/notebook/team-a/x/?token=" + contributorTok, "//apis/v1/runs", "/v2/models/m/infer"} {
		f.Add("GET", s, "Bearer "+contributorTok, "")
		f.Add("POST", s, "bearer  "+otherTok, h)
		f.Add("DELETE", s, "", "x.y.z")
	}
	mux := http.NewServeMux()
	stubRoutes{platform.Rules}.Routes(mux)
	f.Fuzz(func(t *testing.T, method, target, authz, idHeader string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(u.Path, "/") {
			return
		}
		r := &http.Request{Method: method, URL: u, Header: http.Header{}, Host: "x"}
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		if idHeader != "" {
			r.Header.Set(auth.IdentityHeader, idHeader)
		}
		r = r.WithContext(context.Background())
		_, pattern := mux.Handler(r)
		d := g.Decide(r, pattern)
		rule, known := g.Rule(pattern)
		if d.Code == 0 && known && rule.Scope != platform.ScopePublic && d.Identity.Subject == "" {
			t.Fatalf("unauthenticated request allowed: %s %s", method, target)
		}
		if d.Code == 0 && known && rule.Scope == platform.ScopePath {
			ns := platform.PathValues(pattern, u)[rule.Namespace]
			if auth.ValidNamespace(ns) != nil {
				t.Fatalf("allowed invalid namespace %q", ns)
			}
			if d.Identity.Subject == "mallory" && ns != "team-b" {
				t.Fatalf("mallory allowed in %q", ns)
			}
		}
		_ = fmt.Sprint(d)
	})
}
