package dataplane_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/services/serving/internal/dataplane"
	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime/onnxtest"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.resp from the current output")

// bytesModel is a test model with a BYTES input (ONNX string tensors are not executable by
// gonnx): "text_bytes" echoes the input, "length" is each element's byte length.
type bytesModel struct{}

func (bytesModel) Inputs() []modelruntime.TensorSpec {
	return []modelruntime.TensorSpec{{Name: "text", DataType: modelruntime.Bytes, Shape: []int64{-1}}}
}
func (bytesModel) Outputs() []modelruntime.TensorSpec {
	return []modelruntime.TensorSpec{{Name: "text_bytes", DataType: modelruntime.Bytes, Shape: []int64{-1}}, {Name: "length", DataType: modelruntime.Int64, Shape: []int64{-1}}}
}
func (bytesModel) Close() error { return nil }
func (bytesModel) Predict(ctx context.Context, in map[string]modelruntime.Tensor) (map[string]modelruntime.Tensor, error) {
	if err := modelruntime.ValidateInputs(bytesModel{}.Inputs(), in); err != nil {
		return nil, err
	}
	t := in["text"]
	lens := make([]int64, len(t.Data.([][]byte)))
	for i, b := range t.Data.([][]byte) {
		lens[i] = int64(len(b))
	}
	return map[string]modelruntime.Tensor{"text_bytes": t, "length": {DataType: modelruntime.Int64, Shape: t.Shape, Data: lens}}, nil
}

type bytesLoader struct{}

func (bytesLoader) Load(context.Context, []byte) (modelruntime.Model, error) {
	return bytesModel{}, nil
}

func writeModel(t testing.TB, base string, version int, model []byte) {
	t.Helper()
	dir := filepath.Join(base, strconv.Itoa(version))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), model, 0o644); err != nil {
		t.Fatal(err)
	}
}

func manager(t testing.TB, name, base string, loader modelruntime.Loader, p modelrepo.Policy, labels map[string]int64) *modelrepo.Manager {
	t.Helper()
	m, err := modelrepo.NewManager(modelrepo.Config{Name: name, Source: modelrepo.DirSource{Path: base}, Loader: loader, Policy: p, Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// testServer hosts: mlp (4→3 softmax, versions 1 and 2, label stable=1), addmul (inputs a, b;
// outputs sum, product), text (BYTES), broken (version 1 declares opset 17 and fails to load).
func testServer(t testing.TB) *dataplane.Server {
	t.Helper()
	root := t.TempDir()
	onnx := &modelruntime.ONNXLoader{Instances: 2}
	s := dataplane.NewServer(dataplane.Options{Seed: 1})

	writeModel(t, filepath.Join(root, "mlp"), 1, onnxtest.NewMLP(1, []int{4, 3}, "x", "probabilities").ONNX)
	writeModel(t, filepath.Join(root, "mlp"), 2, onnxtest.NewMLP(2, []int{4, 3}, "x", "probabilities").ONNX)
	must(t, s.SetModel("mlp", dataplane.Backend{Manager: manager(t, "mlp", filepath.Join(root, "mlp"), onnx, modelrepo.Policy{All: true}, map[string]int64{"stable": 1})}))

	writeModel(t, filepath.Join(root, "addmul"), 1, onnxtest.AddMul(2))
	must(t, s.SetModel("addmul", dataplane.Backend{Manager: manager(t, "addmul", filepath.Join(root, "addmul"), onnx, modelrepo.Policy{}, nil)}))

	writeModel(t, filepath.Join(root, "text"), 1, []byte("unused"))
	must(t, s.SetModel("text", dataplane.Backend{Manager: manager(t, "text", filepath.Join(root, "text"), bytesLoader{}, modelrepo.Policy{}, nil)}))

	writeModel(t, filepath.Join(root, "broken"), 1, onnxtest.Opset(17))
	must(t, s.SetModel("broken", dataplane.Backend{Manager: manager(t, "broken", filepath.Join(root, "broken"), onnx, modelrepo.Policy{}, nil)}))
	return s
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestGolden replays testdata/golden/<case>.req (first line "METHOD /path", then the body)
// and compares status line and body byte for byte with <case>.resp.
func TestGolden(t *testing.T) {
	s := testServer(t)
	mux := http.NewServeMux()
	s.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	reqs, err := filepath.Glob("testdata/golden/*.req")
	if err != nil || len(reqs) == 0 {
		t.Fatalf("no golden requests: %v", err)
	}
	sort.Strings(reqs)
	for _, path := range reqs {
		name := strings.TrimSuffix(filepath.Base(path), ".req")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			line, body, _ := bytes.Cut(raw, []byte("\n"))
			method, target, ok := strings.Cut(string(line), " ")
			if !ok {
				t.Fatalf("%s: first line must be METHOD /path", path)
			}
			// Send the path as written (it may contain %3A) without re-encoding.
			req, err := http.NewRequest(method, srv.URL+target, bytes.NewReader(bytes.TrimRight(body, "\n")))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			gotAll := fmt.Sprintf("%d %s\n%s\n", resp.StatusCode, resp.Header.Get("Content-Type"), got)
			respPath := strings.TrimSuffix(path, ".req") + ".resp"
			if *update {
				must(t, os.WriteFile(respPath, []byte(gotAll), 0o644))
				return
			}
			want, err := os.ReadFile(respPath)
			if err != nil {
				t.Fatal(err)
			}
			if gotAll != string(want) {
				t.Errorf("response mismatch\n got: %s\nwant: %s", gotAll, want)
			}
		})
	}
}

func TestCanarySplit(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeModel(t, root, 1, onnxtest.NewMLP(1, []int{4, 3}, "x", "y").ONNX)
	writeModel(t, root, 2, onnxtest.NewMLP(2, []int{4, 3}, "x", "y").ONNX)
	m := manager(t, "mnist", root, &modelruntime.ONNXLoader{Instances: 1}, modelrepo.Policy{Latest: 2}, nil)
	s := dataplane.NewServer(dataplane.Options{Seed: 42})
	must(t, s.SetModel("mnist", dataplane.Backend{Manager: m, Version: 1, Percent: 80}, dataplane.Backend{Manager: m, Version: 2, Percent: 20}))
	counts := map[string]int{}
	for range 1000 {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v2/models/mnist/infer",
			strings.NewReader(`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`)))
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		_, after, _ := strings.Cut(rec.Body.String(), `"model_version":"`)
		v, _, _ := strings.Cut(after, `"`)
		counts[v]++
	}
	if c := counts["2"]; c < 150 || c > 250 {
		t.Fatalf("canary version 2 got %d of 1000 requests, want 200±50 (counts %v)", c, counts)
	}
	// Explicit versions bypass the split.
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/models/mnist/versions/2:predict", strings.NewReader(`{"instances":[[1,2,3,4]]}`)))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if err := s.SetModel("mnist", dataplane.Backend{Manager: m, Percent: 50}, dataplane.Backend{Manager: m, Percent: 40}); err == nil || !strings.Contains(err.Error(), "sum to 90") {
		t.Fatalf("SetModel with 90%%: %v", err)
	}
}

// TestHotLoadOverHTTP keeps sending requests while new versions are loaded and old ones
// unloaded; every request must succeed.
func TestHotLoadOverHTTP(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeModel(t, root, 1, onnxtest.NewMLP(1, []int{4, 3}, "x", "y").ONNX)
	m := manager(t, "m", root, &modelruntime.ONNXLoader{Instances: 1}, modelrepo.Policy{}, nil)
	s := dataplane.NewServer(dataplane.Options{})
	must(t, s.SetModel("m", dataplane.Backend{Manager: m}))
	srv := httptest.NewServer(s)
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan error, 4)
	served := make(chan string, 100000)
	for range 4 {
		go func() {
			for ctx.Err() == nil {
				resp, err := srv.Client().Post(srv.URL+"/v2/models/m/infer", "application/json",
					strings.NewReader(`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`))
				if err != nil {
					results <- err
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					results <- fmt.Errorf("status %d: %s", resp.StatusCode, body)
					return
				}
				served <- string(body)
			}
			results <- nil
		}()
	}
	waitFor := func(n int) {
		for range n {
			<-served
		}
	}
	for v := 2; v <= 5; v++ {
		waitFor(10)
		writeModel(t, root, v, onnxtest.NewMLP(uint64(v), []int{4, 3}, "x", "y").ONNX)
		must(t, m.Poll(context.Background()))
	}
	var last string
	for last == "" || !strings.Contains(last, `"model_version":"5"`) {
		last = <-served
	}
	cancel()
	for range 4 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
}
