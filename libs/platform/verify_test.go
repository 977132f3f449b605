package platform_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/platform"
)

// The gateway's forward-auth endpoint turns the credential of the request a proxy is about to forward
// into the signed identity header, and a service in gateway-only mode (SLUICE_AUTH_MODE=gateway) accepts
// that header and refuses a bearer token that reaches it directly, bypassing the gateway.
func TestVerifyEndpointAndGatewayOnlyServices(t *testing.T) {
	t.Parallel()
	gw, err := auth.NewAuthenticator(context.Background(), auth.Config{Key: testKey,
		Tokens: contributorTok + "=carl;" + otherTok + "=mallory"})
	if err != nil {
		t.Fatal(err)
	}
	verify := httptest.NewServer(platform.Verify(gw, platform.Rules))
	defer verify.Close()
	ask := func(method, uri string, set func(*http.Request)) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, verify.URL+platform.VerifyPath, nil)
		req.Header.Set("X-Forwarded-Method", method)
		req.Header.Set("X-Forwarded-Uri", uri)
		if set != nil {
			set(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get(auth.IdentityHeader), string(b)
	}
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	jobs := "/apis/training/v1/namespaces/team-a/jobs"

	code, hdr, body := ask("GET", jobs, bearer(contributorTok))
	if code != 200 || hdr == "" {
		t.Fatalf("valid token: %d %q %s", code, hdr, body)
	}
	if id, err := gw.Signer().Verify(hdr); err != nil || id.Subject != "carl" {
		t.Fatalf("signed identity: %+v %v", id, err)
	}
	for name, set := range map[string]func(*http.Request){
		"no token":               nil,
		"unknown token":          bearer("unknown-token-000000009"),
		"forged identity header": func(r *http.Request) { r.Header.Set(auth.IdentityHeader, hdr) }, // only tokens count at the gateway
		"token in the query of an API route": func(r *http.Request) {
			r.Header.Set("X-Forwarded-Uri", jobs+"?token="+contributorTok)
		},
	} {
		if code, h, body := ask("GET", jobs, set); code != 401 || h != "" {
			t.Errorf("%s: %d %q %s, want 401 without identity", name, code, h, body)
		}
	}
	// A browser opening a notebook carries its token in the query (or the cookie); the route decides.
	if code, h, body := ask("GET", "/notebook/team-a/nb/lab?token="+contributorTok, nil); code != 200 || h == "" {
		t.Errorf("notebook page with ?token=: %d %s", code, body)
	}
	if code, h, body := ask("GET", "/notebook/team-a/nb/lab", func(r *http.Request) {
		r.AddCookie(&http.Cookie{Name: auth.CookieName, Value: contributorTok})
	}); code != 200 || h == "" {
		t.Errorf("notebook page with the cookie: %d %s", code, body)
	}
	// Public routes pass without a credential and without an identity.
	if code, h, _ := ask("GET", "/readyz", nil); code != 200 || h != "" {
		t.Errorf("/readyz: %d %q", code, h)
	}

	// A service behind the gateway: same key, gateway-only mode; it still authorises by namespace.
	svcAuth, err := auth.NewAuthenticator(context.Background(), auth.Config{Key: testKey, Mode: auth.ModeGateway,
		Tokens: contributorTok + "=carl"})
	if err != nil {
		t.Fatal(err)
	}
	d := staticDecider{"team-a": {Name: "team-a", Owner: "olivia", Contributors: []string{"carl"}}}
	g := platform.NewGuard(svcAuth, d, platform.Rules, slog.New(slog.DiscardHandler))
	svc := httptest.NewServer(platform.NewHandler(platform.HandlerConfig{Registry: platform.NewRegistry(), Log: slog.New(slog.DiscardHandler), Guard: g}, stubRoutes{platform.Rules}))
	defer svc.Close()
	call := func(path string, set func(*http.Request)) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, svc.URL+path, nil)
		set(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call(jobs, bearer(contributorTok)); code != 401 || !strings.Contains(body, "gateway") {
		t.Errorf("direct bearer request to a gateway-only service: %d %s, want 401 naming the gateway", code, body)
	}
	if code, body := call("/notebook/team-a/nb/lab?token="+contributorTok, func(*http.Request) {}); code != 401 {
		t.Errorf("direct ?token= request to a gateway-only service: %d %s", code, body)
	}
	withIdentity := func(r *http.Request) { r.Header.Set(auth.IdentityHeader, hdr) }
	if code, body := call(jobs, withIdentity); code != 299 {
		t.Errorf("request with the gateway's identity: %d %s", code, body)
	}
	_, otherHdr, _ := ask("GET", jobs, bearer(otherTok))
	if code, body := call(jobs, func(r *http.Request) { r.Header.Set(auth.IdentityHeader, otherHdr) }); code != 403 {
		t.Errorf("another namespace's member through the gateway: %d %s, want 403", code, body)
	}
	if code, _ := call("/readyz", func(*http.Request) {}); code != 200 {
		t.Errorf("/readyz of a gateway-only service: %d", code)
	}
	if _, err := auth.NewAuthenticator(context.Background(), auth.Config{Mode: "gatewy"}); err == nil || !strings.Contains(err.Error(), "SLUICE_AUTH_MODE") {
		t.Errorf("bad SLUICE_AUTH_MODE: %v", err)
	}
}
