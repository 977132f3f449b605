package platform_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/netport"
	"github.com/sluice-ml/sluice/libs/platform"
)

// verifySvc serves the real verify endpoint and a 299 stub for every other route of the table.
type verifySvc struct {
	stubRoutes
	a *auth.Authenticator
}

func (v verifySvc) Routes(mux *http.ServeMux) {
	for _, r := range v.rules {
		switch r.Pattern {
		case "GET /healthz", "GET /readyz", "GET /metrics":
			continue
		case "GET " + platform.VerifyPath:
			mux.Handle(r.Pattern, platform.Verify(v.a, platform.Rules))
			continue
		}
		mux.HandleFunc(r.Pattern, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	}
}

// TestCaddyGatewayEndToEnd runs the compose entry point's real configuration (deploy/caddy/Caddyfile)
// in a real Caddy in front of a service in gateway-only mode: bearer tokens work through the gateway
// (and namespaces are still authorised by the service), an identity header a client forges is dropped,
// a browser's ?token= works on notebook pages, /metrics is not served, and the same bearer token sent to
// the service directly is refused. SLUICE_CADDY names a caddy binary: `make test` builds
// bin/tools/caddy-<version> (`make caddy`) and sets it; under CI=true a missing binary fails the test.
func TestCaddyGatewayEndToEnd(t *testing.T) {
	caddy := os.Getenv("SLUICE_CADDY")
	if caddy == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SLUICE_CADDY (a caddy binary) is not set: `make test` builds it (make caddy)")
		}
		t.Skip("SLUICE_CADDY (a caddy binary) is not set (`make caddy` builds bin/tools/caddy-<version>)")
	}
	a, err := auth.NewAuthenticator(context.Background(), auth.Config{Key: testKey, Mode: auth.ModeGateway, Tokens: contributorTok + "=carl"})
	if err != nil {
		t.Fatal(err)
	}
	d := staticDecider{"team-a": {Name: "team-a", Owner: "olivia", Contributors: []string{"carl"}}}
	g := platform.NewGuard(a, d, platform.Rules, slog.New(slog.DiscardHandler))
	svc := httptest.NewServer(platform.NewHandler(platform.HandlerConfig{Registry: platform.NewRegistry(), Log: slog.New(slog.DiscardHandler), Guard: g, NoMetrics: true}, verifySvc{stubRoutes{platform.Rules}, a}))
	defer svc.Close()
	up := svc.Listener.Addr().String()
	port, err := netport.Free("127.0.0.1") // caddy binds it itself
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddy, "run", "--config", "../../deploy/caddy/Caddyfile", "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), fmt.Sprintf("SLUICE_ENTRYPOINT_PORT=%d", port), "XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	for _, k := range []string{"AUTH", "PIPELINES", "TRAINING", "SERVING", "NOTEBOOKS", "TUNING", "METADATA", "EVENTS", "DEFAULT"} {
		cmd.Env = append(cmd.Env, k+"_UPSTREAM="+up)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	gw := fmt.Sprintf("http://127.0.0.1:%d", port)
	do := func(base, path string, set func(*http.Request)) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if set != nil {
			set(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return -1, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, _ := do(gw, "/readyz", nil); c == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("caddy not up")
		}
		time.Sleep(100 * time.Millisecond)
	}
	bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+contributorTok) }
	jobs := "/apis/training/v1/namespaces/team-a/jobs"
	hdr, _ := a.Signer().Sign(auth.Identity{Subject: "system:admin", Admin: true}, time.Now())
	for _, c := range []struct {
		name, base, path string
		set              func(*http.Request)
		want             int
	}{
		{"gateway bearer", gw, jobs, bearer, 299},
		{"gateway other ns", gw, "/apis/training/v1/namespaces/team-b/jobs", bearer, 403},
		{"gateway no token", gw, jobs, nil, 401},
		{"gateway client identity header only", gw, jobs, func(r *http.Request) { r.Header.Set(auth.IdentityHeader, hdr) }, 401},
		{"gateway notebook ?token=", gw, "/notebook/team-a/nb/lab?token=" + contributorTok, nil, 299},
		{"gateway metrics", gw, "/metrics", bearer, 404},
		{"direct bearer", svc.URL, jobs, bearer, 401},
	} {
		code, body := do(c.base, c.path, c.set)
		t.Logf("%s: %d %s", c.name, code, body)
		if code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
	}
}
