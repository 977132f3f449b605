package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/goccy/go-graphviz"

	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
)

// layouter lays graphs out with Graphviz (dot) and keeps the SVG of each graph, since a run's or a
// version's graph never changes: a page shows a run's state by the CSS class of each node, filled in
// per request (see [colour]), so a 1,000-task run is laid out once, not on every render or update.
type layouter struct {
	mu    sync.Mutex // Graphviz's WebAssembly instance runs one layout at a time
	gv    *graphviz.Graphviz
	cache map[string]*layout
	order []string
}

// layout is a laid-out graph split where each node's state class goes: parts[0] class(idx[0]) parts[1] ...
type layout struct {
	sum   [32]byte
	parts []string
	idx   []int
}

const layoutCacheSize = 256

func newLayouter() *layouter { return &layouter{cache: map[string]*layout{}} }

func (l *layouter) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gv != nil {
		_ = l.gv.Close()
		l.gv = nil
	}
}

// dotOf writes g as a Graphviz DOT digraph: one node per task (id task_<i>, a link to the task's row
// #row-<i>), edges from upstream tasks, nested DAGs as clusters, and a placeholder class T<i>_ that
// colour replaces with the task's state.
func dotOf(g pipelinesv1.Graph) []byte {
	var b bytes.Buffer
	b.WriteString("digraph pipeline {\n  graph [rankdir=TB nodesep=0.3 ranksep=0.45 fontname=\"Helvetica,Arial,sans-serif\" fontsize=11 bgcolor=\"transparent\"];\n")
	b.WriteString("  node [shape=box style=\"rounded,filled\" fillcolor=\"#ffffff\" color=\"#5f6b7a\" fontname=\"Helvetica,Arial,sans-serif\" fontsize=11 height=0.35];\n  edge [color=\"#8a94a3\" arrowsize=0.6];\n")
	index := map[string]int{}
	for i, t := range g.Tasks {
		index[t.Path] = i
	}
	children := map[string][]int{}
	for i, t := range g.Tasks {
		children[t.Parent] = append(children[t.Parent], i)
	}
	var nodes func(parent string, indent string)
	nodes = func(parent string, indent string) {
		for _, i := range children[parent] {
			t := g.Tasks[i]
			label := t.DisplayName
			if label == "" {
				label = t.Name
			}
			var notes []string
			if t.Loop {
				notes = append(notes, "loop")
			}
			if t.Condition != "" {
				notes = append(notes, "if")
			}
			if t.ExitHandler {
				notes = append(notes, "exit handler")
			}
			if len(notes) > 0 {
				label += "\n[" + strings.Join(notes, ", ") + "]"
			}
			style := "rounded,filled"
			if t.Loop {
				style += ",dashed"
			}
			if t.ExitHandler {
				style += ",bold"
			}
			fmt.Fprintf(&b, "%s  n%d [id=%s label=%s tooltip=%s URL=%s class=%s style=%s];\n", indent, i,
				dotQuote("task_"+strconv.Itoa(i)), dotQuote(label), dotQuote(t.Path), dotQuote("#row-"+strconv.Itoa(i)),
				dotQuote("T"+strconv.Itoa(i)+"_"), dotQuote(style))
			if len(children[t.Path]) > 0 {
				fmt.Fprintf(&b, "%s  subgraph cluster_%d {\n%s    label=%s; style=\"rounded,dashed\"; color=\"#b8c0cc\";\n", indent, i, indent, dotQuote(label))
				nodes(t.Path, indent+"  ")
				fmt.Fprintf(&b, "%s  }\n", indent)
			}
		}
	}
	nodes("", "")
	for i, t := range g.Tasks {
		for _, d := range t.DependsOn {
			if j, ok := index[d]; ok {
				fmt.Fprintf(&b, "  n%d -> n%d;\n", j, i)
			}
		}
		if t.Parent != "" && len(t.DependsOn) == 0 {
			if p, ok := index[t.Parent]; ok {
				fmt.Fprintf(&b, "  n%d -> n%d [style=dotted arrowhead=none];\n", p, i)
			}
		}
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// dotQuote quotes s as a DOT string (a JSON string is a valid DOT string once newlines are \n).
func dotQuote(s string) string {
	q, _ := json.Marshal(s)
	out := string(q)
	out = strings.ReplaceAll(out, `\u003c`, "<")
	out = strings.ReplaceAll(out, `\u003e`, ">")
	out = strings.ReplaceAll(out, `\u0026`, "&")
	return out
}

// svg returns the laid-out SVG of g (cached under key while g is unchanged), split for colour.
func (l *layouter) svg(ctx context.Context, key string, g pipelinesv1.Graph) (*layout, error) {
	return l.svgDOT(ctx, key, dotOf(g))
}

// svgDOT lays out a DOT graph whose nodes carry the class placeholders T<i>_ (cached under key while the
// DOT text is unchanged).
func (l *layouter) svgDOT(ctx context.Context, key string, dot []byte) (*layout, error) {
	sum := sha256.Sum256(dot)
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.cache[key]; ok && c.sum == sum {
		return c, nil
	}
	if l.gv == nil {
		gv, err := graphviz.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("graph layout: %w", err)
		}
		l.gv = gv
	}
	gr, err := graphviz.ParseBytes(dot)
	if err != nil {
		return nil, fmt.Errorf("graph layout: %w", err)
	}
	defer gr.Close()
	var out bytes.Buffer
	if err := l.gv.Render(ctx, gr, graphviz.SVG, &out); err != nil {
		return nil, fmt.Errorf("graph layout: %w", err)
	}
	lay := split(out.String())
	lay.sum = sum
	if _, ok := l.cache[key]; !ok {
		l.order = append(l.order, key)
		if len(l.order) > layoutCacheSize {
			delete(l.cache, l.order[0])
			l.order = l.order[1:]
		}
	}
	l.cache[key] = lay
	return lay, nil
}

// split cuts Graphviz's SVG (from <svg on) at each class placeholder T<i>_.
func split(svg string) *layout {
	if i := strings.Index(svg, "<svg"); i >= 0 {
		svg = svg[i:]
	}
	lay := &layout{}
	for {
		i := strings.Index(svg, `class="node T`)
		if i < 0 {
			break
		}
		start := i + len(`class="node `)
		end := strings.IndexByte(svg[start:], '_')
		if end < 0 {
			break
		}
		n, err := strconv.Atoi(svg[start+1 : start+end])
		if err != nil {
			break
		}
		lay.parts = append(lay.parts, svg[:start])
		lay.idx = append(lay.idx, n)
		svg = svg[start+end+1:]
	}
	lay.parts = append(lay.parts, svg)
	return lay
}

// colour writes the SVG with each node's state class (st-succeeded, st-running, ...; st-none without
// states).
func colour(l *layout, states []string) string {
	var b strings.Builder
	n := 0
	for _, p := range l.parts {
		n += len(p) + 16
	}
	b.Grow(n)
	for i, p := range l.parts {
		b.WriteString(p)
		if i < len(l.idx) {
			st := "none"
			if j := l.idx[i]; j < len(states) && states[j] != "" {
				st = classSafe(states[j])
			}
			b.WriteString("st-")
			b.WriteString(st)
		}
	}
	return b.String()
}

// classSafe lower-cases a state for a CSS class, keeping letters, digits and '_' only.
func classSafe(s string) string {
	b := make([]byte, 0, len(s))
	for _, c := range []byte(strings.ToLower(s)) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' {
			b = append(b, c)
		}
	}
	return string(b)
}
