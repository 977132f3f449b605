package dataplane_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/sluice-ml/sluice/services/serving/internal/dataplane"
	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime/onnxtest"
)

// BenchmarkMNIST compares, for the MNIST-shaped MLP (784→128→10) at batch 1 and 32:
// runtime = in-process Predict; bare = a minimal net/http handler that decodes the same row
// JSON with encoding/json and calls the same Predict; rest = the full TF Serving REST path
// (:predict, row format). Both HTTP variants use a real loopback connection in this process
// (a load generator in a second process is still to come).
func BenchmarkMNIST(b *testing.B) {
	root := b.TempDir()
	writeModel(b, filepath.Join(root, "mnist"), 1, onnxtest.MNISTMLP(1).ONNX)
	m := manager(b, "mnist", filepath.Join(root, "mnist"), modelruntime.NewONNXLoader(), modelrepo.Policy{}, nil)
	s := dataplane.NewServer(dataplane.Options{})
	must(b, s.SetModel("mnist", dataplane.Backend{Manager: m}))
	sv, err := m.Snapshot().Latest()
	must(b, err)

	for _, n := range []int{1, 32} {
		x := onnxtest.RandomBatch(1, n, 784)
		in := map[string]modelruntime.Tensor{"input": {DataType: modelruntime.FP32, Shape: []int64{int64(n), 784}, Data: x}}
		body := rowBody(x, n, 784)

		b.Run(fmt.Sprintf("runtime/batch=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := sv.Predict(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
		bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var req struct {
				Instances [][]float32 `json:"instances"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			flat := make([]float32, 0, len(req.Instances)*784)
			for _, row := range req.Instances {
				flat = append(flat, row...)
			}
			out, err := sv.Predict(r.Context(), map[string]modelruntime.Tensor{"input": {DataType: modelruntime.FP32, Shape: []int64{int64(len(req.Instances)), 784}, Data: flat}})
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"predictions": out["probabilities"].Data})
		}))
		b.Run(fmt.Sprintf("bare/batch=%d", n), func(b *testing.B) { benchPost(b, bare.Client(), bare.URL+"/predict", body) })
		bare.Close()
		rest := httptest.NewServer(s)
		b.Run(fmt.Sprintf("rest/batch=%d", n), func(b *testing.B) { benchPost(b, rest.Client(), rest.URL+"/v1/models/mnist:predict", body) })
		rest.Close()
	}
}

func rowBody(x []float32, n, width int) []byte {
	var rows bytes.Buffer
	rows.WriteString(`{"instances":[`)
	for r := range n {
		if r > 0 {
			rows.WriteByte(',')
		}
		rows.WriteByte('[')
		for i, v := range x[r*width : (r+1)*width] {
			if i > 0 {
				rows.WriteByte(',')
			}
			rows.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
		}
		rows.WriteByte(']')
	}
	rows.WriteString(`]}`)
	return rows.Bytes()
}

func benchPost(b *testing.B, c *http.Client, url string, body []byte) {
	for b.Loop() {
		resp, err := c.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
