package modelrepo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// Source is where a model's version directories live: a local directory (DirSource) or an
// object-store prefix.
type Source interface {
	// List returns the names of the direct children (directories) of the base path.
	List(ctx context.Context) ([]string, error)
	// ReadFile returns the bytes of file name inside child directory dir.
	ReadFile(ctx context.Context, dir, name string) ([]byte, error)
	// String describes the base path for status and logs.
	String() string
}

// ErrNoModelFile is returned by a Source when a version directory lacks the model file.
var ErrNoModelFile = errors.New("modelrepo: model file not found")

// DirSource is a base path on the local file system.
type DirSource struct{ Path string }

// List returns the child directories of Path.
func (d DirSource) List(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(d.Path)
	if err != nil {
		return nil, fmt.Errorf("list model base path %s: %w", d.Path, err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// ReadFile reads Path/dir/name.
func (d DirSource) ReadFile(ctx context.Context, dir, name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(d.Path, dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoModelFile, filepath.Join(d.Path, dir, name))
	}
	return b, err
}

func (d DirSource) String() string { return d.Path }

// ParseVersion parses a version directory name: decimal digits only ("3", "0003"), value
// within int64. Other names are not versions.
func ParseVersion(name string) (int64, bool) {
	if name == "" {
		return 0, false
	}
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(name, 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}
