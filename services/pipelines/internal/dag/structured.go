package dag

import (
	"encoding/json"
	"fmt"
	"strings"
)

// KFP v2 stores the structured placeholders of a component's command and args as JSON strings (the
// compiler's output for YAML components): {"IfPresent": {"InputName": "x", "Then": [...], "Else":
// [...]}} expands into the Then list when input x has a value and into Else otherwise (both may be
// absent: nothing), and {"Concat": [...]} joins its items into one argument. Items are strings with
// ordinary placeholders or nested structured placeholders. This is how KFP's launcher expands them.

type structured struct {
	IfPresent *struct {
		InputName string `json:"InputName"`
		Then      []any  `json:"Then"`
		Else      []any  `json:"Else"`
	} `json:"IfPresent"`
	Concat []any `json:"Concat"`
}

// parseStructured returns the structured placeholder s holds, if it is one.
func parseStructured(s string) (*structured, bool) {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, `{"IfPresent"`) && !strings.HasPrefix(t, `{"Concat"`) {
		return nil, false
	}
	var st structured
	dec := json.NewDecoder(strings.NewReader(t))
	dec.DisallowUnknownFields()
	if dec.Decode(&st) != nil || (st.IfPresent == nil) == (st.Concat == nil) {
		return nil, false
	}
	return &st, true
}

// StructuredInputs returns the input names IfPresent placeholders in s test (for validation).
func StructuredInputs(s string) []string {
	st, ok := parseStructured(s)
	if !ok {
		return nil
	}
	var out []string
	var walk func(items []any)
	walk = func(items []any) {
		for _, it := range items {
			if m, ok := it.(map[string]any); ok {
				b, _ := json.Marshal(m)
				out = append(out, StructuredInputs(string(b))...)
			}
		}
	}
	if st.IfPresent != nil {
		out = append(out, st.IfPresent.InputName)
		walk(st.IfPresent.Then)
		walk(st.IfPresent.Else)
	} else {
		walk(st.Concat)
	}
	return out
}

// expandStructured replaces structured placeholders in args by what they expand to for ctx.
func expandStructured(args []string, ctx ExecutorContext) ([]string, error) {
	var out []string
	for _, a := range args {
		st, ok := parseStructured(a)
		if !ok {
			out = append(out, a)
			continue
		}
		items, err := st.expand(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
	}
	return out, nil
}

func (st *structured) expand(ctx ExecutorContext) ([]string, error) {
	if st.IfPresent != nil {
		name := st.IfPresent.InputName
		_, present := ctx.Parameters[name]
		if arts, ok := ctx.InputArtifacts[name]; ok && len(arts) > 0 {
			present = true
		}
		if present {
			return expandItems(st.IfPresent.Then, ctx)
		}
		return expandItems(st.IfPresent.Else, ctx)
	}
	parts, err := expandItems(st.Concat, ctx)
	if err != nil {
		return nil, err
	}
	return []string{strings.Join(parts, "")}, nil
}

func expandItems(items []any, ctx ExecutorContext) ([]string, error) {
	var out []string
	for _, it := range items {
		switch x := it.(type) {
		case string:
			more, err := expandStructured([]string{x}, ctx)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		case map[string]any:
			b, _ := json.Marshal(x)
			st, ok := parseStructured(string(b))
			if !ok {
				return nil, fmt.Errorf("unknown structured placeholder %s", b)
			}
			more, err := st.expand(ctx)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		default:
			return nil, fmt.Errorf("structured placeholder item %v is not a string or placeholder", it)
		}
	}
	return out, nil
}
