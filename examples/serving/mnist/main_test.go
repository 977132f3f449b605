package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/examples/training/mnist/mnistdata"
	"github.com/sluice-ml/sluice/examples/training/mnist/trainer"
	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/serving/app"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Run(m)) }

// TestServeTrainedMNIST trains the real example trainer in-process (single worker), exports the
// model to S3 as version 1, deploys it through the serving REST API, classifies the 10,000 real
// MNIST test images through TF Serving :predict (>= 90% accuracy), then exports a second version,
// which the deployment rolls out as a 20% canary, measured over 1,000 KServe v2 requests.
func TestServeTrainedMNIST(t *testing.T) {
	ctx := t.Context()
	st := devstacktest.Stack(t)
	bus, err := events.Connect(ctx, st.NATSURL, "serving-mnist-test", nil)
	require.NoError(t, err)
	t.Cleanup(bus.Close)
	require.NoError(t, bus.EnsureStreams(ctx))
	tc, err := wf.Dial(ctx, wf.Config{HostPort: st.TemporalAddress, Namespace: st.Namespace}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	store, err := artifacts.New(artifacts.Config{Endpoint: st.S3Endpoint, AccessKey: st.S3AccessKey, SecretKey: st.S3SecretKey, Bucket: st.S3Bucket, Region: st.S3Region})
	require.NoError(t, err)
	deps := &platform.Deps{Log: slog.New(slog.DiscardHandler), Bus: bus, Temporal: tc, Namespace: st.Namespace, Artifacts: store,
		DataDir: t.TempDir(), RuntimeKind: "local", Getenv: func(string) string { return "" }}
	cfg, err := app.ConfigFromEnv(deps.Getenv)
	require.NoError(t, err)
	cfg.PollInterval = 200 * time.Millisecond
	cfg.TaskQueue = "serving-mnist-test"
	cfg.GRPCAddr = "127.0.0.1:0" // a free port: never the default one a running `sluice dev` holds
	a, err := app.New(cfg, deps)
	require.NoError(t, err)
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() { _ = a.Close() })
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	// Train (single process, no TF_CONFIG) and export version 1.
	dataDir, err := mnistdata.Dir()
	require.NoError(t, err)
	exportDir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, trainer.Run(ctx, trainer.Config{ModelDir: t.TempDir(), ExportDir: exportDir, ModelVersion: "1", DataDir: dataDir, Out: &out}))
	t.Logf("trainer: %s", strings.TrimSpace(out.String()))
	prefix := "examples/serving-mnist/export"
	upload := func(version string) {
		_, err := store.PutDir(ctx, prefix+"/"+version, filepath.Join(exportDir, "1"))
		require.NoError(t, err)
	}
	upload("1")

	body := fmt.Sprintf(`apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: mnist, namespace: examples}
spec:
  predictor:
    canaryTrafficPercent: 20
    model:
      modelFormat: {name: onnx}
      storageUri: %s
`, store.URI(prefix))
	resp, err := http.Post(srv.URL+"/apis/serving/v1/namespaces/examples/deployments", "application/yaml", strings.NewReader(body))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(b))

	_, test, err := mnistdata.Load(dataDir)
	require.NoError(t, err)
	c := NewClient(srv.URL, "mnist")
	waitVersions(t, c, test, "1")
	res, err := c.Classify(ctx, test, 100)
	require.NoError(t, err)
	t.Logf("served accuracy over %d real MNIST test images: %.4f", res.Images, res.Accuracy())
	require.Equal(t, 10000, res.Images)
	require.GreaterOrEqual(t, res.Accuracy(), 0.90)

	// A second exported version takes 20% of the traffic.
	upload("2")
	waitVersions(t, c, test, "1", "2")
	counts, err := c.VersionSplit(ctx, test, 1000)
	require.NoError(t, err)
	t.Logf("canary split over 1000 v2 requests: %v", counts)
	require.InDelta(t, 200, counts["2"], 50)
	require.Equal(t, 1000, counts["1"]+counts["2"])
}

// waitVersions waits until the versions answering v2 requests are exactly want.
func waitVersions(t *testing.T, c *Client, set *mnistdata.Set, want ...string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		counts, err := c.VersionSplit(ctx, set, 40)
		cancel()
		if err == nil && len(counts) == len(want) {
			ok := true
			for _, v := range want {
				ok = ok && counts[v] > 0
			}
			if ok {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("model never served versions %v", want)
}
