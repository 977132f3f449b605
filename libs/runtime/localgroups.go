package runtime

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// groupEnv marks every program Local starts, and the descendants that keep their environment, with the
// id of its ledger entry.
const groupEnv = "SLUICE_PROCESS_GROUP"

// DefaultLedgerDir is where Local records its process groups: <temp dir>/sluice-process-groups-<uid>.
func DefaultLedgerDir() string {
	return filepath.Join(os.TempDir(), "sluice-process-groups-"+strconv.Itoa(os.Getuid()))
}

func groupMarker() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// groupLedger records, one file per program, the process group a Local started and the host process
// that owns it. A host process killed with SIGKILL cannot end its programs' descendants (the parent-death
// signal reaches the group leader only); the next Local on the same machine reads the ledger and ends
// every group whose owner is gone, as Kubernetes ends a pod's containers with the pod.
type groupLedger struct{ dir string }

type ledgerEntry struct {
	PGID       int    `json:"pgid"`
	Marker     string `json:"marker"`
	Owner      int    `json:"owner"`
	OwnerStart string `json:"ownerStart"`
}

func openLedger(dir string) *groupLedger {
	if dir == "" {
		dir = DefaultLedgerDir()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return &groupLedger{}
	}
	// Refuse a ledger another user could write (a planted dir in /tmp).
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 {
		return &groupLedger{}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return &groupLedger{}
	}
	return &groupLedger{dir: dir}
}

// record writes the entry of a started program; the returned func removes it once the program is reaped.
func (g *groupLedger) record(pgid int, marker string) func() {
	if g.dir == "" {
		return func() {}
	}
	e := ledgerEntry{PGID: pgid, Marker: marker, Owner: os.Getpid(), OwnerStart: startTime(os.Getpid())}
	b, _ := json.Marshal(e)
	p := filepath.Join(g.dir, marker+".json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return func() {}
	}
	return func() { _ = os.Remove(p) }
}

// killOrphans ends the groups of every entry whose owner process is gone: each process whose environment
// carries the entry's marker, and the whole process group of any such process.
func (g *groupLedger) killOrphans() int {
	if g.dir == "" {
		return 0
	}
	files, _ := filepath.Glob(filepath.Join(g.dir, "*.json"))
	var dead []ledgerEntry
	for _, f := range files {
		var e ledgerEntry
		b, err := os.ReadFile(f)
		if err != nil || json.Unmarshal(b, &e) != nil {
			_ = os.Remove(f)
			continue
		}
		if e.OwnerStart != "" && startTime(e.Owner) == e.OwnerStart {
			continue // the owner still runs
		}
		dead = append(dead, e)
		_ = os.Remove(f)
	}
	if len(dead) == 0 {
		return 0
	}
	markers := map[string]ledgerEntry{}
	for _, e := range dead {
		markers[e.Marker] = e
	}
	killed := 0
	procs, _ := os.ReadDir("/proc")
	for _, d := range procs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			v, ok := strings.CutPrefix(kv, groupEnv+"=")
			if !ok {
				continue
			}
			if e, ok := markers[v]; ok {
				if pgid, err := syscall.Getpgid(pid); err == nil && pgid == e.PGID {
					_ = syscall.Kill(-pgid, syscall.SIGKILL)
				}
				_ = syscall.Kill(pid, syscall.SIGKILL)
				killed++
			}
			break
		}
	}
	return killed
}

// startTime is field 22 of /proc/<pid>/stat (clock ticks since boot), "" when pid does not run.
func startTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// KillOrphans ends what programs of Local runtimes left behind when their host process died (see
// LocalConfig.LedgerDir); NewLocal does it already. It returns how many processes it signalled.
func KillOrphans(ledgerDir string) int { return openLedger(ledgerDir).killOrphans() }

// EnsureUser returns the Unix user name, creating it (a system user without a login shell or home) when
// missing. Only root can create users.
func EnsureUser(name string) (Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if !errors.As(err, &unknown) {
			return Credential{}, fmt.Errorf("runtime: look up user %s: %w", name, err)
		}
		if u, err = createUser(name); err != nil {
			return Credential{}, err
		}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return Credential{}, fmt.Errorf("runtime: user %s: %w", name, err)
	}
	return Credential{UID: uint32(uid), GID: uint32(gid)}, nil
}

// userLockFile serialises createUser across the Sluice processes of a host (root-only directory, so no
// other user can hold the lock).
const userLockFile = "/etc/.sluice-useradd.lock"

// userMu serialises createUser within the process.
var userMu sync.Mutex

// createUser runs useradd for name unless the user exists by the time it holds the locks. One at a time:
// useradd looks the name up before it takes the passwd lock, so two concurrent useradds of one new name
// both succeed and the second rewrites the entry with another uid, leaving the first caller's programs
// running as (and their files owned by) a uid no user has.
func createUser(name string) (*user.User, error) {
	userMu.Lock()
	defer userMu.Unlock()
	if f, err := os.OpenFile(userLockFile, os.O_CREATE|os.O_RDWR, 0o600); err == nil {
		defer f.Close()
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX) == nil {
			defer func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }()
		}
	}
	if u, err := user.Lookup(name); err == nil { // created meanwhile
		return u, nil
	}
	out, err := exec.Command("useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
	if err != nil {
		if u, err2 := user.Lookup(name); err2 == nil { // created by a program that does not take userLockFile
			return u, nil
		}
		return nil, fmt.Errorf("runtime: useradd %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("runtime: look up user %s: %w", name, err)
	}
	return u, nil
}

// NamespaceUser is the Unix user name of a namespace's notebooks and steps: "sluice-<namespace>", or, for
// namespaces too long for a user name (32), a prefix and a hash.
func NamespaceUser(namespace string) string {
	n := "sluice-" + namespace
	if len(n) <= 32 {
		return n
	}
	h := fnv32(namespace)
	return fmt.Sprintf("sluice-%s-%08x", namespace[:16], h)
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
