package onnxmodel_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/libs/onnxmodel"
)

func TestWriteMLPValidation(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		layers []onnxmodel.Dense
		want   string
	}{
		"no layers":      {nil, "layers: must have at least one layer"},
		"ragged weights": {[]onnxmodel.Dense{{W: [][]float32{{1, 2}, {3}}, B: []float32{0, 0}}}, "layers[0].W[1]: has 1 columns, want 2"},
		"chain mismatch": {[]onnxmodel.Dense{{W: [][]float32{{1, 2}}, B: []float32{0, 0}}, {W: [][]float32{{1}}, B: []float32{0}}}, "layers[1].W: has 1 rows, want 2"},
		"activation":     {[]onnxmodel.Dense{{W: [][]float32{{1}}, B: []float32{0}, Activation: "tanh"}}, `layers[0].Activation: "tanh" is not one of`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			err := onnxmodel.WriteMLP(&buf, tc.layers, "x", "y")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Fatal("wrote bytes for an invalid model")
			}
		})
	}
}

func TestWriteMLPDeterministic(t *testing.T) {
	t.Parallel()
	layers := []onnxmodel.Dense{{W: [][]float32{{1, 2}, {3, 4}}, B: []float32{0.5, -0.5}, Activation: onnxmodel.ActivationReLU}, {W: [][]float32{{1}, {1}}, B: []float32{0}, Activation: onnxmodel.ActivationSoftmax}}
	var a, b bytes.Buffer
	if err := onnxmodel.WriteMLP(&a, layers, "x", "y"); err != nil {
		t.Fatal(err)
	}
	if err := onnxmodel.WriteMLP(&b, layers, "x", "y"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) || a.Len() == 0 {
		t.Fatal("encoding is not deterministic")
	}
	for _, s := range []string{"Gemm", "Relu", "Softmax", "layers.0.weight", "layers.1.bias"} {
		if !bytes.Contains(a.Bytes(), []byte(s)) {
			t.Errorf("encoding lacks %q", s)
		}
	}
}
