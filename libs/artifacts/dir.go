package artifacts

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// dirWorkers is how many objects PutDir and GetDir transfer at once.
const dirWorkers = 4

// PutDir uploads every regular file below the local directory dir to
// prefix/<relative path> ("/"-separated), keeping the layout, and returns the
// objects sorted by key. Symlinks to regular files are followed; symlinks to
// directories, devices, sockets and pipes are errors naming the path. Empty
// directories are not represented. Every relative path must yield a safe key.
// On error, objects already uploaded stay in place.
func (s *Store) PutDir(ctx context.Context, prefix, dir string) ([]Object, error) {
	if _, err := s.objectKey(prefix); err != nil {
		return nil, err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("artifacts: put dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("artifacts: put dir %s: not a directory", dir)
	}
	// A symlinked root (e.g. /tmp -> /private/tmp) is walked at its target.
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("artifacts: put dir: %w", err)
	}
	type file struct{ key, path string }
	var files []file
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			fi, err := os.Stat(path) // follow symlinks
			if err != nil {
				return err
			}
			if !fi.Mode().IsRegular() {
				return fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
			}
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		key, err := JoinKey(prefix, filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		files = append(files, file{key: key, path: path})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("artifacts: put dir %s: %w", dir, err)
	}
	out := make([]Object, len(files))
	err = forEach(ctx, len(files), func(ctx context.Context, i int) error {
		o, err := s.PutFile(ctx, files[i].key, files[i].path)
		out[i] = o
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// GetDir downloads every object below prefix (as List selects them) into the
// local directory dir, recreating the layout relative to prefix, verifying
// each digest. A listed key that is not a safe relative path fails the call
// before anything is written. Returns the objects sorted by key.
func (s *Store) GetDir(ctx context.Context, prefix, dir string) ([]Object, error) {
	objs, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	strip := len(prefix) + 1 // List keys are relative to s; drop "prefix/"
	if prefix == "" {
		strip = 0
	}
	paths := make([]string, len(objs))
	for i, o := range objs {
		rel := o.Key[strip:]
		if err := ValidateKey(rel); err != nil {
			return nil, fmt.Errorf("artifacts: get dir %s: listed object %s: %w", s.URI(prefix), o.URI, err)
		}
		paths[i] = filepath.Join(dir, filepath.FromSlash(rel))
	}
	out := make([]Object, len(objs))
	err = forEach(ctx, len(objs), func(ctx context.Context, i int) error {
		o, err := s.GetFile(ctx, objs[i].Key, paths[i])
		out[i] = o
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// forEach runs fn(0..n-1) on dirWorkers goroutines and returns the joined
// errors; the first error cancels the remaining work.
func forEach(parent context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	idx := make(chan int)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range min(dirWorkers, n) {
		wg.Go(func() {
			for i := range idx {
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					// After the first failure, the others' cancellations are noise.
					if len(errs) == 0 || !errors.Is(err, context.Canceled) {
						errs = append(errs, err)
					}
					mu.Unlock()
					cancel()
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case idx <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(idx)
	wg.Wait()
	if len(errs) == 0 {
		return parent.Err() // cancelled by the caller before all work was fed
	}
	return errors.Join(errs...)
}
