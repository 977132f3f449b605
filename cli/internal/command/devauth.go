package command

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/platform"
	notebooksapp "github.com/sluice-ml/sluice/services/notebooks/app"
)

// enableDevAuth puts the gateway in front of every API of `sluice dev`: tokens from SLUICE_AUTH_TOKENS and
// SLUICE_NOTEBOOKS_TOKENS, OIDC when SLUICE_OIDC_ISSUER is set, and an admin token kept in
// <data-dir>/auth/admin-token (mode 0600) that the CLI finds by itself. The notebooks service's own
// generated token is the same token.
func enableDevAuth(ctx context.Context, deps *platform.Deps, dataDir string) (string, error) {
	if err := deps.EnableAuth(ctx, auth.ConfigFromEnv(os.Getenv)); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	tok, err := auth.FileToken(auth.AdminTokenPath(dataDir))
	if err != nil {
		return "", fmt.Errorf("auth: admin token: %w", err)
	}
	deps.Guard().Authenticator().AddToken(tok, auth.Identity{Subject: auth.AdminSubject, Admin: true})
	nbPath := notebooksapp.DevTokenPath(dataDir)
	if err := os.MkdirAll(filepath.Dir(nbPath), 0o700); err == nil {
		_ = os.WriteFile(nbPath, []byte(tok+"\n"), 0o600)
	}
	return tok, nil
}

func printDevAuth(o *Options, dataDir, token, runtimeKind string) {
	fmt.Fprintf(o.Out, "  Admin token          %s  (the CLI reads it from there; `sluice login` stores another)\n", auth.AdminTokenPath(dataDir))
	if runtimeKind == "local" || runtimeKind == "" {
		if os.Geteuid() == 0 {
			fmt.Fprintln(o.Out, "  Isolation            local runtime as root: each namespace's notebook servers run as their own Unix user with\n"+
				"                       0700 dirs; pipeline steps and training replicas still run as root (use --runtime docker)")
		} else {
			fmt.Fprintln(o.Out, "  Isolation            NONE between namespaces: the local runtime runs all user code as this Unix user, so any\n"+
				"                       notebook or step can read the others' files and tokens. Run as root (per-namespace users) or\n"+
				"                       use --runtime docker for isolation.")
		}
	}
}
