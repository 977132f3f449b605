package modelruntime

import (
	"context"
	"fmt"
	"runtime"

	"github.com/advancedclimatesystems/gonnx"
	"github.com/advancedclimatesystems/gonnx/onnx"
	"gorgonia.org/tensor"
)

// ModelFileONNX is the file name of an ONNX model inside a version directory.
const ModelFileONNX = "model.onnx"

// Loader turns the bytes of a serialized model into a ready Model. Load does all parsing and
// allocation up front so that Predict never pays for it.
type Loader interface {
	Load(ctx context.Context, model []byte) (Model, error)
}

// Model is a loaded model. Predict must be safe for concurrent use; Close releases resources
// once no Predict call is in flight.
type Model interface {
	Inputs() []TensorSpec
	Outputs() []TensorSpec
	// Predict runs the model on inputs keyed by input name (all declared inputs, validated by
	// ValidateInputs) and returns every declared output keyed by name. Errors wrapping
	// ErrInvalidInput are caused by the request.
	Predict(ctx context.Context, inputs map[string]Tensor) (map[string]Tensor, error)
	Close() error
}

// ONNXLoader loads ONNX models (default-domain opset 13) for pure-Go execution by gonnx.
type ONNXLoader struct {
	// Instances is the number of independent copies of the graph executed in parallel
	// (gonnx's graph walk shares parameter tensors, so each concurrent Predict gets its own
	// copy). Zero means runtime.GOMAXPROCS(0).
	Instances int
}

// NewONNXLoader returns a loader with one instance per GOMAXPROCS.
func NewONNXLoader() *ONNXLoader { return &ONNXLoader{} }

// Load parses an ONNX ModelProto. Errors wrap ErrInvalidModel (undecodable protobuf, no graph,
// an unsupported opset or operator, an input/output that is not a tensor) or ErrUnsupported.
func (l *ONNXLoader) Load(ctx context.Context, b []byte) (Model, error) {
	mp, err := gonnx.ModelProtoFromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: decode ONNX protobuf: %v", ErrInvalidModel, err)
	}
	if mp.GetGraph() == nil {
		return nil, fmt.Errorf("%w: ONNX model has no graph", ErrInvalidModel)
	}
	getOp, err := gonnx.ResolveOperatorGetter(defaultOpset(mp))
	if err != nil {
		return nil, fmt.Errorf("%w: opset %d: %v (gonnx runs opset 13)", ErrInvalidModel, defaultOpset(mp), err)
	}
	for i, n := range mp.GetGraph().GetNode() {
		if _, err := getOp(n.GetOpType()); err != nil {
			return nil, fmt.Errorf("%w: graph.node[%d] (%s): operator %q: %v", ErrInvalidModel, i, n.GetName(), n.GetOpType(), err)
		}
	}
	params := map[string]bool{}
	for _, t := range mp.GetGraph().GetInitializer() {
		params[t.GetName()] = true
	}
	var inputs []TensorSpec
	for i, vi := range mp.GetGraph().GetInput() {
		if params[vi.GetName()] {
			continue
		}
		s, err := specFromValueInfo(vi)
		if err != nil {
			return nil, fmt.Errorf("%w: graph.input[%d]: %v", ErrInvalidModel, i, err)
		}
		inputs = append(inputs, s)
	}
	var outputs []TensorSpec
	for i, vi := range mp.GetGraph().GetOutput() {
		s, err := specFromValueInfo(vi)
		if err != nil {
			return nil, fmt.Errorf("%w: graph.output[%d]: %v", ErrInvalidModel, i, err)
		}
		outputs = append(outputs, s)
	}
	n := l.Instances
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	m := &onnxModel{inputs: inputs, outputs: outputs, pool: make(chan *gonnx.Model, n)}
	for range n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Each instance decodes its own parameter tensors so no state is shared between
		// concurrent graph walks.
		inst, err := gonnx.NewModelFromBytes(b)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidModel, err)
		}
		m.pool <- inst
	}
	return m, nil
}

func defaultOpset(mp *onnx.ModelProto) int64 {
	var v int64
	for _, o := range mp.GetOpsetImport() {
		if (o.GetDomain() == "" || o.GetDomain() == "ai.onnx") && o.GetVersion() > v {
			v = o.GetVersion()
		}
	}
	return v
}

func specFromValueInfo(vi *onnx.ValueInfoProto) (TensorSpec, error) {
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		return TensorSpec{}, fmt.Errorf("%q is not a tensor", vi.GetName())
	}
	dt, ok := fromONNXType(tt.GetElemType())
	if !ok {
		return TensorSpec{}, fmt.Errorf("%q: element type %s is not supported", vi.GetName(), onnx.TensorProto_DataType(tt.GetElemType()))
	}
	if tt.GetShape() == nil {
		return TensorSpec{Name: vi.GetName(), DataType: dt, UnknownRank: true}, nil
	}
	var shape []int64
	for _, d := range tt.GetShape().GetDim() {
		if v := d.GetDimValue(); v > 0 {
			shape = append(shape, v)
		} else {
			shape = append(shape, -1)
		}
	}
	return TensorSpec{Name: vi.GetName(), DataType: dt, Shape: shape}, nil
}

func fromONNXType(t int32) (DataType, bool) {
	switch onnx.TensorProto_DataType(t) {
	case onnx.TensorProto_FLOAT:
		return FP32, true
	case onnx.TensorProto_DOUBLE:
		return FP64, true
	case onnx.TensorProto_UINT8:
		return Uint8, true
	case onnx.TensorProto_UINT16:
		return Uint16, true
	case onnx.TensorProto_UINT32:
		return Uint32, true
	case onnx.TensorProto_UINT64:
		return Uint64, true
	case onnx.TensorProto_INT8:
		return Int8, true
	case onnx.TensorProto_INT16:
		return Int16, true
	case onnx.TensorProto_INT32:
		return Int32, true
	case onnx.TensorProto_INT64:
		return Int64, true
	case onnx.TensorProto_BOOL:
		return Bool, true
	}
	return "", false
}

type onnxModel struct {
	inputs  []TensorSpec
	outputs []TensorSpec
	pool    chan *gonnx.Model
}

func (m *onnxModel) Inputs() []TensorSpec  { return m.inputs }
func (m *onnxModel) Outputs() []TensorSpec { return m.outputs }
func (m *onnxModel) Close() error          { return nil }

func (m *onnxModel) Predict(ctx context.Context, inputs map[string]Tensor) (map[string]Tensor, error) {
	if err := ValidateInputs(m.inputs, inputs); err != nil {
		return nil, err
	}
	empty := false
	in := make(gonnx.Tensors, len(inputs))
	for name, t := range inputs {
		if NumElements(t.Shape) == 0 {
			empty = true
			break
		}
		shape := make([]int, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = int(d)
		}
		in[name] = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(t.Data))
	}
	if empty {
		return emptyOutputs(m.inputs, m.outputs, inputs)
	}
	var inst *gonnx.Model
	select {
	case inst = <-m.pool:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res, err := run(inst, in)
	m.pool <- inst
	if err != nil {
		// Inputs passed ValidateInputs and the graph loaded, so a failing graph walk is caused by
		// the values of this request (incompatible variable dimensions): TF Serving reports such
		// runtime errors as INVALID_ARGUMENT too.
		return nil, fmt.Errorf("%w: run ONNX graph: %v", ErrInvalidInput, err)
	}
	out := make(map[string]Tensor, len(m.outputs))
	for _, s := range m.outputs {
		t, ok := res[s.Name]
		if !ok || t == nil {
			return nil, fmt.Errorf("run ONNX graph: output %q was not produced", s.Name)
		}
		if d, ok := t.(*tensor.Dense); ok && d.IsView() {
			t = d.Materialize()
		}
		shape := make([]int64, len(t.Shape()))
		for i, d := range t.Shape() {
			shape[i] = int64(d)
		}
		data := t.Data()
		if DataLen(data) < 0 {
			// A scalar result comes back as a bare value; wrap it.
			if data, err = wrapScalar(data); err != nil {
				return nil, fmt.Errorf("output %q: %w", s.Name, err)
			}
			shape = nil
		}
		dt, ok := DataTypeOf(data)
		if !ok {
			return nil, fmt.Errorf("output %q: %w: Go type %T", s.Name, ErrUnsupported, data)
		}
		if NumElements(shape) != int64(DataLen(data)) {
			return nil, fmt.Errorf("output %q: shape %s does not hold %d elements", s.Name, FormatShape(shape), DataLen(data))
		}
		out[s.Name] = Tensor{DataType: dt, Shape: shape, Data: data}
	}
	return out, nil
}

// run walks the graph, turning a panic of the runtime into an error.
func run(inst *gonnx.Model, in gonnx.Tensors) (res gonnx.Tensors, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("runtime panic: %v", p)
		}
	}()
	return inst.Run(in)
}

func wrapScalar(v any) (any, error) {
	switch x := v.(type) {
	case float32:
		return []float32{x}, nil
	case float64:
		return []float64{x}, nil
	case int64:
		return []int64{x}, nil
	case int32:
		return []int32{x}, nil
	case bool:
		return []bool{x}, nil
	}
	return nil, fmt.Errorf("%w: output value of Go type %T", ErrUnsupported, v)
}

// emptyOutputs answers a request with a zero-sized input without running the graph (gorgonia
// cannot hold zero-sized tensors). Only an empty batch is answered: every input has 0 in a
// variable first dimension and every output declares a variable first dimension, so each output
// is [0, rest...] and holds no values. Anything else (a zero-width row, an output without a batch
// dimension, whose values would have to be invented) is refused as invalid input.
func emptyOutputs(inSpecs, outSpecs []TensorSpec, inputs map[string]Tensor) (map[string]Tensor, error) {
	for _, s := range inSpecs {
		t := inputs[s.Name]
		if len(t.Shape) == 0 || t.Shape[0] != 0 || (!s.UnknownRank && len(s.Shape) > 0 && s.Shape[0] >= 0) {
			return nil, fmt.Errorf("%w: input %q has shape %s with no elements; only an empty batch (0 in the batch dimension of every input) can be answered without running the model",
				ErrInvalidInput, s.Name, FormatShape(t.Shape))
		}
	}
	out := make(map[string]Tensor, len(outSpecs))
	for _, s := range outSpecs {
		if s.UnknownRank || len(s.Shape) == 0 || s.Shape[0] >= 0 {
			return nil, fmt.Errorf("%w: empty batch: output %q has no batch dimension (shape %s), so its value cannot be computed from zero rows; send at least one row",
				ErrInvalidInput, s.Name, FormatShape(s.Shape))
		}
		shape := make([]int64, len(s.Shape))
		for i, d := range s.Shape[1:] {
			if d < 0 {
				return nil, fmt.Errorf("%w: empty batch: output %q has a variable dimension after the batch (shape %s) whose size zero rows do not determine; send at least one row",
					ErrInvalidInput, s.Name, FormatShape(s.Shape))
			}
			shape[i+1] = d
		}
		t, err := NewTensor(s.DataType, shape)
		if err != nil {
			return nil, err
		}
		out[s.Name] = t
	}
	return out, nil
}
