package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/libs/tfevents"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/internal/boards"
	"github.com/sluice-ml/sluice/services/notebooks/internal/tbspec"
)

const tbAPIPrefix = "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/{ns}/tensorboards"

// tbBoardPrefix is the stable URL of one board's page and data API.
const tbBoardPrefix = "/tensorboard/{ns}/{name}/"

// ErrTensorboardExists: a board of that name is already running.
var ErrTensorboardExists = errors.New("notebooks: tensorboard already exists")

// tensorboardRoutes registers the Tensorboard resource and each board's data API. All need a token
// granted the namespace, like the notebook routes.
//
//	POST   /apis/tensorboard.kubeflow.org/v1alpha1/namespaces/{ns}/tensorboards         create (Kubeflow YAML/JSON) → 201
//	GET    /apis/tensorboard.kubeflow.org/v1alpha1/namespaces/{ns}/tensorboards         list → TensorboardList
//	GET    /apis/tensorboard.kubeflow.org/v1alpha1/namespaces/{ns}/tensorboards/{name}  get → Tensorboard
//	DELETE /apis/tensorboard.kubeflow.org/v1alpha1/namespaces/{ns}/tensorboards/{name}  delete → 202
//	GET    /tensorboard/{ns}/{name}/                                       page with the scalar curves
//	GET    /tensorboard/{ns}/{name}/data/environment | runs | plugins_listing
//	GET    /tensorboard/{ns}/{name}/data/plugin/scalars/tags
//	GET    /tensorboard/{ns}/{name}/data/plugin/scalars/scalars?run=R&tag=T[&format=csv]
//	POST   /tensorboard/{ns}/{name}/data/plugin/scalars/scalars_multirun   (form: tag, runs)
func (s *Service) tensorboardRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+tbAPIPrefix, s.authorized(s.handleTBCreate))
	mux.HandleFunc("GET "+tbAPIPrefix, s.authorized(s.handleTBList))
	mux.HandleFunc("GET "+tbAPIPrefix+"/{name}", s.authorized(s.handleTBGet))
	mux.HandleFunc("DELETE "+tbAPIPrefix+"/{name}", s.authorized(s.handleTBDelete))
	mux.HandleFunc("GET "+tbBoardPrefix+"{$}", s.authorized(s.board(s.handleTBPage)))
	mux.HandleFunc("GET "+tbBoardPrefix+"data/environment", s.authorized(s.board(s.handleTBEnvironment)))
	mux.HandleFunc("GET "+tbBoardPrefix+"data/runs", s.authorized(s.board(s.handleTBRuns)))
	mux.HandleFunc("GET "+tbBoardPrefix+"data/plugins_listing", s.authorized(s.board(s.handleTBPlugins)))
	mux.HandleFunc("GET "+tbBoardPrefix+"data/plugin/scalars/tags", s.authorized(s.board(s.handleTBTags)))
	mux.HandleFunc("GET "+tbBoardPrefix+"data/plugin/scalars/scalars", s.authorized(s.board(s.handleTBScalars)))
	mux.HandleFunc("POST "+tbBoardPrefix+"data/plugin/scalars/scalars_multirun", s.authorized(s.board(s.handleTBScalarsMultirun)))
	mux.HandleFunc("GET /tensorboard/{ns}/{name}", s.authorized(func(w http.ResponseWriter, r *http.Request) {
		u := *r.URL
		u.Path += "/"
		http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
	}))
}

// CreateTensorboard starts a board's lifecycle workflow; ErrTensorboardExists when it runs already.
func (s *Service) CreateTensorboard(ctx context.Context, tb notebooksv1.Tensorboard, requestID string) error {
	id := notebooksv1.TensorboardWorkflowID(tb.Metadata.Namespace, tb.Metadata.Name)
	_, err := s.d.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: notebooksv1.TaskQueue,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy:                 enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// What the Temporal Web UI shows and filters by (libs/workflow/visibility.go).
		StaticSummary: "Tensorboard " + tb.Metadata.Namespace + "/" + tb.Metadata.Name,
		StaticDetails: wf.Details("Tensorboard "+tb.Metadata.Namespace+"/"+tb.Metadata.Name, [][2]string{{"Logs path", tb.Spec.LogsPath}},
			[2]string{"Tensorboard page", "/tensorboard/" + url.PathEscape(tb.Metadata.Namespace) + "/" + url.PathEscape(tb.Metadata.Name) + "/"}),
		TypedSearchAttributes: wf.Attributes("Tensorboard", tb.Metadata.Namespace, wf.Keyword(wf.SAJobName, tb.Metadata.Name), wf.Keyword(wf.SAOwner, wf.Owner(ctx))),
	}, notebooksv1.TensorboardWorkflowType, notebooksv1.TensorboardInput{Tensorboard: tb, RequestID: requestID})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return fmt.Errorf("%w: %s/%s", ErrTensorboardExists, tb.Metadata.Namespace, tb.Metadata.Name)
	}
	if err != nil {
		return fmt.Errorf("notebooks: start tensorboard %s: %w", id, err)
	}
	return nil
}

// GetTensorboard returns the live board from its workflow; boards.ErrNotFound when none runs.
func (s *Service) GetTensorboard(ctx context.Context, ns, name string) (notebooksv1.Tensorboard, error) {
	var tb notebooksv1.Tensorboard
	resp, err := s.d.Temporal.QueryWorkflowWithOptions(ctx, &client.QueryWorkflowWithOptionsRequest{
		WorkflowID: notebooksv1.TensorboardWorkflowID(ns, name), QueryType: notebooksv1.QueryTensorboard,
		QueryRejectCondition: enums.QUERY_REJECT_CONDITION_NOT_OPEN,
	})
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf), err == nil && resp.QueryRejected != nil:
		return tb, boards.ErrNotFound
	case err != nil:
		return tb, err
	}
	return tb, resp.QueryResult.Get(&tb)
}

func (s *Service) handleTBCreate(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		platform.WriteError(w, http.StatusBadRequest, err)
		return
	}
	tb, err := tbspec.Parse(body, ns)
	if err != nil {
		platform.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if tb.Metadata.Namespace != ns {
		platform.WriteError(w, http.StatusBadRequest, fmt.Errorf("metadata.namespace: %q does not match the namespace %q of the URL", tb.Metadata.Namespace, ns))
		return
	}
	now := time.Now().UTC().Truncate(time.Second)
	tb.Metadata.CreationTimestamp = &now
	if err := s.CreateTensorboard(r.Context(), tb, ""); err != nil {
		s.writeTBErr(w, err)
		return
	}
	tb.Status = notebooksv1.TensorboardStatus{
		Conditions: []notebooksv1.TensorboardCondition{{DeploymentState: notebooksv1.TensorboardProgressing, LastProbeTime: now}},
		URL:        notebooksv1.TensorboardPathPrefix(ns, tb.Metadata.Name),
	}
	platform.WriteJSON(w, http.StatusCreated, tb)
}

func (s *Service) handleTBList(w http.ResponseWriter, r *http.Request) {
	items, err := s.boardStore.List(r.PathValue("ns"))
	if err != nil {
		s.writeTBErr(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, notebooksv1.TensorboardList{APIVersion: notebooksv1.TensorboardAPIVersion, Kind: "TensorboardList", Items: items})
}

func (s *Service) handleTBGet(w http.ResponseWriter, r *http.Request) {
	tb, err := s.GetTensorboard(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		s.writeTBErr(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, tb)
}

func (s *Service) handleTBDelete(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	err := s.d.Temporal.SignalWorkflow(r.Context(), notebooksv1.TensorboardWorkflowID(ns, name), "", notebooksv1.SignalTensorboardDelete, nil)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		err = boards.ErrNotFound
	}
	if err != nil {
		s.writeTBErr(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusAccepted, map[string]string{"namespace": ns, "name": name, "action": "delete"})
}

func (s *Service) writeTBErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, boards.ErrNotFound):
		platform.WriteError(w, http.StatusNotFound, err)
	case errors.Is(err, ErrTensorboardExists):
		platform.WriteError(w, http.StatusConflict, err)
	case errors.Is(err, tbspec.ErrInvalid):
		platform.WriteError(w, http.StatusBadRequest, err)
	default:
		s.log.Error("tensorboard request failed", "err", err)
		platform.WriteError(w, http.StatusInternalServerError, err)
	}
}

// board resolves {ns}/{name} to the running board and its (freshly reloaded) event files.
func (s *Service) board(h func(http.ResponseWriter, *http.Request, notebooksv1.Tensorboard, *tfevents.Logdir)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tb, err := s.GetTensorboard(r.Context(), r.PathValue("ns"), r.PathValue("name"))
		if err != nil {
			s.writeTBErr(w, err)
			return
		}
		l, err := s.boardData.Logdir(r.Context(), tb)
		if l == nil {
			platform.WriteError(w, http.StatusBadRequest, err)
			return
		}
		if err != nil {
			// Serve what was read before; say why it may be stale.
			w.Header().Set("Warning", `199 sluice "`+strings.ReplaceAll(err.Error(), `"`, `'`)+`"`)
		}
		h(w, r, tb, l)
	}
}

func (s *Service) handleTBEnvironment(w http.ResponseWriter, _ *http.Request, tb notebooksv1.Tensorboard, l *tfevents.Logdir) {
	var created float64
	if tb.Metadata.CreationTimestamp != nil {
		created = float64(tb.Metadata.CreationTimestamp.Unix())
	}
	platform.WriteJSON(w, http.StatusOK, map[string]any{
		"data_location": l.Location(), "window_title": tb.Metadata.Name,
		"experiment_name": "", "experiment_description": "", "creation_time": created,
	})
}

func (s *Service) handleTBRuns(w http.ResponseWriter, _ *http.Request, _ notebooksv1.Tensorboard, l *tfevents.Logdir) {
	platform.WriteJSON(w, http.StatusOK, l.Runs())
}

func (s *Service) handleTBPlugins(w http.ResponseWriter, _ *http.Request, _ notebooksv1.Tensorboard, l *tfevents.Logdir) {
	platform.WriteJSON(w, http.StatusOK, map[string]any{
		"scalars": map[string]any{
			"enabled": len(l.ScalarTags()) > 0, "disable_reload": false, "remove_dom": false,
			"tab_name": "scalars", "loading_mechanism": map[string]any{"type": "NG_COMPONENT"},
		},
	})
}

func (s *Service) handleTBTags(w http.ResponseWriter, _ *http.Request, _ notebooksv1.Tensorboard, l *tfevents.Logdir) {
	platform.WriteJSON(w, http.StatusOK, l.ScalarTags())
}

// scalarRows turns points into TensorBoard's [[wall_time, step, value], ...].
func scalarRows(ps []tfevents.ScalarPoint) [][3]any {
	rows := make([][3]any, len(ps))
	for i, p := range ps {
		rows[i] = [3]any{p.WallTime, p.Step, jsonFloat(p.Value)}
	}
	return rows
}

// jsonFloat keeps NaN and ±Inf encodable: TensorBoard's API writes them as the strings "NaN", "Infinity",
// "-Infinity".
func jsonFloat(v float64) any {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	}
	return v
}

func (s *Service) handleTBScalars(w http.ResponseWriter, r *http.Request, _ notebooksv1.Tensorboard, l *tfevents.Logdir) {
	q := r.URL.Query()
	run, tag := q.Get("run"), q.Get("tag")
	if !q.Has("run") || tag == "" {
		platform.WriteError(w, http.StatusBadRequest, errors.New("query parameters run and tag are required"))
		return
	}
	ps, ok := l.Scalars(run, tag)
	if !ok {
		platform.WriteError(w, http.StatusNotFound, fmt.Errorf("no scalar data for run=%q, tag=%q", run, tag))
		return
	}
	switch q.Get("format") {
	case "", "json":
		platform.WriteJSON(w, http.StatusOK, scalarRows(ps))
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="scalars.csv"`)
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"Wall time", "Step", "Value"})
		for _, p := range ps {
			_ = cw.Write([]string{strconv.FormatFloat(p.WallTime, 'f', -1, 64), strconv.FormatInt(p.Step, 10), strconv.FormatFloat(p.Value, 'g', -1, 64)})
		}
		cw.Flush()
	default:
		platform.WriteError(w, http.StatusBadRequest, fmt.Errorf("format: must be json or csv, got %q", q.Get("format")))
	}
}

func (s *Service) handleTBScalarsMultirun(w http.ResponseWriter, r *http.Request, _ notebooksv1.Tensorboard, l *tfevents.Logdir) {
	if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		platform.WriteError(w, http.StatusBadRequest, err)
		return
	}
	tag := r.PostFormValue("tag")
	if tag == "" {
		platform.WriteError(w, http.StatusBadRequest, errors.New("form field tag is required"))
		return
	}
	out := map[string][][3]any{}
	for _, run := range r.PostForm["runs"] {
		if ps, ok := l.Scalars(run, tag); ok {
			out[run] = scalarRows(ps)
		}
	}
	platform.WriteJSON(w, http.StatusOK, out)
}

var tbPage = template.Must(template.New("tb").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Name}} · TensorBoard scalars</title>
<style>body{font-family:sans-serif;margin:1.5em}figure{display:inline-block;margin:0 1em 1em 0}
figcaption{font-weight:bold}p.note{color:#555}</style></head>
<body><h1>{{.Name}}</h1>
<p class="note">Scalars of {{.Location}} · {{len .Runs}} run(s){{if .Problems}} · {{.Problems}} corrupt record(s) skipped{{end}}.
Data API: <code>data/runs</code>, <code>data/plugin/scalars/tags</code>,
<code>data/plugin/scalars/scalars?run=RUN&amp;tag=TAG[&amp;format=csv]</code>.</p>
{{range .Charts}}<figure><figcaption>{{.Tag}}</figcaption><img alt="{{.Tag}}" src="data:image/svg+xml;base64,{{.SVG}}"></figure>
{{else}}<p>No scalar data yet.</p>{{end}}
</body></html>
`))

type tbChart struct {
	Tag string
	SVG string // base64
}

// handleTBPage renders every scalar tag as one chart (step on x, one line per run) with gonum/plot.
func (s *Service) handleTBPage(w http.ResponseWriter, _ *http.Request, tb notebooksv1.Tensorboard, l *tfevents.Logdir) {
	byTag := map[string][]string{}
	for run, tags := range l.ScalarTags() {
		for tag := range tags {
			byTag[tag] = append(byTag[tag], run)
		}
	}
	tags := make([]string, 0, len(byTag))
	for t := range byTag {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	var charts []tbChart
	for _, tag := range tags {
		runs := byTag[tag]
		sort.Strings(runs)
		svg, err := scalarChart(tag, runs, l)
		if err != nil {
			s.log.Warn("tensorboard chart", "tag", tag, "err", err)
			continue
		}
		charts = append(charts, tbChart{Tag: tag, SVG: base64.StdEncoding.EncodeToString(svg)})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = tbPage.Execute(w, map[string]any{
		"Name": tb.Metadata.Namespace + "/" + tb.Metadata.Name, "Location": l.Location(),
		"Runs": l.Runs(), "Problems": len(l.Corruptions()), "Charts": charts,
	})
}

func scalarChart(tag string, runs []string, l *tfevents.Logdir) ([]byte, error) {
	p := plot.New()
	p.Title.Text = tag
	p.X.Label.Text = "step"
	p.Legend.Top = true
	for i, run := range runs {
		ps, _ := l.Scalars(run, tag)
		xys := make(plotter.XYs, 0, len(ps))
		for _, pt := range ps {
			if math.IsNaN(pt.Value) || math.IsInf(pt.Value, 0) {
				continue // NaN/Inf cannot be drawn
			}
			xys = append(xys, plotter.XY{X: float64(pt.Step), Y: pt.Value})
		}
		if len(xys) == 0 {
			continue
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		line.Color = plotutil.Color(i)
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(run, line)
	}
	c := vgsvg.New(6*vg.Inch, 3.5*vg.Inch)
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
