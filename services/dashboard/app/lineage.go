package app

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
)

// lineageData is the lineage explorer: an artifact's upstream and downstream executions and artifacts.
type lineageData struct {
	Ref       string
	Direction string
	Hops      int
	Graph     metadatav1.LineageGraph
	SVG       template.HTML
	Searched  bool
	// Preview is the artifact page of each artifact a pipeline task produced (by artifact id).
	Preview map[int64]string
}

// dotLineage draws a lineage graph: artifacts as notes, executions as boxes, an edge per input event
// (artifact → execution) and output event (execution → artifact); the artifact asked for is marked.
func dotLineage(g metadatav1.LineageGraph, root func(metadatav1.Artifact) bool) ([]byte, []string) {
	var b bytes.Buffer
	b.WriteString("digraph lineage {\n  graph [rankdir=LR nodesep=0.3 ranksep=0.5 bgcolor=\"transparent\" fontname=\"Helvetica,Arial,sans-serif\"];\n")
	b.WriteString("  node [style=\"filled\" fillcolor=\"#ffffff\" color=\"#5f6b7a\" fontname=\"Helvetica,Arial,sans-serif\" fontsize=11];\n  edge [color=\"#8a94a3\" arrowsize=0.6];\n")
	var classes []string
	for _, a := range g.Artifacts {
		label := a.Name
		if label == "" {
			label = shortTail(a.URI, 2)
		}
		cls := "artifact"
		if root(a) {
			cls = "root"
		}
		fmt.Fprintf(&b, "  a%d [id=%s shape=note label=%s tooltip=%s class=%s];\n", a.ID, dotQuote(fmt.Sprintf("artifact_%d", a.ID)),
			dotQuote(label+"\n"+a.Type), dotQuote(a.URI), dotQuote("T"+strconv.Itoa(len(classes))+"_"))
		classes = append(classes, cls)
	}
	for _, e := range g.Executions {
		label := shortTail(e.Name, 1) // "<run id>/<task path>": the task
		if label == "" {
			label = fmt.Sprintf("execution %d", e.ID)
		}
		fmt.Fprintf(&b, "  e%d [id=%s shape=box style=\"rounded,filled\" label=%s class=%s];\n", e.ID, dotQuote(fmt.Sprintf("execution_%d", e.ID)),
			dotQuote(label+"\n"+e.Type+" · "+string(e.LastKnownState)), dotQuote("T"+strconv.Itoa(len(classes))+"_"))
		classes = append(classes, "execution_"+string(e.LastKnownState))
	}
	known := map[string]bool{}
	for _, a := range g.Artifacts {
		known[fmt.Sprintf("a%d", a.ID)] = true
	}
	for _, e := range g.Executions {
		known[fmt.Sprintf("e%d", e.ID)] = true
	}
	for _, ev := range g.Events {
		a, x := fmt.Sprintf("a%d", ev.ArtifactID), fmt.Sprintf("e%d", ev.ExecutionID)
		if !known[a] || !known[x] {
			continue
		}
		switch ev.Type {
		case metadatav1.EventInput, metadatav1.EventDeclaredInput, metadatav1.EventInternalInput:
			fmt.Fprintf(&b, "  %s -> %s;\n", a, x)
		case metadatav1.EventOutput, metadatav1.EventDeclaredOutput, metadatav1.EventInternalOutput, metadatav1.EventPendingOutput:
			fmt.Fprintf(&b, "  %s -> %s;\n", x, a)
		}
	}
	b.WriteString("}\n")
	return b.Bytes(), classes
}

// lineage shows an artifact's lineage (?artifact_uri= or ?artifact_id=, direction, hops) across pipelines,
// training and serving, as the metadata service records it.
func (a *App) lineage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := lineageData{Ref: q.Get("artifact"), Direction: q.Get("direction"), Hops: 3}
	if d.Direction == "" {
		d.Direction = metadatav1.DirectionBidirectional
	}
	if h, err := strconv.Atoi(q.Get("hops")); err == nil && h >= 1 && h <= 20 {
		d.Hops = h
	}
	if d.Ref == "" {
		a.render(w, r, http.StatusOK, "lineage", view{Title: "Lineage", Nav: "lineage", Data: d})
		return
	}
	d.Searched = true
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Lineage", err)
		return
	}
	aq := url.Values{"direction": {d.Direction}, "hops": {strconv.Itoa(d.Hops)}}
	id, idErr := strconv.ParseInt(d.Ref, 10, 64)
	if idErr == nil {
		aq.Set("artifact_id", d.Ref)
	} else {
		aq.Set("artifact_uri", d.Ref)
	}
	if err := c.getJSON(r.Context(), metadatav1.PathPrefix+"/lineage?"+aq.Encode(), &d.Graph); err != nil {
		var ae *apiError
		if asAPI(err, &ae) && ae.Code == http.StatusNotFound {
			a.render(w, r, http.StatusNotFound, "lineage", view{Title: "Lineage", Nav: "lineage", Error: "no artifact " + d.Ref + " in the metadata store", Data: d})
			return
		}
		a.fail(w, r, "Lineage", err)
		return
	}
	dot, classes := dotLineage(d.Graph, func(art metadatav1.Artifact) bool { return art.ID == id || art.URI == d.Ref })
	lay, err := a.layout.svgDOT(r.Context(), "lineage/"+aq.Encode(), dot)
	if err != nil {
		a.fail(w, r, "Lineage", err)
		return
	}
	d.SVG = template.HTML(colour(lay, classes)) // Graphviz's SVG of our escaped DOT
	d.Preview = artifactPages(d.Graph)
	a.render(w, r, http.StatusOK, "lineage", view{Title: "Lineage of " + d.Ref, Nav: "lineage", Data: d})
}

func asAPI(err error, target **apiError) bool { return errors.As(err, target) }

// shortTail keeps the last n '/'-separated segments of s (a URI or an execution name) for a node label.
func shortTail(s string, n int) string {
	parts := strings.Split(strings.TrimRight(s, "/"), "/")
	if len(parts) <= n {
		return s
	}
	return "…/" + strings.Join(parts[len(parts)-n:], "/")
}
