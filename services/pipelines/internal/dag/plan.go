package dag

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Downstream returns the names of the tasks of d that depend directly on
// task name, sorted.
func (d *DAG) Downstream(name string) []string {
	var out []string
	for _, t := range d.Tasks {
		for _, dep := range t.DependsOn {
			if dep == name {
				out = append(out, t.Name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// Levels groups the tasks of a compiled DAG into waves: every task of wave i
// depends only on tasks of earlier waves, so the tasks of one wave may run in
// parallel. Names inside a wave are sorted.
func (d *DAG) Levels() [][]string {
	level := map[string]int{}
	var out [][]string
	for _, t := range d.Tasks { // topological order
		l := 0
		for _, dep := range t.DependsOn {
			if level[dep]+1 > l {
				l = level[dep] + 1
			}
		}
		level[t.Name] = l
		for len(out) <= l {
			out = append(out, nil)
		}
		out[l] = append(out[l], t.Name)
	}
	for _, w := range out {
		sort.Strings(w)
	}
	return out
}

// TaskCount returns the number of tasks in the pipeline counting each nested
// DAG task once per reference (iterations not expanded), for sizing
// workflow histories.
func (p *Pipeline) TaskCount() int {
	var count func(c *Component, depth int) int
	count = func(c *Component, depth int) int {
		if c == nil || c.DAG == nil || depth > 64 {
			return 0
		}
		n := 0
		for _, t := range c.DAG.Tasks {
			n++
			if sub, ok := p.Component(t.ComponentRef); ok && sub.Kind == KindDAG {
				n += count(sub, depth+1)
			}
		}
		return n
	}
	return count(p.Root, 0)
}

// ParseParamText parses a run parameter given as text (CLI `-p k=v`, query
// strings) into a value of type t: STRING verbatim, NUMBER_INTEGER and
// NUMBER_DOUBLE as decimal numbers, BOOLEAN as true/false, LIST and STRUCT as
// JSON.
func ParseParamText(s string, t ParamType) (any, error) {
	switch t {
	case ParamString:
		return s, nil
	case ParamInteger:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n > 1<<53-1 || n < -(1<<53-1) {
			return nil, fmt.Errorf("%q is not an integer", s)
		}
		return float64(n), nil
	case ParamDouble:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return CoerceValue(f, ParamDouble)
	case ParamBoolean:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q is not a boolean", s)
		}
		return b, nil
	case ParamList, ParamStruct:
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("%q is not JSON: %v", s, err)
		}
		return CoerceValue(v, t)
	}
	return nil, fmt.Errorf("parameters of type %s cannot be given as text", t)
}
