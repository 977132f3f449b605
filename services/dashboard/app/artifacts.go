package app

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	gmhtml "github.com/yuin/goldmark/renderer/html"

	"github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
)

// Preview limits: an artifact page reads at most previewBytes of a file to show it (text, CSV, JSON,
// Markdown; the rest is left to the download), at most csvRows rows of a table, and serves an image or
// an HTML visualisation of at most inlineBytes to the page.
const (
	previewBytes = 1 << 20
	csvRows      = 500
	inlineBytes  = 10 << 20
)

// artifactDirectoryType is the media type the pipelines API answers a directory artifact's file list
// with (pipelines app.ArtifactDirectoryType).
const artifactDirectoryType = "application/vnd.sluice.artifact-directory+json"

// artifactPage is an artifact's page: its facts, and a preview as KFP's UI renders the artifact's kind.
type artifactPage struct {
	RunID, RunName, Task, Name, File string
	Artifact                         pipelinesv1.Artifact
	// Kind is how the artifact is previewed: metrics, classification, directory, text, csv, json,
	// markdown, html, image, binary or empty.
	Kind      string
	Text      string
	Truncated bool
	Table     [][]string
	Markdown  template.HTML
	Files     []artifactFile
	Scalars   []scalarMetric
	Confusion *confusionMatrix
	ROC       *chart
	ROCPoints []rocPoint
	// Query is the query string (task and file) of the raw and download links.
	Query    template.URL
	Problems []string
}

type artifactFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

type scalarMetric struct {
	Name  string
	Value string
}

type confusionMatrix struct {
	Labels []string
	Rows   [][]float64
}

type rocPoint struct{ Threshold, FPR, TPR float64 }

// artifactRef reads the {id}/{name} path and ?task= / ?file= of an artifact route.
func artifactRef(r *http.Request) (id, name, task, file string) {
	q := r.URL.Query()
	return r.PathValue("id"), r.PathValue("name"), q.Get("task"), q.Get("file")
}

func artifactQuery(task, file string) string {
	q := url.Values{"task": {task}}
	if file != "" {
		q.Set("file", file)
	}
	return q.Encode()
}

// findArtifact reads run id and returns output artifact name of task.
func findArtifact(r *http.Request, c *caller, id, task, name string) (runDetail, pipelinesv1.Artifact, error) {
	var run runDetail
	if err := c.getJSON(r.Context(), "/apis/v1/runs/"+url.PathEscape(id), &run); err != nil {
		return run, pipelinesv1.Artifact{}, err
	}
	for _, t := range run.Tasks {
		if t.Path == task && t.Outputs != nil {
			if a, ok := t.Outputs.Artifacts[name]; ok {
				if a.Name == "" {
					a.Name = name
				}
				return run, a, nil
			}
		}
	}
	return run, pipelinesv1.Artifact{}, &apiError{Code: http.StatusNotFound, Msg: fmt.Sprintf("run %s: task %q has no output artifact %q", id, task, name)}
}

// artifact shows output artifact {name} of task ?task= of run {id}: metrics artifacts from their
// metadata (system.Metrics: a scalar table; system.ClassificationMetrics: confusion matrix and ROC
// curve), anything else from its bytes (read through the pipelines API, capped at previewBytes).
func (a *App) artifact(w http.ResponseWriter, r *http.Request) {
	id, name, task, file := artifactRef(r)
	if task == "" {
		a.render(w, r, http.StatusBadRequest, "error", view{Title: "Artifact", Error: "task: required (the path of the task that produced the artifact)"})
		return
	}
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Artifact", err)
		return
	}
	run, art, err := findArtifact(r, c, id, task, name)
	if err != nil {
		a.fail(w, r, "Artifact "+name, err)
		return
	}
	d := artifactPage{RunID: id, RunName: run.RunName, Task: task, Name: name, File: file, Artifact: art, Query: template.URL(artifactQuery(task, file))}
	if file == "" {
		switch art.SchemaTitle {
		case "system.Metrics":
			d.Kind = "metrics"
			d.Scalars = scalarMetrics(art.Metadata)
		case "system.ClassificationMetrics":
			d.Kind = "classification"
			d.Confusion = confusionOf(art.Metadata)
			d.ROCPoints = rocOf(art.Metadata)
			if len(d.ROCPoints) > 0 {
				ch, err := rocChart(d.ROCPoints)
				if err != nil {
					d.Problems = append(d.Problems, "ROC curve: "+err.Error())
				} else {
					d.ROC = &ch
				}
			}
			d.Scalars = scalarMetrics(art.Metadata)
		}
	}
	if d.Kind == "" {
		a.previewBytes(r, c, &d)
	}
	a.render(w, r, http.StatusOK, "artifact", view{Title: "Artifact " + name, Nav: "runs", Data: d})
}

// previewBytes fills d from the artifact's content.
func (a *App) previewBytes(r *http.Request, c *caller, d *artifactPage) {
	resp, err := c.do(r.Context(), http.MethodGet, "/apis/v1/runs/"+url.PathEscape(d.RunID)+"/artifacts/"+url.PathEscape(d.Name)+"?"+string(d.Query), "", nil)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == http.StatusNotFound {
			d.Kind = "empty"
			d.Problems = append(d.Problems, ae.Msg)
			return
		}
		d.Kind = "empty"
		d.Problems = append(d.Problems, err.Error())
		return
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == artifactDirectoryType {
		var dir struct {
			Files []artifactFile `json:"files"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, previewBytes)).Decode(&dir); err != nil {
			d.Problems = append(d.Problems, "directory listing: "+err.Error())
		}
		d.Kind, d.Files = "directory", dir.Files
		return
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, previewBytes+1))
	if err != nil {
		d.Kind = "empty"
		d.Problems = append(d.Problems, "read: "+err.Error())
		return
	}
	if len(b) > previewBytes {
		b, d.Truncated = b[:previewBytes], true
	}
	d.Kind = previewKind(d.Artifact.SchemaTitle, fileName(d.Artifact.URI, d.File), b)
	if (d.Kind == "image" || d.Kind == "html") && d.File == "" && d.Artifact.Size > inlineBytes {
		d.Problems = append(d.Problems, fmt.Sprintf("larger than the %d MiB the page shows inline: download it", inlineBytes>>20))
		d.Kind = "binary"
	}
	switch d.Kind {
	case "text":
		d.Text = strings.ToValidUTF8(string(b), "\uFFFD")
	case "json":
		var buf bytes.Buffer
		if json.Indent(&buf, b, "", "  ") == nil {
			d.Text = buf.String()
		} else {
			d.Kind, d.Text = "text", strings.ToValidUTF8(string(b), "\uFFFD")
		}
	case "csv":
		d.Table, err = csvTable(b, fileName(d.Artifact.URI, d.File), d.Truncated)
		if err != nil {
			d.Kind, d.Text = "text", strings.ToValidUTF8(string(b), "\uFFFD")
			d.Problems = append(d.Problems, "not shown as a table: "+err.Error())
		}
	case "markdown":
		d.Markdown = markdownHTML(b)
	}
}

// fileName is the name the artifact's kind is guessed from: the file of a directory artifact, else the
// last segment of its URI.
func fileName(uri, file string) string {
	if file != "" {
		return path.Base(file)
	}
	return path.Base(strings.TrimSuffix(uri, "/"))
}

// previewKind decides how content b is previewed: the KFP artifact type first (system.HTML,
// system.Markdown), then the file's extension, then the bytes (images by their signature, UTF-8 text).
func previewKind(schemaTitle, name string, b []byte) string {
	if len(b) == 0 {
		return "empty"
	}
	switch schemaTitle {
	case "system.HTML":
		return "html"
	case "system.Markdown":
		return "markdown"
	}
	switch strings.ToLower(path.Ext(name)) {
	case ".html", ".htm":
		return "html"
	case ".md", ".markdown":
		return "markdown"
	case ".csv", ".tsv":
		return "csv"
	case ".json":
		return "json"
	case ".svg":
		return "image"
	}
	if imageType(b) != "" {
		return "image"
	}
	if !textual(b) {
		return "binary"
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(t) {
		return "json"
	}
	if looksCSV(b) {
		return "csv" // KFP's output files have no extension: a Dataset written by pandas' to_csv
	}
	return "text"
}

// looksCSV reports whether text b reads as a CSV table: at least two lines (of the first 20) with the
// same number of fields, at least two, as encoding/csv parses them.
func looksCSV(b []byte) bool {
	cr := csv.NewReader(bytes.NewReader(b))
	cr.FieldsPerRecord = 0 // every record like the first
	n := 0
	for n < 20 {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil || len(rec) < 2 {
			return false
		}
		n++
	}
	return n >= 2
}

// textual reports whether b is UTF-8 text without NUL bytes (a last character cut off by the preview
// limit allowed).
func textual(b []byte) bool {
	if bytes.IndexByte(b, 0) >= 0 {
		return false
	}
	if utf8.Valid(b) {
		return true
	}
	i := len(b) - 1
	for i > 0 && len(b)-i < 4 && !utf8.RuneStart(b[i]) {
		i--
	}
	return utf8.Valid(b[:i])
}

// imageType is the media type of an image the dashboard shows inline (by the bytes' signature), or "".
func imageType(b []byte) string {
	switch ct := http.DetectContentType(b); ct {
	case "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp":
		return ct
	}
	return ""
}

func csvTable(b []byte, name string, truncated bool) ([][]string, error) {
	cr := csv.NewReader(bytes.NewReader(b))
	if strings.EqualFold(path.Ext(name), ".tsv") {
		cr.Comma = '\t'
	}
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	var rows [][]string
	for len(rows) < csvRows+1 {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			if truncated && len(rows) > 0 {
				break // the cut-off last line
			}
			return nil, err
		}
		rows = append(rows, rec)
	}
	return rows, nil
}

var (
	// markdown keeps the raw HTML a Markdown file holds (KFP's Markdown viewer shows it); the sanitiser
	// then removes what is unsafe.
	markdown = goldmark.New(goldmark.WithExtensions(extension.GFM), goldmark.WithRendererOptions(gmhtml.WithUnsafe()))
	// sanitiser is bluemonday's policy for user-generated content: no script, no event handlers, no
	// style, safe link schemes only.
	sanitiser = bluemonday.UGCPolicy()
)

// markdownHTML renders Markdown (CommonMark with GitHub's tables, strikethrough, autolinks and task
// lists) and sanitises the result.
func markdownHTML(b []byte) template.HTML {
	var buf bytes.Buffer
	if err := markdown.Convert(b, &buf); err != nil {
		return template.HTML(template.HTMLEscapeString(string(b)))
	}
	return template.HTML(sanitiser.SanitizeBytes(buf.Bytes())) // sanitised by bluemonday's UGC policy
}

// scalarMetrics are the numeric fields of a Metrics artifact's metadata (KFP's log_metric), by name.
func scalarMetrics(md map[string]any) []scalarMetric {
	var out []scalarMetric
	for k, v := range md {
		switch n := v.(type) {
		case float64:
			out = append(out, scalarMetric{Name: k, Value: strconv.FormatFloat(n, 'g', -1, 64)})
		case json.Number:
			out = append(out, scalarMetric{Name: k, Value: n.String()})
		case bool:
			out = append(out, scalarMetric{Name: k, Value: strconv.FormatBool(n)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// unwrap strips the MLMD value wrappers {"struct": …} and {"list": …} some writers keep.
func unwrap(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for _, k := range []string{"struct", "structValue", "list"} {
			if in, ok := m[k]; ok {
				return in
			}
		}
	}
	return v
}

func num(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case string:
		f, err := strconv.ParseFloat(n, 64)
		return f, err == nil
	}
	return 0, false
}

// confusionOf reads KFP's confusionMatrix metadata ({"annotationSpecs": [{"displayName"}], "rows":
// [{"row": [counts]}]}, as ClassificationMetrics.log_confusion_matrix writes it).
func confusionOf(md map[string]any) *confusionMatrix {
	m, ok := unwrap(md["confusionMatrix"]).(map[string]any)
	if !ok {
		return nil
	}
	cm := &confusionMatrix{}
	specs, _ := unwrap(m["annotationSpecs"]).([]any)
	for _, s := range specs {
		if sm, ok := s.(map[string]any); ok {
			name, _ := sm["displayName"].(string)
			cm.Labels = append(cm.Labels, name)
		}
	}
	rows, _ := unwrap(m["rows"]).([]any)
	for _, rw := range rows {
		rm, _ := rw.(map[string]any)
		cells, _ := unwrap(rm["row"]).([]any)
		var row []float64
		for _, c := range cells {
			f, _ := num(c)
			row = append(row, f)
		}
		cm.Rows = append(cm.Rows, row)
	}
	if len(cm.Rows) == 0 {
		return nil
	}
	for len(cm.Labels) < len(cm.Rows) {
		cm.Labels = append(cm.Labels, strconv.Itoa(len(cm.Labels)))
	}
	return cm
}

// rocOf reads KFP's confidenceMetrics metadata ([{"confidenceThreshold", "falsePositiveRate",
// "recall"}], as ClassificationMetrics.log_roc_curve writes it), sorted by false positive rate.
func rocOf(md map[string]any) []rocPoint {
	list, _ := unwrap(md["confidenceMetrics"]).([]any)
	var out []rocPoint
	for _, e := range list {
		m, ok := unwrap(e).(map[string]any)
		if !ok {
			continue
		}
		fpr, ok1 := num(m["falsePositiveRate"])
		tpr, ok2 := num(m["recall"])
		if !ok1 || !ok2 {
			continue
		}
		th, _ := num(m["confidenceThreshold"])
		out = append(out, rocPoint{Threshold: th, FPR: fpr, TPR: tpr})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].FPR != out[j].FPR {
			return out[i].FPR < out[j].FPR
		}
		return out[i].TPR < out[j].TPR
	})
	return out
}

func rocChart(ps []rocPoint) (chart, error) {
	s := series{Name: "ROC"}
	for _, p := range ps {
		s.X = append(s.X, p.FPR)
		s.Y = append(s.Y, p.TPR)
	}
	ch, err := lineChart("ROC curve", "false positive rate", "true positive rate (recall)",
		[]series{s, {Name: "chance", X: []float64{0, 1}, Y: []float64{0, 1}, Dashes: true}}, true)
	ch.Alt = fmt.Sprintf("ROC curve of %d thresholds, from (%.3g, %.3g) to (%.3g, %.3g)", len(ps), ps[0].FPR, ps[0].TPR, ps[len(ps)-1].FPR, ps[len(ps)-1].TPR)
	return ch, err
}

// artifactRaw serves the artifact's bytes to the page: ?view=image (an image, its own media type, at
// most inlineBytes), ?view=html (an HTML visualisation for the page's sandboxed iframe: a sandbox CSP
// without same-origin, so it can neither read the dashboard's cookie nor reach the network) or
// ?view=download (any size, as an attachment).
func (a *App) artifactRaw(w http.ResponseWriter, r *http.Request) {
	id, name, task, file := artifactRef(r)
	v := r.URL.Query().Get("view")
	if v != "image" && v != "html" && v != "download" {
		http.Error(w, "view: want image, html or download", http.StatusBadRequest)
		return
	}
	if task == "" {
		http.Error(w, "task: required", http.StatusBadRequest)
		return
	}
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Artifact", err)
		return
	}
	resp, err := c.do(r.Context(), http.MethodGet, "/apis/v1/runs/"+url.PathEscape(id)+"/artifacts/"+url.PathEscape(name)+"?"+artifactQuery(task, file), "", nil)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			http.Error(w, ae.Msg, ae.Code)
			return
		}
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == artifactDirectoryType {
		http.Error(w, "the artifact is a directory: name one of its files with ?file=", http.StatusBadRequest)
		return
	}
	w.Header().Set("Cache-Control", "private, no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	base := fileName("/"+name, file)
	if v == "download" {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": base}))
		w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
		if cl := resp.Header.Get("Content-Length"); cl != "" {
			w.Header().Set("Content-Length", cl)
		}
		_, _ = io.Copy(w, resp.Body)
		return
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, inlineBytes+1))
	if err != nil {
		http.Error(w, "read: "+err.Error(), http.StatusBadGateway)
		return
	}
	if len(b) > inlineBytes {
		http.Error(w, fmt.Sprintf("the artifact is larger than %d MiB: download it instead", inlineBytes>>20), http.StatusRequestEntityTooLarge)
		return
	}
	switch v {
	case "image":
		ct := imageType(b)
		if ct == "" && strings.EqualFold(path.Ext(fileName(name, file)), ".svg") {
			ct = "image/svg+xml"
		}
		if ct == "" {
			http.Error(w, "not an image the dashboard shows (PNG, JPEG, GIF, WebP, BMP or SVG)", http.StatusUnsupportedMediaType)
			return
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'; style-src 'unsafe-inline'")
	case "html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		// The visualisation may run its own inline script (as KFP's HTML viewer allows) but in an opaque
		// origin, fetching nothing, framed only by the dashboard.
		w.Header().Set("Content-Security-Policy", "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline' data:; style-src 'unsafe-inline' data:; img-src data:; font-src data:; frame-ancestors 'self'")
	}
	_, _ = w.Write(b)
}

// artifactPages links the artifacts of a lineage graph that pipeline tasks produced to their artifact
// pages: the producer is an execution named "<run id>/<task path>" (as the metadata service records a
// pipeline task) and the output event's first step is the output's name.
func artifactPages(g metadatav1.LineageGraph) map[int64]string {
	execs := map[int64]metadatav1.Execution{}
	for _, e := range g.Executions {
		execs[e.ID] = e
	}
	out := map[int64]string{}
	for _, ev := range g.Events {
		if ev.Type != metadatav1.EventOutput || ev.Path == nil || len(ev.Path.Steps) == 0 || ev.Path.Steps[0].Key == nil {
			continue
		}
		e, ok := execs[ev.ExecutionID]
		if !ok || (e.Type != metadatav1.ExecutionTypeContainer && e.Type != metadatav1.ExecutionTypeImporter) {
			continue
		}
		run, task, ok := strings.Cut(e.Name, "/")
		if !ok || run == "" || task == "" {
			continue
		}
		out[ev.ArtifactID] = "/ui/runs/" + url.PathEscape(run) + "/artifacts/" + url.PathEscape(*ev.Path.Steps[0].Key) + "?" + url.Values{"task": {task}}.Encode()
	}
	return out
}
