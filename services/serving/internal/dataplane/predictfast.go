package dataplane

import (
	"bytes"
	"math"
	"strconv"
	"sync"
	"unsafe"

	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
)

// fastMaxDepth bounds list nesting on the fast path; deeper bodies take the generic parser
// (whose own limit is maxDepth).
const fastMaxDepth = 32

// fastTFPredict decodes the common shape of a TF Serving :predict body straight into a tensor,
// without the generic value tree: a JSON object whose members are "instances" or "inputs" (one of
// them) and optionally "signature_name" ("" or "serving_default"), where the tensor is a
// non-empty, rectangular nested list of JSON numbers, for a model with a single FP32 or FP64
// input.
//
// It returns ok=false for anything else — other or duplicate keys, escapes in strings, strings,
// {"b64": ...} objects, NaN/Infinity tokens, null/booleans, empty lists, a scalar "inputs",
// ragged lists, out-of-range numbers, malformed JSON — and the caller then runs parseTFPredict,
// so every accepted body yields exactly the tensor the generic parser would, and every error
// message comes from the generic parser. Numbers are parsed as float64 and then narrowed, as
// the generic path does.
func fastTFPredict(body []byte, specs []modelruntime.TensorSpec) (*tfPredictRequest, bool) {
	if len(specs) != 1 {
		return nil, false
	}
	spec := specs[0]
	if spec.DataType != modelruntime.FP32 && spec.DataType != modelruntime.FP64 {
		return nil, false
	}
	p := fastParser{data: body, leafDepth: -1, fp64: spec.DataType == modelruntime.FP64}
	p.ws()
	if !p.consume('{') {
		return nil, false
	}
	var sawSig, sawTensor, row bool
	for {
		p.ws()
		key, ok := p.plainString()
		if !ok {
			return nil, false
		}
		p.ws()
		if !p.consume(':') {
			return nil, false
		}
		p.ws()
		switch string(key) {
		case "signature_name":
			if sawSig {
				return nil, false
			}
			sawSig = true
			s, ok := p.plainString()
			if !ok || (len(s) != 0 && string(s) != defaultSignature) {
				return nil, false
			}
		case "instances", "inputs":
			if sawTensor {
				return nil, false
			}
			sawTensor, row = true, string(key) == "instances"
			if p.pos >= len(p.data) || p.data[p.pos] != '[' {
				return nil, false
			}
			p.sizeHint()
			if !p.list(0) {
				return nil, false
			}
		default:
			return nil, false
		}
		p.ws()
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			break
		}
		return nil, false
	}
	p.ws()
	if p.pos != len(p.data) || !sawTensor || p.leafDepth <= 0 {
		return nil, false
	}
	shape := make([]int64, p.leafDepth)
	copy(shape, p.shape[:p.leafDepth])
	t := modelruntime.Tensor{DataType: spec.DataType, Shape: shape}
	if p.fp64 {
		t.Data = p.f64[:len(p.f64):len(p.f64)]
	} else {
		t.Data = p.f32[:len(p.f32):len(p.f32)]
	}
	if int64(modelruntime.DataLen(t.Data)) != modelruntime.NumElements(shape) {
		return nil, false // unreachable for rectangular lists; kept as a guard
	}
	return &tfPredictRequest{row: row, rows: shape[0], inputs: map[string]modelruntime.Tensor{spec.Name: t}, pooled: p.f32}, true
}

// fastParser scans one numeric tensor. shape[d] is the length of every list at depth d (0 until
// the first list at that depth closes); leafDepth is the depth of every number (-1 until the
// first one).
type fastParser struct {
	data      []byte
	pos       int
	shape     [fastMaxDepth]int64
	leafDepth int
	fp64      bool
	f32       []float32
	f64       []float64
}

func (p *fastParser) ws() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *fastParser) consume(c byte) bool {
	if p.pos < len(p.data) && p.data[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

// plainString reads a JSON string of printable ASCII without escapes and returns its contents.
func (p *fastParser) plainString() ([]byte, bool) {
	if !p.consume('"') {
		return nil, false
	}
	start := p.pos
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if c == '"' {
			s := p.data[start:p.pos]
			p.pos++
			return s, true
		}
		if c < 0x20 || c > 0x7e || c == '\\' {
			return nil, false
		}
		p.pos++
	}
	return nil, false
}

// sizeHint pre-sizes the element slice from the number of commas after the list start, an upper
// bound on the element count (minus one) of a well-formed numeric list.
func (p *fastParser) sizeHint() {
	n := bytes.Count(p.data[p.pos:], []byte{','}) + 1
	if p.fp64 {
		p.f64 = make([]float64, 0, n)
	} else {
		p.f32 = getFloat32s(n)
	}
}

// float32Pool recycles the element slices of decoded FP32 request tensors (a batch-32 MNIST
// request decodes into 100 KiB that would otherwise be allocated and zeroed per request); see
// tfPredictRequest.recycle.
var float32Pool sync.Pool // of *[]float32

// getFloat32s returns an empty slice of capacity at least n: a recycled one when the last one
// recycled holds n with at most 25% to spare (so a decoded tensor stays within the budget's
// fastParseFactor), else a new one.
func getFloat32s(n int) []float32 {
	if s, ok := float32Pool.Get().(*[]float32); ok {
		if c := cap(*s); c >= n && c <= n+n/4 {
			return (*s)[:0]
		}
		float32Pool.Put(s) // for requests of its own size
	}
	return make([]float32, 0, n)
}

// list reads the list starting at p.pos, at nesting depth d (0 = the tensor itself).
func (p *fastParser) list(d int) bool {
	if d >= fastMaxDepth-1 {
		return false
	}
	p.pos++ // [
	p.ws()
	if p.pos < len(p.data) {
		if c := p.data[p.pos]; c == '-' || (c >= '0' && c <= '9') {
			// A list of numbers: every element must be a number at this depth (a list or
			// anything else after a number fails below too).
			if p.leafDepth < 0 {
				p.leafDepth = d + 1
			} else if p.leafDepth != d+1 {
				return false
			}
			n, ok := p.leaves()
			return ok && p.closed(d, n)
		}
	}
	var n int64
	for {
		p.ws()
		if p.pos >= len(p.data) {
			return false
		}
		switch c := p.data[p.pos]; {
		case c == '[':
			if p.leafDepth >= 0 && d+1 >= p.leafDepth {
				return false
			}
			if !p.list(d + 1) {
				return false
			}
		case c == '-' || (c >= '0' && c <= '9'):
			if p.leafDepth < 0 {
				p.leafDepth = d + 1
			} else if p.leafDepth != d+1 {
				return false
			}
			if !p.number() {
				return false
			}
		default:
			return false // ']' right after '[' or ',', strings, objects, literals, NaN/Infinity
		}
		n++
		p.ws()
		if p.consume(',') {
			continue
		}
		if !p.consume(']') {
			return false
		}
		return p.closed(d, n)
	}
}

// closed records that a list at depth d had n elements: the first such list sets the length of
// depth d, every later one must match it.
func (p *fastParser) closed(d int, n int64) bool {
	switch p.shape[d] {
	case 0:
		p.shape[d] = n
	case n:
	default:
		return false
	}
	return true
}

// leaves reads a list of numbers from its first number (at p.pos) through its closing ']' and
// returns its length. It keeps its position and the values in locals: this loop runs once per
// element of a tensor body.
func (p *fastParser) leaves() (int64, bool) {
	data, i := p.data, p.pos
	var n int64
	f32, f64 := p.f32, p.f64
	for {
		var ok bool
		if p.fp64 {
			var f float64
			if f, i, ok = number64(data, i); !ok {
				return 0, false
			}
			f64 = append(f64, f)
		} else {
			var f float32
			if f, i, ok = number32(data, i); !ok {
				return 0, false
			}
			f32 = append(f32, f)
		}
		n++
		i = skipWS(data, i)
		if i >= len(data) {
			return 0, false
		}
		switch data[i] {
		case ',':
			i = skipWS(data, i+1)
			if i < len(data) && (data[i] == '-' || (data[i] >= '0' && data[i] <= '9')) {
				continue
			}
			return 0, false // ']' after ',', a list after a number, strings, literals, ...
		case ']':
			p.pos, p.f32, p.f64 = i+1, f32, f64
			return n, true
		default:
			return 0, false
		}
	}
}

func skipWS(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// number reads an RFC 8259 number at p.pos and appends its value, correctly rounded (once) to the
// tensor's type exactly as strconv.ParseFloat(literal, 64 or 32) would round it.
func (p *fastParser) number() bool {
	if p.fp64 {
		f, i, ok := number64(p.data, p.pos)
		if ok {
			p.pos, p.f64 = i, append(p.f64, f)
		}
		return ok
	}
	f, i, ok := number32(p.data, p.pos)
	if ok {
		p.pos, p.f32 = i, append(p.f32, f)
	}
	return ok
}

// scanNumber reads the RFC 8259 number starting at data[i] (a '-' or a digit): its decimal
// mantissa (exact while nd <= 19 digits), the power of ten it is scaled by, its sign, and the
// index after it; ok is false for a malformed number. The digit loops are written out: they run
// once per byte of a tensor body.
func scanNumber(data []byte, i int) (mant uint64, nd, exp int, neg bool, end int, ok bool) {
	neg = data[i] == '-'
	if neg {
		i++
	}
	if i < len(data) && data[i] == '0' {
		i++
		nd = 1
	} else {
		start := i
		for ; i < len(data); i++ {
			c := data[i] - '0'
			if c > 9 {
				break
			}
			mant = mant*10 + uint64(c)
		}
		if i == start {
			return 0, 0, 0, false, 0, false
		}
		nd = i - start
	}
	if i < len(data) && data[i] == '.' {
		i++
		start := i
		for ; i < len(data); i++ {
			c := data[i] - '0'
			if c > 9 {
				break
			}
			mant = mant*10 + uint64(c)
		}
		if i == start {
			return 0, 0, 0, false, 0, false
		}
		nd += i - start
		exp = start - i
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		eneg := false
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			eneg = data[i] == '-'
			i++
		}
		start, e := i, 0
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			if e < 100000 {
				e = e*10 + int(data[i]-'0')
			}
			i++
		}
		if i == start {
			return 0, 0, 0, false, 0, false
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	return mant, nd, exp, neg, i, true
}

// number32 reads the number at data[start] rounded once to float32, as
// strconv.ParseFloat(literal, 32), and returns the index after it; ok is false for a malformed
// or out-of-range number (the generic path reports it).
func number32(data []byte, start int) (float32, int, bool) {
	mant, nd, exp, neg, i, ok := scanNumber(data, start)
	if !ok {
		return 0, 0, false
	}
	var f float32
	switch {
	case nd <= 19 && mant <= 1<<24 && exp >= -10 && exp <= 10:
		// float32 counterpart of number64's fast path: mant and 10^|exp| are exact float32
		// values, so one float32 operation rounds once.
		f = float32(mant)
		if exp >= 0 {
			f *= float32pow10[exp]
		} else {
			f /= float32pow10[-exp]
		}
	case nd <= 19 && mant <= 1<<53 && exp >= -22 && exp <= 22:
		// Round to float64 once (exact), then to float32. Every float32 midpoint is a float64,
		// so the second rounding is wrong only when the first landed exactly on one (its 29
		// low mantissa bits are 1000...0); those rare literals take strconv.
		d := float64(mant)
		if exp >= 0 {
			d *= float64pow10[exp]
		} else {
			d /= float64pow10[-exp]
		}
		if math.Float64bits(d)&(1<<29-1) == 1<<28 {
			f, ok = parse32(data[start:i])
			return f, i, ok
		}
		f = float32(d)
	default:
		f, ok = parse32(data[start:i])
		return f, i, ok
	}
	if neg {
		f = -f
	}
	return f, i, true
}

// number64 reads the number at data[start] rounded once to float64, as
// strconv.ParseFloat(literal, 64), and returns the index after it; ok is false for a malformed
// or out-of-range number.
func number64(data []byte, start int) (float64, int, bool) {
	mant, nd, exp, neg, i, ok := scanNumber(data, start)
	if !ok {
		return 0, 0, false
	}
	if nd > 19 || mant > 1<<53 || exp < -22 || exp > 22 {
		f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(data[start:i]), i-start), 64)
		return f, i, err == nil
	}
	// Both mant and 10^|exp| are exact float64 values, so one IEEE multiply or divide is the
	// correctly rounded result (Clinger's fast path, as strconv uses).
	f := float64(mant)
	if exp >= 0 {
		f *= float64pow10[exp]
	} else {
		f /= float64pow10[-exp]
	}
	if neg {
		f = -f
	}
	return f, i, true
}

// parse32 is strconv.ParseFloat(lit, 32) without copying lit.
func parse32(lit []byte) (float32, bool) {
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(lit), len(lit)), 32)
	return float32(f), err == nil
}

var float32pow10 = [...]float32{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10}

var float64pow10 = [...]float64{
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
}
