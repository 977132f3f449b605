// Command serving-mnist classifies the 10,000 real MNIST test images through a deployed model's
// TF Serving REST API (POST /v1/models/{model}:predict, row format, batches of -batch images) and
// prints the accuracy; then it sends -canary-requests KServe v2 requests
// (POST /v2/models/{model}/infer) and prints which model version answered them, which measures a
// canary split (TF Serving responses do not name the version; v2 responses carry model_version).
//
// The model is the one examples/training/mnist exports: input "input" [batch, 784] float32
// (pixels / 255), output "probabilities" [batch, 10].
//
//	serving-mnist -server http://127.0.0.1:8080 -model mnist
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-ml/sluice/examples/training/mnist/mnistdata"
)

func main() {
	server := flag.String("server", envOr("SLUICE_SERVER", "http://127.0.0.1:8080"), "Sluice API base URL")
	model := flag.String("model", "mnist", "model name")
	batch := flag.Int("batch", 100, "images per :predict request")
	canary := flag.Int("canary-requests", 1000, "v2 /infer requests used to measure the traffic split (0 skips)")
	dataDir := flag.String("data", "", "directory of the MNIST files (default: "+mnistdata.EnvDataDir+" or the GoMNIST module)")
	token := flag.String("token", "", "API token (default: $SLUICE_TOKEN, else the admin token `sluice dev` keeps in .sluice/auth/admin-token)")
	flag.Parse()
	if *token == "" {
		*token = defaultToken()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *server, *model, *batch, *canary, *dataDir, *token); err != nil {
		fmt.Fprintln(os.Stderr, "serving-mnist:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// defaultToken is $SLUICE_TOKEN, else the admin token of a `sluice dev` started in this directory
// ($SLUICE_DATA_DIR or .sluice), else "".
func defaultToken() string {
	if t := os.Getenv("SLUICE_TOKEN"); t != "" {
		return t
	}
	b, err := os.ReadFile(filepath.Join(envOr("SLUICE_DATA_DIR", ".sluice"), "auth", "admin-token"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func run(ctx context.Context, server, model string, batch, canary int, dataDir, token string) error {
	if dataDir == "" {
		d, err := mnistdata.Dir()
		if err != nil {
			return err
		}
		dataDir = d
	}
	_, test, err := mnistdata.Load(dataDir)
	if err != nil {
		return err
	}
	c := NewClient(server, model)
	c.Token = token
	start := time.Now()
	res, err := c.Classify(ctx, test, batch)
	if err != nil {
		return err
	}
	fmt.Printf("images=%d correct=%d accuracy=%.4f elapsed=%s\n", res.Images, res.Correct, res.Accuracy(), time.Since(start).Round(time.Millisecond))
	if canary > 0 {
		counts, err := c.VersionSplit(ctx, test, canary)
		if err != nil {
			return err
		}
		fmt.Printf("requests=%d", canary)
		for _, v := range sortedKeys(counts) {
			fmt.Printf(" version_%s=%d (%.1f%%)", v, counts[v], 100*float64(counts[v])/float64(canary))
		}
		fmt.Println()
	}
	return nil
}
