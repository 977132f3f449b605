// Package onnxmodel writes small ONNX models (ModelProto, protobuf wire format) without a
// dependency on an ONNX runtime, so training code can export what the serving runtime loads.
//
// The encoding follows onnx.proto (IR version 8, default-domain opset 13): field numbers are the
// ONNX contract, and the output is readable by any ONNX loader (onnxruntime, gonnx, onnx-go).
package onnxmodel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Activation names accepted in Dense.Activation.
const (
	ActivationNone    = ""
	ActivationReLU    = "relu"
	ActivationSoftmax = "softmax"
)

// IRVersion and Opset are the ONNX IR version and default-domain opset written by WriteMLP.
const (
	IRVersion = 8
	Opset     = 13
)

// BatchDim is the symbolic name of the variable batch dimension (dim 0) of input and output.
const BatchDim = "batch"

// Dense is one fully connected layer: y = activation(x·W + B).
//
// W has shape [in][out] (W[i][j] weighs input feature i for output unit j; note this is the
// transpose of PyTorch's nn.Linear.weight), B has length out. Activation is one of "relu",
// "softmax" (over the last axis) or "" (identity).
type Dense struct {
	W          [][]float32
	B          []float32
	Activation string
}

// ONNX TensorProto.DataType FLOAT and AttributeProto.AttributeType INT.
const (
	elemFloat   = 1
	attrTypeInt = 2
)

// WriteMLP writes a multilayer perceptron as an ONNX model to w: input inputName of type float32
// and shape [batch, in], one Gemm node per layer (followed by Relu or Softmax), output outputName
// of shape [batch, out]. Layers must chain (len(W) of layer k+1 equals the output width of layer k)
// and every row of W must have the same width as B. Errors name the offending layer field,
// e.g. "layers[1].W[3]: has 9 columns, want 10".
func WriteMLP(w io.Writer, layers []Dense, inputName, outputName string) error {
	if err := validate(layers, inputName, outputName); err != nil {
		return err
	}
	in := len(layers[0].W)
	out := len(layers[len(layers)-1].B)

	var graph []byte
	prev := inputName
	for k, l := range layers {
		wName := fmt.Sprintf("layers.%d.weight", k)
		bName := fmt.Sprintf("layers.%d.bias", k)
		layerOut := outputName
		if k < len(layers)-1 {
			layerOut = fmt.Sprintf("layers.%d.output", k)
		}
		gemmOut := layerOut
		if l.Activation != ActivationNone {
			gemmOut = fmt.Sprintf("layers.%d.linear", k)
		}
		graph = protowire.AppendTag(graph, 5, protowire.BytesType) // initializer
		graph = protowire.AppendBytes(graph, weightTensor(wName, l.W))
		graph = protowire.AppendTag(graph, 5, protowire.BytesType)
		graph = protowire.AppendBytes(graph, floatTensor(bName, []int64{int64(len(l.B))}, l.B))

		graph = protowire.AppendTag(graph, 1, protowire.BytesType) // node
		graph = protowire.AppendBytes(graph, node(fmt.Sprintf("layers.%d.gemm", k), "Gemm",
			[]string{prev, wName, bName}, gemmOut, nil))
		prev = gemmOut
		if l.Activation == ActivationNone {
			continue
		}
		var attrs []byte
		opType := "Relu"
		if l.Activation == ActivationSoftmax {
			opType = "Softmax"
			attrs = intAttribute("axis", -1)
		}
		graph = protowire.AppendTag(graph, 1, protowire.BytesType)
		graph = protowire.AppendBytes(graph, node(fmt.Sprintf("layers.%d.%s", k, l.Activation), opType,
			[]string{gemmOut}, layerOut, attrs))
		prev = layerOut
	}
	graph = protowire.AppendTag(graph, 2, protowire.BytesType) // name
	graph = protowire.AppendString(graph, "mlp")
	graph = protowire.AppendTag(graph, 11, protowire.BytesType) // input
	graph = protowire.AppendBytes(graph, valueInfo(inputName, int64(in)))
	graph = protowire.AppendTag(graph, 12, protowire.BytesType) // output
	graph = protowire.AppendBytes(graph, valueInfo(outputName, int64(out)))

	var model []byte
	model = protowire.AppendTag(model, 1, protowire.VarintType) // ir_version
	model = protowire.AppendVarint(model, IRVersion)
	model = protowire.AppendTag(model, 2, protowire.BytesType) // producer_name
	model = protowire.AppendString(model, "sluice-onnxmodel")
	model = protowire.AppendTag(model, 7, protowire.BytesType) // graph
	model = protowire.AppendBytes(model, graph)
	var opset []byte
	opset = protowire.AppendTag(opset, 1, protowire.BytesType) // domain "" (default)
	opset = protowire.AppendString(opset, "")
	opset = protowire.AppendTag(opset, 2, protowire.VarintType) // version
	opset = protowire.AppendVarint(opset, Opset)
	model = protowire.AppendTag(model, 8, protowire.BytesType) // opset_import
	model = protowire.AppendBytes(model, opset)

	_, err := w.Write(model)
	return err
}

func validate(layers []Dense, inputName, outputName string) error {
	var errs []error
	if inputName == "" {
		errs = append(errs, errors.New("inputName: must not be empty"))
	}
	if outputName == "" {
		errs = append(errs, errors.New("outputName: must not be empty"))
	}
	if inputName != "" && inputName == outputName {
		errs = append(errs, errors.New("outputName: must differ from inputName"))
	}
	if len(layers) == 0 {
		errs = append(errs, errors.New("layers: must have at least one layer"))
	}
	for k, l := range layers {
		if len(l.W) == 0 {
			errs = append(errs, fmt.Errorf("layers[%d].W: must have at least one row", k))
		}
		if len(l.B) == 0 {
			errs = append(errs, fmt.Errorf("layers[%d].B: must have at least one element", k))
		}
		for i, row := range l.W {
			if len(row) != len(l.B) {
				errs = append(errs, fmt.Errorf("layers[%d].W[%d]: has %d columns, want %d (len(B))", k, i, len(row), len(l.B)))
				break
			}
		}
		switch l.Activation {
		case ActivationNone, ActivationReLU, ActivationSoftmax:
		default:
			errs = append(errs, fmt.Errorf("layers[%d].Activation: %q is not one of \"relu\", \"softmax\", \"\"", k, l.Activation))
		}
		if k > 0 && len(l.W) != len(layers[k-1].B) {
			errs = append(errs, fmt.Errorf("layers[%d].W: has %d rows, want %d (outputs of layers[%d])", k, len(l.W), len(layers[k-1].B), k-1))
		}
	}
	return errors.Join(errs...)
}

func weightTensor(name string, w [][]float32) []byte {
	rows, cols := len(w), len(w[0])
	flat := make([]float32, 0, rows*cols)
	for _, r := range w {
		flat = append(flat, r...)
	}
	return floatTensor(name, []int64{int64(rows), int64(cols)}, flat)
}

// floatTensor encodes a TensorProto with little-endian raw_data.
func floatTensor(name string, dims []int64, data []float32) []byte {
	var b []byte
	var packed []byte
	for _, d := range dims {
		packed = protowire.AppendVarint(packed, uint64(d))
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType) // dims (packed)
	b = protowire.AppendBytes(b, packed)
	b = protowire.AppendTag(b, 2, protowire.VarintType) // data_type
	b = protowire.AppendVarint(b, elemFloat)
	b = protowire.AppendTag(b, 8, protowire.BytesType) // name
	b = protowire.AppendString(b, name)
	raw := make([]byte, 4*len(data))
	for i, f := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	b = protowire.AppendTag(b, 9, protowire.BytesType) // raw_data
	b = protowire.AppendBytes(b, raw)
	return b
}

// node encodes a NodeProto; attrs is a pre-encoded AttributeProto (or nil).
func node(name, opType string, inputs []string, output string, attrs []byte) []byte {
	var b []byte
	for _, in := range inputs {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, in)
	}
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, output)
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	b = protowire.AppendString(b, opType)
	if attrs != nil {
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, attrs)
	}
	return b
}

func intAttribute(name string, v int64) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, 3, protowire.VarintType) // i
	b = protowire.AppendVarint(b, uint64(v))
	b = protowire.AppendTag(b, 20, protowire.VarintType) // type
	b = protowire.AppendVarint(b, attrTypeInt)
	return b
}

// valueInfo encodes a float32 ValueInfoProto of shape [batch, width].
func valueInfo(name string, width int64) []byte {
	var batch []byte
	batch = protowire.AppendTag(batch, 2, protowire.BytesType) // dim_param
	batch = protowire.AppendString(batch, BatchDim)
	var feat []byte
	feat = protowire.AppendTag(feat, 1, protowire.VarintType) // dim_value
	feat = protowire.AppendVarint(feat, uint64(width))
	var shape []byte
	shape = protowire.AppendTag(shape, 1, protowire.BytesType)
	shape = protowire.AppendBytes(shape, batch)
	shape = protowire.AppendTag(shape, 1, protowire.BytesType)
	shape = protowire.AppendBytes(shape, feat)
	var tensorType []byte
	tensorType = protowire.AppendTag(tensorType, 1, protowire.VarintType) // elem_type
	tensorType = protowire.AppendVarint(tensorType, elemFloat)
	tensorType = protowire.AppendTag(tensorType, 2, protowire.BytesType) // shape
	tensorType = protowire.AppendBytes(tensorType, shape)
	var typ []byte
	typ = protowire.AppendTag(typ, 1, protowire.BytesType) // tensor_type
	typ = protowire.AppendBytes(typ, tensorType)
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, typ)
	return b
}
