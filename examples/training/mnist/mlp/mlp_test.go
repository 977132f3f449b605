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

// A network of another hidden width (Net{Hidden: 16}) has its own parameter layout: the gradient still
// matches finite differences on every tensor, and NetFor recovers the width from the vector's length.
func TestNarrowNetGradient(t *testing.T) {
	t.Parallel()
	n := mlp.Net{Hidden: 16}
	p := n.Init(3)
	if len(p) != n.NumParams() || n.NumParams() != 784*16+16+16*10+10 {
		t.Fatalf("%d parameters", len(p))
	}
	if got, err := mlp.NetFor(len(p)); err != nil || got != n {
		t.Fatalf("NetFor = %+v, %v", got, err)
	}
	if _, err := mlp.NetFor(len(p) + 1); err == nil {
		t.Error("a length that is no network must be refused")
	}
	x := make([]float32, mlp.Inputs)
	for j := range x {
		x[j] = float32(j%7) / 7
	}
	xs, ys := [][]float32{x}, []int{4}
	grad, _, _, err := n.Gradient(p, xs, ys)
	if err != nil {
		t.Fatal(err)
	}
	loss := func() float64 { _, l, _, _ := n.Gradient(p, xs, ys); return l }
	for _, i := range []int{3, 784*16 + 5, 784*16 + 16 + 33, n.NumParams() - 1} {
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
	if _, _, _, err := n.Gradient(mlp.Init(1), xs, ys); err == nil {
		t.Error("parameters of the default width must be refused by a 16-wide net")
	}
}
