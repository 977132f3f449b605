package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// errEscapes reports an output that is, or contains, a symlink leading out of the step's work dir.
var errEscapes = errors.New("symlink outside the step's work dir")

// confine checks that reading p (a file, or a directory walked recursively) never leaves root: every
// symlink under p must resolve to a path inside root. Steps may create links (the Docker runtime runs
// them in a container, whose "/etc/hostname" is not the host's), but uploading runs on the host, so a
// link out of the work dir would copy a host file into S3 (cf. Argo's artifact symlink advisories).
func confine(root, p string) error {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	inside := func(link string) error {
		target, _ := os.Readlink(link)
		real, err := filepath.EvalSymlinks(link)
		if err != nil {
			return fmt.Errorf("%s is a dangling or unreadable symlink (to %q): %w", link, target, errEscapes)
		}
		if real != realRoot && !strings.HasPrefix(real, realRoot+string(filepath.Separator)) {
			return fmt.Errorf("%s is a symlink to %q: %w", link, target, errEscapes)
		}
		return nil
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if err := inside(p); err != nil {
			return err
		}
		st, err := os.Stat(p)
		if err != nil || !st.IsDir() {
			return err
		}
		// A link to a directory inside the work dir: check what it holds, through its real path.
		real, _ := filepath.EvalSymlinks(p)
		return confine(root, real)
	}
	if !fi.IsDir() {
		return nil
	}
	return filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		if err := inside(q); err != nil {
			return err
		}
		if st, err := os.Stat(q); err == nil && st.IsDir() {
			real, _ := filepath.EvalSymlinks(q)
			if real == realRoot || strings.HasPrefix(p, real) {
				return fmt.Errorf("%s is a symlink to an enclosing directory: %w", q, errEscapes)
			}
			return confine(root, real)
		}
		return nil
	})
}

// confineFile is confine for a file that may not exist (an output parameter the step did not write).
func confineFile(root, p string) error {
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return confine(root, p)
}
