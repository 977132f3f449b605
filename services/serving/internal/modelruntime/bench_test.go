package modelruntime_test

import (
	"fmt"
	"testing"

	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime/onnxtest"
)

// BenchmarkONNXPredict measures an in-process call of the MNIST-shaped MLP (784→128→10).
func BenchmarkONNXPredict(b *testing.B) {
	m := load(b, onnxtest.MNISTMLP(1).ONNX)
	for _, n := range []int{1, 32} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			in := map[string]modelruntime.Tensor{"input": {DataType: modelruntime.FP32, Shape: []int64{int64(n), 784}, Data: onnxtest.RandomBatch(1, n, 784)}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Predict(b.Context(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
