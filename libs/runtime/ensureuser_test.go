package runtime_test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"sync"
	"testing"

	"github.com/sluice-ml/sluice/libs/runtime"
)

// Replicas of one job (and steps of one run) start at once and each asks for its namespace's user. Every
// caller must get the uid the user keeps: useradd looks the name up before it takes its lock, so two
// concurrent useradds of one new name both write it, the second with another uid, and the programs started
// with the first uid ran as a user that no longer exists (files they made, e.g. a shared checkpoint dir
// in /tmp, then belong to nobody and the namespace's later programs cannot write there).
func TestEnsureUserConcurrentCallersGetOneUID(t *testing.T) {
	if !runtime.CanIsolate() {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs tests as root: the user test must run")
		}
		t.Skip("not root: cannot create users")
	}
	for round := 0; round < 3; round++ {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		name := runtime.NamespaceUser("race" + hex.EncodeToString(b))
		t.Cleanup(func() { _ = exec.Command("userdel", name).Run() })

		const callers = 8
		creds := make([]runtime.Credential, callers)
		errs := make([]error, callers)
		var start, done sync.WaitGroup
		start.Add(1)
		for i := range callers {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				creds[i], errs[i] = runtime.EnsureUser(name)
			}()
		}
		start.Done()
		done.Wait()

		u, err := user.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		for i := range callers {
			if errs[i] != nil {
				t.Fatalf("caller %d: %v", i, errs[i])
			}
			if got := strconv.FormatUint(uint64(creds[i].UID), 10); got != u.Uid {
				t.Fatalf("round %d: caller %d got uid %s, but %s has uid %s", round, i, got, name, u.Uid)
			}
			if got := strconv.FormatUint(uint64(creds[i].GID), 10); got != u.Gid {
				t.Fatalf("round %d: caller %d got gid %s, but %s has gid %s", round, i, got, name, u.Gid)
			}
		}
	}
}
