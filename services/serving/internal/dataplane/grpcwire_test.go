package dataplane

import (
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-ml/sluice/services/serving/api/inferencepb"
	"github.com/sluice-ml/sluice/services/serving/api/tfservingpb"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
)

// tensorRequestSeeds are wire messages the tensor walk must decode exactly as proto.Unmarshal:
// packed and unpacked floats (mixed and split over several fields), large (pooled) and small
// tensors, other dtypes, unknown fields at every level, repeated map keys (the last entry wins),
// a map value given twice (merged), entries without key or value, raw contents and parameters.
func tensorRequestSeeds(t testing.TB) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	floats := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = r.Float32()*2 - 1
		}
		return x
	}
	marshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	shape := func(d ...int64) *tfservingpb.TensorShapeProto {
		s := &tfservingpb.TensorShapeProto{}
		for _, x := range d {
			s.Dim = append(s.Dim, &tfservingpb.TensorShapeProto_Dim{Size: x})
		}
		return s
	}
	big := &tfservingpb.PredictRequest{
		ModelSpec: &tfservingpb.ModelSpec{Name: "mnist", VersionChoice: &tfservingpb.ModelSpec_Version{Version: wrapperspb.Int64(3)}, SignatureName: "serving_default"},
		Inputs: map[string]*tfservingpb.TensorProto{
			"input": {Dtype: tfservingpb.DataType_DT_FLOAT, TensorShape: shape(32, 784), FloatVal: floats(32 * 784)},
			"small": {Dtype: tfservingpb.DataType_DT_FLOAT, TensorShape: shape(3), FloatVal: []float32{1, float32(math.NaN()), float32(math.Inf(-1))}},
			"ints":  {Dtype: tfservingpb.DataType_DT_INT64, TensorShape: shape(2), Int64Val: []int64{-1, 1 << 40}, VersionNumber: 7},
			"raw":   {Dtype: tfservingpb.DataType_DT_FLOAT, TensorShape: shape(2), TensorContent: []byte{0, 0, 128, 63, 0, 0, 0, 64}},
			"strs":  {Dtype: tfservingpb.DataType_DT_STRING, StringVal: [][]byte{[]byte("a"), {0xff}}},
			"":      {},
		},
		OutputFilter: []string{"probabilities", "logits"},
	}
	infer := &inferencepb.ModelInferRequest{
		ModelName: "mnist", ModelVersion: "1", Id: "req-1",
		Parameters: map[string]*inferencepb.InferParameter{"p": {ParameterChoice: &inferencepb.InferParameter_Int64Param{Int64Param: 5}}},
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			{Name: "input", Datatype: "FP32", Shape: []int64{32, 784}, Contents: &inferencepb.InferTensorContents{Fp32Contents: floats(32 * 784)}},
			{Name: "b", Datatype: "BYTES", Shape: []int64{1}, Contents: &inferencepb.InferTensorContents{BytesContents: [][]byte{[]byte("x")}, IntContents: []int32{-3}}},
			{Name: "e", Datatype: "FP32", Shape: []int64{0}},
		},
		Outputs: []*inferencepb.ModelInferRequest_InferRequestedOutputTensor{{Name: "probabilities"}},
	}
	raw := &inferencepb.ModelInferRequest{ModelName: "m", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{2}}},
		RawInputContents: [][]byte{{0, 0, 128, 63, 0, 0, 0, 64}}}

	// Hand-built messages protobuf's marshaller never writes but its parser accepts.
	app := protowire.AppendTag
	unknown := func(b []byte, num protowire.Number) []byte {
		b = app(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, 42)
	}
	packed := func(b []byte, num protowire.Number, x ...float32) []byte {
		b = app(b, num, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(4*len(x)))
		for _, v := range x {
			b = protowire.AppendFixed32(b, math.Float32bits(v))
		}
		return b
	}
	unpacked := func(b []byte, num protowire.Number, v float32) []byte {
		return protowire.AppendFixed32(app(b, num, protowire.Fixed32Type), math.Float32bits(v))
	}
	msg := func(b []byte, num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(app(b, num, protowire.BytesType), v)
	}
	var tp []byte
	tp = unpacked(tp, 5, 1)
	tp = packed(tp, 5, floats(minPooledFloats+3)...)
	tp = unknown(tp, 99)
	tp = unpacked(tp, 5, 2)
	tp = packed(tp, 5)
	tp = packed(tp, 5, 3, 4)
	tp = msg(tp, 2, marshal(shape(minPooledFloats+8)))
	tp = unknown(tp, 14)
	var tp2 []byte // merged into the same value
	tp2 = packed(tp2, 5, 5, 6)
	tp2 = protowire.AppendVarint(app(tp2, 1, protowire.VarintType), uint64(tfservingpb.DataType_DT_FLOAT))
	var entry []byte
	entry = msg(entry, 2, tp)
	entry = msg(entry, 1, []byte("x"))
	entry = msg(entry, 2, tp2)
	var pr []byte
	pr = msg(pr, 2, msg(msg(nil, 1, []byte("x")), 2, packed(nil, 5, 9))) // replaced by the next "x"
	pr = unknown(pr, 1000)
	pr = msg(pr, 2, entry)
	pr = msg(pr, 1, marshal(&tfservingpb.ModelSpec{Name: "a"}))
	pr = msg(pr, 2, msg(nil, 1, []byte("novalue")))
	pr = msg(pr, 2, msg(nil, 2, packed(nil, 5, 7)))
	pr = msg(pr, 1, marshal(&tfservingpb.ModelSpec{SignatureName: "s"})) // merged into model_spec
	pr = msg(pr, 3, []byte("out"))

	var contents []byte
	contents = packed(contents, 6, floats(minPooledFloats)...)
	contents = unpacked(contents, 6, 8)
	contents = unknown(contents, 77)
	var input []byte
	input = msg(input, 1, []byte("in"))
	input = msg(input, 5, contents)
	input = unknown(input, 66)
	input = msg(input, 5, packed(nil, 6, 9, 10)) // merged into contents
	var ir []byte
	ir = msg(ir, 1, []byte("m"))
	ir = msg(ir, 5, input)
	ir = unknown(ir, 55)
	ir = msg(ir, 5, nil)
	ir = msg(ir, 7, []byte{1, 2, 3, 4})

	return [][]byte{marshal(big), marshal(infer), marshal(raw), pr, ir, nil}
}

// TestTensorWalkMatchesProto checks that the tensor walk decodes every seed, and every seed
// truncated or with a byte changed, exactly as proto.Unmarshal: the same message when protobuf
// accepts the bytes, protobuf's error when it does not.
func TestTensorWalkMatchesProto(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	news := []func() proto.Message{
		func() proto.Message { return &tfservingpb.PredictRequest{} },
		func() proto.Message { return &inferencepb.ModelInferRequest{} },
	}
	check := func(b []byte, pooled bool) {
		t.Helper()
		for _, newMsg := range news {
			want, got := newMsg(), newMsg()
			werr := proto.Unmarshal(b, want)
			var l *lease
			if pooled {
				l = &lease{b: &budget{max: math.MaxInt64}}
			}
			gerr := unmarshal(b, got, l)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("%T from %d bytes: proto error %v, walk error %v", want, len(b), werr, gerr)
			}
			if werr == nil && !proto.Equal(want, got) {
				t.Fatalf("%T from %d bytes: walk decoded a different message", want, len(b))
			}
			if l != nil {
				l.release()
			}
		}
	}
	for i, seed := range tensorRequestSeeds(t) {
		check(seed, false)
		check(seed, true)
		m := news[[]int{0, 1, 1, 0, 1, 0}[i]]()
		if i < 5 { // the last seed is empty
			if handled, err := decodeTensorRequest(seed, m, &floatDecoder{}); !handled || err != nil {
				t.Fatalf("seed %d (%T): the walk left it to protobuf: %v", i, m, err)
			}
		}
		if len(seed) == 0 {
			continue
		}
		for range 300 {
			b := append([]byte(nil), seed...)
			switch r.IntN(3) {
			case 0:
				b = b[:r.IntN(len(b))]
			case 1:
				b[r.IntN(len(b))] = byte(r.IntN(256))
			default:
				j := r.IntN(len(b))
				b[j] ^= 1 << r.IntN(8)
				b = b[:j+r.IntN(len(b)-j)+1]
			}
			check(b, i%2 == 0)
		}
	}
}

// TestTensorWalkPoolsAndUnaliases checks that a large float tensor is decoded into a recycled
// slice owned by the lease, and that an output sharing its memory is copied before the lease
// returns the slice.
func TestTensorWalkPoolsAndUnaliases(t *testing.T) {
	x := make([]float32, minPooledFloats)
	for i := range x {
		x[i] = float32(i)
	}
	b, err := proto.Marshal(&tfservingpb.PredictRequest{Inputs: map[string]*tfservingpb.TensorProto{"x": {FloatVal: x}}})
	if err != nil {
		t.Fatal(err)
	}
	l := &lease{b: &budget{max: math.MaxInt64}}
	var req tfservingpb.PredictRequest
	if err := unmarshal(b, &req, l); err != nil {
		t.Fatal(err)
	}
	if len(l.floats) != 1 || &(*l.floats[0])[:1][0] != &req.Inputs["x"].FloatVal[0] {
		t.Fatalf("float_val not decoded into the lease's recycled slice (%d pooled)", len(l.floats))
	}
	view := req.Inputs["x"].FloatVal[10:20]
	other := []float32{1, 2}
	out := map[string]modelruntime.Tensor{"view": {Data: view}, "other": {Data: other}}
	l.unalias(out)
	if &out["view"].Data.([]float32)[0] == &view[0] || out["view"].Data.([]float32)[0] != 10 {
		t.Fatal("an output viewing the request's recycled slice was not copied")
	}
	if &out["other"].Data.([]float32)[0] != &other[0] {
		t.Fatal("an unrelated output was copied")
	}
	l.release()
	if len(l.floats) != 0 {
		t.Fatal("release kept the recycled slices")
	}
}

// TestTensorMessageMarshalMatchesProto checks appendTensorMessage writes proto.Marshal's bytes for
// Predict requests and responses with one tensor (protobuf's map order is unspecified): float
// tensors of every size, tensors with other fields (written by proto), nil and empty values, empty
// keys, unknown fields; and that a many-tensor message decodes back to the same message.
func TestTensorMessageMarshalMatchesProto(t *testing.T) {
	x := make([]float32, 25088)
	for i := range x {
		x[i] = float32(i) / 7
	}
	shape := &tfservingpb.TensorShapeProto{Dim: []*tfservingpb.TensorShapeProto_Dim{{Size: 32}, {Size: 784, Name: "w"}}}
	tensors := []*tfservingpb.TensorProto{
		nil, {},
		{Dtype: tfservingpb.DataType_DT_FLOAT, TensorShape: shape, FloatVal: x},
		{Dtype: tfservingpb.DataType_DT_FLOAT, FloatVal: []float32{-1}, VersionNumber: -3, TensorContent: []byte{1, 2}},
		{Dtype: tfservingpb.DataType_DT_INT32, IntVal: []int32{1, -2}, TensorShape: shape},
		{Dtype: tfservingpb.DataType_DT_FLOAT, FloatVal: x[:5], DoubleVal: []float64{1}},
	}
	withUnknown := &tfservingpb.TensorProto{FloatVal: x[:3]}
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
	tensors = append(tensors, withUnknown)
	spec := &tfservingpb.ModelSpec{Name: "mnist", VersionChoice: &tfservingpb.ModelSpec_Version{Version: wrapperspb.Int64(2)}}
	var msgs []proto.Message
	for _, tp := range tensors {
		for _, key := range []string{"input", ""} {
			msgs = append(msgs,
				&tfservingpb.PredictRequest{ModelSpec: spec, Inputs: map[string]*tfservingpb.TensorProto{key: tp}, OutputFilter: []string{"a", "b"}},
				&tfservingpb.PredictRequest{Inputs: map[string]*tfservingpb.TensorProto{key: tp}},
				&tfservingpb.PredictResponse{ModelSpec: spec, Outputs: map[string]*tfservingpb.TensorProto{key: tp}},
				&tfservingpb.PredictResponse{Outputs: map[string]*tfservingpb.TensorProto{key: tp}})
		}
	}
	msgs = append(msgs, &tfservingpb.PredictRequest{}, &tfservingpb.PredictResponse{})
	for i, m := range msgs {
		want, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, handled, err := appendTensorMessage([]byte("prefix"), m)
		if !handled || err != nil {
			t.Fatalf("message %d: handled %v, %v", i, handled, err)
		}
		if string(got[:6]) != "prefix" || string(got[6:]) != string(want) {
			t.Fatalf("message %d (%T): %d bytes differ from proto.Marshal's %d", i, m, len(got)-6, len(want))
		}
	}
	many := &tfservingpb.PredictResponse{ModelSpec: spec, Outputs: map[string]*tfservingpb.TensorProto{}}
	for i, tp := range tensors[1:] {
		many.Outputs[string(rune('a'+i))] = tp
	}
	b, _, err := appendTensorMessage(nil, many)
	if err != nil {
		t.Fatal(err)
	}
	var back tfservingpb.PredictResponse
	if err := proto.Unmarshal(b, &back); err != nil || !proto.Equal(many, &back) {
		t.Fatalf("many tensors: round trip differs (%v)", err)
	}
	bad := &tfservingpb.PredictRequest{OutputFilter: []string{"\xff"}}
	if _, handled, _ := appendTensorMessage(nil, bad); handled {
		t.Fatal("invalid UTF-8 was not left to proto")
	}
}

// TestSimpleTensorFields keeps simpleTensor's list of TensorProto fields in step with the .proto:
// a field added there must be checked by simpleTensor (else appendSimpleTensor would drop it).
func TestSimpleTensorFields(t *testing.T) {
	fields := (&tfservingpb.TensorProto{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Number() <= 5 {
			continue
		}
		tp := &tfservingpb.TensorProto{}
		m := tp.ProtoReflect()
		if fd.IsList() {
			l := m.Mutable(fd).List()
			l.Append(l.NewElement())
		} else {
			m.Set(fd, fd.Default())
			if fd.Kind() == protoreflect.BytesKind {
				m.Set(fd, protoreflect.ValueOfBytes([]byte{1}))
			}
		}
		if simpleTensor(tp) {
			t.Errorf("field %s (%d) set, but simpleTensor does not see it", fd.Name(), fd.Number())
		}
	}
}
