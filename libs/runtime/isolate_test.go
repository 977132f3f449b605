package runtime_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/runtimetest"
)

// allowTraverse lets other users walk through dir and its parents (t.TempDir is 0700).
func allowTraverse(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A Local that isolates runs each namespace's programs as its own Unix user with a private work dir: a
// step of namespace A cannot read, list or signal what a step of namespace B has, nor a notebook's files
// (a dir made private with the same mechanism the notebooks spawner uses), nor read B's environment; it
// can use the inputs staged for it by the service and write its outputs.
func TestLocalIsolatesNamespaces(t *testing.T) {
	if !runtime.CanIsolate() {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs tests as root: the isolation test must run")
		}
		t.Skip("not root: the local runtime cannot isolate namespaces")
	}
	base := t.TempDir()
	allowTraverse(t, base)
	rt := runtime.NewLocal(runtime.LocalConfig{GracePeriod: 500 * time.Millisecond, Isolate: true, LedgerDir: t.TempDir()})
	dirA, dirB, nb := filepath.Join(base, "a"), filepath.Join(base, "b"), filepath.Join(base, "notebooks", "nb")

	// A notebook server's dir of namespace iso-b, prepared as the spawner does, holding its token.
	credB, err := runtime.EnsureUser(runtime.NamespaceUser("iso-b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(nb), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := runtime.PrivateDir(nb, credB); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nb, "token"), []byte("nb-secret"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Step B keeps running with a secret in its work dir and in its environment.
	if err := os.MkdirAll(dirB, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pb, err := rt.Start(ctx, runtime.Spec{
		Name: "iso-b-step", Namespace: "iso-b", Command: []string{"/bin/sh", "-c", `echo b-secret > secret && exec sleep 300`},
		Env: map[string]string{"B_SECRET": "b-env-secret"}, WorkDir: dirB,
		Mounts: []runtime.Mount{{HostPath: dirB, ContainerPath: dirB}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pb.Kill(); <-pb.Done() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(dirB, "secret")); err == nil && strings.TrimSpace(string(b)) == "b-secret" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("step B did not write its secret")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Step A: the service staged an input and an outputs dir (as root) in A's work dir before it starts.
	if err := os.MkdirAll(filepath.Join(dirA, "outputs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirA, "input.txt"), []byte("staged"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
for p in "$B/secret" "$NB/token" "/proc/$BPID/environ"; do
  if cat "$p" >/dev/null 2>&1; then echo "READ $p"; else echo "DENIED $p"; fi
done
if ls "$B" >/dev/null 2>&1; then echo LISTED; else echo NOLIST; fi
if kill -0 "$BPID" 2>/dev/null; then echo SIGNALLED; else echo NOSIGNAL; fi
echo "input=$(cat input.txt)"
echo result > outputs/result && echo WROTE
echo "home=$HOME uid=$(id -u)"
`
	var out runtimetest.Buffer
	pa, err := rt.Start(ctx, runtime.Spec{
		Name: "iso-a-step", Namespace: "iso-a", Command: []string{"/bin/sh", "-c", script}, WorkDir: dirA,
		Env:    map[string]string{"B": dirB, "NB": nb, "BPID": pb.ID()},
		Mounts: []runtime.Mount{{HostPath: dirA, ContainerPath: dirA}}, Stdout: &out, Stderr: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	st, err := pa.Wait(wctx)
	if err != nil || st.Code != 0 {
		t.Fatalf("step A: %v %+v\n%s", err, st, out.String())
	}
	got := out.String()
	credA, err := runtime.EnsureUser(runtime.NamespaceUser("iso-a"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"DENIED " + dirB + "/secret", "DENIED " + nb + "/token", "DENIED /proc/" + pb.ID() + "/environ",
		"NOLIST", "NOSIGNAL", "input=staged", "WROTE", "home=" + dirA + " uid=" + strconv.Itoa(int(credA.UID))} {
		if !strings.Contains(got, want) {
			t.Errorf("step A's output lacks %q:\n%s", want, got)
		}
	}
	if credA.UID == 0 || credA.UID == credB.UID {
		t.Fatalf("namespace users: a=%d b=%d", credA.UID, credB.UID)
	}
	// A's work dir is private to A's user; B's to B's.
	for dir, cred := range map[string]runtime.Credential{dirA: credA, dirB: credB} {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o700 || st.Uid != cred.UID {
			t.Errorf("%s: mode %04o uid %d, want 0700 uid %d", dir, fi.Mode().Perm(), st.Uid, cred.UID)
		}
	}
}

// A program that planted a hard link or a symlink in its work dir (an earlier attempt) does not get
// root to hand it the target when its work dir is given to it again.
func TestLocalIsolationGivesOnlyWhatTheServiceCreated(t *testing.T) {
	if !runtime.CanIsolate() {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs tests as root: the isolation test must run")
		}
		t.Skip("not root")
	}
	base := t.TempDir()
	allowTraverse(t, base)
	outside := filepath.Join(base, "outside")
	if err := os.WriteFile(outside, []byte("root's"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "work")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(outside, filepath.Join(dir, "hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "soft")); err != nil {
		t.Fatal(err)
	}
	rt := runtime.NewLocal(runtime.LocalConfig{Isolate: true, LedgerDir: t.TempDir()})
	_, out := runProbeSh(t, rt, runtime.Spec{Name: "iso-links", Namespace: "iso-a", Command: []string{"/bin/sh", "-c", "cat hard soft 2>&1; true"},
		WorkDir: dir, Mounts: []runtime.Mount{{HostPath: dir, ContainerPath: dir}}})
	if strings.Contains(out, "root's") {
		t.Fatalf("the program read a file outside its work dir through a link: %s", out)
	}
	fi, _ := os.Stat(outside)
	if fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatal("the link's target was given to the namespace user")
	}
}

func runProbeSh(t *testing.T, rt runtime.Runtime, s runtime.Spec) (runtime.ExitStatus, string) {
	t.Helper()
	var out runtimetest.Buffer
	s.Stdout, s.Stderr = &out, &out
	p, err := rt.Start(context.Background(), s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st, out.String()
}
