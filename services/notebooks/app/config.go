package app

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/internal/access"
	"github.com/sluice-ml/sluice/services/notebooks/internal/culling"
)

// Config is the notebooks service's own configuration, read from SLUICE_NOTEBOOKS_* variables:
//
//	SLUICE_NOTEBOOKS_TOKENS                 API tokens and their namespaces: "tokenA=ns1,ns2;tokenB=*" (tokens ≥16 chars of
//	                                        [A-Za-z0-9._~-]). Empty: one token for every namespace is generated, stored in
//	                                        <data-dir>/notebooks/dev-token and logged (for `sluice dev`).
//	SLUICE_NOTEBOOKS_ENABLE_CULLING         cull idle servers, per Kubeflow's ENABLE_CULLING (default false)
//	SLUICE_NOTEBOOKS_CULL_IDLE_TIME         idle time before a cull: minutes (Kubeflow's unit) or a Go duration (default 1440)
//	SLUICE_NOTEBOOKS_IDLENESS_CHECK_PERIOD  how often kernels are probed: minutes or a Go duration (default 1)
//	SLUICE_NOTEBOOKS_JUPYTER                the jupyter executable (default /usr/bin/jupyter)
//	SLUICE_NOTEBOOKS_READY_TIMEOUT          start-to-ready limit, a Go duration (default 60s)
//	SLUICE_NOTEBOOKS_CRASH_LIMIT            unexpected exits within the window that stop a server (default 5)
//	SLUICE_NOTEBOOKS_CRASH_WINDOW           that window, a Go duration (default 10m)
//	SLUICE_NOTEBOOKS_CRASH_BACKOFF          first restart delay, doubled per exit (default 1s)
//	SLUICE_NOTEBOOKS_DEFAULT_NAMESPACE      namespace of event documents that name none (default "default")
//	SLUICE_NOTEBOOKS_WARM_POOL              warm notebook servers kept ready to claim (Python with Jupyter imported; each
//	                                        ~80 MB RSS): size it to the burst of spawns to absorb (default 2, 0 off)
type Config struct {
	Tokens           access.Tokens
	TokensConfigured bool
	Culling          notebooksv1.CullingPolicy
	Crash            notebooksv1.CrashPolicy
	Jupyter          string
	ReadyTimeout     time.Duration
	DefaultNamespace string
	// PATH is handed to servers and kernels (from the service's PATH).
	PATH string
	// VolumesDir holds local persistent volume claims for Tensorboard pvc:// logs paths,
	// <VolumesDir>/<namespace>/<claim>/ (SLUICE_NOTEBOOKS_VOLUMES_DIR; empty: <data-dir>/volumes).
	VolumesDir string
	// WarmPool is the size of the warm server pool (spawner.Config.WarmPool).
	WarmPool int
}

// ConfigFromEnv reads and validates Config through getenv; every error names its variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Jupyter:          "/usr/bin/jupyter",
		ReadyTimeout:     60 * time.Second,
		DefaultNamespace: "default",
		Crash:            notebooksv1.CrashPolicy{MaxRestarts: 5, Window: 10 * time.Minute, Backoff: time.Second},
		PATH:             getenv("PATH"),
		WarmPool:         2,
	}
	var errs []error
	var err error
	if v := getenv("SLUICE_NOTEBOOKS_TOKENS"); v != "" {
		c.Tokens, err = access.ParseTokens(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("SLUICE_NOTEBOOKS_TOKENS: %w", err))
		}
		c.TokensConfigured = true
	}
	c.Culling, err = culling.PolicyFromEnv(getenv)
	errs = append(errs, err)
	if v := getenv("SLUICE_NOTEBOOKS_JUPYTER"); v != "" {
		c.Jupyter = v
	}
	dur := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a positive duration (e.g. 30s)", name, v))
				return
			}
			*dst = d
		}
	}
	dur("SLUICE_NOTEBOOKS_READY_TIMEOUT", &c.ReadyTimeout)
	dur("SLUICE_NOTEBOOKS_CRASH_WINDOW", &c.Crash.Window)
	dur("SLUICE_NOTEBOOKS_CRASH_BACKOFF", &c.Crash.Backoff)
	if v := getenv("SLUICE_NOTEBOOKS_CRASH_LIMIT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("SLUICE_NOTEBOOKS_CRASH_LIMIT: %q is not a positive integer", v))
		}
		c.Crash.MaxRestarts = n
	}
	if v := getenv("SLUICE_NOTEBOOKS_WARM_POOL"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 256 {
			errs = append(errs, fmt.Errorf("SLUICE_NOTEBOOKS_WARM_POOL: %q is not an integer from 0 to 256", v))
		}
		c.WarmPool = n
	}
	if v := getenv("SLUICE_NOTEBOOKS_DEFAULT_NAMESPACE"); v != "" {
		c.DefaultNamespace = v
	}
	c.VolumesDir = getenv("SLUICE_NOTEBOOKS_VOLUMES_DIR")
	if c.PATH == "" {
		c.PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	return c, errors.Join(errs...)
}
