package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// DefaultNamespace is the namespace whose Unix user runs a program that names none (Spec.Namespace empty)
// when Local isolates: the namespace Sluice files resources without one under.
const DefaultNamespace = "default"

// CanIsolate reports whether this process can run programs as other Unix users: only root can.
func CanIsolate() bool { return os.Geteuid() == 0 }

// PrivateDir makes dir (created when missing) private to cred: owned by it, mode 0700. Every ancestor
// must let others traverse it (o+x), or cred could not reach dir; the error names the first that does
// not. Only root can do this. What dir holds is left as it is (see Local's isolation for whole trees).
func PrivateDir(dir string, cred Credential) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("runtime: private dir: %w", err)
	}
	if err := Traversable(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("runtime: private dir: %w", err)
	}
	if err := os.Lchown(dir, int(cred.UID), int(cred.GID)); err != nil {
		return fmt.Errorf("runtime: private dir: %w", err)
	}
	return nil
}

// Traversable returns an error naming the first of dir and its ancestors that other users may not
// traverse (no o+x): a per-namespace user could not reach anything below it.
func Traversable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("runtime: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("runtime: %s (mode %04o) cannot be traversed by per-namespace users: choose a data dir whose parents others may traverse (o+x)",
				d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// giveTree hands what this process created under dir to cred, so a program running as cred can use the
// inputs staged for it and write where its outputs go. Symbolic links are not followed, and only entries
// this process owns and that are not hard links to something else are changed: a program that ran in dir
// before (an earlier attempt) cannot make root give it a file outside dir.
func giveTree(dir string, cred Credential) error {
	self := uint32(os.Geteuid())
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || st.Uid != self || (!fi.IsDir() && st.Nlink > 1) {
			return nil
		}
		if err := os.Lchown(p, int(cred.UID), int(cred.GID)); err != nil {
			return fmt.Errorf("runtime: give %s to uid %d: %w", p, cred.UID, err)
		}
		return nil
	})
}
