package dataplane

import (
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The TF Serving REST API accepts non-strict JSON: the tokens NaN, Infinity and -Infinity
// stand for IEEE special values. encoding/json rejects them, so request bodies are parsed by
// this small RFC 8259 parser extended with those three tokens. Numbers keep their literal text
// so integers convert to int64/uint64 without loss.

// value kinds.
type kind uint8

const (
	kNull kind = iota
	kBool
	kNumber // includes NaN / Infinity / -Infinity
	kString
	kArray
	kObject
)

// member is one object member, in document order.
type member struct {
	key string
	val *value
}

type value struct {
	kind kind
	b    bool
	s    string // number literal or string contents
	arr  []*value
	obj  []member
}

func (v *value) get(key string) *value {
	for _, m := range v.obj {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

func (k kind) String() string {
	return [...]string{"null", "boolean", "number", "string", "list", "object"}[k]
}

type parser struct {
	data  []byte
	pos   int
	depth int
}

const maxDepth = 64

// parseJSON parses one JSON document (with NaN/Infinity tokens).
func parseJSON(data []byte) (*value, error) {
	p := &parser{data: data}
	p.ws()
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.pos != len(p.data) {
		return nil, p.errf("unexpected data after the JSON value")
	}
	return v, nil
}

func (p *parser) errf(format string, a ...any) error {
	return fmt.Errorf("JSON parse error at offset %d: %s", p.pos, fmt.Sprintf(format, a...))
}

func (p *parser) ws() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) lit(s string) bool {
	if len(p.data)-p.pos >= len(s) && string(p.data[p.pos:p.pos+len(s)]) == s {
		p.pos += len(s)
		return true
	}
	return false
}

func (p *parser) value() (*value, error) {
	if p.pos >= len(p.data) {
		return nil, p.errf("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return &value{kind: kString, s: s}, nil
	case c == 't' && p.lit("true"):
		return &value{kind: kBool, b: true}, nil
	case c == 'f' && p.lit("false"):
		return &value{kind: kBool}, nil
	case c == 'n' && p.lit("null"):
		return &value{kind: kNull}, nil
	case c == 'N' && p.lit("NaN"):
		return &value{kind: kNumber, s: "NaN"}, nil
	case c == 'I' && p.lit("Infinity"):
		return &value{kind: kNumber, s: "Infinity"}, nil
	case c == '-' && p.lit("-Infinity"):
		return &value{kind: kNumber, s: "-Infinity"}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return nil, p.errf("invalid character %q", p.data[p.pos])
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errf("nesting deeper than %d", maxDepth)
	}
	return nil
}

func (p *parser) object() (*value, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.pos++ // {
	v := &value{kind: kObject}
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return v, nil
	}
	for {
		p.ws()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.errf("expected an object key")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.ws()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.errf("expected ':' after object key")
		}
		p.pos++
		p.ws()
		val, err := p.value()
		if err != nil {
			return nil, err
		}
		v.obj = append(v.obj, member{key: k, val: val})
		p.ws()
		if p.pos >= len(p.data) {
			return nil, p.errf("unexpected end of input in object")
		}
		if p.data[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.data[p.pos] == '}' {
			p.pos++
			return v, nil
		}
		return nil, p.errf("expected ',' or '}' in object")
	}
}

func (p *parser) array() (*value, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.pos++ // [
	v := &value{kind: kArray}
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return v, nil
	}
	for {
		p.ws()
		el, err := p.value()
		if err != nil {
			return nil, err
		}
		v.arr = append(v.arr, el)
		p.ws()
		if p.pos >= len(p.data) {
			return nil, p.errf("unexpected end of input in list")
		}
		if p.data[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.data[p.pos] == ']' {
			p.pos++
			return v, nil
		}
		return nil, p.errf("expected ',' or ']' in list")
	}
}

func (p *parser) number() (*value, error) {
	start := p.pos
	if p.data[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.pos < len(p.data) && p.data[p.pos] == '0' {
		p.pos++
	} else if digits() == 0 {
		return nil, p.errf("invalid number")
	}
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return nil, p.errf("invalid number")
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.errf("invalid number")
		}
	}
	return &value{kind: kNumber, s: string(p.data[start:p.pos])}, nil
}

func (p *parser) str() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	// Fast path: no escapes.
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if c == '"' {
			s := p.data[start:p.pos]
			p.pos++
			if !utf8.Valid(s) {
				return "", p.errf("invalid UTF-8 in string")
			}
			return string(s), nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		p.pos++
	}
	buf := append([]byte(nil), p.data[start:p.pos]...)
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			if !utf8.Valid(buf) {
				return "", p.errf("invalid UTF-8 in string")
			}
			return string(buf), nil
		case c < 0x20:
			return "", p.errf("control character in string")
		case c == '\\':
			p.pos++
			if p.pos >= len(p.data) {
				return "", p.errf("unexpected end of input in string")
			}
			e := p.data[p.pos]
			p.pos++
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, err := p.hex4()
				if err != nil {
					return "", err
				}
				if utf16.IsSurrogate(r) {
					if p.lit("\\u") {
						r2, err := p.hex4()
						if err != nil {
							return "", err
						}
						r = utf16.DecodeRune(r, r2)
					} else {
						r = utf8.RuneError
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return "", p.errf("invalid escape '\\%c'", e)
			}
		default:
			buf = append(buf, c)
			p.pos++
		}
	}
	return "", p.errf("unterminated string")
}

func (p *parser) hex4() (rune, error) {
	if len(p.data)-p.pos < 4 {
		return 0, p.errf("invalid \\u escape")
	}
	n, err := strconv.ParseUint(string(p.data[p.pos:p.pos+4]), 16, 32)
	if err != nil {
		return 0, p.errf("invalid \\u escape")
	}
	p.pos += 4
	return rune(n), nil
}
