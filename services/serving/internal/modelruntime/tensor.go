// Package modelruntime executes inference models behind one interface: a Model declares its
// input/output tensor metadata and maps named input tensors to named output tensors.
//
// Tensor metadata uses the KServe v2 Open Inference Protocol datatype names (BOOL, UINT8..64,
// INT8..64, FP32, FP64, BYTES) and -1 for a variable dimension. The ONNX implementation
// (NewONNXLoader) runs models in pure Go through github.com/advancedclimatesystems/gonnx
// (ONNX opset 13).
package modelruntime

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DataType is a tensor element type, named as in the KServe v2 protocol.
type DataType string

// Element types. FP16 is named for completeness of the protocol but no runtime here executes it.
const (
	Bool   DataType = "BOOL"
	Uint8  DataType = "UINT8"
	Uint16 DataType = "UINT16"
	Uint32 DataType = "UINT32"
	Uint64 DataType = "UINT64"
	Int8   DataType = "INT8"
	Int16  DataType = "INT16"
	Int32  DataType = "INT32"
	Int64  DataType = "INT64"
	FP16   DataType = "FP16"
	FP32   DataType = "FP32"
	FP64   DataType = "FP64"
	Bytes  DataType = "BYTES"
)

// Valid reports whether d is one of the protocol's datatype names.
func (d DataType) Valid() bool {
	switch d {
	case Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, FP16, FP32, FP64, Bytes:
		return true
	}
	return false
}

// TFName is the TensorFlow DataType enum name (DT_FLOAT, ...) used in TF Serving metadata.
func (d DataType) TFName() string {
	switch d {
	case Bool:
		return "DT_BOOL"
	case Uint8:
		return "DT_UINT8"
	case Uint16:
		return "DT_UINT16"
	case Uint32:
		return "DT_UINT32"
	case Uint64:
		return "DT_UINT64"
	case Int8:
		return "DT_INT8"
	case Int16:
		return "DT_INT16"
	case Int32:
		return "DT_INT32"
	case Int64:
		return "DT_INT64"
	case FP16:
		return "DT_HALF"
	case FP32:
		return "DT_FLOAT"
	case FP64:
		return "DT_DOUBLE"
	case Bytes:
		return "DT_STRING"
	}
	return "DT_INVALID"
}

// TensorSpec is the declared name, element type and shape of a model input or output.
// A dimension of -1 accepts any size.
type TensorSpec struct {
	Name     string
	DataType DataType
	Shape    []int64
	// UnknownRank: the model declares no shape at all (Shape is nil and any shape is accepted).
	UnknownRank bool
}

// Tensor is a dense row-major tensor. Data holds exactly NumElements(Shape) elements in the Go
// slice type of DataType: []bool, []uint8, []uint16, []uint32, []uint64, []int8, []int16,
// []int32, []int64, []float32, []float64, or [][]byte for BYTES.
type Tensor struct {
	DataType DataType
	Shape    []int64
	Data     any
}

// NumElements is the product of shape's dimensions (1 for a scalar).
func NumElements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// NewTensor allocates a zero tensor of the given type and shape.
func NewTensor(dt DataType, shape []int64) (Tensor, error) {
	for i, d := range shape {
		if d < 0 {
			return Tensor{}, fmt.Errorf("shape[%d]: %d is negative", i, d)
		}
	}
	data, err := MakeData(dt, int(NumElements(shape)))
	if err != nil {
		return Tensor{}, err
	}
	return Tensor{DataType: dt, Shape: shape, Data: data}, nil
}

// MakeData allocates a zeroed Data slice of n elements for dt.
func MakeData(dt DataType, n int) (any, error) {
	switch dt {
	case Bool:
		return make([]bool, n), nil
	case Uint8:
		return make([]uint8, n), nil
	case Uint16:
		return make([]uint16, n), nil
	case Uint32:
		return make([]uint32, n), nil
	case Uint64:
		return make([]uint64, n), nil
	case Int8:
		return make([]int8, n), nil
	case Int16:
		return make([]int16, n), nil
	case Int32:
		return make([]int32, n), nil
	case Int64:
		return make([]int64, n), nil
	case FP32:
		return make([]float32, n), nil
	case FP64:
		return make([]float64, n), nil
	case Bytes:
		return make([][]byte, n), nil
	}
	return nil, fmt.Errorf("%w: datatype %q", ErrUnsupported, dt)
}

// DataLen is the number of elements in a Data slice (-1 if data is not a supported slice type).
func DataLen(data any) int {
	switch d := data.(type) {
	case []bool:
		return len(d)
	case []uint8:
		return len(d)
	case []uint16:
		return len(d)
	case []uint32:
		return len(d)
	case []uint64:
		return len(d)
	case []int8:
		return len(d)
	case []int16:
		return len(d)
	case []int32:
		return len(d)
	case []int64:
		return len(d)
	case []float32:
		return len(d)
	case []float64:
		return len(d)
	case [][]byte:
		return len(d)
	}
	return -1
}

// DataTypeOf is the DataType of a Data slice.
func DataTypeOf(data any) (DataType, bool) {
	switch data.(type) {
	case []bool:
		return Bool, true
	case []uint8:
		return Uint8, true
	case []uint16:
		return Uint16, true
	case []uint32:
		return Uint32, true
	case []uint64:
		return Uint64, true
	case []int8:
		return Int8, true
	case []int16:
		return Int16, true
	case []int32:
		return Int32, true
	case []int64:
		return Int64, true
	case []float32:
		return FP32, true
	case []float64:
		return FP64, true
	case [][]byte:
		return Bytes, true
	}
	return "", false
}

// Errors returned by models and loaders. Predict wraps ErrInvalidInput for requests that do not
// match the model's inputs (a client error); anything else is a server-side failure.
var (
	ErrInvalidInput = errors.New("modelruntime: invalid input")
	ErrUnsupported  = errors.New("modelruntime: unsupported")
	ErrInvalidModel = errors.New("modelruntime: invalid model")
)

// FormatShape renders a shape as [d0,d1,...].
func FormatShape(shape []int64) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = strconv.FormatInt(d, 10)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// ShapeCompatible reports whether an actual shape satisfies a declared one (-1 matches any size).
func ShapeCompatible(declared, actual []int64) bool {
	if len(declared) != len(actual) {
		return false
	}
	for i, d := range declared {
		if d >= 0 && d != actual[i] {
			return false
		}
	}
	return true
}

// ValidateInputs checks inputs against specs: every declared input present, no undeclared
// input, matching datatype, a shape compatible with the declaration, and Data of the right Go
// type and length. Errors wrap ErrInvalidInput and name the input.
func ValidateInputs(specs []TensorSpec, inputs map[string]Tensor) error {
	for _, s := range specs {
		t, ok := inputs[s.Name]
		if !ok {
			return fmt.Errorf("%w: input %q: missing", ErrInvalidInput, s.Name)
		}
		if t.DataType != s.DataType {
			return fmt.Errorf("%w: input %q: datatype %s does not match the model's %s", ErrInvalidInput, s.Name, t.DataType, s.DataType)
		}
		if !s.UnknownRank && !ShapeCompatible(s.Shape, t.Shape) {
			return fmt.Errorf("%w: input %q: shape %s does not match the model's %s", ErrInvalidInput, s.Name, FormatShape(t.Shape), FormatShape(s.Shape))
		}
		want := NumElements(t.Shape)
		if n := DataLen(t.Data); int64(n) != want {
			return fmt.Errorf("%w: input %q: has %d elements, shape %s needs %d", ErrInvalidInput, s.Name, n, FormatShape(t.Shape), want)
		}
		if _, err := checkGoType(t); err != nil {
			return fmt.Errorf("%w: input %q: %v", ErrInvalidInput, s.Name, err)
		}
	}
	if len(inputs) != len(specs) {
		for name := range inputs {
			if !hasSpec(specs, name) {
				return fmt.Errorf("%w: input %q: not an input of the model", ErrInvalidInput, name)
			}
		}
	}
	return nil
}

func hasSpec(specs []TensorSpec, name string) bool {
	for _, s := range specs {
		if s.Name == name {
			return true
		}
	}
	return false
}

func checkGoType(t Tensor) (bool, error) {
	if dt, ok := DataTypeOf(t.Data); !ok || dt != t.DataType {
		return false, fmt.Errorf("data of Go type %T does not hold %s", t.Data, t.DataType)
	}
	return true, nil
}

// Size is the byte size of one element in the protocols' binary (raw) encoding: 1 for BOOL, 2 for
// FP16, ...; 0 for BYTES, whose elements vary.
func (d DataType) Size() int {
	switch d {
	case Bool, Uint8, Int8:
		return 1
	case Uint16, Int16, FP16:
		return 2
	case Uint32, Int32, FP32:
		return 4
	case Uint64, Int64, FP64:
		return 8
	}
	return 0
}
