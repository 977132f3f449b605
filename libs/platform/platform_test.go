package platform_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/platform"
)

func TestConfigFromEnvDefaultsAndValidation(t *testing.T) {
	t.Parallel()
	env := map[string]string{"S3_ACCESS_KEY": "k", "S3_SECRET_KEY": "s", "SLUICE_DATA_DIR": "rel/dir"}
	cfg := platform.ConfigFromEnv(func(k string) string { return env[k] })
	require.Equal(t, "nats://127.0.0.1:4222", cfg.NATSURL)
	require.Equal(t, "sluice", cfg.Temporal.Namespace)
	require.NoError(t, cfg.Validate())
	require.True(t, strings.HasPrefix(cfg.DataDir, "/"), "data dir made absolute")

	bad := platform.ConfigFromEnv(func(k string) string {
		return map[string]string{"NATS_URL": "http://x", "SLUICE_RUNTIME": "podman", "SLUICE_LOG_LEVEL": "loud", "SLUICE_HTTP_ADDR": "8080"}[k]
	})
	err := bad.Validate()
	require.Error(t, err)
	for _, field := range []string{"NATS_URL", "SLUICE_RUNTIME", "SLUICE_LOG_LEVEL", "SLUICE_HTTP_ADDR", "AccessKey"} {
		require.Contains(t, err.Error(), field)
	}
}

type fakeService struct{ ready error }

func (f fakeService) Name() string { return "fake" }
func (f fakeService) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /apis/fake/v1/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") })
}
func (f fakeService) Start(context.Context) error { return nil }
func (f fakeService) Ready(context.Context) error { return f.ready }
func (f fakeService) Close() error                { return nil }

func TestHandlerServesHealthReadinessMetricsAndRoutes(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	checks := map[string]func(context.Context) error{"nats": func(context.Context) error { return nil }}
	srv := httptest.NewServer(platform.Handler(platform.NewRegistry(), log, checks, fakeService{}))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/apis/fake/v1/hello")
	require.Equal(t, 200, code)
	require.Equal(t, "hi", body)
	code, _ = get("/healthz")
	require.Equal(t, 200, code)
	code, _ = get("/readyz")
	require.Equal(t, 200, code)
	code, body = get("/metrics")
	require.Equal(t, 200, code)
	require.Contains(t, body, `sluice_http_requests_total{code="200",route="GET /apis/fake/v1/hello"} 1`)

	notReady := httptest.NewServer(platform.Handler(platform.NewRegistry(), log, checks, fakeService{ready: errors.New("model not loaded")}))
	defer notReady.Close()
	resp, err := http.Get(notReady.URL + "/readyz")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Contains(t, string(b), "model not loaded")
}

// Steps and replicas inherit the service's environment without its secrets: the token table, the
// identity header's key, the NATS credentials (in NATS_URL) and the artifact store's credentials.
func TestChildEnvironDropsSluiceSecrets(t *testing.T) {
	secrets := map[string]string{
		"SLUICE_AUTH_TOKENS": "tok-0123456789abcdef=system:admin", "SLUICE_AUTH_KEY": "k-0123456789abcdef0123456789abcdef",
		"SLUICE_NOTEBOOKS_TOKENS": "nbtok-0123456789ab=*", "NATS_URL": "nats://sluice-service:pw@127.0.0.1:4222",
		"S3_SECRET_KEY": "s3-secret", "METADATA_DATABASE_URL": "postgres://u:pw@db/metadata",
		"SLUICE_PIPELINES_TRAINING_URL": "http://127.0.0.1:1/_service/secret",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	t.Setenv("STEP_VISIBLE", "yes")
	got := map[string]string{}
	for _, kv := range platform.ChildEnviron() {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	for k := range secrets {
		if _, ok := got[k]; ok {
			t.Errorf("%s is inherited by steps and replicas", k)
		}
	}
	if got["STEP_VISIBLE"] != "yes" || got["PATH"] == "" {
		t.Errorf("ordinary variables are not inherited: %v", got)
	}
}

// As root, turning isolation on makes the data dir traversable but closes what is not a service's work
// area (the embedded servers' stores) to other users.
func TestEnableLocalIsolationClosesTheDataDir(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs tests as root: the isolation test must run")
		}
		t.Skip("not root")
	}
	defer platform.DisableLocalIsolation()
	dir := t.TempDir()
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range []string{"s3", "pipelines"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if reason := platform.EnableLocalIsolation(dir, "local", slog.New(slog.DiscardHandler)); reason != "" {
		t.Fatal(reason)
	}
	for sub, want := range map[string]os.FileMode{".": 0o711, "s3": 0o750, "pipelines": 0o755} {
		fi, err := os.Stat(filepath.Join(dir, sub))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want mode %04o", sub, fi.Mode().Perm(), err, want)
		}
	}
	if reason := platform.EnableLocalIsolation(filepath.Join(dir, "s3", "x"), "local", slog.New(slog.DiscardHandler)); reason == "" {
		t.Error("isolation enabled below a dir others cannot traverse")
	}
}
