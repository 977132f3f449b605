package dataplane

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
)

// isB64 reports whether v is a TF Serving binary value {"b64": "..."}.
func isB64(v *value) bool {
	return v.kind == kObject && len(v.obj) == 1 && v.obj[0].key == "b64"
}

// shapeOf is the shape of a nested list, following first elements.
func shapeOf(v *value) []int64 {
	var shape []int64
	for v.kind == kArray {
		shape = append(shape, int64(len(v.arr)))
		if len(v.arr) == 0 {
			break
		}
		v = v.arr[0]
	}
	return shape
}

// collect appends the leaves of v, which must have exactly shape, to leaves. path names v in
// errors, e.g. `input "x"[1]`.
func collect(v *value, shape []int64, leaves []*value, path string) ([]*value, error) {
	if len(shape) == 0 {
		if v.kind == kArray {
			return nil, fmt.Errorf("%s: expected a scalar, found a list (ragged tensor)", path)
		}
		return append(leaves, v), nil
	}
	if v.kind != kArray {
		return nil, fmt.Errorf("%s: expected a list of %d elements, found a %s (ragged tensor)", path, shape[0], v.kind)
	}
	if int64(len(v.arr)) != shape[0] {
		return nil, fmt.Errorf("%s: has %d elements, expected %d like its siblings (ragged tensor)", path, len(v.arr), shape[0])
	}
	var err error
	for i, el := range v.arr {
		if leaves, err = collect(el, shape[1:], leaves, path+"["+strconv.Itoa(i)+"]"); err != nil {
			return nil, err
		}
	}
	return leaves, nil
}

// convert turns leaves into a Data slice of dt. Errors name the input and flat element index.
func convert(dt modelruntime.DataType, leaves []*value, input string) (any, error) {
	bad := func(i int, want string) error {
		return fmt.Errorf("input %q element %d: expected %s for datatype %s, found %s", input, i, want, dt, describe(leaves[i]))
	}
	n := len(leaves)
	switch dt {
	case modelruntime.FP32, modelruntime.FP64:
		// Decimal literals round once, straight to the tensor's type (a detour through float64
		// would round twice).
		bits := 64
		if dt == modelruntime.FP32 {
			bits = 32
		}
		f := make([]float64, n)
		for i, l := range leaves {
			if l.kind != kNumber {
				return nil, bad(i, "a number")
			}
			v, err := parseFloat(l.s, bits)
			if err != nil {
				return nil, fmt.Errorf("input %q element %d: %s is not a number within the range of %s", input, i, l.s, dt)
			}
			f[i] = v
		}
		if dt == modelruntime.FP64 {
			return f, nil
		}
		out := make([]float32, n)
		for i, v := range f {
			out[i] = float32(v) // exact: v is already a float32 value
		}
		return out, nil
	case modelruntime.Bool:
		out := make([]bool, n)
		for i, l := range leaves {
			if l.kind != kBool {
				return nil, bad(i, "true or false")
			}
			out[i] = l.b
		}
		return out, nil
	case modelruntime.Bytes:
		out := make([][]byte, n)
		for i, l := range leaves {
			switch {
			case l.kind == kString:
				out[i] = []byte(l.s)
			case isB64(l):
				s := l.obj[0].val
				if s.kind != kString {
					return nil, bad(i, `a base64 string in "b64"`)
				}
				b, err := decodeBase64(s.s)
				if err != nil {
					return nil, fmt.Errorf("input %q element %d: invalid base64 in \"b64\": %v", input, i, err)
				}
				out[i] = b
			default:
				return nil, bad(i, `a string or {"b64": ...}`)
			}
		}
		return out, nil
	case modelruntime.Int8, modelruntime.Int16, modelruntime.Int32, modelruntime.Int64:
		bits := map[modelruntime.DataType]int{modelruntime.Int8: 8, modelruntime.Int16: 16, modelruntime.Int32: 32, modelruntime.Int64: 64}[dt]
		vals := make([]int64, n)
		for i, l := range leaves {
			if l.kind != kNumber {
				return nil, bad(i, "an integer")
			}
			v, err := strconv.ParseInt(l.s, 10, bits)
			if err != nil {
				return nil, fmt.Errorf("input %q element %d: %s is not a %d-bit integer", input, i, l.s, bits)
			}
			vals[i] = v
		}
		return narrowInt(dt, vals), nil
	case modelruntime.Uint8, modelruntime.Uint16, modelruntime.Uint32, modelruntime.Uint64:
		bits := map[modelruntime.DataType]int{modelruntime.Uint8: 8, modelruntime.Uint16: 16, modelruntime.Uint32: 32, modelruntime.Uint64: 64}[dt]
		vals := make([]uint64, n)
		for i, l := range leaves {
			if l.kind != kNumber {
				return nil, bad(i, "an unsigned integer")
			}
			v, err := strconv.ParseUint(l.s, 10, bits)
			if err != nil {
				return nil, fmt.Errorf("input %q element %d: %s is not a %d-bit unsigned integer", input, i, l.s, bits)
			}
			vals[i] = v
		}
		return narrowUint(dt, vals), nil
	}
	return nil, fmt.Errorf("input %q: datatype %s is not supported", input, dt)
}

func describe(v *value) string {
	switch v.kind {
	case kString:
		if len(v.s) > 20 {
			return fmt.Sprintf("string %q...", v.s[:20])
		}
		return fmt.Sprintf("string %q", v.s)
	case kNumber:
		return "number " + v.s
	case kBool:
		return strconv.FormatBool(v.b)
	}
	return v.kind.String()
}

func parseFloat(s string, bits int) (float64, error) {
	switch s {
	case "NaN":
		return math.NaN(), nil
	case "Infinity":
		return math.Inf(1), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	f, err := strconv.ParseFloat(s, bits)
	if err != nil {
		// Out of range literals (1e999) are an error, not ±Inf.
		return 0, err
	}
	return f, nil
}

func narrowInt(dt modelruntime.DataType, v []int64) any {
	switch dt {
	case modelruntime.Int8:
		out := make([]int8, len(v))
		for i, x := range v {
			out[i] = int8(x)
		}
		return out
	case modelruntime.Int16:
		out := make([]int16, len(v))
		for i, x := range v {
			out[i] = int16(x)
		}
		return out
	case modelruntime.Int32:
		out := make([]int32, len(v))
		for i, x := range v {
			out[i] = int32(x)
		}
		return out
	}
	return v
}

func narrowUint(dt modelruntime.DataType, v []uint64) any {
	switch dt {
	case modelruntime.Uint8:
		out := make([]uint8, len(v))
		for i, x := range v {
			out[i] = uint8(x)
		}
		return out
	case modelruntime.Uint16:
		out := make([]uint16, len(v))
		for i, x := range v {
			out[i] = uint16(x)
		}
		return out
	case modelruntime.Uint32:
		out := make([]uint32, len(v))
		for i, x := range v {
			out[i] = uint32(x)
		}
		return out
	}
	return v
}

// appendFloat32 writes f with 9 significant digits, enough to round-trip any float32
// (TF Serving prints float with %.9g), and NaN/Infinity/-Infinity for special values.
func appendFloat32(b []byte, f float32) []byte {
	return appendFloat(b, float64(f), 9)
}

func appendFloat(b []byte, f float64, digits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	return strconv.AppendFloat(b, f, 'g', digits, 64)
}

// appendElem writes element i of data. Bytes are written as {"b64": ...} when b64 is set, else
// as a JSON string (invalid UTF-8 replaced).
func appendElem(b []byte, data any, i int, b64 bool) []byte {
	switch d := data.(type) {
	case []float32:
		return appendFloat32(b, d[i])
	case []float64:
		return appendFloat(b, d[i], 17)
	case []int64:
		return strconv.AppendInt(b, d[i], 10)
	case []int32:
		return strconv.AppendInt(b, int64(d[i]), 10)
	case []int16:
		return strconv.AppendInt(b, int64(d[i]), 10)
	case []int8:
		return strconv.AppendInt(b, int64(d[i]), 10)
	case []uint64:
		return strconv.AppendUint(b, d[i], 10)
	case []uint32:
		return strconv.AppendUint(b, uint64(d[i]), 10)
	case []uint16:
		return strconv.AppendUint(b, uint64(d[i]), 10)
	case []uint8:
		return strconv.AppendUint(b, uint64(d[i]), 10)
	case []bool:
		return strconv.AppendBool(b, d[i])
	case [][]byte:
		if b64 {
			b = append(b, `{"b64":"`...)
			b = base64.StdEncoding.AppendEncode(b, d[i])
			return append(b, `"}`...)
		}
		return appendString(b, string(d[i]))
	}
	return append(b, "null"...)
}

// appendNested writes elements [off, off+NumElements(shape)) of data as nested lists.
func appendNested(b []byte, data any, off int, shape []int64, b64 bool) []byte {
	if len(shape) == 0 {
		return appendElem(b, data, off, b64)
	}
	stride := int(modelruntime.NumElements(shape[1:]))
	b = append(b, '[')
	for i := range int(shape[0]) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendNested(b, data, off+i*stride, shape[1:], b64)
	}
	return append(b, ']')
}

// appendFlatStrict writes all elements as one list of strict JSON (RFC 8259) for the v2 protocol,
// whose JSON has no tokens for NaN and ±Infinity: they are written as null, as KServe's own
// server (orjson) does. BYTES are JSON strings.
func appendFlatStrict(b []byte, data any) []byte {
	switch d := data.(type) {
	case []float32:
		b = append(b, '[')
		for i, f := range d {
			if i > 0 {
				b = append(b, ',')
			}
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				b = append(b, "null"...)
			} else {
				b = appendFloat32(b, f)
			}
		}
		return append(b, ']')
	case []float64:
		b = append(b, '[')
		for i, f := range d {
			if i > 0 {
				b = append(b, ',')
			}
			if math.IsNaN(f) || math.IsInf(f, 0) {
				b = append(b, "null"...)
			} else {
				b = appendFloat(b, f, 17)
			}
		}
		return append(b, ']')
	}
	return appendFlat(b, data, false)
}

// appendFlat writes all elements as one list.
func appendFlat(b []byte, data any, b64 bool) []byte {
	b = append(b, '[')
	for i := range modelruntime.DataLen(data) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendElem(b, data, i, b64)
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string (no HTML escaping; invalid UTF-8 becomes U+FFFD).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// decodeBase64 accepts standard base64 with or without padding, and the URL-safe alphabet.
func decodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err == nil {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err2 := enc.DecodeString(s); err2 == nil {
			return b, nil
		}
	}
	return nil, err
}
