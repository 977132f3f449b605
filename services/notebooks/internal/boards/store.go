// Package boards runs Tensorboard resources (tensorboard.kubeflow.org/v1alpha1): one Temporal lifecycle
// workflow per board (ID "tensorboard/<namespace>/<name>") that probes the logs path, keeps the record
// and waits for deletion, and the data side that reads the board's event files incrementally
// (libs/tfevents) for the scalars HTTP API.
package boards

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
)

// ErrNotFound: no record of that board.
var ErrNotFound = errors.New("boards: tensorboard not found")

// Store keeps one JSON record per board, <dir>/<namespace>/<name>.json, for listing.
type Store struct{ dir string }

// NewStore creates dir if needed.
func NewStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("boards: %w", err)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) path(ns, name string) string { return filepath.Join(s.dir, ns, name+".json") }

// Put writes the record atomically (write to a temporary file, then rename).
func (s *Store) Put(tb notebooksv1.Tensorboard) error {
	p := s.path(tb.Metadata.Namespace, tb.Metadata.Name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("boards: %w", err)
	}
	b, err := json.MarshalIndent(tb, "", "  ")
	if err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("boards: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("boards: %w", err)
	}
	return nil
}

// Delete removes the record; a missing record is not an error.
func (s *Store) Delete(ns, name string) error {
	if err := os.Remove(s.path(ns, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("boards: %w", err)
	}
	return nil
}

// Get reads one record.
func (s *Store) Get(ns, name string) (notebooksv1.Tensorboard, error) {
	var tb notebooksv1.Tensorboard
	b, err := os.ReadFile(s.path(ns, name))
	if errors.Is(err, os.ErrNotExist) {
		return tb, ErrNotFound
	}
	if err != nil {
		return tb, fmt.Errorf("boards: %w", err)
	}
	return tb, json.Unmarshal(b, &tb)
}

// List returns the namespace's records sorted by name.
func (s *Store) List(ns string) ([]notebooksv1.Tensorboard, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, ns))
	if errors.Is(err, os.ErrNotExist) {
		return []notebooksv1.Tensorboard{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("boards: %w", err)
	}
	out := []notebooksv1.Tensorboard{}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		tb, err := s.Get(ns, name)
		if err != nil {
			return nil, err
		}
		out = append(out, tb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metadata.Name < out[j].Metadata.Name })
	return out, nil
}
