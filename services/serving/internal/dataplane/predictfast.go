package dataplane

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
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
	return &tfPredictRequest{row: row, rows: shape[0], inputs: map[string]modelruntime.Tensor{spec.Name: t}}, true
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
		p.f32 = make([]float32, 0, n)
	}
}

// list reads the list starting at p.pos, at nesting depth d (0 = the tensor itself).
func (p *fastParser) list(d int) bool {
	if d >= fastMaxDepth-1 {
		return false
	}
	p.pos++ // [
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
		switch p.shape[d] {
		case 0:
			p.shape[d] = n
		case n:
		default:
			return false
		}
		return true
	}
}

// number reads an RFC 8259 number and appends its value, correctly rounded (once) to the
// tensor's type exactly as strconv.ParseFloat(literal, 64 or 32) would round it.
func (p *fastParser) number() bool {
	data, i := p.data, p.pos
	neg := data[i] == '-'
	if neg {
		i++
	}
	var mant uint64 // decimal mantissa, exact while nd <= 19
	nd := 0         // mantissa digits read
	switch {
	case i < len(data) && data[i] == '0':
		i++
		nd++
	default:
		start := i
		if i, mant = digits(data, i, mant); i == start {
			return false
		}
		nd += i - start
	}
	exp := 0
	if i < len(data) && data[i] == '.' {
		i++
		start := i
		if i, mant = digits(data, i, mant); i == start {
			return false
		}
		nd += i - start
		exp = -(i - start)
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
			return false
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	if !p.fp64 {
		var f float32
		switch {
		case nd <= 19 && mant <= 1<<24 && exp >= -10 && exp <= 10:
			// float32 counterpart of the fast path below: mant and 10^|exp| are exact float32
			// values, so one float32 operation rounds once.
			f = float32(mant)
			if exp >= 0 {
				f *= float32pow10[exp]
			} else {
				f /= float32pow10[-exp]
			}
			if neg {
				f = -f
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
				var ok bool
				if f, ok = parse32(data[p.pos:i]); !ok {
					return false
				}
				break
			}
			f = float32(d)
			if neg {
				f = -f
			}
		default:
			var ok bool
			if f, ok = parse32(data[p.pos:i]); !ok {
				return false // out of range: the generic path reports it
			}
		}
		p.pos = i
		p.f32 = append(p.f32, f)
		return true
	}
	var f float64
	if nd <= 19 && mant <= 1<<53 && exp >= -22 && exp <= 22 {
		// Both mant and 10^|exp| are exact float64 values, so one IEEE multiply or divide is
		// the correctly rounded result (Clinger's fast path, as strconv uses).
		f = float64(mant)
		if exp >= 0 {
			f *= float64pow10[exp]
		} else {
			f /= float64pow10[-exp]
		}
		if neg {
			f = -f
		}
	} else {
		var err error
		if f, err = strconv.ParseFloat(string(data[p.pos:i]), 64); err != nil {
			return false // out of range: the generic path reports it
		}
	}
	p.pos = i
	p.f64 = append(p.f64, f)
	return true
}

// digits accumulates the decimal digits at data[i:] into mant (wrapping past 19 digits; callers
// count them) and returns the index after them. Runs of eight digits are converted at once with the
// SWAR technique of simdjson / fast_float (eight ASCII digits as one little-endian word).
func digits(data []byte, i int, mant uint64) (int, uint64) {
	for i+8 <= len(data) {
		v := binary.LittleEndian.Uint64(data[i:])
		if (v&0xF0F0F0F0F0F0F0F0)|(((v+0x0606060606060606)&0xF0F0F0F0F0F0F0F0)>>4) != 0x3333333333333333 {
			break
		}
		v -= 0x3030303030303030
		v = v*10 + v>>8 // pairs: each 16-bit lane's low byte holds two digits' value
		v = ((v&0x000000FF000000FF)*(100+1000000<<32) + (v>>16&0x000000FF000000FF)*(1+10000<<32)) >> 32
		mant = mant*100000000 + v
		i += 8
	}
	for i < len(data) && data[i]-'0' <= 9 {
		mant = mant*10 + uint64(data[i]-'0')
		i++
	}
	return i, mant
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
