// Command trainer is the toy training program of the end-to-end tuning test: it prints Katib StdOut
// metric lines for a few "epochs" whose final loss is (log10(lr)+2)^2 (+0.5 unless the optimizer is
// adam), minimal at lr = 0.01 with adam. With --logdir it also writes the loss as TensorFlow scalar
// summaries (one event file under <logdir>/train), for the TensorFlowEvent collector.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-ml/sluice/libs/tfevents"
)

func main() {
	lr := flag.Float64("lr", 0.1, "learning rate")
	opt := flag.String("optimizer", "sgd", "optimizer")
	logdir := flag.String("logdir", "", "write TensorFlow event files here")
	delay := flag.Duration("epoch-delay", 0, "sleep after each epoch (lets early stopping see a running trial)")
	delayPerLoss := flag.Duration("epoch-delay-per-loss", 0, "also sleep this long per unit of final loss after each epoch (bad trials run long)")
	flag.Int("batch-size", 64, "accepted and ignored (Katib's random.yaml passes it)")
	flag.Int("num-layers", 2, "accepted and ignored (Katib's random.yaml passes it)")
	flag.Parse()
	loss := math.Pow(math.Log10(*lr)+2, 2)
	if *opt != "adam" {
		loss += 0.5
	}
	var w *tfevents.Writer
	if *logdir != "" {
		dir := filepath.Join(*logdir, "train")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		var err error
		if w, err = tfevents.Create(filepath.Join(dir, tfevents.FileName(time.Now(), "trainer", os.Getpid(), 0))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	for epoch := 1; epoch <= 3; epoch++ {
		l := loss * float64(4-epoch)
		fmt.Printf("epoch=%d loss=%.6f accuracy=%.4f\n", epoch, l, 1/(1+l))
		if w != nil {
			if err := w.AddScalar("loss", int64(epoch), float32(l), time.Now().Add(time.Duration(epoch)*time.Millisecond)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		time.Sleep(*delay + time.Duration(loss*float64(*delayPerLoss)))
	}
	if w != nil {
		if err := w.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
