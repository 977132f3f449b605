// Package onnxtest builds small real ONNX models for tests and benchmarks of the serving
// runtime: an MNIST-shaped MLP (written by libs/onnxmodel) with a pure-Go reference forward
// pass, and a two-input/two-output elementwise graph encoded with gonnx's ONNX protobuf types.
package onnxtest

import (
	"bytes"
	"math"
	"math/rand/v2"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"github.com/sluice-ml/sluice/libs/onnxmodel"
	"google.golang.org/protobuf/proto"
)

// MLP is a dense network with its ONNX encoding.
type MLP struct {
	Layers []onnxmodel.Dense
	ONNX   []byte
}

// MNISTMLP returns a 784→128 (relu) →10 (softmax) MLP with weights drawn from seed, input
// "input" and output "probabilities".
func MNISTMLP(seed uint64) MLP {
	return NewMLP(seed, []int{784, 128, 10}, "input", "probabilities")
}

// NewMLP returns an MLP with the given layer widths (relu between layers, softmax last).
func NewMLP(seed uint64, widths []int, input, output string) MLP {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var layers []onnxmodel.Dense
	for k := 0; k+1 < len(widths); k++ {
		in, out := widths[k], widths[k+1]
		scale := float32(1 / math.Sqrt(float64(in)))
		w := make([][]float32, in)
		for i := range w {
			w[i] = make([]float32, out)
			for j := range w[i] {
				w[i][j] = (r.Float32()*2 - 1) * scale
			}
		}
		b := make([]float32, out)
		for j := range b {
			b[j] = (r.Float32()*2 - 1) * 0.1
		}
		act := onnxmodel.ActivationReLU
		if k+2 == len(widths) {
			act = onnxmodel.ActivationSoftmax
		}
		layers = append(layers, onnxmodel.Dense{W: w, B: b, Activation: act})
	}
	var buf bytes.Buffer
	if err := onnxmodel.WriteMLP(&buf, layers, input, output); err != nil {
		panic(err)
	}
	return MLP{Layers: layers, ONNX: buf.Bytes()}
}

// Forward computes the network on a row-major batch [n, in] in float64 and returns [n, out].
func (m MLP) Forward(x []float32, n int) []float64 {
	cur := make([]float64, len(x))
	for i, v := range x {
		cur[i] = float64(v)
	}
	for _, l := range m.Layers {
		in, out := len(l.W), len(l.B)
		next := make([]float64, n*out)
		for r := range n {
			row := next[r*out : (r+1)*out]
			for j := range out {
				s := float64(l.B[j])
				for i := range in {
					s += cur[r*in+i] * float64(l.W[i][j])
				}
				row[j] = s
			}
			switch l.Activation {
			case onnxmodel.ActivationReLU:
				for j := range row {
					row[j] = math.Max(0, row[j])
				}
			case onnxmodel.ActivationSoftmax:
				mx := math.Inf(-1)
				for _, v := range row {
					mx = math.Max(mx, v)
				}
				sum := 0.0
				for j := range row {
					row[j] = math.Exp(row[j] - mx)
					sum += row[j]
				}
				for j := range row {
					row[j] /= sum
				}
			}
		}
		cur = next
	}
	return cur
}

// RandomBatch returns n rows of width features in [0,1).
func RandomBatch(seed uint64, n, width int) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, n*width)
	for i := range x {
		x[i] = r.Float32()
	}
	return x
}

// AddMul returns an opset-13 graph with FP32 inputs "a" and "b" of shape [-1, width] and outputs
// "sum" = a+b and "product" = a*b of the same shape.
func AddMul(width int64) []byte {
	return encode(&onnx.ModelProto{
		IrVersion:   8,
		OpsetImport: []*onnx.OperatorSetIdProto{{Domain: "", Version: 13}},
		Graph: &onnx.GraphProto{
			Name: "add_mul",
			Node: []*onnx.NodeProto{
				{Name: "add", OpType: "Add", Input: []string{"a", "b"}, Output: []string{"sum"}},
				{Name: "mul", OpType: "Mul", Input: []string{"a", "b"}, Output: []string{"product"}},
			},
			Input:  []*onnx.ValueInfoProto{valueInfo("a", onnx.TensorProto_FLOAT, -1, width), valueInfo("b", onnx.TensorProto_FLOAT, -1, width)},
			Output: []*onnx.ValueInfoProto{valueInfo("sum", onnx.TensorProto_FLOAT, -1, width), valueInfo("product", onnx.TensorProto_FLOAT, -1, width)},
		},
	})
}

// Opset returns a one-node Relu graph that declares the given default-domain opset
// (gonnx loads only 13, so other values make a model that fails to load).
func Opset(version int64) []byte {
	return encode(&onnx.ModelProto{
		IrVersion:   8,
		OpsetImport: []*onnx.OperatorSetIdProto{{Domain: "", Version: version}},
		Graph: &onnx.GraphProto{
			Name:   "relu",
			Node:   []*onnx.NodeProto{{Name: "relu", OpType: "Relu", Input: []string{"x"}, Output: []string{"y"}}},
			Input:  []*onnx.ValueInfoProto{valueInfo("x", onnx.TensorProto_FLOAT, -1)},
			Output: []*onnx.ValueInfoProto{valueInfo("y", onnx.TensorProto_FLOAT, -1)},
		},
	})
}

func valueInfo(name string, et onnx.TensorProto_DataType, dims ...int64) *onnx.ValueInfoProto {
	shape := &onnx.TensorShapeProto{}
	for _, d := range dims {
		if d < 0 {
			shape.Dim = append(shape.Dim, &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: "batch"}})
		} else {
			shape.Dim = append(shape.Dim, &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
	}
	return &onnx.ValueInfoProto{Name: name, Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
		TensorType: &onnx.TypeProto_Tensor{ElemType: int32(et), Shape: shape},
	}}}
}

func encode(m *onnx.ModelProto) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}
