package onnxtest

import (
	"encoding/binary"
	"math"

	"github.com/advancedclimatesystems/gonnx/onnx"
)

// The graphs below re-express the models of the serving cases (opset 13), for tests of the
// edges of the REST and gRPC protocols.

// Scale returns y = x * c for an FP32 input "x" of shape [batch].
func Scale(c float32) []byte {
	return graph("scale", []*onnx.NodeProto{{Name: "mul", OpType: "Mul", Input: []string{"x", "c"}, Output: []string{"y"}}},
		[]*onnx.TensorProto{floatScalar("c", c)},
		[]*onnx.ValueInfoProto{valueInfo("x", onnx.TensorProto_FLOAT, -1)},
		[]*onnx.ValueInfoProto{valueInfo("y", onnx.TensorProto_FLOAT, -1)})
}

// Unbatched returns y = x[0] for x FP32 [batch, 2]: an output of shape [2] without a batch
// dimension.
func Unbatched() []byte {
	return graph("unbatched", []*onnx.NodeProto{{Name: "row0", OpType: "Gather", Input: []string{"x", "i0"}, Output: []string{"y"},
		Attribute: []*onnx.AttributeProto{{Name: "axis", Type: onnx.AttributeProto_INT, I: 0}}}},
		[]*onnx.TensorProto{int64Scalar("i0", 0)},
		[]*onnx.ValueInfoProto{valueInfo("x", onnx.TensorProto_FLOAT, -1, 2)},
		[]*onnx.ValueInfoProto{valueInfo("y", onnx.TensorProto_FLOAT, 2)})
}

// ScalarOutput returns y = x[0] for x FP32 [batch]: a scalar output.
func ScalarOutput() []byte {
	return graph("scalar", []*onnx.NodeProto{{Name: "first", OpType: "Gather", Input: []string{"x", "i0"}, Output: []string{"y"},
		Attribute: []*onnx.AttributeProto{{Name: "axis", Type: onnx.AttributeProto_INT, I: 0}}}},
		[]*onnx.TensorProto{int64Scalar("i0", 0)},
		[]*onnx.ValueInfoProto{valueInfo("x", onnx.TensorProto_FLOAT, -1)},
		[]*onnx.ValueInfoProto{valueInfo("y", onnx.TensorProto_FLOAT)})
}

// StringIdentity returns a graph without nodes whose STRING input "s" [batch] is its output: a
// model the pure-Go runtime cannot load (no STRING tensors), so its only version fails to load.
func StringIdentity() []byte {
	return graph("strid", nil, nil,
		[]*onnx.ValueInfoProto{valueInfo("s", onnx.TensorProto_STRING, -1)},
		[]*onnx.ValueInfoProto{valueInfo("s", onnx.TensorProto_STRING, -1)})
}

func graph(name string, nodes []*onnx.NodeProto, init []*onnx.TensorProto, in, out []*onnx.ValueInfoProto) []byte {
	return encode(&onnx.ModelProto{
		IrVersion:   7,
		OpsetImport: []*onnx.OperatorSetIdProto{{Domain: "", Version: 13}},
		Graph:       &onnx.GraphProto{Name: name, Node: nodes, Initializer: init, Input: in, Output: out},
	})
}

func floatScalar(name string, v float32) *onnx.TensorProto {
	b := binary.LittleEndian.AppendUint32(nil, math.Float32bits(v))
	return &onnx.TensorProto{Name: name, DataType: int32(onnx.TensorProto_FLOAT), RawData: b}
}

func int64Scalar(name string, v int64) *onnx.TensorProto {
	return &onnx.TensorProto{Name: name, DataType: int32(onnx.TensorProto_INT64), Int64Data: []int64{v}}
}
