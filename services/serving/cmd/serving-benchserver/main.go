// Command serving-benchserver serves the MNIST-shaped model for the serving benchmark, so load
// comes from a second process (serving-loadgen):
//
//   - -mode rest: the real data plane (TF Serving REST + KServe v2) behind the same platform
//     handler (metrics, routing) and guard the serving binary uses; clients send the bearer token
//     of $SLUICE_TOKEN (default "bench-token-0123456789abcdef");
//   - -mode bare: dataplane.BareHandler, a minimal hand-written handler around the same runtime
//     Predict (pooled buffers, the product's numeric scanner, strconv output): the fair baseline;
//   - -mode runtime: no server; calls Predict in-process -n times at -batch and prints p50/p99 as JSON.
//
// The model is the trainer's architecture (784→128→10 MLP, input "input", output "probabilities"),
// from -model-dir (TF Serving layout: <dir>/<version>/model.onnx) or generated with fixed weights.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/serving/internal/dataplane"
	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime/onnxtest"
)

func main() {
	mode := flag.String("mode", "rest", "rest | bare | runtime")
	addr := flag.String("addr", "127.0.0.1:8501", "listen address (rest, bare)")
	modelDir := flag.String("model-dir", "", "model base path (default: a generated MNIST-shaped model)")
	batch := flag.Int("batch", 1, "runtime mode: batch size")
	n := flag.Int("n", 2000, "runtime mode: calls")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		stop, err := startCPUProfile(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "serving-benchserver:", err)
			os.Exit(1)
		}
		defer stop()
	}
	if err := run(*mode, *addr, *modelDir, *batch, *n); err != nil {
		fmt.Fprintln(os.Stderr, "serving-benchserver:", err)
		os.Exit(1)
	}
}

func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

type service struct{ s *dataplane.Server }

func (service) Name() string                { return "serving" }
func (x service) Routes(mux *http.ServeMux) { x.s.Routes(mux) }
func (service) Start(context.Context) error { return nil }
func (service) Ready(context.Context) error { return nil }
func (service) Close() error                { return nil }

func run(mode, addr, modelDir string, batch, n int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if modelDir == "" {
		dir, err := os.MkdirTemp("", "serving-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := os.MkdirAll(filepath.Join(dir, "1"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "1", modelruntime.ModelFileONNX), onnxtest.MNISTMLP(1).ONNX, 0o644); err != nil {
			return err
		}
		modelDir = dir
	}
	m, err := modelrepo.NewManager(modelrepo.Config{Name: "mnist", Source: modelrepo.DirSource{Path: modelDir}, Loader: modelruntime.NewONNXLoader()})
	if err != nil {
		return err
	}
	if err := m.Poll(ctx); err != nil {
		return err
	}
	sv, err := m.Snapshot().Latest()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	switch mode {
	case "runtime":
		x := onnxtest.RandomBatch(1, batch, 784)
		in := map[string]modelruntime.Tensor{"input": {DataType: modelruntime.FP32, Shape: []int64{int64(batch), 784}, Data: x}}
		lat := make([]time.Duration, 0, n)
		start := time.Now()
		for range n {
			t0 := time.Now()
			if _, err := sv.Predict(ctx, in); err != nil {
				return err
			}
			lat = append(lat, time.Since(t0))
		}
		total := time.Since(start)
		slices.Sort(lat)
		return json.NewEncoder(os.Stdout).Encode(map[string]any{
			"mode": "runtime", "batch": batch, "requests": n,
			"p50_ms": ms(lat[len(lat)/2]), "p99_ms": ms(lat[len(lat)*99/100]), "rps": float64(n) / total.Seconds(),
		})
	case "rest":
		s := dataplane.NewServer(dataplane.Options{Log: log})
		if err := s.SetModel("mnist", dataplane.Backend{Manager: m}); err != nil {
			return err
		}
		tok := os.Getenv("SLUICE_TOKEN")
		if tok == "" {
			tok = "bench-token-0123456789abcdef"
		}
		a, err := auth.NewAuthenticator(ctx, auth.Config{Tokens: tok + "=system:admin"})
		if err != nil {
			return err
		}
		g := platform.NewGuard(a, (*auth.Profiles)(nil), platform.Rules, log)
		h := platform.NewHandler(platform.HandlerConfig{Registry: platform.NewRegistry(), Log: log, Guard: g}, service{s})
		fmt.Fprintf(os.Stderr, "rest: POST http://%s/v1/models/mnist:predict\n", addr)
		return platform.ListenAndServe(ctx, addr, h, log)
	case "bare":
		h := dataplane.BareHandler(sv)
		fmt.Fprintf(os.Stderr, "bare: POST http://%s/v1/models/mnist:predict\n", addr)
		return platform.ListenAndServe(ctx, addr, h, log)
	}
	return fmt.Errorf("-mode: want rest, bare or runtime, got %q", mode)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
