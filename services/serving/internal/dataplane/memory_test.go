package dataplane_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/serving/internal/dataplane"
	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime/onnxtest"
)

// TestPeakHeapWithinBudget sends many large bodies at once, some needing the generic parser, with
// a 64 MiB in-flight cap: requests past the cap are refused and the heap in use never grows by
// more than 3x the cap (the bound the README documents). HeapInuse does not include the race
// detector's shadow memory, so the bound holds under -race too.
func TestPeakHeapWithinBudget(t *testing.T) {
	const capBytes = 64 << 20
	root := t.TempDir()
	writeModel(t, filepath.Join(root, "m"), 1, onnxtest.Scale(2))
	s := dataplane.NewServer(dataplane.Options{MaxInflightBytes: capBytes})
	must(t, s.SetModel("m", dataplane.Backend{Manager: manager(t, "m", filepath.Join(root, "m"), &modelruntime.ONNXLoader{Instances: 2}, modelrepo.Policy{}, nil)}))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)

	generic := []byte(`{"instances":[NaN,` + strings.Repeat("1.25,", 200_000) + `1]}`) // ~1 MiB, generic parser
	fast := []byte(`{"instances":[` + strings.Repeat("1.25,", 600_000) + `1]}`)        // ~3 MiB, fast path

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	var ok200, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fast
			if i%2 == 0 {
				body = generic
			}
			for range 4 {
				resp, err := srv.Client().Post(srv.URL+"/v1/models/m:predict", "application/json", bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					ok200.Add(1)
				case http.StatusTooManyRequests:
					refused.Add(1)
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	grown := int64(peak.Load()) - int64(base)
	t.Logf("200: %d, 429: %d, peak heap growth %.1f MiB (cap %d MiB)", ok200.Load(), refused.Load(), float64(grown)/(1<<20), capBytes>>20)
	require.Positive(t, ok200.Load())
	require.Positive(t, refused.Load())
	require.LessOrEqual(t, grown, int64(3*capBytes))
	// Leases are released when the handlers return, just after the responses were sent.
	require.Eventually(t, func() bool { return s.InflightBytes() == 0 }, 10*time.Second, time.Millisecond)
}
