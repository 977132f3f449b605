package dataplane_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/sluice-ml/sluice/services/serving/internal/dataplane"
	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime/onnxtest"
)

// TestRecycledTensorsDoNotMix sends concurrent :predict requests of distinct values and sizes
// (the numeric fast path decodes each into a recycled tensor) and checks that every response
// holds its own request's predictions.
func TestRecycledTensorsDoNotMix(t *testing.T) {
	root := t.TempDir()
	writeModel(t, filepath.Join(root, "scale"), 1, onnxtest.Scale(2))
	m := manager(t, "scale", filepath.Join(root, "scale"), &modelruntime.ONNXLoader{Instances: 4}, modelrepo.Policy{}, nil)
	s := dataplane.NewServer(dataplane.Options{})
	must(t, s.SetModel("scale", dataplane.Backend{Manager: m}))
	mux := http.NewServeMux()
	s.Routes(mux)
	product := httptest.NewServer(mux)
	defer product.Close()
	url := product.URL + "/v1/models/scale:predict"
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				n := 500 + 7*((g+i)%3) // a few sizes, within the pool's 25% reuse window
				b := []byte(`{"instances":[`)
				want := make([]float64, n)
				for j := range n {
					if j > 0 {
						b = append(b, ',')
					}
					v := float64(g*100000 + i*1000 + j)
					b = strconv.AppendFloat(b, v, 'g', -1, 32)
					want[j] = 2 * v
				}
				b = append(b, "]}"...)
				resp, err := http.Post(url, "application/json", bytes.NewReader(b))
				if err != nil {
					errs <- err
					return
				}
				var got struct{ Predictions []float64 }
				err = json.NewDecoder(resp.Body).Decode(&got)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d: %v", resp.StatusCode, err)
					return
				}
				for j := range want {
					if j >= len(got.Predictions) || got.Predictions[j] != want[j] {
						errs <- fmt.Errorf("client %d request %d: %d predictions, element %d differs from %v", g, i, len(got.Predictions), j, want[j])
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
