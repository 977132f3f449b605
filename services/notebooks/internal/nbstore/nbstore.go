// Package nbstore keeps the last reported record of every notebook (spec, annotations, status) as one JSON
// file per notebook, <Dir>/<namespace>/<name>.json, written atomically by the lifecycle workflow's report
// activity. It serves lists and is the fallback view when the workflow cannot be queried.
package nbstore

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

// ErrNotFound means no record exists.
var ErrNotFound = errors.New("nbstore: notebook not found")

// Store is a directory of records.
type Store struct{ dir string }

// New returns a store rooted at dir (created when missing).
func New(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("nbstore: %w", err)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) path(ns, name string) string { return filepath.Join(s.dir, ns, name+".json") }

// Put writes the record of nb atomically.
func (s *Store) Put(nb notebooksv1.Notebook) error {
	p := s.path(nb.Metadata.Namespace, nb.Metadata.Name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("nbstore: %w", err)
	}
	b, err := json.MarshalIndent(nb, "", "  ")
	if err != nil {
		return fmt.Errorf("nbstore: %w", err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("nbstore: %w", err)
	}
	return os.Rename(tmp, p)
}

// Get reads one record.
func (s *Store) Get(ns, name string) (notebooksv1.Notebook, error) {
	var nb notebooksv1.Notebook
	if !safeName(ns) || !safeName(name) {
		return nb, ErrNotFound
	}
	b, err := os.ReadFile(s.path(ns, name))
	if errors.Is(err, os.ErrNotExist) {
		return nb, ErrNotFound
	}
	if err != nil {
		return nb, fmt.Errorf("nbstore: %w", err)
	}
	if err := json.Unmarshal(b, &nb); err != nil {
		return nb, fmt.Errorf("nbstore: %s/%s: %w", ns, name, err)
	}
	return nb, nil
}

// List returns the namespace's records sorted by name.
func (s *Store) List(ns string) ([]notebooksv1.Notebook, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, ns))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nbstore: %w", err)
	}
	var out []notebooksv1.Notebook
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		nb, err := s.Get(ns, name)
		if err != nil {
			return nil, err
		}
		out = append(out, nb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metadata.Name < out[j].Metadata.Name })
	return out, nil
}

// Delete removes a record; deleting a missing record is not an error.
func (s *Store) Delete(ns, name string) error {
	if err := os.Remove(s.path(ns, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("nbstore: %w", err)
	}
	return nil
}

// safeName refuses names that would leave the store's directory ("..", "a/b").
func safeName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00")
}
