package control_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/serving/internal/control"
	"github.com/sluice-ml/sluice/services/serving/internal/dataplane"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime/onnxtest"
)

func writeVersion(t *testing.T, base string, v int, model []byte) {
	t.Helper()
	// Write the version directory elsewhere and rename it in, so a poll never sees it empty.
	tmp := filepath.Join(base, ".tmp-"+strconv.Itoa(v))
	require.NoError(t, os.MkdirAll(tmp, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "model.onnx"), model, 0o644))
	require.NoError(t, os.Rename(tmp, filepath.Join(base, strconv.Itoa(v))))
}

// TestRolloutUnderLoadHasNoErrors drives the Registry as the deployment workflow does (watch a
// new version, apply the new split) through 20 rollovers, canary splits and promotes while 8
// clients keep predicting the default version: every response must be 200 (the case
// rollout-404-under-load saw 404 between unloading the old version and moving traffic).
func TestRolloutUnderLoadHasNoErrors(t *testing.T) {
	base := t.TempDir()
	model := func(v int) []byte { return onnxtest.NewMLP(uint64(v), []int{4, 3}, "x", "y").ONNX }
	writeVersion(t, base, 1, model(1))
	server := dataplane.NewServer(dataplane.Options{Seed: 7})
	reg := control.NewRegistry(server, nil, &modelruntime.ONNXLoader{Instances: 2}, 5*time.Millisecond, nil)
	t.Cleanup(reg.Close)
	src := control.SourceSpec{StorageURI: "file://" + base}
	desired := func(targets ...control.Target) control.Desired {
		return control.Desired{Key: "ns/racehot", ModelName: "racehot", Targets: targets, Watch: &src}
	}
	target := func(v, percent int) control.Target {
		return control.Target{Source: src, Version: int64(v), Percent: percent}
	}
	ctx := t.Context()
	require.NoError(t, reg.Apply(ctx, desired(target(1, 100))))

	mux := http.NewServeMux()
	server.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	var requests, failures atomic.Int64
	var firstFailure atomic.Value
	loadCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/v1/models/racehot:predict"
			body := `{"instances":[[1,2,3,4]]}`
			if i%2 == 1 {
				path, body = "/v2/models/racehot/infer", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`
			}
			for loadCtx.Err() == nil {
				resp, err := srv.Client().Post(srv.URL+path, "application/json", strings.NewReader(body))
				if err != nil {
					if loadCtx.Err() == nil {
						firstFailure.CompareAndSwap(nil, err.Error())
						failures.Add(1)
					}
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				requests.Add(1)
				if resp.StatusCode != http.StatusOK {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, b))
				}
			}
		}()
	}
	// waitServed waits until n more requests were answered, so every step runs under traffic.
	waitServed := func(n int64) {
		target := requests.Load() + n
		require.Eventually(t, func() bool { return requests.Load() >= target }, 60*time.Second, time.Millisecond)
	}
	// waitSettled waits as the Watch activity does for version v to be AVAILABLE.
	waitSettled := func(v int) {
		require.Eventually(t, func() bool {
			m := reg.Manager("ns/racehot", src)
			out, ok := control.Settled(m)
			return ok && out.Version == int64(v) && !out.Failed
		}, 60*time.Second, 2*time.Millisecond, "version %d never settled", v)
	}
	for v := 2; v <= 21; v++ {
		waitServed(20)
		writeVersion(t, base, v, model(v))
		waitSettled(v)
		switch v % 4 {
		case 0: // canary at 20%, then promote
			require.NoError(t, reg.Apply(ctx, desired(target(v, 20), target(v-1, 80))))
			waitServed(20)
			require.NoError(t, reg.Apply(ctx, desired(target(v, 100))))
		case 1: // canary at 50%, then a canary change, then promote
			require.NoError(t, reg.Apply(ctx, desired(target(v, 50), target(v-1, 50))))
			waitServed(20)
			require.NoError(t, reg.Apply(ctx, desired(target(v, 90), target(v-1, 10))))
			waitServed(20)
			require.NoError(t, reg.Apply(ctx, desired(target(v, 100))))
		default: // plain rollover
			require.NoError(t, reg.Apply(ctx, desired(target(v, 100))))
		}
	}
	waitServed(20)
	stop()
	wg.Wait()
	t.Logf("%d requests across 20 rollovers, %d failures", requests.Load(), failures.Load())
	require.Zero(t, failures.Load(), "first failure: %v", firstFailure.Load())
	// The old versions were unloaded after traffic moved.
	snap := reg.Manager("ns/racehot", src).Snapshot()
	require.Len(t, snap.Available, 1)
	require.Contains(t, snap.Available, int64(21))
}

// TestFailedOnlyVersionIsVisible: a model whose only version fails to load is served on the TF
// status API as END with the error (case failed-load-invisible), and predict is 404.
func TestFailedOnlyVersionIsVisible(t *testing.T) {
	base := t.TempDir()
	writeVersion(t, base, 1, onnxtest.StringIdentity())
	server := dataplane.NewServer(dataplane.Options{})
	reg := control.NewRegistry(server, nil, &modelruntime.ONNXLoader{Instances: 1}, time.Hour, nil)
	t.Cleanup(reg.Close)
	m, err := reg.Ensure("ns/strid", "strid", control.SourceSpec{StorageURI: "file://" + base})
	require.NoError(t, err)
	require.NoError(t, m.Poll(t.Context()))

	rec := httptest.NewRecorder()
	server.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/models/strid", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	body := rec.Body.String()
	require.Contains(t, body, `{"version":"1","state":"END","status":{"error_code":"INVALID_ARGUMENT"`)
	require.Contains(t, body, "STRING")

	rec = httptest.NewRecorder()
	server.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/models/strid:predict", strings.NewReader(`{"instances":["a"]}`)))
	require.Equal(t, http.StatusNotFound, rec.Code, rec.Body.String())
}
