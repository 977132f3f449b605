package dataplane

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
)

var fastSpecSets = [][]modelruntime.TensorSpec{
	{{Name: "input", DataType: modelruntime.FP32, Shape: []int64{-1, 3}}},
	{{Name: "input", DataType: modelruntime.FP64, Shape: []int64{-1, 3}}},
	{{Name: "input", DataType: modelruntime.Int32, Shape: []int64{-1, 3}}},
	fuzzSpecs,
}

var fastSeeds = []string{
	// Accepted by the fast path (for a single float input).
	`{"instances":[[1,2,3]]}`,
	` {"signature_name" : "serving_default", "instances" : [ [ 1.5 , -0 , 2e3 ] , [4,5E-1,6.25e+2] ] } `,
	`{"instances":[[0.1,0.2,0.3]],"signature_name":""}`,
	`{"inputs":[[1,2,3],[4,5,6]]}`,
	`{"inputs":[1,2,3]}`,
	`{"instances":[1,2,3]}`,
	`{"instances":[[[1],[2]],[[3],[4]]]}`,
	"{\"instances\":[[16777217,0.30000000000000004,3.4028235677973366e38]]}\n",
	`{"instances":[[1.00000005960464477539062500000000001,1e-46,-1e-320]]}`,
	// Fall back to the generic parser.
	`{"instances":[]}`,
	`{"instances":[[]]}`,
	`{"instances":[[],[1]]}`,
	`{"instances":[[1,2],[3]]}`,
	`{"instances":[[1,2],3]}`,
	`{"instances":[1,[2]]}`,
	`{"instances":[[1,NaN,-Infinity]]}`,
	`{"instances":[[1,2,3]],"instances":[[4,5,6]]}`,
	`{"instances":[[1,2,3]],"inputs":[[4,5,6]]}`,
	`{"signature_name":"other","instances":[[1,2,3]]}`,
	`{"signature_name":"serving_default","signature_name":"","instances":[[1]]}`,
	`{"signature_name":1,"instances":[[1]]}`,
	`{"instanc\u0065s":[[1,2,3]]}`,
	`{"instances":[[1,2,3]]} x`,
	`{"instances":[[1,2,3],]}`,
	`{"instances":[[01,2,3]]}`,
	`{"instances":[[1.,2,3]]}`,
	`{"instances":[[1e,2,3]]}`,
	`{"instances":[[-,2,3]]}`,
	`{"instances":[[+1,2,3]]}`,
	`{"instances":[[1e999,2,3]]}`,
	`{"instances":[["1",2,3]]}`,
	`{"instances":[[true,null,3]]}`,
	`{"instances":[{"input":[1,2,3]}]}`,
	`{"inputs":{"input":[[1,2,3]]}}`,
	`{"inputs":1}`,
	`{"instances":[[1,2,3]]`,
	`{"instances":[[1,2,3]`,
	`{"instances":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
	`{"other":1,"instances":[[1,2,3]]}`,
	`{}`,
	`[]`,
	``,
}

// checkFast asserts that whenever fastTFPredict accepts body, parseTFPredict accepts it too and
// yields the same request, bit for bit.
func checkFast(t *testing.T, body []byte, specs []modelruntime.TensorSpec) bool {
	t.Helper()
	fast, ok := fastTFPredict(body, specs)
	if !ok {
		return false
	}
	slow, err := parseTFPredict(body, specs)
	if err != nil {
		t.Fatalf("%s: fast path accepted, generic parser failed: %v", body, err)
	}
	if fast.row != slow.row || len(fast.inputs) != len(slow.inputs) {
		t.Fatalf("%s: fast %+v, generic %+v", body, fast, slow)
	}
	for name, ft := range fast.inputs {
		st := slow.inputs[name]
		if ft.DataType != st.DataType || !reflect.DeepEqual(ft.Shape, st.Shape) || !sameBits(ft.Data, st.Data) {
			t.Fatalf("%s: input %q: fast %v %v %v, generic %v %v %v", body, name, ft.DataType, ft.Shape, ft.Data, st.DataType, st.Shape, st.Data)
		}
	}
	return true
}

func sameBits(a, b any) bool {
	switch x := a.(type) {
	case []float32:
		y, ok := b.([]float32)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				return false
			}
		}
		return true
	case []float64:
		y, ok := b.([]float64)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
				return false
			}
		}
		return true
	}
	return false
}

func TestFastTFPredictMatchesGeneric(t *testing.T) {
	const accepted = 9 // the first seeds are the fast path's own shape
	for i, s := range fastSeeds {
		for j, specs := range fastSpecSets {
			ok := checkFast(t, []byte(s), specs)
			want := i < accepted && j < 2
			if ok != want {
				t.Errorf("%s with specs %d: fast path ok=%v, want %v", s, j, ok, want)
			}
		}
	}
}

// FuzzFastTFPredict checks the fast path never panics and agrees with the generic parser on
// every body it accepts.
func FuzzFastTFPredict(f *testing.F) {
	for _, s := range append(fastSeeds, fuzzSeeds...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, specs := range fastSpecSets {
			checkFast(t, body, specs)
		}
	})
}

// TestFastNumberMatchesStrconv checks the fast path's number conversion against
// strconv.ParseFloat on many shortest and fixed-precision renderings of random values.
func TestFastNumberMatchesStrconv(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200000 {
		var lit string
		switch i % 4 {
		case 0:
			lit = strconv.FormatFloat(float64(math.Float32frombits(rng.Uint32())), 'g', -1, 32)
		case 1:
			lit = strconv.FormatFloat(rng.NormFloat64(), 'g', -1, 64)
		case 2:
			lit = strconv.FormatFloat(rng.Float64()*math.Pow(10, float64(rng.IntN(60)-30)), 'e', rng.IntN(20), 64)
		default:
			lit = strconv.FormatFloat(rng.Float64(), 'f', rng.IntN(25), 64)
		}
		if i%50 == 0 { // exact float32 midpoints and their neighbours: the double-rounding traps
			x := math.Float32frombits(rng.Uint32()&0x3fffffff | 0x00800000)
			mid := (float64(x) + float64(math.Nextafter32(x, 2*x))) / 2
			lit = strconv.FormatFloat(mid, 'g', -1, 64)
		}
		if strings.ContainsAny(lit, "NI") { // NaN, ±Inf
			continue
		}
		want, err := strconv.ParseFloat(lit, 64)
		p := fastParser{data: []byte(lit), fp64: true}
		if ok := p.number(); ok != (err == nil) || (ok && (p.pos != len(lit) || math.Float64bits(p.f64[0]) != math.Float64bits(want))) {
			t.Fatalf("%s: fast ok=%v %v, strconv %v %v", lit, ok, p.f64, want, err)
		}
		// float32: one correct rounding of the literal, as strconv.ParseFloat(lit, 32).
		want32, err := strconv.ParseFloat(lit, 32)
		p = fastParser{data: []byte(lit)}
		if ok := p.number(); ok != (err == nil) || (ok && (p.pos != len(lit) || math.Float32bits(p.f32[0]) != math.Float32bits(float32(want32)))) {
			t.Fatalf("%s: fast float32 ok=%v %v, strconv %v %v", lit, ok, p.f32, float32(want32), err)
		}
	}
}

// BenchmarkFastTFPredict decodes a batch-32 MNIST-shaped row body (32x784 float32 literals as
// strconv's shortest form writes them): the REST path's decoding cost.
func BenchmarkFastTFPredict(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	var sb strings.Builder
	sb.WriteString(`{"instances":[`)
	for r := range 32 {
		if r > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('[')
		for i := range 784 {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(strconv.FormatFloat(float64(rng.Float32()), 'g', -1, 32))
		}
		sb.WriteByte(']')
	}
	sb.WriteString(`]}`)
	body := []byte(sb.String())
	specs := []modelruntime.TensorSpec{{Name: "input", DataType: modelruntime.FP32, Shape: []int64{-1, 784}}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := fastTFPredict(body, specs); !ok {
			b.Fatal("not decoded")
		}
	}
}
