package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	metadataapp "github.com/sluice-ml/sluice/services/metadata/app"
)

func init() {
	devServices = append(devServices, metadataapp.Build)
	extraCommands = append(extraCommands, newLineageCmd, newArtifactsCmd, newExecutionsCmd)
}

func newLineageCmd(o *Options) *cobra.Command {
	var up, down bool
	var hops int
	var format, ns string
	cmd := &cobra.Command{
		Use:   "lineage ARTIFACT-URI|ARTIFACT-ID [--up|--down] [--hops N] [-n NAMESPACE] [--format tree|json|dot]",
		Short: "Show what produced an artifact (--up), what it fed (--down), or both",
		Long: "Walks the lineage graph of the metadata service from an artifact (by id or storage URI) through the\n" +
			"executions that wrote and read it, up to --hops hops (artifact → execution is one hop). --format tree (default) prints an\n" +
			"indented tree of artifacts and executions with their types, states and digests; json prints the\n" +
			"LineageGraph; dot prints a Graphviz digraph (sluice lineage URI --format dot | dot -Tsvg > lineage.svg).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "tree" && format != "json" && format != "dot" {
				return usageError(fmt.Errorf("--format: must be tree, json or dot, got %q", format))
			}
			if hops < 1 {
				return usageError(fmt.Errorf("--hops: must be >= 1, got %d", hops))
			}
			dir := metadatav1.DirectionBidirectional
			switch {
			case up && !down:
				dir = metadatav1.DirectionUpstream
			case down && !up:
				dir = metadatav1.DirectionDownstream
			}
			q := url.Values{"direction": {dir}, "hops": {strconv.Itoa(hops)}}
			if ns != "" {
				q.Set("namespace", ns)
			}
			ref := args[0]
			id, idErr := strconv.ParseInt(ref, 10, 64)
			if idErr == nil {
				q.Set("artifact_id", ref)
			} else {
				q.Add("artifact_uri", ref)
				if t := strings.TrimRight(ref, "/"); t != ref && !strings.HasSuffix(t, ":/") && !strings.HasSuffix(t, ":") {
					q.Add("artifact_uri", t)
				}
			}
			var g metadatav1.LineageGraph
			if err := o.client().do(cmd.Context(), http.MethodGet, metadatav1.PathPrefix+"/lineage?"+q.Encode(), nil, nil, &g); err != nil {
				var ae *apiError
				if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
					return fmt.Errorf("no artifact %s in the metadata store", ref)
				}
				return err
			}
			l := newLineageView(g)
			var start []int64
			for _, a := range g.Artifacts {
				if (idErr == nil && a.ID == id) || (idErr != nil && strings.TrimRight(a.URI, "/") == strings.TrimRight(ref, "/")) {
					start = append(start, a.ID)
				}
			}
			if len(start) == 0 {
				return fmt.Errorf("no artifact %s in the metadata store", ref)
			}
			switch format {
			case "json":
				enc := json.NewEncoder(o.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(g)
			case "dot":
				l.dot(o.Out)
				return nil
			}
			for i, aid := range start {
				if i > 0 {
					fmt.Fprintln(o.Out)
				}
				l.tree(o.Out, aid, dir)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&up, "up", false, "only upstream: the executions and inputs that produced the artifact")
	cmd.Flags().BoolVar(&down, "down", false, "only downstream: the executions that read it and their outputs")
	cmd.Flags().IntVar(&hops, "hops", 10, "maximum hops to walk (artifact → execution and execution → artifact are one hop each)")
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "walk only this namespace's records (default: every namespace you may read)")
	cmd.Flags().StringVar(&format, "format", "tree", "tree, json or dot")
	return cmd
}

// lineageView indexes a LineageGraph for rendering.
type lineageView struct {
	g         metadatav1.LineageGraph
	arts      map[int64]metadatav1.Artifact
	execs     map[int64]metadatav1.Execution
	producers map[int64][]metadatav1.Event // artifact -> output events
	consumers map[int64][]metadatav1.Event // artifact -> input events
	inputs    map[int64][]metadatav1.Event // execution -> input events
	outputs   map[int64][]metadatav1.Event // execution -> output events
}

func newLineageView(g metadatav1.LineageGraph) *lineageView {
	l := &lineageView{g: g, arts: map[int64]metadatav1.Artifact{}, execs: map[int64]metadatav1.Execution{},
		producers: map[int64][]metadatav1.Event{}, consumers: map[int64][]metadatav1.Event{},
		inputs: map[int64][]metadatav1.Event{}, outputs: map[int64][]metadatav1.Event{}}
	for _, a := range g.Artifacts {
		l.arts[a.ID] = a
	}
	for _, e := range g.Executions {
		l.execs[e.ID] = e
	}
	for _, ev := range g.Events {
		switch {
		case ev.Type.IsOutput():
			l.producers[ev.ArtifactID] = append(l.producers[ev.ArtifactID], ev)
			l.outputs[ev.ExecutionID] = append(l.outputs[ev.ExecutionID], ev)
		case ev.Type.IsInput():
			l.consumers[ev.ArtifactID] = append(l.consumers[ev.ArtifactID], ev)
			l.inputs[ev.ExecutionID] = append(l.inputs[ev.ExecutionID], ev)
		}
	}
	return l
}

// mdPath renders an event path as name, name[i] or name.key.
func mdPath(p *metadatav1.EventPath) string {
	if p == nil {
		return ""
	}
	var b strings.Builder
	for _, s := range p.Steps {
		switch {
		case s.Key != nil && b.Len() == 0:
			b.WriteString(*s.Key)
		case s.Key != nil:
			b.WriteString("." + *s.Key)
		case s.Index != nil:
			fmt.Fprintf(&b, "[%d]", *s.Index)
		}
	}
	return b.String()
}

func mdStringProp(m map[string]metadatav1.Value, k string) string {
	if v, ok := m[k]; ok && v.StringValue != nil {
		return *v.StringValue
	}
	return ""
}

func mdDigest(d string) string {
	if algo, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return algo + ":" + hex[:12] + "…"
	}
	return d
}

func (l *lineageView) artifactLine(id int64) string {
	a, ok := l.arts[id]
	if !ok {
		return fmt.Sprintf("artifact %d", id)
	}
	s := fmt.Sprintf("artifact %d  %s  %s  %s", a.ID, a.Type, a.URI, a.State)
	if a.Name != "" {
		s += "  name=" + a.Name
	}
	if d := mdStringProp(a.CustomProperties, "digest"); d != "" {
		s += "  " + mdDigest(d)
	}
	return s
}

func (l *lineageView) executionLine(id int64) string {
	e, ok := l.execs[id]
	if !ok {
		return fmt.Sprintf("execution %d", id)
	}
	name := e.Name
	if name == "" {
		name = mdStringProp(e.CustomProperties, "display_name")
	}
	return fmt.Sprintf("execution %d  %s  %s  %s", e.ID, e.Type, name, e.LastKnownState)
}

// tree prints the start artifact, then its upstream and/or downstream trees and the contexts.
func (l *lineageView) tree(w io.Writer, start int64, dir string) {
	fmt.Fprintln(w, l.artifactLine(start))
	if dir != metadatav1.DirectionDownstream {
		fmt.Fprintln(w, "upstream:")
		seen := map[int64]bool{}
		if len(l.producers[start]) == 0 {
			fmt.Fprintln(w, "  (no recorded producer)")
		}
		l.walk(w, start, "  ", true, seen)
	}
	if dir != metadatav1.DirectionUpstream {
		fmt.Fprintln(w, "downstream:")
		seen := map[int64]bool{}
		if len(l.consumers[start]) == 0 {
			fmt.Fprintln(w, "  (no recorded consumer)")
		}
		l.walk(w, start, "  ", false, seen)
	}
	if len(l.g.Contexts) > 0 {
		fmt.Fprintln(w, "contexts:")
		cs := append([]metadatav1.Context(nil), l.g.Contexts...)
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].ID < cs[j].ID })
		for _, c := range cs {
			fmt.Fprintf(w, "  context %d  %s  %s\n", c.ID, c.Type, c.Name)
		}
	}
}

// walk prints, under artifact aid, the executions that wrote it (up) or read it (down), and
// under each execution its other side's artifacts; an execution already printed is marked,
// not expanded again, so diamonds print once.
func (l *lineageView) walk(w io.Writer, aid int64, indent string, up bool, seen map[int64]bool) {
	edges := l.consumers[aid]
	arrow := "→"
	if up {
		edges, arrow = l.producers[aid], "←"
	}
	for _, ev := range edges {
		eid := ev.ExecutionID
		label := ""
		if p := mdPath(ev.Path); p != "" {
			if up {
				label = "  (output " + p + ")"
			} else {
				label = "  (input " + p + ")"
			}
		}
		if seen[eid] {
			fmt.Fprintf(w, "%s%s %s%s  (shown above)\n", indent, arrow, l.executionLine(eid), label)
			continue
		}
		seen[eid] = true
		fmt.Fprintf(w, "%s%s %s%s\n", indent, arrow, l.executionLine(eid), label)
		next := l.outputs[eid]
		if up {
			next = l.inputs[eid]
		}
		for _, nev := range next {
			nl := ""
			if p := mdPath(nev.Path); p != "" {
				if up {
					nl = "  (input " + p + ")"
				} else {
					nl = "  (output " + p + ")"
				}
			}
			fmt.Fprintf(w, "%s    %s %s%s\n", indent, arrow, l.artifactLine(nev.ArtifactID), nl)
			l.walk(w, nev.ArtifactID, indent+"        ", up, seen)
		}
	}
}

// mdDotQuote quotes s as a Graphviz string.
func mdDotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// dot prints the graph as a Graphviz digraph: artifacts as notes, executions as rounded boxes,
// edges labelled with the event path; contexts are listed as comments.
func (l *lineageView) dot(w io.Writer) {
	fmt.Fprintln(w, "digraph lineage {")
	fmt.Fprintln(w, "  rankdir=LR;")
	fmt.Fprintln(w, `  node [fontname="Helvetica", fontsize=10];`)
	for _, a := range l.g.Artifacts {
		label := fmt.Sprintf("%s #%d\n%s\n%s", a.Type, a.ID, a.URI, a.State)
		if d := mdStringProp(a.CustomProperties, "digest"); d != "" {
			label += "\n" + mdDigest(d)
		}
		fmt.Fprintf(w, "  a%d [shape=note, label=%s];\n", a.ID, mdDotQuote(label))
	}
	for _, e := range l.g.Executions {
		fmt.Fprintf(w, "  e%d [shape=box, style=rounded, label=%s];\n", e.ID, mdDotQuote(fmt.Sprintf("%s #%d\n%s\n%s", e.Type, e.ID, e.Name, e.LastKnownState)))
	}
	for _, ev := range l.g.Events {
		attrs := ""
		if p := mdPath(ev.Path); p != "" {
			attrs = " [label=" + mdDotQuote(p) + "]"
		}
		switch {
		case ev.Type.IsInput():
			fmt.Fprintf(w, "  a%d -> e%d%s;\n", ev.ArtifactID, ev.ExecutionID, attrs)
		case ev.Type.IsOutput():
			fmt.Fprintf(w, "  e%d -> a%d%s;\n", ev.ExecutionID, ev.ArtifactID, attrs)
		}
	}
	for _, c := range l.g.Contexts {
		fmt.Fprintf(w, "  // context %d %s %s\n", c.ID, c.Type, c.Name)
	}
	fmt.Fprintln(w, "}")
}

// mdListFlags are the paging and output flags of the list verbs.
type mdListFlags struct {
	limit  int
	format string
}

func (f *mdListFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.limit, "limit", 100, "maximum rows (0 = all)")
	cmd.Flags().StringVar(&f.format, "format", "table", "table or json")
}

func (f *mdListFlags) check() error {
	if f.format != "table" && f.format != "json" {
		return usageError(fmt.Errorf("--format: must be table or json, got %q", f.format))
	}
	if f.limit < 0 {
		return usageError(fmt.Errorf("--limit: must be >= 0, got %d", f.limit))
	}
	return nil
}

// pageSize is the page size to ask for given the rows still wanted.
func (f *mdListFlags) pageSize(have int) int {
	if f.limit == 0 {
		return 1000
	}
	return min(1000, f.limit-have)
}

func newArtifactsCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{Use: "artifacts", Aliases: []string{"artifact"}, Short: "Inspect artifacts in the metadata store"}
	var typ, uri, state, ns string
	var lf mdListFlags
	list := &cobra.Command{
		Use:   "list [--type T] [--uri U] [--state S]",
		Short: "List artifacts in id order (ID, type, state, URI, digest)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := lf.check(); err != nil {
				return err
			}
			q := url.Values{}
			mdSetQuery(q, "type", typ)
			mdSetQuery(q, "uri", uri)
			mdSetQuery(q, "state", state)
			mdSetQuery(q, "namespace", ns)
			all, err := mdListAll(cmd.Context(), o, lf, "/artifacts", q, func(p metadatav1.ListArtifactsResponse) ([]metadatav1.Artifact, string) {
				return p.Artifacts, p.NextPageToken
			})
			if err != nil {
				return err
			}
			if lf.format == "json" {
				return mdWriteJSON(o.Out, metadatav1.ListArtifactsResponse{Artifacts: all})
			}
			tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tSTATE\tURI\tDIGEST")
			for _, a := range all {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", a.ID, a.Type, a.State, a.URI, mdDigest(mdStringProp(a.CustomProperties, "digest")))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&typ, "type", "", "artifact type, e.g. system.Dataset or system.Model")
	list.Flags().StringVar(&uri, "uri", "", "storage URI")
	list.Flags().StringVar(&state, "state", "", "LIVE, PENDING, DELETED, ...")
	list.Flags().StringVarP(&ns, "namespace", "n", "", "only this namespace's artifacts (default: every namespace you may read)")
	lf.add(list)
	cmd.AddCommand(list)
	return cmd
}

func newExecutionsCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{Use: "executions", Aliases: []string{"execution"}, Short: "Inspect executions in the metadata store"}
	var typ, state, name, ns string
	var lf mdListFlags
	list := &cobra.Command{
		Use:   "list [--type T] [--state S]",
		Short: "List executions in id order (ID, type, state, name)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := lf.check(); err != nil {
				return err
			}
			q := url.Values{}
			mdSetQuery(q, "type", typ)
			mdSetQuery(q, "state", strings.ToUpper(state))
			mdSetQuery(q, "name", name)
			mdSetQuery(q, "namespace", ns)
			all, err := mdListAll(cmd.Context(), o, lf, "/executions", q, func(p metadatav1.ListExecutionsResponse) ([]metadatav1.Execution, string) {
				return p.Executions, p.NextPageToken
			})
			if err != nil {
				return err
			}
			if lf.format == "json" {
				return mdWriteJSON(o.Out, metadatav1.ListExecutionsResponse{Executions: all})
			}
			tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tSTATE\tNAME")
			for _, e := range all {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", e.ID, e.Type, e.LastKnownState, e.Name)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&typ, "type", "", "execution type, e.g. system.ContainerExecution or sluice.TrainingRun")
	list.Flags().StringVar(&state, "state", "", "NEW, RUNNING, COMPLETE, FAILED, CACHED or CANCELED")
	list.Flags().StringVar(&name, "name", "", "execution name, e.g. <run id>/<task path>")
	list.Flags().StringVarP(&ns, "namespace", "n", "", "only this namespace's executions (default: every namespace you may read)")
	lf.add(list)
	cmd.AddCommand(list)
	return cmd
}

func mdSetQuery(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

func mdWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// mdListAll follows page tokens of a metadata list endpoint until the last page or --limit.
func mdListAll[P, T any](ctx context.Context, o *Options, lf mdListFlags, path string, q url.Values, items func(P) ([]T, string)) ([]T, error) {
	var all []T
	for {
		q.Set("page_size", strconv.Itoa(lf.pageSize(len(all))))
		var page P
		if err := o.client().do(ctx, http.MethodGet, metadatav1.PathPrefix+path+"?"+q.Encode(), nil, nil, &page); err != nil {
			return nil, err
		}
		got, next := items(page)
		all = append(all, got...)
		if next == "" || (lf.limit > 0 && len(all) >= lf.limit) {
			return all, nil
		}
		q.Set("page_token", next)
	}
}
