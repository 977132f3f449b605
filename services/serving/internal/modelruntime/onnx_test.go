package modelruntime_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime/onnxtest"
)

func load(t testing.TB, b []byte) modelruntime.Model {
	t.Helper()
	m, err := modelruntime.NewONNXLoader().Load(context.Background(), b)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

func TestONNXMLPMatchesReference(t *testing.T) {
	t.Parallel()
	mlp := onnxtest.MNISTMLP(7)
	m := load(t, mlp.ONNX)

	wantIn := []modelruntime.TensorSpec{{Name: "input", DataType: modelruntime.FP32, Shape: []int64{-1, 784}}}
	wantOut := []modelruntime.TensorSpec{{Name: "probabilities", DataType: modelruntime.FP32, Shape: []int64{-1, 10}}}
	if got := m.Inputs(); len(got) != 1 || got[0].Name != wantIn[0].Name || got[0].DataType != wantIn[0].DataType || modelruntime.FormatShape(got[0].Shape) != "[-1,784]" {
		t.Fatalf("Inputs() = %+v, want %+v", got, wantIn)
	}
	if got := m.Outputs(); len(got) != 1 || got[0].Name != wantOut[0].Name || modelruntime.FormatShape(got[0].Shape) != "[-1,10]" {
		t.Fatalf("Outputs() = %+v, want %+v", got, wantOut)
	}

	for _, n := range []int{1, 3, 32} {
		x := onnxtest.RandomBatch(uint64(n), n, 784)
		out, err := m.Predict(t.Context(), map[string]modelruntime.Tensor{
			"input": {DataType: modelruntime.FP32, Shape: []int64{int64(n), 784}, Data: x},
		})
		if err != nil {
			t.Fatalf("batch %d: Predict: %v", n, err)
		}
		got := out["probabilities"]
		if modelruntime.FormatShape(got.Shape) != modelruntime.FormatShape([]int64{int64(n), 10}) || got.DataType != modelruntime.FP32 {
			t.Fatalf("batch %d: output %s %s", n, got.DataType, modelruntime.FormatShape(got.Shape))
		}
		want := mlp.Forward(x, n)
		for i, v := range got.Data.([]float32) {
			if math.Abs(float64(v)-want[i]) > 1e-5 {
				t.Fatalf("batch %d: element %d = %v, want %v", n, i, v, want[i])
			}
		}
	}
}

func TestONNXNamedInputsAndOutputs(t *testing.T) {
	t.Parallel()
	m := load(t, onnxtest.AddMul(2))
	out, err := m.Predict(t.Context(), map[string]modelruntime.Tensor{
		"a": {DataType: modelruntime.FP32, Shape: []int64{2, 2}, Data: []float32{1, 2, 3, 4}},
		"b": {DataType: modelruntime.FP32, Shape: []int64{2, 2}, Data: []float32{10, 20, 30, 40}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := out["sum"].Data.([]float32); got[0] != 11 || got[3] != 44 {
		t.Errorf("sum = %v", got)
	}
	if got := out["product"].Data.([]float32); got[1] != 40 || got[2] != 90 {
		t.Errorf("product = %v", got)
	}
}

func TestONNXZeroBatch(t *testing.T) {
	t.Parallel()
	m := load(t, onnxtest.MNISTMLP(1).ONNX)
	out, err := m.Predict(t.Context(), map[string]modelruntime.Tensor{
		"input": {DataType: modelruntime.FP32, Shape: []int64{0, 784}, Data: []float32{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := out["probabilities"]; modelruntime.FormatShape(got.Shape) != "[0,10]" || len(got.Data.([]float32)) != 0 {
		t.Fatalf("got %+v", got)
	}
}

func TestONNXInvalidInputs(t *testing.T) {
	t.Parallel()
	m := load(t, onnxtest.MNISTMLP(1).ONNX)
	cases := map[string]struct {
		in   map[string]modelruntime.Tensor
		want string
	}{
		"missing input": {map[string]modelruntime.Tensor{}, `input "input": missing`},
		"wrong dtype": {map[string]modelruntime.Tensor{"input": {DataType: modelruntime.FP64, Shape: []int64{1, 784}, Data: make([]float64, 784)}},
			`input "input": datatype FP64 does not match the model's FP32`},
		"wrong width": {map[string]modelruntime.Tensor{"input": {DataType: modelruntime.FP32, Shape: []int64{1, 783}, Data: make([]float32, 783)}},
			`input "input": shape [1,783] does not match the model's [-1,784]`},
		"short data": {map[string]modelruntime.Tensor{"input": {DataType: modelruntime.FP32, Shape: []int64{2, 784}, Data: make([]float32, 784)}},
			`input "input": has 784 elements, shape [2,784] needs 1568`},
		"extra input": {map[string]modelruntime.Tensor{
			"input": {DataType: modelruntime.FP32, Shape: []int64{1, 784}, Data: make([]float32, 784)},
			"bogus": {DataType: modelruntime.FP32, Shape: []int64{1}, Data: make([]float32, 1)}},
			`input "bogus": not an input of the model`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := m.Predict(t.Context(), tc.in)
			if !errors.Is(err, modelruntime.ErrInvalidInput) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalidInput containing %q", err, tc.want)
			}
		})
	}
}

func TestONNXLoadFailures(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		model []byte
		want  string
	}{
		"garbage":     {[]byte("this is not a protobuf"), "decode ONNX protobuf"},
		"empty":       {nil, "ONNX model has no graph"},
		"wrong opset": {onnxtest.Opset(17), "opset 17"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := modelruntime.NewONNXLoader().Load(t.Context(), tc.model)
			if !errors.Is(err, modelruntime.ErrInvalidModel) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalidModel containing %q", err, tc.want)
			}
		})
	}
}

func TestONNXConcurrentPredict(t *testing.T) {
	t.Parallel()
	mlp := onnxtest.NewMLP(3, []int{16, 8, 4}, "x", "y")
	m, err := (&modelruntime.ONNXLoader{Instances: 2}).Load(t.Context(), mlp.ONNX)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				n := 1 + (g+i)%5
				x := onnxtest.RandomBatch(uint64(g*100+i), n, 16)
				out, err := m.Predict(context.Background(), map[string]modelruntime.Tensor{"x": {DataType: modelruntime.FP32, Shape: []int64{int64(n), 16}, Data: x}})
				if err != nil {
					errs <- err
					return
				}
				want := mlp.Forward(x, n)
				for j, v := range out["y"].Data.([]float32) {
					if math.Abs(float64(v)-want[j]) > 1e-5 {
						errs <- errors.New("concurrent result mismatch")
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
