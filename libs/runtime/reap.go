package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// KillMarked ends, with SIGKILL, every host process whose environment holds name=value, together with
// its whole process group, and returns the number of process groups signalled. It finds the programs
// (and their descendants, which inherit the environment) that an earlier instance of a service started
// under Local with that marker in Spec.Env and that outlived it: Local's parent-death signal reaches
// only the program itself, so a child it left in its group, or one that moved to a group of its own,
// survives a crash (kill -9) of the service. Call it before starting new programs with the same marker.
//
// It reads /proc (Linux); processes it may not inspect are skipped. The caller's own process group is
// never signalled.
func KillMarked(name, value string) (int, error) {
	if name == "" || strings.ContainsAny(name, "=\x00") {
		return 0, fmt.Errorf("%w: marker name %q", ErrInvalidSpec, name)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("runtime: list processes: %w", err)
	}
	marker := []byte(name + "=" + value)
	self := os.Getpid()
	selfGroup, _ := syscall.Getpgid(self)
	groups := map[int]bool{}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !hasEnvEntry(env, marker) {
			continue
		}
		pids = append(pids, pid)
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 && pgid != selfGroup {
			groups[pgid] = true
		}
	}
	keys := make([]int, 0, len(groups))
	for g := range groups {
		keys = append(keys, g)
	}
	sort.Ints(keys)
	var errs []error
	for _, g := range keys {
		if err := syscall.Kill(-g, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("runtime: kill process group %d: %w", g, err))
		}
	}
	for _, pid := range pids { // members that left their group
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("runtime: kill process %d: %w", pid, err))
		}
	}
	return len(keys), errors.Join(errs...)
}

func hasEnvEntry(environ, entry []byte) bool {
	for _, kv := range bytes.Split(environ, []byte{0}) {
		if bytes.Equal(kv, entry) {
			return true
		}
	}
	return false
}
