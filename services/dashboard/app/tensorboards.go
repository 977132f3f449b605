package app

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
)

func init() {
	funcs["f64"] = func(p *float64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatFloat(*p, 'g', -1, 64)
	}
}

// maxScalarSeries bounds the (run, tag) series a curves page reads from a board.
const maxScalarSeries = 200

func tensorboardsPath(ns string) string {
	return "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/" + url.PathEscape(ns) + "/tensorboards"
}

type tensorboardsData struct {
	Boards   []notebooksv1.Tensorboard
	Job      string
	Problems []string
}

// boardState is the board's last deployment condition (Available, Progressing, ReplicaFailure).
func boardState(tb notebooksv1.Tensorboard) string {
	if n := len(tb.Status.Conditions); n > 0 {
		return tb.Status.Conditions[n-1].DeploymentState
	}
	return ""
}

// boardOfJob reports whether a board's logs path names training job name: a path segment equal to the
// job's name (the usual layout, s3://bucket/<job>/logs or pvc://claim/<job>).
func boardOfJob(tb notebooksv1.Tensorboard, name string) bool {
	_, rest, ok := strings.Cut(tb.Spec.LogsPath, "://")
	if !ok {
		rest = tb.Spec.LogsPath
	}
	return slices.Contains(strings.Split(rest, "/"), name)
}

// tensorboards lists the Tensorboards (tensorboard.kubeflow.org/v1alpha1) of the caller's namespaces, or
// with ?job=<ns>/<name> those whose logs path names that training job.
func (a *App) tensorboards(w http.ResponseWriter, r *http.Request) {
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "TensorBoards", err)
		return
	}
	d := tensorboardsData{Job: r.URL.Query().Get("job")}
	var nss []string
	jobNS, jobName, byJob := strings.Cut(d.Job, "/")
	if byJob {
		nss = []string{jobNS}
	} else if nss, err = a.namespaces(r, c); err != nil {
		a.fail(w, r, "TensorBoards", err)
		return
	}
	for _, ns := range nss {
		var tl notebooksv1.TensorboardList
		if err := c.getJSON(r.Context(), tensorboardsPath(ns), &tl); err != nil {
			if !implicitDenied(ns, err) {
				d.Problems = append(d.Problems, ns+": "+err.Error())
			}
			continue
		}
		for _, tb := range tl.Items {
			if !byJob || boardOfJob(tb, jobName) {
				d.Boards = append(d.Boards, tb)
			}
		}
	}
	title := "TensorBoards"
	if byJob {
		title = "TensorBoards of training job " + d.Job
	}
	a.render(w, r, http.StatusOK, "tensorboards", view{Title: title, Nav: "tensorboards", Data: d})
}

type tagCharts struct {
	Tag    string
	Chart  chart
	Series []seriesSummary
}

type seriesSummary struct {
	Run       string
	Points    int
	LastStep  int64
	LastValue string
	CSV       string
	NonFinite int
}

type tensorboardData struct {
	Board    notebooksv1.Tensorboard
	State    string
	Runs     []string
	Tags     []tagCharts
	Problems []string
}

// tensorboard draws a board's scalar curves: one chart per tag with a line per run, from the board's
// TensorBoard data API (data/plugin/scalars/tags and .../scalars).
func (a *App) tensorboard(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "TensorBoard", err)
		return
	}
	var d tensorboardData
	if err := c.getJSON(r.Context(), tensorboardsPath(ns)+"/"+url.PathEscape(name), &d.Board); err != nil {
		a.fail(w, r, "TensorBoard "+ns+"/"+name, err)
		return
	}
	d.State = boardState(d.Board)
	base := notebooksv1.TensorboardPathPrefix(ns, name)
	var tags map[string]map[string]struct {
		DisplayName string `json:"displayName"`
	}
	if err := c.getJSON(r.Context(), base+"data/plugin/scalars/tags", &tags); err != nil {
		d.Problems = append(d.Problems, "scalar tags: "+err.Error())
	}
	byTag := map[string][]string{}
	for run, ts := range tags {
		d.Runs = append(d.Runs, run)
		for tag := range ts {
			byTag[tag] = append(byTag[tag], run)
		}
	}
	sort.Strings(d.Runs)
	tagNames := make([]string, 0, len(byTag))
	for t := range byTag {
		tagNames = append(tagNames, t)
	}
	sort.Strings(tagNames)
	read := 0
	for _, tag := range tagNames {
		runs := byTag[tag]
		sort.Strings(runs)
		tc := tagCharts{Tag: tag}
		var ss []series
		for _, run := range runs {
			if read >= maxScalarSeries {
				d.Problems = append(d.Problems, fmt.Sprintf("only the first %d run/tag series are drawn", maxScalarSeries))
				break
			}
			read++
			q := url.Values{"run": {run}, "tag": {tag}}
			var rows [][3]any
			if err := c.getJSON(r.Context(), base+"data/plugin/scalars/scalars?"+q.Encode(), &rows); err != nil {
				d.Problems = append(d.Problems, fmt.Sprintf("%s / %s: %v", run, tag, err))
				continue
			}
			s := series{Name: run}
			sum := seriesSummary{Run: run, Points: len(rows), CSV: base + "data/plugin/scalars/scalars?" + url.Values{"run": {run}, "tag": {tag}, "format": {"csv"}}.Encode()}
			for _, row := range rows {
				step, _ := num(row[1])
				v := scalarValue(row[2])
				if bad(v) {
					sum.NonFinite++
				}
				s.X, s.Y = append(s.X, step), append(s.Y, v)
				sum.LastStep, sum.LastValue = int64(step), strconv.FormatFloat(v, 'g', 6, 64)
			}
			ss = append(ss, s)
			tc.Series = append(tc.Series, sum)
		}
		if len(ss) == 0 {
			continue
		}
		ch, err := lineChart(tag, "step", path.Base(tag), ss, false)
		if err != nil {
			d.Problems = append(d.Problems, tag+": "+err.Error())
			continue
		}
		ch.Alt = fmt.Sprintf("%s by step for %d run(s)", tag, len(ss))
		tc.Chart = ch
		d.Tags = append(d.Tags, tc)
		if read >= maxScalarSeries {
			break
		}
	}
	a.render(w, r, http.StatusOK, "tensorboard", view{Title: "TensorBoard " + ns + "/" + name, Nav: "tensorboards", Data: d})
}

// scalarValue reads a value of TensorBoard's scalars answer: a number, or "NaN" / "Infinity" /
// "-Infinity".
func scalarValue(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case string:
		switch x {
		case "Infinity":
			return math.Inf(1)
		case "-Infinity":
			return math.Inf(-1)
		}
	}
	return math.NaN()
}
