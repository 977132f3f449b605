package command

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/platform"
	notebooksapp "github.com/sluice-ml/sluice/services/notebooks/app"
)

// enableDevAuth puts the gateway in front of every API of `sluice dev`: tokens from SLUICE_AUTH_TOKENS and
// SLUICE_NOTEBOOKS_TOKENS, OIDC when SLUICE_OIDC_ISSUER is set, and an admin token kept in
// <data-dir>/auth/admin-token (mode 0600) that the CLI finds by itself. The notebooks service's own
// generated token is the same token.
func enableDevAuth(ctx context.Context, deps *platform.Deps, dataDir string) (string, error) {
	cfg := auth.ConfigFromEnv(os.Getenv)
	cfg.Mode = auth.ModeDirect // sluice dev's one port is the gateway itself: it takes tokens
	if err := deps.EnableAuth(ctx, cfg); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	tok, err := auth.FileToken(auth.AdminTokenPath(dataDir))
	if err != nil {
		return "", fmt.Errorf("auth: admin token: %w", err)
	}
	deps.Guard().Authenticator().AddToken(tok, auth.Identity{Subject: auth.AdminSubject, Admin: true})
	nbPath := notebooksapp.DevTokenPath(dataDir)
	// 0711: the namespace users that run notebook servers under root must traverse this directory to
	// reach their own servers/ dir; the token file itself stays 0600.
	if err := os.MkdirAll(filepath.Dir(nbPath), 0o711); err == nil {
		_ = os.Chmod(filepath.Dir(nbPath), 0o711)
		_ = os.WriteFile(nbPath, []byte(tok+"\n"), 0o600)
	}
	return tok, nil
}

func printDevAuth(o *Options, dataDir, token, runtimeKind, cannotIsolate string) {
	fmt.Fprintf(o.Out, "  Admin token          %s  (the CLI reads it from there; `sluice login` stores another)\n", auth.AdminTokenPath(dataDir))
	if runtimeKind == "local" || runtimeKind == "" {
		if cannotIsolate == "" {
			fmt.Fprintln(o.Out, "  Isolation            local runtime as root: each namespace's notebook servers, pipeline steps and training\n"+
				"                       replicas run as its own Unix user (sluice-<namespace>) with 0700 work dirs")
		} else {
			fmt.Fprintf(o.Out, "  Isolation            NONE between namespaces: %s.\n"+
				"                       Any notebook or step can read the others' files and tokens. Run as root with a data dir\n"+
				"                       others may traverse (per-namespace users), or use --runtime docker for isolation.\n", cannotIsolate)
		}
	}
}

// serviceHandler is the API handler, set once built.
type serviceHandler struct{ p atomic.Pointer[http.Handler] }

func (s *serviceHandler) set(h http.Handler) { s.p.Store(&h) }

// startServiceShims gives services that call another service's API through the gateway, but do not yet
// sign their requests with platform.Deps.ServiceClient, a private base URL: a loopback listener whose
// paths start with a random secret, where requests are given the calling service's signed identity and
// served by the API handler. Today: pipelines creating and watching training jobs
// (SLUICE_PIPELINES_TRAINING_URL). Once pipelines uses ServiceClient this shim can go.
func startServiceShims(ctx context.Context, deps *platform.Deps, api *serviceHandler, log *slog.Logger) (map[string]string, error) {
	secret, err := auth.NewToken()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("service shim: %w", err)
	}
	prefix := "/_service/" + secret
	signer := deps.Guard().Authenticator().Signer()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		ok := len(path) > len(prefix) && subtle.ConstantTimeCompare([]byte(path[:len(prefix)]), []byte(prefix)) == 1 && path[len(prefix)] == '/'
		hp := api.p.Load()
		if !ok {
			platform.WriteError(w, http.StatusNotFound, errors.New("not found"))
			return
		}
		if hp == nil {
			w.Header().Set("Retry-After", "1")
			platform.WriteError(w, http.StatusServiceUnavailable, errors.New("starting"))
			return
		}
		hdr, err := signer.Sign(auth.Identity{Subject: auth.ServiceSubject("pipelines"), Service: true}, time.Now())
		if err != nil {
			platform.WriteError(w, http.StatusInternalServerError, err)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = path[len(prefix):], ""
		r2.RequestURI = ""
		r2.Header.Del("Authorization")
		r2.Header.Set(auth.IdentityHeader, hdr)
		(*hp).ServeHTTP(w, r2)
	})
	go func() { _ = platform.ServeListener(ctx, ln, h, log) }()
	return map[string]string{"SLUICE_PIPELINES_TRAINING_URL": "http://" + ln.Addr().String() + prefix}, nil
}
