package tfevents_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-ml/sluice/libs/tfevents"
)

// A trainer writes one event file per replica under its log dir (one run per replica directory), with a
// scalar per step for loss and accuracy; a Tensorboard on the log dir (or an S3 copy of it: upload the
// files as they grow, each upload replacing the object) shows both curves per replica.
func Example_trainer() {
	logDir, _ := os.MkdirTemp("", "logs")
	defer os.RemoveAll(logDir)
	replicaDir := filepath.Join(logDir, "worker-0") // e.g. <task type>-<index> from TF_CONFIG
	_ = os.MkdirAll(replicaDir, 0o755)
	w, err := tfevents.Create(filepath.Join(replicaDir, tfevents.FileName(time.Unix(1700000000, 0), "host", 1, 0)))
	if err != nil {
		panic(err)
	}
	for step := int64(1); step <= 3; step++ {
		loss, acc := 1/float32(step), 1-1/float32(step+1)
		_ = w.AddScalar("loss", step, loss, time.Time{})
		_ = w.AddScalar("accuracy", step, acc, time.Time{})
		_ = w.Flush() // readers see complete records only; flush at least once per logged step
	}
	_ = w.Close()

	l := tfevents.NewLogdir(tfevents.Dir(logDir))
	_ = l.Reload(context.Background())
	for _, run := range l.Runs() {
		ps, _ := l.Scalars(run, "loss")
		for _, p := range ps {
			fmt.Printf("%s step=%d loss=%.3f\n", run, p.Step, p.Value)
		}
	}
	// Output:
	// worker-0 step=1 loss=1.000
	// worker-0 step=2 loss=0.500
	// worker-0 step=3 loss=0.333
}
