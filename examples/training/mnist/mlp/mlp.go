// Package mlp is the multilayer perceptron trained by the MNIST example:
// 784 inputs, one ReLU hidden layer (128 units by default, Net.Hidden
// otherwise), softmax over 10 outputs, cross-entropy loss. Parameters live
// in one flat []float32 so they can be sharded across parameter servers by
// range.
package mlp

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Layer sizes; Hidden is the default hidden width.
const (
	Inputs  = 784
	Hidden  = 128
	Outputs = 10
)

// Offsets of each tensor in the flat parameter vector of the default
// network: W1 [Inputs][Hidden] row-major, b1 [Hidden], W2 [Hidden][Outputs]
// row-major, b2 [Outputs].
const (
	offW1     = 0
	offB1     = offW1 + Inputs*Hidden
	offW2     = offB1 + Hidden
	offB2     = offW2 + Hidden*Outputs
	NumParams = offB2 + Outputs
)

// Net is a 784→Hidden→10 network; the zero value has the default Hidden.
type Net struct {
	Hidden int
}

// Default is the 784→128→10 network the package-level functions use.
var Default = Net{Hidden: Hidden}

func (n Net) hidden() int {
	if n.Hidden <= 0 {
		return Hidden
	}
	return n.Hidden
}

// NumParams is the length of the network's flat parameter vector.
func (n Net) NumParams() int {
	h := n.hidden()
	return Inputs*h + h + h*Outputs + Outputs
}

// offsets returns the starts of W1, b1, W2 and b2 and the end.
func (n Net) offsets() (w1, b1, w2, b2, end int) {
	h := n.hidden()
	b1 = Inputs * h
	w2 = b1 + h
	b2 = w2 + h*Outputs
	return 0, b1, w2, b2, b2 + Outputs
}

// NetFor returns the network whose parameter vector has numParams entries.
func NetFor(numParams int) (Net, error) {
	h := (numParams - Outputs) / (Inputs + 1 + Outputs)
	n := Net{Hidden: h}
	if h <= 0 || n.NumParams() != numParams {
		return Net{}, fmt.Errorf("mlp: %d parameters are not a 784→h→10 network", numParams)
	}
	return n, nil
}

// Init returns freshly initialised parameters of the default network.
func Init(seed uint64) []float32 { return Default.Init(seed) }

// Predict returns the default network's most probable digit for x.
func Predict(p, x []float32) int { return Default.Predict(p, x) }

// Gradient is Default.Gradient without the count of correct predictions.
func Gradient(p []float32, xs [][]float32, ys []int) (grad []float32, loss float64, err error) {
	grad, loss, _, err = Default.Gradient(p, xs, ys)
	return grad, loss, err
}

// Layers returns the default network's weight matrices and bias vectors.
func Layers(p []float32) (w1 [][]float32, b1 []float32, w2 [][]float32, b2 []float32) {
	return Default.Layers(p)
}

// Init returns freshly initialised parameters (He-scaled uniform weights,
// zero biases) drawn from a generator seeded with seed.
func (n Net) Init(seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	h := n.hidden()
	offW1, _, offW2, _, end := n.offsets()
	p := make([]float32, end)
	fill := func(off, n, fanIn int) {
		limit := math.Sqrt(6.0 / float64(fanIn))
		for i := range n {
			p[off+i] = float32((r.Float64()*2 - 1) * limit)
		}
	}
	fill(offW1, Inputs*h, Inputs)
	fill(offW2, h*Outputs, h)
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
func (n Net) forward(p, x, h, out []float32) {
	hid := n.hidden()
	offW1, offB1, offW2, offB2, end := n.offsets()
	w1, b1, w2, b2 := p[offW1:offB1], p[offB1:offW2], p[offW2:offB2], p[offB2:end]
	copy(h, b1)
	for i, xi := range x {
		if xi == 0 {
			continue // MNIST is mostly background
		}
		row := w1[i*hid : (i+1)*hid]
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
func (n Net) Predict(p, x []float32) int {
	h := make([]float32, n.hidden())
	out := make([]float32, Outputs)
	n.forward(p, x, h, out)
	return argmax(out)
}

func argmax(v []float32) int {
	best := 0
	for k := range v {
		if v[k] > v[best] {
			best = k
		}
	}
	return best
}

// Gradient returns the gradient of the mean cross-entropy loss over the
// batch (xs[i] labelled ys[i]) with respect to p, the mean loss, and how
// many examples of the batch the parameters already classify correctly.
func (n Net) Gradient(p []float32, xs [][]float32, ys []int) (grad []float32, loss float64, correct int, err error) {
	if len(xs) != len(ys) || len(xs) == 0 {
		return nil, 0, 0, fmt.Errorf("mlp: batch of %d inputs and %d labels", len(xs), len(ys))
	}
	hid := n.hidden()
	offW1, offB1, offW2, offB2, end := n.offsets()
	if len(p) != end {
		return nil, 0, 0, fmt.Errorf("mlp: %d parameters, want %d (hidden %d)", len(p), end, hid)
	}
	g := make([]float32, end)
	gw1, gb1, gw2, gb2 := g[offW1:offB1], g[offB1:offW2], g[offW2:offB2], g[offB2:end]
	w2 := p[offW2:offB2]
	h := make([]float32, hid)
	out := make([]float32, Outputs)
	dh := make([]float32, hid)
	scale := 1 / float32(len(xs))
	for i, x := range xs {
		y := ys[i]
		if y < 0 || y >= Outputs {
			return nil, 0, 0, fmt.Errorf("mlp: label %d out of range", y)
		}
		n.forward(p, x, h, out)
		if argmax(out) == y {
			correct++
		}
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
			grow := gw1[i*hid : (i+1)*hid]
			for j, d := range dh {
				grow[j] += xi * d
			}
		}
	}
	return g, loss / float64(len(xs)), correct, nil
}

// Layers returns the parameters as weight matrices and bias vectors,
// W [in][out] and B [out], for export.
func (n Net) Layers(p []float32) (w1 [][]float32, b1 []float32, w2 [][]float32, b2 []float32) {
	hid := n.hidden()
	offW1, offB1, offW2, offB2, end := n.offsets()
	w1 = make([][]float32, Inputs)
	for i := range w1 {
		w1[i] = append([]float32(nil), p[offW1+i*hid:offW1+(i+1)*hid]...)
	}
	w2 = make([][]float32, hid)
	for j := range w2 {
		w2[j] = append([]float32(nil), p[offW2+j*Outputs:offW2+(j+1)*Outputs]...)
	}
	return w1, append([]float32(nil), p[offB1:offW2]...), w2, append([]float32(nil), p[offB2:end]...)
}
