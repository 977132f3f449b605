package dataplane

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"slices"
	"sync"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ml/sluice/services/serving/api/inferencepb"
	"github.com/sluice-ml/sluice/services/serving/api/tfservingpb"
)

// Tensor-aware decoding of the two requests that carry tensors, tensorflow.serving.PredictRequest
// and inference.ModelInferRequest. protobuf's generic decoder reads a packed float field one
// element at a time into a fresh slice; for a batch-32 MNIST request (25,088 floats, 100 KiB) that
// is most of the decoding time and all of its garbage. decodeTensorRequest walks the message with
// protowire down to the tensors, copies each packed float field (TensorProto.float_val,
// InferTensorContents.fp32_contents) in one move into a []float32 (recycled when the request has a
// lease to return it to), and hands every other field, unchanged, to protobuf's own decoder
// (proto.UnmarshalOptions{Merge: true} on that field's bytes: parsing a message is merging its
// fields in order, so the result is the one proto.Unmarshal builds). Anything this walk does not
// decode exactly as protobuf does (malformed bytes, a tensor field with an unexpected wire type, a
// map entry with unknown fields) makes it give up: the caller resets the message and decodes it
// with proto.Unmarshal, so errors and edge cases are protobuf's own.

// errNotFast means the fast walk cannot decode these bytes as protobuf would: use proto.Unmarshal.
var errNotFast = errors.New("dataplane: not decoded by the tensor walk")

var mergeField = proto.UnmarshalOptions{Merge: true}

// floatDecoder decodes packed float fields; with pool set, slices of at least minPooledFloats
// elements come from floatPool and are recorded in pooled for the caller to return.
type floatDecoder struct {
	pool   bool
	pooled []*[]float32
}

// minPooledFloats is the smallest float field recycled (16 KiB of floats); smaller ones are
// allocated as protobuf would.
const minPooledFloats = 4 << 10

// decodeTensorRequest decodes b into m when m is a *tfservingpb.PredictRequest or an
// *inferencepb.ModelInferRequest (handled true); m must be empty. On an error m is partly filled:
// the caller resets it and falls back to proto.Unmarshal.
func decodeTensorRequest(b []byte, m proto.Message, d *floatDecoder) (handled bool, err error) {
	switch req := m.(type) {
	case *tfservingpb.PredictRequest:
		return true, d.predictRequest(b, req)
	case *inferencepb.ModelInferRequest:
		return true, d.modelInferRequest(b, req)
	}
	return false, nil
}

// field splits the next field off b: its number, wire type, value (for BytesType, the payload),
// the whole field's bytes (tag included) and the rest.
func nextField(b []byte) (num protowire.Number, typ protowire.Type, whole, rest []byte, err error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, nil, nil, errNotFast
	}
	m := protowire.ConsumeFieldValue(num, typ, b[n:])
	if m < 0 {
		return 0, 0, nil, nil, errNotFast
	}
	return num, typ, b[:n+m], b[n+m:], nil
}

// payload is the value of a BytesType field given its whole bytes.
func payload(whole []byte) []byte {
	_, _, n := protowire.ConsumeTag(whole)
	v, _ := protowire.ConsumeBytes(whole[n:])
	return v
}

// PredictRequest: model_spec = 1, map<string, TensorProto> inputs = 2, output_filter = 3.
func (d *floatDecoder) predictRequest(b []byte, req *tfservingpb.PredictRequest) error {
	for len(b) > 0 {
		num, typ, whole, rest, err := nextField(b)
		if err != nil {
			return err
		}
		if num == 2 && typ == protowire.BytesType {
			err = d.inputsEntry(payload(whole), req)
		} else {
			err = mergeField.Unmarshal(whole, req)
		}
		if err != nil {
			return err
		}
		b = rest
	}
	return nil
}

// inputsEntry decodes one map entry (key = 1, value = 2): the last key wins, values merge, a
// missing value is an empty tensor, an entry replaces an earlier one of the same key.
func (d *floatDecoder) inputsEntry(b []byte, req *tfservingpb.PredictRequest) error {
	var key string
	var tp *tfservingpb.TensorProto
	for len(b) > 0 {
		num, typ, whole, rest, err := nextField(b)
		if err != nil {
			return err
		}
		if typ != protowire.BytesType || (num != 1 && num != 2) {
			return errNotFast
		}
		v := payload(whole)
		if num == 1 {
			if !utf8.Valid(v) {
				return errNotFast // protobuf's error names the field
			}
			key = string(v)
		} else {
			if tp == nil {
				tp = &tfservingpb.TensorProto{}
			}
			if err := d.tensorProto(v, tp); err != nil {
				return err
			}
		}
		b = rest
	}
	if tp == nil {
		tp = &tfservingpb.TensorProto{}
	}
	if req.Inputs == nil {
		req.Inputs = map[string]*tfservingpb.TensorProto{}
	}
	req.Inputs[key] = tp
	return nil
}

// TensorProto: float_val = 5 here, every other field by protobuf.
func (d *floatDecoder) tensorProto(b []byte, tp *tfservingpb.TensorProto) error {
	for len(b) > 0 {
		num, typ, whole, rest, err := nextField(b)
		if err != nil {
			return err
		}
		if num == 5 {
			tp.FloatVal, err = d.floats(tp.FloatVal, typ, whole)
		} else {
			err = mergeField.Unmarshal(whole, tp)
		}
		if err != nil {
			return err
		}
		b = rest
	}
	return nil
}

// ModelInferRequest: inputs = 5 here (each an InferInputTensor), every other field by protobuf.
func (d *floatDecoder) modelInferRequest(b []byte, req *inferencepb.ModelInferRequest) error {
	for len(b) > 0 {
		num, typ, whole, rest, err := nextField(b)
		if err != nil {
			return err
		}
		if num == 5 && typ == protowire.BytesType {
			it := &inferencepb.ModelInferRequest_InferInputTensor{}
			if err := d.inferInput(payload(whole), it); err != nil {
				return err
			}
			req.Inputs = append(req.Inputs, it)
		} else if num == 5 {
			return errNotFast
		} else if err := mergeField.Unmarshal(whole, req); err != nil {
			return err
		}
		b = rest
	}
	return nil
}

// InferInputTensor: contents = 5 here (merged when repeated), every other field by protobuf.
func (d *floatDecoder) inferInput(b []byte, it *inferencepb.ModelInferRequest_InferInputTensor) error {
	for len(b) > 0 {
		num, typ, whole, rest, err := nextField(b)
		if err != nil {
			return err
		}
		if num == 5 && typ == protowire.BytesType {
			if it.Contents == nil {
				it.Contents = &inferencepb.InferTensorContents{}
			}
			err = d.inferContents(payload(whole), it.Contents)
		} else if num == 5 {
			return errNotFast
		} else {
			err = mergeField.Unmarshal(whole, it)
		}
		if err != nil {
			return err
		}
		b = rest
	}
	return nil
}

// InferTensorContents: fp32_contents = 6 here, every other field by protobuf.
func (d *floatDecoder) inferContents(b []byte, c *inferencepb.InferTensorContents) error {
	for len(b) > 0 {
		num, typ, whole, rest, err := nextField(b)
		if err != nil {
			return err
		}
		if num == 6 {
			c.Fp32Contents, err = d.floats(c.Fp32Contents, typ, whole)
		} else {
			err = mergeField.Unmarshal(whole, c)
		}
		if err != nil {
			return err
		}
		b = rest
	}
	return nil
}

// floats appends a repeated float field's values to dst: packed (BytesType, little-endian
// 4-byte values) or one unpacked value (Fixed32Type).
func (d *floatDecoder) floats(dst []float32, typ protowire.Type, whole []byte) ([]float32, error) {
	switch typ {
	case protowire.Fixed32Type:
		_, _, n := protowire.ConsumeTag(whole)
		v, _ := protowire.ConsumeFixed32(whole[n:])
		return append(dst, math.Float32frombits(v)), nil
	case protowire.BytesType:
		v := payload(whole)
		if len(v)%4 != 0 {
			return nil, errNotFast
		}
		count := len(v) / 4
		if count == 0 {
			return dst, nil
		}
		if dst == nil && d.pool && count >= minPooledFloats {
			p := getFloats(count)
			d.pooled = append(d.pooled, p)
			dst = *p
		}
		dst = slices.Grow(dst, count)
		return appendLittleEndianFloats(dst, v), nil
	}
	return nil, errNotFast
}

// appendLittleEndianFloats appends the float32 values in b (len(b) a multiple of 4) to dst, whose
// capacity must hold them.
func appendLittleEndianFloats(dst []float32, b []byte) []float32 {
	n := len(dst)
	dst = dst[:n+len(b)/4]
	out := dst[n:]
	if nativeLittleEndian {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(b)), b)
		return dst
	}
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return dst
}

var nativeLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// floatPool recycles the float slices of decoded requests by power-of-two capacity (class i holds
// slices of capacity 1<<i), up to 1<<maxFloatClass elements (16 MiB). Idle slices are not charged
// to the in-flight budget; the pool drops them within two garbage collections.
var floatPool [maxFloatClass + 1]sync.Pool

const maxFloatClass = 22

// getFloats returns an empty slice of capacity at least n (pooled when n fits a class).
func getFloats(n int) *[]float32 {
	c := bits.Len(uint(n - 1))
	if c <= maxFloatClass {
		if p, ok := floatPool[c].Get().(*[]float32); ok {
			*p = (*p)[:0]
			return p
		}
		s := make([]float32, 0, 1<<c)
		return &s
	}
	s := make([]float32, 0, n)
	return &s
}

// putFloats returns a slice from getFloats; nothing may refer to its elements any more.
func putFloats(p *[]float32) {
	c := cap(*p)
	if c == 0 || c&(c-1) != 0 || bits.Len(uint(c))-1 > maxFloatClass {
		return
	}
	floatPool[bits.Len(uint(c))-1].Put(p)
}

// overlapsFloats reports whether data is a []float32 sharing memory with one of the slices in
// pooled (a model output that is a view of its input).
func overlapsFloats(data any, pooled []*[]float32) bool {
	d, ok := data.([]float32)
	if !ok || cap(d) == 0 {
		return false
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(d)))
	hi := lo + uintptr(cap(d))*4
	for _, p := range pooled {
		if cap(*p) == 0 {
			continue
		}
		plo := uintptr(unsafe.Pointer(unsafe.SliceData((*p)[:1])))
		phi := plo + uintptr(cap(*p))*4
		if lo < phi && plo < hi {
			return true
		}
	}
	return false
}

// Tensor-aware encoding of tensorflow.serving.PredictRequest and PredictResponse, the messages whose
// TensorProto float_val can be large (a Go client's request, the server's response):
// appendTensorMessage writes the bytes proto.Marshal writes (fields in number order; map entries,
// whose order protobuf leaves unspecified, in Go's map order), but copies a packed float_val in one
// move instead of one element at a time. A tensor with any field beyond dtype, tensor_shape,
// version_number, tensor_content and float_val (or unknown fields) is written by proto itself.

// appendTensorMessage appends m to b when m is a *tfservingpb.PredictRequest or PredictResponse
// (handled true); any other message, or one with a string that is not valid UTF-8 (protobuf's
// marshaller reports those), is left to proto.
func appendTensorMessage(b []byte, m proto.Message) (_ []byte, handled bool, err error) {
	switch x := m.(type) {
	case *tfservingpb.PredictRequest:
		for k := range x.GetInputs() {
			if !utf8.ValidString(k) {
				return b, false, nil
			}
		}
		for _, s := range x.GetOutputFilter() {
			if !utf8.ValidString(s) {
				return b, false, nil
			}
		}
		if b, err = appendMessageField(b, 1, x.GetModelSpec()); err != nil {
			return b, true, err
		}
		if b, err = appendTensorMap(b, 2, x.GetInputs()); err != nil {
			return b, true, err
		}
		for _, s := range x.GetOutputFilter() {
			b = protowire.AppendString(protowire.AppendTag(b, 3, protowire.BytesType), s)
		}
		return append(b, x.ProtoReflect().GetUnknown()...), true, nil
	case *tfservingpb.PredictResponse:
		for k := range x.GetOutputs() {
			if !utf8.ValidString(k) {
				return b, false, nil
			}
		}
		if b, err = appendTensorMap(b, 1, x.GetOutputs()); err != nil {
			return b, true, err
		}
		if b, err = appendMessageField(b, 2, x.GetModelSpec()); err != nil {
			return b, true, err
		}
		return append(b, x.ProtoReflect().GetUnknown()...), true, nil
	}
	return b, false, nil
}

// appendMessageField appends field num holding m, unless m is nil.
func appendMessageField[M interface {
	proto.Message
	comparable
}](b []byte, num protowire.Number, m M) ([]byte, error) {
	var zero M
	if m == zero {
		return b, nil
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(proto.Size(m)))
	return proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, m)
}

// appendTensorMap appends the entries (key = 1, value = 2) of a map<string, TensorProto> field.
func appendTensorMap(b []byte, num protowire.Number, m map[string]*tfservingpb.TensorProto) ([]byte, error) {
	for k, tp := range m {
		if tp == nil {
			tp = &tfservingpb.TensorProto{} // protobuf writes a nil value as an empty message
		}
		simple := simpleTensor(tp)
		var vsize int
		if simple {
			vsize = simpleTensorSize(tp)
		} else {
			vsize = proto.Size(tp)
		}
		esize := protowire.SizeTag(1) + protowire.SizeBytes(len(k)) + protowire.SizeTag(2) + protowire.SizeBytes(vsize)
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(esize))
		b = protowire.AppendString(protowire.AppendTag(b, 1, protowire.BytesType), k)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(vsize))
		var err error
		if simple {
			b, err = appendSimpleTensor(b, tp)
		} else {
			b, err = proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, tp)
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// simpleTensor reports whether tp has no fields but dtype (1), tensor_shape (2), version_number
// (3), tensor_content (4) and float_val (5) (TestSimpleTensorFields keeps this list complete).
func simpleTensor(tp *tfservingpb.TensorProto) bool {
	return len(tp.HalfVal) == 0 && len(tp.DoubleVal) == 0 && len(tp.IntVal) == 0 && len(tp.StringVal) == 0 &&
		len(tp.ScomplexVal) == 0 && len(tp.Int64Val) == 0 && len(tp.BoolVal) == 0 && len(tp.DcomplexVal) == 0 &&
		len(tp.Uint32Val) == 0 && len(tp.Uint64Val) == 0 && len(tp.Float8Val) == 0 && len(tp.ProtoReflect().GetUnknown()) == 0
}

func simpleTensorSize(tp *tfservingpb.TensorProto) int {
	n := 0
	if tp.Dtype != 0 {
		n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(tp.Dtype))
	}
	if tp.TensorShape != nil {
		n += protowire.SizeTag(2) + protowire.SizeBytes(proto.Size(tp.TensorShape))
	}
	if tp.VersionNumber != 0 {
		n += protowire.SizeTag(3) + protowire.SizeVarint(uint64(int64(tp.VersionNumber)))
	}
	if len(tp.TensorContent) > 0 {
		n += protowire.SizeTag(4) + protowire.SizeBytes(len(tp.TensorContent))
	}
	if len(tp.FloatVal) > 0 {
		n += protowire.SizeTag(5) + protowire.SizeBytes(4*len(tp.FloatVal))
	}
	return n
}

func appendSimpleTensor(b []byte, tp *tfservingpb.TensorProto) ([]byte, error) {
	if tp.Dtype != 0 {
		b = protowire.AppendVarint(protowire.AppendTag(b, 1, protowire.VarintType), uint64(tp.Dtype))
	}
	var err error
	if b, err = appendMessageField(b, 2, tp.TensorShape); err != nil {
		return b, err
	}
	if tp.VersionNumber != 0 {
		b = protowire.AppendVarint(protowire.AppendTag(b, 3, protowire.VarintType), uint64(int64(tp.VersionNumber)))
	}
	if len(tp.TensorContent) > 0 {
		b = protowire.AppendBytes(protowire.AppendTag(b, 4, protowire.BytesType), tp.TensorContent)
	}
	if len(tp.FloatVal) > 0 {
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(4*len(tp.FloatVal)))
		b = appendFloatBytes(b, tp.FloatVal)
	}
	return b, nil
}

// appendFloatBytes appends the little-endian bytes of x.
func appendFloatBytes(b []byte, x []float32) []byte {
	if nativeLittleEndian && len(x) > 0 {
		return append(b, unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))...)
	}
	for _, v := range x {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}
