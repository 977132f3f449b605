package devstack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFileName is the advisory lock that keeps two stacks (in this or
// another process) from sharing one data directory: NATS, SQLite and the S3
// backend all assume a single owner.
const lockFileName = "devstack.lock"

// ErrDataDirInUse is returned by Start when another running stack holds the
// data directory.
var ErrDataDirInUse = errors.New("devstack: data directory is in use by another running stack")

// dirLock is an exclusive flock(2) on DataDir/devstack.lock, released by
// unlock or when the process exits.
type dirLock struct{ f *os.File }

func lockDataDir(dataDir string) (*dirLock, error) {
	path := filepath.Join(dataDir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("devstack: open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: DataDir: %s", ErrDataDirInUse, dataDir)
		}
		return nil, fmt.Errorf("devstack: lock %s: %w", path, err)
	}
	return &dirLock{f: f}, nil
}

func (l *dirLock) unlock() error {
	// Closing the descriptor releases the flock.
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("devstack: release data dir lock: %w", err)
	}
	return nil
}
