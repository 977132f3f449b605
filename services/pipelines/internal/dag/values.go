package dag

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// normalizeJSON converts a Go value into the JSON value model used
// throughout the package (as google.protobuf.Value holds it): numbers become
// float64, slices []any, maps with string keys map[string]any. Values of
// other types are returned unchanged.
func normalizeJSON(v any) any {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int32:
		return float64(x)
	case int64:
		return float64(x)
	case uint:
		return float64(x)
	case uint32:
		return float64(x)
	case uint64:
		return float64(x)
	case float32:
		return float64(x)
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return x.String()
		}
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeJSON(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalizeJSON(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = normalizeJSON(e)
		}
		return out
	}
	return v
}

// NormalizeValue returns v in the package's JSON value model (float64
// numbers, []any, map[string]any), as a parser or the engine should store it.
func NormalizeValue(v any) any { return normalizeJSON(v) }

// jsonKind names the JSON kind of a normalized value, for messages.
func jsonKind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64:
		if x == math.Trunc(x) && !math.IsInf(x, 0) {
			return "integer"
		}
		return "number"
	case []any:
		return "list"
	case map[string]any:
		return "struct"
	}
	return fmt.Sprintf("%T", v)
}

// CoerceValue checks that the JSON value v fits parameter type t and returns
// it in canonical form: NUMBER_INTEGER must be integral (9.0 is accepted, as
// KFP compiles int constants as 9.0), LIST and STRUCT also accept a string
// holding JSON of that shape. The error message names the expected and the
// actual kind.
func CoerceValue(v any, t ParamType) (any, error) {
	v = normalizeJSON(v)
	mismatch := func() (any, error) {
		return nil, fmt.Errorf("type mismatch: %s value %s does not fit %s", jsonKind(v), shortJSON(v), t)
	}
	switch t {
	case ParamString:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case ParamInteger:
		if f, ok := v.(float64); ok && f == math.Trunc(f) && math.Abs(f) <= 1<<53-1 {
			return f, nil
		}
	case ParamDouble:
		if f, ok := v.(float64); ok && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f, nil
		}
	case ParamBoolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case ParamList:
		switch x := v.(type) {
		case []any:
			return x, nil
		case string:
			var l []any
			if json.Unmarshal([]byte(x), &l) == nil && l != nil {
				return normalizeJSON(l), nil
			}
		}
	case ParamStruct:
		switch x := v.(type) {
		case map[string]any:
			return x, nil
		case string:
			var m map[string]any
			if json.Unmarshal([]byte(x), &m) == nil && m != nil {
				return normalizeJSON(m), nil
			}
		}
	case ParamTaskFinalStatus:
		if _, ok := v.(map[string]any); ok {
			return v, nil
		}
	default:
		return nil, fmt.Errorf("unknown parameter type %q", t)
	}
	return mismatch()
}

func shortJSON(v any) string {
	b, err := marshalJSON(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := string(b)
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// ResolveInputs checks run parameter values against the pipeline's inputs and
// applies defaults. Unknown names, missing required values and type
// mismatches are all reported as [FieldErrors] with paths
// `parameters.<name>`. Values are returned normalized; an optional input
// without a default and without a value is left out.
func (p *Pipeline) ResolveInputs(values map[string]any) (map[string]any, error) {
	var errs errorList
	out := map[string]any{}
	for _, def := range p.Inputs() {
		v, ok := values[def.Name]
		if !ok {
			switch {
			case def.HasDefault:
				out[def.Name] = normalizeJSON(def.Default)
			case def.Optional:
			default:
				errs.add("parameters."+def.Name, "required %s parameter has no value and no default", def.Type)
			}
			continue
		}
		cv, err := CoerceValue(v, def.Type)
		if err != nil {
			errs.add("parameters."+def.Name, "%v", err)
			continue
		}
		out[def.Name] = cv
	}
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, ok := findParam(p.Inputs(), n); !ok {
			errs.add("parameters."+n, "unknown parameter (pipeline inputs: %s)", strings.Join(paramNames(p.Inputs()), ", "))
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return out, nil
}

func paramNames(ps []ParamDef) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}
