// Package mlp is the 784→128→10 multilayer perceptron trained by the MNIST
// example: ReLU hidden layer, softmax output, cross-entropy loss. Parameters
// live in one flat []float32 so they can be sharded across parameter
// servers by range.
package mlp

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Layer sizes.
const (
	Inputs  = 784
	Hidden  = 128
	Outputs = 10
)

// Offsets of each tensor in the flat parameter vector: W1 [Inputs][Hidden]
// row-major, b1 [Hidden], W2 [Hidden][Outputs] row-major, b2 [Outputs].
const (
	offW1     = 0
	offB1     = offW1 + Inputs*Hidden
	offW2     = offB1 + Hidden
	offB2     = offW2 + Hidden*Outputs
	NumParams = offB2 + Outputs
)

// Init returns freshly initialised parameters (He-scaled uniform weights,
// zero biases) drawn from a generator seeded with seed.
func Init(seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := make([]float32, NumParams)
	fill := func(off, n, fanIn int) {
		limit := math.Sqrt(6.0 / float64(fanIn))
		for i := range n {
			p[off+i] = float32((r.Float64()*2 - 1) * limit)
		}
	}
	fill(offW1, Inputs*Hidden, Inputs)
	fill(offW2, Hidden*Outputs, Hidden)
	return p
}

// Pixels converts a raw 28×28 image (bytes 0-255) into the model input
// (float32 in [0,1]), the scaling the exported ONNX model expects.
func Pixels(raw []byte, dst []float32) {
	for i, b := range raw {
		dst[i] = float32(b) / 255
	}
}

// forward computes hidden activations h and output probabilities out for
// input x.
func forward(p, x, h, out []float32) {
	w1, b1, w2, b2 := p[offW1:offB1], p[offB1:offW2], p[offW2:offB2], p[offB2:NumParams]
	copy(h, b1)
	for i, xi := range x {
		if xi == 0 {
			continue // MNIST is mostly background
		}
		row := w1[i*Hidden : (i+1)*Hidden]
		for j, w := range row {
			h[j] += xi * w
		}
	}
	for j := range h {
		if h[j] < 0 {
			h[j] = 0
		}
	}
	copy(out, b2)
	for j, hj := range h {
		if hj == 0 {
			continue
		}
		row := w2[j*Outputs : (j+1)*Outputs]
		for k, w := range row {
			out[k] += hj * w
		}
	}
	softmax(out)
}

func softmax(v []float32) {
	m := v[0]
	for _, x := range v[1:] {
		m = max(m, x)
	}
	var sum float64
	for i, x := range v {
		e := math.Exp(float64(x - m))
		v[i] = float32(e)
		sum += e
	}
	for i := range v {
		v[i] = float32(float64(v[i]) / sum)
	}
}

// Predict returns the most probable digit for input x.
func Predict(p, x []float32) int {
	h := make([]float32, Hidden)
	out := make([]float32, Outputs)
	forward(p, x, h, out)
	best := 0
	for k := range out {
		if out[k] > out[best] {
			best = k
		}
	}
	return best
}

// Gradient returns the gradient of the mean cross-entropy loss over the
// batch (xs[i] labelled ys[i]) with respect to p, and the mean loss.
func Gradient(p []float32, xs [][]float32, ys []int) (grad []float32, loss float64, err error) {
	if len(xs) != len(ys) || len(xs) == 0 {
		return nil, 0, fmt.Errorf("mlp: batch of %d inputs and %d labels", len(xs), len(ys))
	}
	if len(p) != NumParams {
		return nil, 0, fmt.Errorf("mlp: %d parameters, want %d", len(p), NumParams)
	}
	g := make([]float32, NumParams)
	gw1, gb1, gw2, gb2 := g[offW1:offB1], g[offB1:offW2], g[offW2:offB2], g[offB2:NumParams]
	w2 := p[offW2:offB2]
	h := make([]float32, Hidden)
	out := make([]float32, Outputs)
	dh := make([]float32, Hidden)
	scale := 1 / float32(len(xs))
	for n, x := range xs {
		y := ys[n]
		if y < 0 || y >= Outputs {
			return nil, 0, fmt.Errorf("mlp: label %d out of range", y)
		}
		forward(p, x, h, out)
		loss -= math.Log(math.Max(float64(out[y]), 1e-12))
		out[y] -= 1 // dL/dlogits = softmax - onehot
		for k := range out {
			out[k] *= scale
			gb2[k] += out[k]
		}
		for j, hj := range h {
			if hj == 0 {
				dh[j] = 0
				continue
			}
			row := w2[j*Outputs : (j+1)*Outputs]
			grow := gw2[j*Outputs : (j+1)*Outputs]
			var s float32
			for k, d := range out {
				grow[k] += hj * d
				s += row[k] * d
			}
			dh[j] = s
			gb1[j] += s
		}
		for i, xi := range x {
			if xi == 0 {
				continue
			}
			grow := gw1[i*Hidden : (i+1)*Hidden]
			for j, d := range dh {
				grow[j] += xi * d
			}
		}
	}
	return g, loss / float64(len(xs)), nil
}

// Layers returns the parameters as weight matrices and bias vectors,
// W [in][out] and B [out], for export.
func Layers(p []float32) (w1 [][]float32, b1 []float32, w2 [][]float32, b2 []float32) {
	w1 = make([][]float32, Inputs)
	for i := range w1 {
		w1[i] = append([]float32(nil), p[offW1+i*Hidden:offW1+(i+1)*Hidden]...)
	}
	w2 = make([][]float32, Hidden)
	for j := range w2 {
		w2[j] = append([]float32(nil), p[offW2+j*Outputs:offW2+(j+1)*Outputs]...)
	}
	return w1, append([]float32(nil), p[offB1:offW2]...), w2, append([]float32(nil), p[offB2:NumParams]...)
}
