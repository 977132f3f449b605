package trainer

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseTFConfig(t *testing.T) {
	t.Parallel()
	c, err := ParseTFConfig(`{"cluster":{"ps":["127.0.0.1:5"],"worker":["127.0.0.1:6","127.0.0.1:7"]},"task":{"type":"worker","index":1},"environment":"cloud"}`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Self() != "127.0.0.1:7" || c.coordinatorType() != "" {
		t.Fatalf("self %q coord %q", c.Self(), c.coordinatorType())
	}
	if c, err := ParseTFConfig(""); c != nil || err != nil {
		t.Fatal("empty TF_CONFIG is a single-process run")
	}
	if _, err := ParseTFConfig(`{"cluster":{"worker":["a:1"]},"task":{"type":"worker","index":3}}`); err == nil {
		t.Fatal("a task outside the cluster must be rejected")
	}
	for in, want := range map[string]string{"127.0.0.1:5": "127.0.0.1:5", "mnist-ps-0.kubeflow.svc:2222": ":2222"} {
		if got, _ := listenAddr(in); got != want {
			t.Errorf("listenAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "model")
	if _, ok, err := latestCheckpoint(dir); ok || err != nil {
		t.Fatal("no checkpoint yet")
	}
	if err := saveCheckpoint(dir, 100, 600, []float32{1.5, -2}, false); err != nil {
		t.Fatal(err)
	}
	idx, ok, err := latestCheckpoint(dir)
	if err != nil || !ok || idx.Step != 100 || idx.Final {
		t.Fatalf("index = %+v %v %v", idx, ok, err)
	}
	p, err := loadCheckpoint(dir, idx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]float32{1.5, -2}, p); diff != "" {
		t.Error(diff)
	}
}
