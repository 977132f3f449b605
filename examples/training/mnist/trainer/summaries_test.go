package trainer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-ml/sluice/libs/tfevents"
)

// copyUploader stands in for S3 (the real upload is covered end to end by the Tensorboard test in
// services/notebooks): it copies the directory under root/<uri without scheme>.
type copyUploader struct {
	root  string
	mu    sync.Mutex
	calls int
}

func (u *copyUploader) UploadDir(_ context.Context, localDir, uri string) error {
	u.mu.Lock()
	u.calls++
	u.mu.Unlock()
	dest := filepath.Join(u.root, strings.TrimPrefix(uri, "s3://"))
	if err := os.RemoveAll(dest); err != nil { // each upload replaces the objects
		return err
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	return os.CopyFS(dest, os.DirFS(localDir))
}

func readCurve(t *testing.T, logDir, run, tag string) []tfevents.ScalarPoint {
	t.Helper()
	l := tfevents.NewLogdir(tfevents.Dir(logDir))
	if err := l.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	ps, ok := l.Scalars(run, tag)
	if !ok {
		t.Fatalf("no %s/%s (runs %v)", run, tag, l.Runs())
	}
	return ps
}

func mean(ps []tfevents.ScalarPoint) float64 {
	var s float64
	for _, p := range ps {
		s += float64(p.Value)
	}
	return s / float64(len(ps))
}

// A single-process run with a log dir writes loss and accuracy at every step into <logdir>/chief-0,
// readable while and after it runs; the loss falls and the accuracy rises over training. A smaller
// hidden layer (32) trains too.
func TestTrainerWritesSummaries(t *testing.T) {
	logDir := t.TempDir()
	var out bytes.Buffer
	cfg := Config{Steps: 120, BatchSize: 32, Hidden: 32, LearningRate: 0.3, LogDir: logDir, Out: &out}
	if err := Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "accuracy=") {
		t.Fatalf("output %q", out.String())
	}
	loss := readCurve(t, logDir, "chief-0", "loss")
	acc := readCurve(t, logDir, "chief-0", "accuracy")
	if len(loss) != 120 || len(acc) != 120 {
		t.Fatalf("%d loss and %d accuracy points, want one per step", len(loss), len(acc))
	}
	for i, p := range loss {
		if p.Step != int64(i) {
			t.Fatalf("point %d has step %d", i, p.Step)
		}
	}
	first, last := mean(loss[:20]), mean(loss[100:])
	if !(last < first*0.6) {
		t.Errorf("loss did not fall: first 20 steps %.3f, last 20 %.3f", first, last)
	}
	if a0, a1 := mean(acc[:20]), mean(acc[100:]); !(a1 > a0+0.2) {
		t.Errorf("accuracy did not rise: %.3f -> %.3f", a0, a1)
	}
}

// An s3:// log dir is written locally and uploaded under <logdir>/<run>: at the start, every
// LogUploadEvery steps and at the end; the uploaded file holds the whole curve.
func TestTrainerUploadsSummaries(t *testing.T) {
	up := &copyUploader{root: t.TempDir()}
	cfg := Config{Steps: 40, BatchSize: 16, Hidden: 16, LogDir: "s3://bucket/jobs/mnist/logs", LogUploadEvery: 10, Uploader: up}
	if err := Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	loss := readCurve(t, filepath.Join(up.root, "bucket/jobs/mnist/logs"), "chief-0", "loss")
	if len(loss) != 40 {
		t.Fatalf("%d points uploaded, want 40", len(loss))
	}
	if up.calls < 5 {
		t.Errorf("%d uploads, want one at the start, every 10 steps and at the end", up.calls)
	}
	if err := Run(t.Context(), Config{Steps: 1, LogDir: "s3://b/x"}); err == nil || !strings.Contains(fmt.Sprint(err), "uploader") {
		t.Errorf("an s3 log dir without an uploader: %v", err)
	}
}
