package lifecycle

import (
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/libs/runtime"
)

// TestReplicaTempDirWhereTheHostHasNone: in the service's FROM-scratch container there is no /tmp, and a
// replica making a temporary file (the MNIST trainer's model export) failed on every restart. Its
// TMPDIR is then its work dir; a host with a temporary directory, or a job that sets TMPDIR, is left alone.
func TestReplicaTempDirWhereTheHostHasNone(t *testing.T) {
	a := &Activities{Runtime: runtime.NewLocal(runtime.LocalConfig{GracePeriod: time.Second}), DataDir: t.TempDir()}
	in := ReplicaRun{Namespace: "ns", Kind: "TFJob", JobName: "j", UID: "u", LogName: "chief-0", Name: "j-chief-0", Command: []string{"true"}}

	s, err := a.spec(in, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := s.Env["TMPDIR"]; ok {
		t.Fatalf("with a host temporary directory TMPDIR is set to %q", v)
	}

	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing")) // os.TempDir() names a directory that does not exist
	if s, err = a.spec(in, io.Discard); err != nil {
		t.Fatal(err)
	}
	if s.Env["TMPDIR"] != s.WorkDir || s.WorkDir == "" {
		t.Fatalf("without a host temporary directory TMPDIR = %q, want the work dir %q", s.Env["TMPDIR"], s.WorkDir)
	}

	in.Env = map[string]string{"TMPDIR": "/scratch"}
	if s, err = a.spec(in, io.Discard); err != nil {
		t.Fatal(err)
	}
	if s.Env["TMPDIR"] != "/scratch" {
		t.Fatalf("the job's own TMPDIR became %q", s.Env["TMPDIR"])
	}
}
