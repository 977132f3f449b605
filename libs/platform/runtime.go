package platform

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/docker"
)

// NewRuntime returns the runtime named by SLUICE_RUNTIME: "local" (host processes, the default),
// "docker" (Docker Engine API on the default socket) or "kubernetes" (pods through the API server of
// KUBECONFIG or the in-cluster config, see [NewKubeRuntime]; use [NewRuntimeEnv] to pass the variables). The local runtime isolates namespaces (each
// program runs as its namespace's Unix user, see runtime.LocalConfig.Isolate) once the process turned it
// on with [EnableLocalIsolation], and its programs never inherit Sluice's own variables ([ChildEnviron]).
func NewRuntime(kind string) (runtime.Runtime, error) { return NewRuntimeEnv(kind, os.Getenv) }

// NewRuntimeEnv is NewRuntime reading the Kubernetes runtime's variables through getenv.
func NewRuntimeEnv(kind string, getenv func(string) string) (runtime.Runtime, error) {
	switch kind {
	case "", runtime.NameLocal:
		return runtime.NewLocal(runtime.LocalConfig{Isolate: localIsolation.Load(), Environ: ChildEnviron}), nil
	case runtime.NameDocker:
		rt, err := docker.New(docker.Config{})
		if err != nil {
			return nil, fmt.Errorf("SLUICE_RUNTIME=docker: %w", err)
		}
		return rt, nil
	case runtime.NameKubernetes:
		rt, err := NewKubeRuntime(getenv)
		if err != nil {
			return nil, fmt.Errorf("SLUICE_RUNTIME=kubernetes: %w", err)
		}
		return rt, nil
	default:
		return nil, fmt.Errorf("SLUICE_RUNTIME: %q is not local, docker or kubernetes", kind)
	}
}

// localIsolation is the process's choice, made once at start by its main (service binaries in [Main],
// `sluice dev`); runtimes built before it, and in tests that never make it, do not isolate.
var localIsolation atomic.Bool

// EnableLocalIsolation decides, once at start, whether the local runtimes of this process run each
// namespace's steps and replicas as its own Unix user: when the process is root and every ancestor of
// dataDir can be traversed by other users (the per-namespace users must reach their work dirs below it).
// It makes dataDir itself 0711 (traversable, not listable) and logs plainly what is and is not isolated;
// the returned reason is empty when it isolates.
func EnableLocalIsolation(dataDir, runtimeKind string, log *slog.Logger) (reason string) {
	if runtimeKind != "" && runtimeKind != runtime.NameLocal {
		return ""
	}
	switch {
	case !runtime.CanIsolate():
		reason = fmt.Sprintf("not running as root (uid %d): every step, replica and notebook server runs as this user and can read the others' files", os.Geteuid())
	default:
		if err := os.MkdirAll(dataDir, 0o711); err != nil {
			reason = err.Error()
		} else if err := os.Chmod(dataDir, 0o711); err != nil {
			reason = err.Error()
		} else if err := runtime.Traversable(dataDir); err != nil {
			reason = err.Error() + "; steps and replicas run as root"
		}
	}
	if reason != "" {
		localIsolation.Store(false)
		log.Warn("the local runtime CANNOT isolate namespaces: "+reason+" (run as root with a traversable data dir, or use SLUICE_RUNTIME=docker)", "isolation", false)
		return reason
	}
	// Per-namespace users reach their work dirs under the services' dirs; everything else in the data dir
	// (the embedded servers' stores, the admin token) is closed to them.
	if entries, err := os.ReadDir(dataDir); err == nil {
		for _, e := range entries {
			if runtimeDirs[e.Name()] || e.Type()&os.ModeSymlink != 0 {
				continue
			}
			if fi, err := e.Info(); err == nil {
				_ = os.Chmod(filepath.Join(dataDir, e.Name()), fi.Mode().Perm()&^0o007)
			}
		}
	}
	localIsolation.Store(true)
	log.Info("the local runtime isolates namespaces: each namespace's steps, replicas and notebook servers run as its own Unix user (sluice-<namespace>) with 0700 work dirs", "isolation", true)
	return ""
}

// runtimeDirs are the services' dirs in a data dir that hold the work dirs of programs run as
// per-namespace users; they stay traversable.
var runtimeDirs = map[string]bool{"pipelines": true, "training": true, "notebooks": true}

// DisableLocalIsolation undoes [EnableLocalIsolation] for runtimes built afterwards (tests).
func DisableLocalIsolation() { localIsolation.Store(false) }

// ChildEnviron is the environment a local program inherits (runtime.Spec.InheritEnv): this process's,
// without Sluice's own configuration and secrets — every SLUICE_* variable (static tokens, the identity
// header's key, internal URLs), NATS_URL (the service's NATS credentials), S3_* (the artifact store's
// credentials; replicas that export to S3 are given them explicitly), TEMPORAL_* and
// METADATA_DATABASE_URL.
func ChildEnviron() []string {
	env := os.Environ()
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !inheritable(name) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func inheritable(name string) bool {
	for _, p := range []string{"SLUICE_", "S3_", "TEMPORAL_"} {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	switch name {
	case "NATS_URL", "METADATA_DATABASE_URL", "DATABASE_URL":
		return false
	}
	return true
}
