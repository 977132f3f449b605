package spawner

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-ml/sluice/libs/runtime"
)

// Isolated reports whether servers of different namespaces run as different Unix users: only when the
// service runs as root (it creates one system user per namespace, sluice-<namespace>). Otherwise every
// server and kernel runs as the service's own user and can read the others' files.
func Isolated() bool { return runtime.CanIsolate() }

// isolate prepares dir for a server of namespace ns: as root, the namespace's Unix user owns dir (mode
// 0700) and the namespace directory above it is 0711 (traversable, not listable), and the returned
// credential runs the server. Without root it returns nil (no isolation, see Isolated).
func (s *Spawner) isolate(ns, dir string) (*runtime.Credential, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spawner: %w", err)
	}
	if !Isolated() {
		return nil, nil
	}
	cred, err := runtime.EnsureUser(runtime.NamespaceUser(ns))
	if err != nil {
		return nil, fmt.Errorf("spawner: namespace user: %w", err)
	}
	for _, d := range []string{s.cfg.Dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			return nil, fmt.Errorf("spawner: %w", err)
		}
	}
	// The namespace's user owns dir (0700) and must be able to walk down to it; what the service writes
	// into dir itself (server.json, server.log) stays the service's.
	if err := runtime.PrivateDir(dir, cred); err != nil {
		return nil, fmt.Errorf("spawner: namespace user %s: %w", runtime.NamespaceUser(ns), err)
	}
	return &cred, nil
}

func chownTo(p string, cred *runtime.Credential) error {
	if cred == nil {
		return nil
	}
	if err := os.Chown(p, int(cred.UID), int(cred.GID)); err != nil {
		return fmt.Errorf("spawner: %w", err)
	}
	return nil
}

// writeTokenConfig writes the server's token into jupyter_notebook_config.json (mode 0600, owned by the
// server's user) in its JUPYTER_CONFIG_DIR.
func writeTokenConfig(configDir, token string, cred *runtime.Credential) error {
	b, _ := json.Marshal(map[string]any{
		"NotebookApp": map[string]string{"token": token},
		"ServerApp":   map[string]string{"token": token},
	})
	p := filepath.Join(configDir, "jupyter_notebook_config.json")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("spawner: token config: %w", err)
	}
	if err := chownTo(tmp, cred); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("spawner: token config: %w", err)
	}
	return nil
}
