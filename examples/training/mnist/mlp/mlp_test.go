package mlp_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sluice-ml/sluice/examples/training/mnist/mlp"
)

// TestGradientMatchesFiniteDifferences checks backpropagation against
// numerical derivatives of the loss on a few parameters of every tensor.
func TestGradientMatchesFiniteDifferences(t *testing.T) {
	t.Parallel()
	p := mlp.Init(7)
	r := rand.New(rand.NewPCG(1, 2))
	xs := make([][]float32, 3)
	for i := range xs {
		xs[i] = make([]float32, mlp.Inputs)
		for j := range xs[i] {
			if r.IntN(4) == 0 {
				xs[i][j] = r.Float32()
			}
		}
	}
	ys := []int{3, 7, 0}
	grad, _, err := mlp.Gradient(p, xs, ys)
	if err != nil {
		t.Fatal(err)
	}
	loss := func() float64 { _, l, _ := mlp.Gradient(p, xs, ys); return l }
	for _, i := range []int{5, 784*128 + 3, 784*128 + 128 + 17, mlp.NumParams - 2} {
		old := p[i]
		const h = 1e-2
		p[i] = old + h
		up := loss()
		p[i] = old - h
		down := loss()
		p[i] = old
		num := (up - down) / (2 * h)
		if math.Abs(num-float64(grad[i])) > 1e-3+0.05*math.Abs(num) {
			t.Errorf("param %d: backprop %.6f, numeric %.6f", i, grad[i], num)
		}
	}
}

func TestGradientRejectsBadBatch(t *testing.T) {
	t.Parallel()
	if _, _, err := mlp.Gradient(mlp.Init(1), [][]float32{make([]float32, mlp.Inputs)}, []int{10}); err == nil {
		t.Error("label 10 must be rejected")
	}
	if _, _, err := mlp.Gradient(mlp.Init(1), nil, nil); err == nil {
		t.Error("empty batch must be rejected")
	}
}
