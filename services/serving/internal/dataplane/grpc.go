package dataplane

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-ml/sluice/services/serving/api/inferencepb"
	"github.com/sluice-ml/sluice/services/serving/api/tfservingpb"
	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
)

// grpcErr turns an error into a gRPC status with its canonical code.
func grpcErr(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(CodeOf(err), err.Error())
}

// run resolves t, decodes the inputs against the servable's signature, charges the request's
// bytes to the in-flight budget and predicts, re-resolving once if the version was unloaded.
// The lease covers the request and the outputs; the caller releases it once the response is built.
func (s *Server) run(ctx context.Context, l *lease, t target, size int64, decode func([]modelruntime.TensorSpec) (map[string]modelruntime.Tensor, error)) (*modelrepo.Servable, map[string]modelruntime.Tensor, error) {
	if err := l.grow(size); err != nil {
		return nil, nil, err
	}
	sv, err := s.resolve(t)
	if err != nil {
		return nil, nil, err
	}
	in, err := decode(sv.Model.Inputs())
	if err != nil {
		return nil, nil, err
	}
	out, err := sv.Predict(ctx, in)
	if errors.Is(err, modelrepo.ErrUnloaded) {
		sv, out, err = s.predict(ctx, t, in)
	}
	if err == nil {
		l.unalias(out)
		err = l.chargeResponse(out)
	}
	return sv, out, err
}

// ---- TF Serving -----------------------------------------------------------------------------

type tfPredictionService struct {
	tfservingpb.UnimplementedPredictionServiceServer
	s *Server
}

type tfModelService struct {
	tfservingpb.UnimplementedModelServiceServer
	s *Server
}

// tfTarget reads a ModelSpec as TF Serving does: a name is required; version and label are a oneof.
func tfTarget(spec *tfservingpb.ModelSpec) (target, error) {
	if spec == nil {
		return target{}, statusf(codes.InvalidArgument, "Missing ModelSpec")
	}
	if spec.GetName() == "" {
		return target{}, statusf(codes.InvalidArgument, "Missing model name in request.")
	}
	t := target{model: spec.GetName()}
	switch c := spec.GetVersionChoice().(type) {
	case *tfservingpb.ModelSpec_Version:
		t.version, t.hasVer = c.Version.GetValue(), true
	case *tfservingpb.ModelSpec_VersionLabel:
		t.label = c.VersionLabel
	}
	return t, nil
}

func checkSignature(name string) error {
	if name != "" && name != defaultSignature {
		return statusf(codes.InvalidArgument, "Serving signature name: \"%s\" not found in signature def", name)
	}
	return nil
}

func (p tfPredictionService) Predict(ctx context.Context, req *tfservingpb.PredictRequest) (*tfservingpb.PredictResponse, error) {
	t, err := tfTarget(req.GetModelSpec())
	if err == nil {
		err = checkSignature(req.GetModelSpec().GetSignatureName())
	}
	if err != nil {
		return nil, grpcErr(err)
	}
	var size int64
	for _, tp := range req.GetInputs() {
		size += tensorProtoSize(tp)
	}
	l := requestLease(ctx, &p.s.budget)
	defer l.release()
	sv, out, err := p.s.run(ctx, l, t, size, func(specs []modelruntime.TensorSpec) (map[string]modelruntime.Tensor, error) {
		in := make(map[string]modelruntime.Tensor, len(specs))
		for name := range req.GetInputs() {
			if !hasInput(specs, name) {
				return nil, statusf(codes.InvalidArgument, "input tensor alias not found in signature: %s. Inputs expected to be in the set {%s}.", name, inputNames(specs))
			}
		}
		for _, spec := range specs {
			tp, ok := req.GetInputs()[spec.Name]
			if !ok {
				return nil, statusf(codes.InvalidArgument, "input %q of the signature is missing from the request (inputs: %s)", spec.Name, inputNames(specs))
			}
			tensor, err := fromTensorProto(tp, spec)
			if err != nil {
				return nil, err
			}
			in[spec.Name] = tensor
		}
		return in, nil
	})
	if err != nil {
		return nil, grpcErr(err)
	}
	names := req.GetOutputFilter()
	if len(names) == 0 {
		for _, o := range sv.Model.Outputs() {
			names = append(names, o.Name)
		}
	}
	resp := &tfservingpb.PredictResponse{
		ModelSpec: &tfservingpb.ModelSpec{Name: sv.Name, VersionChoice: &tfservingpb.ModelSpec_Version{Version: wrapperspb.Int64(sv.Version)}, SignatureName: defaultSignature},
		Outputs:   make(map[string]*tfservingpb.TensorProto, len(names)),
	}
	for _, name := range names {
		o, ok := out[name]
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "output tensor alias not found in signature: %s", name)
		}
		resp.Outputs[name] = toTensorProto(o)
	}
	return resp, nil
}

func (p tfPredictionService) GetModelMetadata(ctx context.Context, req *tfservingpb.GetModelMetadataRequest) (*tfservingpb.GetModelMetadataResponse, error) {
	t, err := tfTarget(req.GetModelSpec())
	if err != nil {
		return nil, grpcErr(err)
	}
	if len(req.GetMetadataField()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "GetModelMetadataRequest must specify at least one metadata_field")
	}
	for _, f := range req.GetMetadataField() {
		if f != "signature_def" {
			return nil, status.Errorf(codes.InvalidArgument, "Metadata field %s is not supported", f)
		}
	}
	sv, err := p.s.resolve(t)
	if err != nil {
		return nil, grpcErr(err)
	}
	sig := &tfservingpb.SignatureDef{Inputs: tensorInfos(sv.Model.Inputs()), Outputs: tensorInfos(sv.Model.Outputs()), MethodName: "tensorflow/serving/predict"}
	any, err := anypb.New(&tfservingpb.SignatureDefMap{SignatureDef: map[string]*tfservingpb.SignatureDef{defaultSignature: sig}})
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &tfservingpb.GetModelMetadataResponse{
		ModelSpec: &tfservingpb.ModelSpec{Name: sv.Name, VersionChoice: &tfservingpb.ModelSpec_Version{Version: wrapperspb.Int64(sv.Version)}},
		Metadata:  map[string]*anypb.Any{"signature_def": any},
	}, nil
}

func (m tfModelService) GetModelStatus(ctx context.Context, req *tfservingpb.GetModelStatusRequest) (*tfservingpb.GetModelStatusResponse, error) {
	t, err := tfTarget(req.GetModelSpec())
	if err != nil {
		return nil, grpcErr(err)
	}
	statuses, err := m.s.versionStatuses(t)
	if err != nil {
		return nil, grpcErr(err)
	}
	resp := &tfservingpb.GetModelStatusResponse{}
	for _, st := range statuses {
		code := tfservingpb.Code_OK
		if c, ok := tfservingpb.Code_value[st.ErrorCode]; ok {
			code = tfservingpb.Code(c)
		}
		resp.ModelVersionStatus = append(resp.ModelVersionStatus, &tfservingpb.ModelVersionStatus{
			Version: st.Version,
			State:   tfservingpb.ModelVersionStatus_State(tfservingpb.ModelVersionStatus_State_value[string(st.State)]),
			Status:  &tfservingpb.StatusProto{ErrorCode: code, ErrorMessage: st.ErrorMessage},
		})
	}
	return resp, nil
}

var tfDTypes = map[modelruntime.DataType]tfservingpb.DataType{
	modelruntime.Bool: tfservingpb.DataType_DT_BOOL, modelruntime.Uint8: tfservingpb.DataType_DT_UINT8,
	modelruntime.Uint16: tfservingpb.DataType_DT_UINT16, modelruntime.Uint32: tfservingpb.DataType_DT_UINT32,
	modelruntime.Uint64: tfservingpb.DataType_DT_UINT64, modelruntime.Int8: tfservingpb.DataType_DT_INT8,
	modelruntime.Int16: tfservingpb.DataType_DT_INT16, modelruntime.Int32: tfservingpb.DataType_DT_INT32,
	modelruntime.Int64: tfservingpb.DataType_DT_INT64, modelruntime.FP16: tfservingpb.DataType_DT_HALF,
	modelruntime.FP32: tfservingpb.DataType_DT_FLOAT, modelruntime.FP64: tfservingpb.DataType_DT_DOUBLE,
	modelruntime.Bytes: tfservingpb.DataType_DT_STRING,
}

func tensorInfos(specs []modelruntime.TensorSpec) map[string]*tfservingpb.TensorInfo {
	out := make(map[string]*tfservingpb.TensorInfo, len(specs))
	for _, s := range specs {
		shape := &tfservingpb.TensorShapeProto{UnknownRank: s.UnknownRank}
		for _, d := range s.Shape {
			shape.Dim = append(shape.Dim, &tfservingpb.TensorShapeProto_Dim{Size: d})
		}
		out[s.Name] = &tfservingpb.TensorInfo{Encoding: &tfservingpb.TensorInfo_Name{Name: s.Name}, Dtype: tfDTypes[s.DataType], TensorShape: shape}
	}
	return out
}

func tensorProtoSize(tp *tfservingpb.TensorProto) int64 {
	n := int64(len(tp.GetTensorContent())) + 4*int64(len(tp.GetFloatVal())+len(tp.GetIntVal())+len(tp.GetHalfVal())+len(tp.GetUint32Val())) +
		8*int64(len(tp.GetDoubleVal())+len(tp.GetInt64Val())+len(tp.GetUint64Val())) + int64(len(tp.GetBoolVal()))
	for _, b := range tp.GetStringVal() {
		n += int64(len(b)) + 24
	}
	return n
}

// fromTensorProto decodes a TensorProto for spec: the dtype must match; values come from
// tensor_content (little-endian, row-major) or from the dtype's typed field, where a single value
// fills the whole shape (as tensorflow::Tensor::FromProto does).
func fromTensorProto(tp *tfservingpb.TensorProto, spec modelruntime.TensorSpec) (modelruntime.Tensor, error) {
	want := tfDTypes[spec.DataType]
	if tp.GetDtype() != want {
		return modelruntime.Tensor{}, statusf(codes.InvalidArgument, "Expects arg[%q] to be %s but %s is provided", spec.Name, want, tp.GetDtype())
	}
	if tp.GetTensorShape().GetUnknownRank() {
		return modelruntime.Tensor{}, statusf(codes.InvalidArgument, "input %q: tensor_shape has unknown_rank; a request tensor needs its shape", spec.Name)
	}
	shape := make([]int64, len(tp.GetTensorShape().GetDim()))
	for i, d := range tp.GetTensorShape().GetDim() {
		if d.GetSize() < 0 {
			return modelruntime.Tensor{}, statusf(codes.InvalidArgument, "input %q: tensor_shape.dim[%d].size %d is negative", spec.Name, i, d.GetSize())
		}
		shape[i] = d.GetSize()
	}
	n := modelruntime.NumElements(shape)
	if n > 1<<31 {
		return modelruntime.Tensor{}, statusf(codes.InvalidArgument, "input %q: shape %s is too large", spec.Name, modelruntime.FormatShape(shape))
	}
	if c := tp.GetTensorContent(); len(c) > 0 {
		data, err := decodeRaw(spec.DataType, c, int(n), spec.Name)
		return modelruntime.Tensor{DataType: spec.DataType, Shape: shape, Data: data}, err
	}
	var data any
	var err error
	switch spec.DataType {
	case modelruntime.FP32:
		data, err = fill(tp.GetFloatVal(), n, spec.Name, "float_val")
	case modelruntime.FP64:
		data, err = fill(tp.GetDoubleVal(), n, spec.Name, "double_val")
	case modelruntime.Int64:
		data, err = fill(tp.GetInt64Val(), n, spec.Name, "int64_val")
	case modelruntime.Int32:
		data, err = fill(tp.GetIntVal(), n, spec.Name, "int_val")
	case modelruntime.Int16:
		data, err = fillConv[int32, int16](tp.GetIntVal(), n, spec.Name, "int_val")
	case modelruntime.Int8:
		data, err = fillConv[int32, int8](tp.GetIntVal(), n, spec.Name, "int_val")
	case modelruntime.Uint8:
		data, err = fillConv[int32, uint8](tp.GetIntVal(), n, spec.Name, "int_val")
	case modelruntime.Uint16:
		data, err = fillConv[int32, uint16](tp.GetIntVal(), n, spec.Name, "int_val")
	case modelruntime.Uint32:
		data, err = fill(tp.GetUint32Val(), n, spec.Name, "uint32_val")
	case modelruntime.Uint64:
		data, err = fill(tp.GetUint64Val(), n, spec.Name, "uint64_val")
	case modelruntime.Bool:
		data, err = fill(tp.GetBoolVal(), n, spec.Name, "bool_val")
	case modelruntime.Bytes:
		data, err = fill(tp.GetStringVal(), n, spec.Name, "string_val")
	default:
		err = statusf(codes.InvalidArgument, "input %q: datatype %s is not supported", spec.Name, spec.DataType)
	}
	return modelruntime.Tensor{DataType: spec.DataType, Shape: shape, Data: data}, err
}

func fill[T int32 | int16 | int8 | uint8 | uint16 | float32 | float64 | int64 | uint32 | uint64 | bool | []byte](vals []T, n int64, input, field string) ([]T, error) {
	if int64(len(vals)) == n && n > 0 {
		return vals, nil // the request owns its slices for the duration of the call: no copy
	}
	return fillConv[T, T](vals, n, input, field)
}

func fillConv[S, T int32 | int16 | int8 | uint8 | uint16 | float32 | float64 | int64 | uint32 | uint64 | bool | []byte](vals []S, n int64, input, field string) ([]T, error) {
	out := make([]T, n)
	switch {
	case int64(len(vals)) == n:
		for i, v := range vals {
			out[i] = convertElem[S, T](v)
		}
	case len(vals) == 1 || (len(vals) > 0 && int64(len(vals)) < n):
		// TF fills the rest with the last value.
		for i := range out {
			out[i] = convertElem[S, T](vals[min(i, len(vals)-1)])
		}
	case n == 0 && len(vals) == 0:
	default:
		return nil, statusf(codes.InvalidArgument, "input %q: %s has %d values, the shape needs %d", input, field, len(vals), n)
	}
	return out, nil
}

func convertElem[S, T any](v S) T {
	var out T
	switch s := any(v).(type) {
	case int32:
		switch any(out).(type) {
		case int16:
			return any(int16(s)).(T)
		case int8:
			return any(int8(s)).(T)
		case uint8:
			return any(uint8(s)).(T)
		case uint16:
			return any(uint16(s)).(T)
		}
	}
	return any(v).(T)
}

// decodeRaw decodes n little-endian elements of dt (BYTES: each a 4-byte little-endian length,
// then the bytes, as the v2 protocol's raw contents).
func decodeRaw(dt modelruntime.DataType, b []byte, n int, input string) (any, error) {
	if dt == modelruntime.Bytes {
		out := make([][]byte, 0, n)
		for len(b) > 0 {
			if len(b) < 4 {
				return nil, statusf(codes.InvalidArgument, "input %q: raw BYTES element %d has a truncated length prefix", input, len(out))
			}
			l := int(binary.LittleEndian.Uint32(b))
			if l > len(b)-4 {
				return nil, statusf(codes.InvalidArgument, "input %q: raw BYTES element %d declares %d bytes, %d remain", input, len(out), l, len(b)-4)
			}
			out = append(out, b[4:4+l])
			b = b[4+l:]
		}
		if len(out) != n {
			return nil, statusf(codes.InvalidArgument, "input %q: raw contents hold %d BYTES elements, the shape needs %d", input, len(out), n)
		}
		return out, nil
	}
	size := dt.Size()
	if size == 0 {
		return nil, statusf(codes.InvalidArgument, "input %q: datatype %s is not supported", input, dt)
	}
	if len(b) != n*size {
		return nil, statusf(codes.InvalidArgument, "input %q: raw contents have %d bytes, shape and datatype %s need %d", input, len(b), dt, n*size)
	}
	switch dt {
	case modelruntime.FP32:
		if n == 0 {
			return []float32{}, nil
		}
		return appendLittleEndianFloats(make([]float32, 0, n), b), nil
	case modelruntime.FP64:
		out := make([]float64, n)
		for i := range out {
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
		return out, nil
	case modelruntime.Int64:
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
		return out, nil
	case modelruntime.Uint64:
		out := make([]uint64, n)
		for i := range out {
			out[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
		return out, nil
	case modelruntime.Int32:
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return out, nil
	case modelruntime.Uint32:
		out := make([]uint32, n)
		for i := range out {
			out[i] = binary.LittleEndian.Uint32(b[4*i:])
		}
		return out, nil
	case modelruntime.Int16:
		out := make([]int16, n)
		for i := range out {
			out[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return out, nil
	case modelruntime.Uint16:
		out := make([]uint16, n)
		for i := range out {
			out[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		return out, nil
	case modelruntime.Int8:
		out := make([]int8, n)
		for i := range out {
			out[i] = int8(b[i])
		}
		return out, nil
	case modelruntime.Uint8:
		return append([]uint8(nil), b...), nil
	case modelruntime.Bool:
		out := make([]bool, n)
		for i := range out {
			out[i] = b[i] != 0
		}
		return out, nil
	}
	return nil, statusf(codes.InvalidArgument, "input %q: datatype %s is not supported", input, dt)
}

// encodeRaw is the inverse of decodeRaw.
func encodeRaw(data any) []byte {
	switch d := data.(type) {
	case []float32:
		return appendFloatBytes(make([]byte, 0, 4*len(d)), d)
	case []float64:
		b := make([]byte, 8*len(d))
		for i, v := range d {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
		}
		return b
	case []int64:
		b := make([]byte, 8*len(d))
		for i, v := range d {
			binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
		}
		return b
	case []uint64:
		b := make([]byte, 8*len(d))
		for i, v := range d {
			binary.LittleEndian.PutUint64(b[8*i:], v)
		}
		return b
	case []int32:
		b := make([]byte, 4*len(d))
		for i, v := range d {
			binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
		}
		return b
	case []uint32:
		b := make([]byte, 4*len(d))
		for i, v := range d {
			binary.LittleEndian.PutUint32(b[4*i:], v)
		}
		return b
	case []int16:
		b := make([]byte, 2*len(d))
		for i, v := range d {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
		}
		return b
	case []uint16:
		b := make([]byte, 2*len(d))
		for i, v := range d {
			binary.LittleEndian.PutUint16(b[2*i:], v)
		}
		return b
	case []int8:
		b := make([]byte, len(d))
		for i, v := range d {
			b[i] = byte(v)
		}
		return b
	case []uint8:
		return append([]byte(nil), d...)
	case []bool:
		b := make([]byte, len(d))
		for i, v := range d {
			if v {
				b[i] = 1
			}
		}
		return b
	case [][]byte:
		var b []byte
		for _, e := range d {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
			b = append(b, e...)
		}
		return b
	}
	return nil
}

// toTensorProto writes a tensor in the dtype's typed field (TF Serving's default serialization
// of Predict outputs).
func toTensorProto(t modelruntime.Tensor) *tfservingpb.TensorProto {
	tp := &tfservingpb.TensorProto{Dtype: tfDTypes[t.DataType], TensorShape: &tfservingpb.TensorShapeProto{}}
	for _, d := range t.Shape {
		tp.TensorShape.Dim = append(tp.TensorShape.Dim, &tfservingpb.TensorShapeProto_Dim{Size: d})
	}
	switch d := t.Data.(type) {
	case []float32:
		tp.FloatVal = d
	case []float64:
		tp.DoubleVal = d
	case []int64:
		tp.Int64Val = d
	case []int32:
		tp.IntVal = d
	case []int16:
		tp.IntVal = widen(d)
	case []int8:
		tp.IntVal = widen(d)
	case []uint8:
		tp.IntVal = widen(d)
	case []uint16:
		tp.IntVal = widen(d)
	case []uint32:
		tp.Uint32Val = d
	case []uint64:
		tp.Uint64Val = d
	case []bool:
		tp.BoolVal = d
	case [][]byte:
		tp.StringVal = d
	}
	return tp
}

func widen[T int16 | int8 | uint8 | uint16](d []T) []int32 {
	out := make([]int32, len(d))
	for i, v := range d {
		out[i] = int32(v)
	}
	return out
}

// ---- KServe v2 ------------------------------------------------------------------------------

type v2Service struct {
	inferencepb.UnimplementedGRPCInferenceServiceServer
	s *Server
}

func (v v2Service) ServerLive(context.Context, *inferencepb.ServerLiveRequest) (*inferencepb.ServerLiveResponse, error) {
	return &inferencepb.ServerLiveResponse{Live: true}, nil
}

func (v v2Service) ServerReady(context.Context, *inferencepb.ServerReadyRequest) (*inferencepb.ServerReadyResponse, error) {
	return &inferencepb.ServerReadyResponse{Ready: v.s.ServerReady()}, nil
}

func v2Target(name, version string) (target, error) {
	if name == "" {
		return target{}, statusf(codes.InvalidArgument, "model name is required")
	}
	t := target{model: name}
	if version != "" {
		n, err := strconv.ParseInt(version, 10, 64)
		if err != nil || n < 0 {
			return target{}, statusf(codes.InvalidArgument, "invalid model version %q: must be a non-negative integer", version)
		}
		t.version, t.hasVer = n, true
	}
	return t, nil
}

func (v v2Service) ModelReady(ctx context.Context, req *inferencepb.ModelReadyRequest) (*inferencepb.ModelReadyResponse, error) {
	t, err := v2Target(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, grpcErr(err)
	}
	ready, known := v.s.ModelReady(t.model, t.version, t.hasVer)
	if !known {
		return nil, status.Errorf(codes.NotFound, "Model with name %s does not exist.", t.model)
	}
	return &inferencepb.ModelReadyResponse{Ready: ready}, nil
}

func (v v2Service) ServerMetadata(context.Context, *inferencepb.ServerMetadataRequest) (*inferencepb.ServerMetadataResponse, error) {
	return &inferencepb.ServerMetadataResponse{Name: v.s.opts.Name, Version: v.s.opts.Version, Extensions: []string{}}, nil
}

func (v v2Service) ModelMetadata(ctx context.Context, req *inferencepb.ModelMetadataRequest) (*inferencepb.ModelMetadataResponse, error) {
	t, err := v2Target(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, grpcErr(err)
	}
	if _, ok := v.s.backends(t.model); !ok {
		return nil, status.Errorf(codes.NotFound, "Model with name %s does not exist.", t.model)
	}
	sv, err := v.s.resolve(t)
	if err != nil {
		return nil, grpcErr(err)
	}
	resp := &inferencepb.ModelMetadataResponse{Name: sv.Name, Platform: platformONNX, Versions: v.s.availableVersions(t.model)}
	for _, s := range sv.Model.Inputs() {
		resp.Inputs = append(resp.Inputs, &inferencepb.ModelMetadataResponse_TensorMetadata{Name: s.Name, Datatype: string(s.DataType), Shape: specShape(s)})
	}
	for _, s := range sv.Model.Outputs() {
		resp.Outputs = append(resp.Outputs, &inferencepb.ModelMetadataResponse_TensorMetadata{Name: s.Name, Datatype: string(s.DataType), Shape: specShape(s)})
	}
	return resp, nil
}

func specShape(s modelruntime.TensorSpec) []int64 {
	if s.UnknownRank {
		return []int64{-1}
	}
	return s.Shape
}

func (v v2Service) ModelInfer(ctx context.Context, req *inferencepb.ModelInferRequest) (*inferencepb.ModelInferResponse, error) {
	t, err := v2Target(req.GetModelName(), req.GetModelVersion())
	if err != nil {
		return nil, grpcErr(err)
	}
	if _, ok := v.s.backends(t.model); !ok {
		return nil, status.Errorf(codes.NotFound, "Model with name %s does not exist.", t.model)
	}
	raw := req.GetRawInputContents()
	if len(raw) > 0 && len(raw) != len(req.GetInputs()) {
		return nil, status.Errorf(codes.InvalidArgument, "raw_input_contents has %d entries for %d inputs", len(raw), len(req.GetInputs()))
	}
	var size int64
	for _, b := range raw {
		size += int64(len(b))
	}
	for _, in := range req.GetInputs() {
		c := in.GetContents()
		size += 4*int64(len(c.GetFp32Contents())+len(c.GetIntContents())+len(c.GetUintContents())) +
			8*int64(len(c.GetFp64Contents())+len(c.GetInt64Contents())+len(c.GetUint64Contents())) + int64(len(c.GetBoolContents()))
		for _, b := range c.GetBytesContents() {
			size += int64(len(b)) + 24
		}
	}
	l := requestLease(ctx, &v.s.budget)
	defer l.release()
	sv, out, err := v.s.run(ctx, l, t, size, func(specs []modelruntime.TensorSpec) (map[string]modelruntime.Tensor, error) {
		return decodeV2Inputs(req, specs)
	})
	if err != nil {
		return nil, grpcErr(err)
	}
	resp := &inferencepb.ModelInferResponse{ModelName: sv.Name, ModelVersion: strconv.FormatInt(sv.Version, 10), Id: req.GetId()}
	var names []string
	for i, o := range req.GetOutputs() {
		if !hasInput(sv.Model.Outputs(), o.GetName()) {
			return nil, status.Errorf(codes.InvalidArgument, "outputs[%d].name: %q is not an output of the model (outputs: %s)", i, o.GetName(), inputNames(sv.Model.Outputs()))
		}
		names = append(names, o.GetName())
	}
	if len(names) == 0 {
		for _, o := range sv.Model.Outputs() {
			names = append(names, o.Name)
		}
	}
	for _, name := range names {
		o := out[name]
		ot := &inferencepb.ModelInferResponse_InferOutputTensor{Name: name, Datatype: string(o.DataType), Shape: o.Shape}
		if len(raw) > 0 {
			// Raw in, raw out: the binary form carries every value, NaN and ±Inf included.
			resp.RawOutputContents = append(resp.RawOutputContents, encodeRaw(o.Data))
		} else {
			ot.Contents = toV2Contents(o.Data)
		}
		resp.Outputs = append(resp.Outputs, ot)
	}
	return resp, nil
}

// availableVersions lists the model's AVAILABLE versions across its backends.
func (s *Server) availableVersions(model string) []string {
	backends, _ := s.backends(model)
	seen := map[int64]bool{}
	var out []string
	for _, b := range backends {
		for _, st := range b.Manager.Snapshot().Statuses {
			if st.State == modelrepo.StateAvailable && !seen[st.Version] {
				seen[st.Version] = true
				out = append(out, strconv.FormatInt(st.Version, 10))
			}
		}
	}
	return out
}

func decodeV2Inputs(req *inferencepb.ModelInferRequest, specs []modelruntime.TensorSpec) (map[string]modelruntime.Tensor, error) {
	raw := req.GetRawInputContents()
	in := make(map[string]modelruntime.Tensor, len(req.GetInputs()))
	for i, it := range req.GetInputs() {
		var spec *modelruntime.TensorSpec
		for j := range specs {
			if specs[j].Name == it.GetName() {
				spec = &specs[j]
			}
		}
		if spec == nil {
			return nil, statusf(codes.InvalidArgument, "inputs[%d].name: %q is not an input of the model (inputs: %s)", i, it.GetName(), inputNames(specs))
		}
		if _, dup := in[it.GetName()]; dup {
			return nil, statusf(codes.InvalidArgument, "inputs[%d].name: input %q given twice", i, it.GetName())
		}
		if dt := modelruntime.DataType(it.GetDatatype()); dt != spec.DataType {
			return nil, statusf(codes.InvalidArgument, "inputs[%d].datatype: input %q expects %s, got %q", i, it.GetName(), spec.DataType, it.GetDatatype())
		}
		for j, d := range it.GetShape() {
			if d < 0 {
				return nil, statusf(codes.InvalidArgument, "inputs[%d].shape[%d]: must be a non-negative integer", i, j)
			}
		}
		shape := it.GetShape()
		n := modelruntime.NumElements(shape)
		if n > 1<<31 {
			return nil, statusf(codes.InvalidArgument, "inputs[%d].shape: %s is too large", i, modelruntime.FormatShape(shape))
		}
		var data any
		var err error
		if len(raw) > 0 {
			if it.GetContents() != nil {
				return nil, statusf(codes.InvalidArgument, "inputs[%d].contents: must be empty when raw_input_contents is used", i)
			}
			data, err = decodeRaw(spec.DataType, raw[i], int(n), it.GetName())
		} else {
			data, err = fromV2Contents(spec.DataType, it.GetContents(), n, i)
		}
		if err != nil {
			return nil, err
		}
		in[it.GetName()] = modelruntime.Tensor{DataType: spec.DataType, Shape: shape, Data: data}
	}
	return in, nil
}

func exact[T any](vals []T, n int64, i int, field string) ([]T, error) {
	if int64(len(vals)) != n {
		return nil, statusf(codes.InvalidArgument, "inputs[%d].contents.%s: has %d values, the shape needs %d", i, field, len(vals), n)
	}
	if vals == nil {
		vals = []T{}
	}
	return vals, nil
}

func narrowed[S int32 | uint32, T int16 | int8 | uint8 | uint16](vals []S, n int64, i int, field string, lo, hi int64) ([]T, error) {
	if int64(len(vals)) != n {
		return nil, statusf(codes.InvalidArgument, "inputs[%d].contents.%s: has %d values, the shape needs %d", i, field, len(vals), n)
	}
	out := make([]T, n)
	for j, v := range vals {
		if int64(v) < lo || int64(v) > hi {
			return nil, statusf(codes.InvalidArgument, "inputs[%d].contents.%s[%d]: %d is out of range [%d, %d]", i, field, j, v, lo, hi)
		}
		out[j] = T(v)
	}
	return out, nil
}

// fromV2Contents reads the typed contents field of dt (INT8/16/32 share int_contents,
// UINT8/16/32 uint_contents).
func fromV2Contents(dt modelruntime.DataType, c *inferencepb.InferTensorContents, n int64, i int) (any, error) {
	switch dt {
	case modelruntime.FP32:
		return exact(c.GetFp32Contents(), n, i, "fp32_contents")
	case modelruntime.FP64:
		return exact(c.GetFp64Contents(), n, i, "fp64_contents")
	case modelruntime.Int64:
		return exact(c.GetInt64Contents(), n, i, "int64_contents")
	case modelruntime.Int32:
		return exact(c.GetIntContents(), n, i, "int_contents")
	case modelruntime.Int16:
		return narrowed[int32, int16](c.GetIntContents(), n, i, "int_contents", math.MinInt16, math.MaxInt16)
	case modelruntime.Int8:
		return narrowed[int32, int8](c.GetIntContents(), n, i, "int_contents", math.MinInt8, math.MaxInt8)
	case modelruntime.Uint64:
		return exact(c.GetUint64Contents(), n, i, "uint64_contents")
	case modelruntime.Uint32:
		return exact(c.GetUintContents(), n, i, "uint_contents")
	case modelruntime.Uint16:
		return narrowed[uint32, uint16](c.GetUintContents(), n, i, "uint_contents", 0, math.MaxUint16)
	case modelruntime.Uint8:
		return narrowed[uint32, uint8](c.GetUintContents(), n, i, "uint_contents", 0, math.MaxUint8)
	case modelruntime.Bool:
		return exact(c.GetBoolContents(), n, i, "bool_contents")
	case modelruntime.Bytes:
		return exact(c.GetBytesContents(), n, i, "bytes_contents")
	}
	return nil, statusf(codes.InvalidArgument, "inputs[%d].datatype: %s is not supported", i, dt)
}

func toV2Contents(data any) *inferencepb.InferTensorContents {
	c := &inferencepb.InferTensorContents{}
	switch d := data.(type) {
	case []float32:
		c.Fp32Contents = d
	case []float64:
		c.Fp64Contents = d
	case []int64:
		c.Int64Contents = d
	case []int32:
		c.IntContents = d
	case []int16:
		c.IntContents = widen(d)
	case []int8:
		c.IntContents = widen(d)
	case []uint64:
		c.Uint64Contents = d
	case []uint32:
		c.UintContents = d
	case []uint16:
		c.UintContents = widenU(d)
	case []uint8:
		c.UintContents = widenU(d)
	case []bool:
		c.BoolContents = d
	case [][]byte:
		c.BytesContents = d
	}
	return c
}

func widenU[T uint8 | uint16](d []T) []uint32 {
	out := make([]uint32, len(d))
	for i, v := range d {
		out[i] = uint32(v)
	}
	return out
}
