package app

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
)

type katibListData struct {
	Experiments []tuningv1.Experiment
	Problems    []string
}

func tuningPath(ns string) string {
	return "/apis/tuning/v1/namespaces/" + url.PathEscape(ns) + "/experiments"
}

// katibExperiments lists the Katib experiments (kubeflow.org/v1beta1) of the caller's namespaces.
func (a *App) katibExperiments(w http.ResponseWriter, r *http.Request) {
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Tuning experiments", err)
		return
	}
	nss, err := a.namespaces(r, c)
	if err != nil {
		a.fail(w, r, "Tuning experiments", err)
		return
	}
	var d katibListData
	for _, ns := range nss {
		var el tuningv1.ExperimentList
		if err := c.getJSON(r.Context(), tuningPath(ns), &el); err != nil {
			if !implicitDenied(ns, err) {
				d.Problems = append(d.Problems, ns+": "+err.Error())
			}
			continue
		}
		d.Experiments = append(d.Experiments, el.Items...)
	}
	a.render(w, r, http.StatusOK, "katib", view{Title: "Tuning experiments", Nav: "katib", Data: d})
}

// trialRow is one row of an experiment's trials table.
type trialRow struct {
	tuningv1.Trial
	State     string
	Job       string // /ui/jobs/{ns}/{name} of the trial's training job, if any
	Objective string
	Params    map[string]string
	Metrics   map[string]string
	Best      bool
}

type katibData struct {
	Experiment  tuningv1.ExperimentView
	State       string
	ParamNames  []string
	MetricNames []string
	Trials      []trialRow
	Best        *tuningv1.OptimalTrial
	Chart       *chart
	Problems    []string
}

// katibExperiment shows a Katib experiment: its spec, the trials table (parameters, metrics, state), the
// best trial (status.currentOptimalTrial) and the objective of each trial as a chart.
func (a *App) katibExperiment(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	c, err := a.callerFor(r)
	if err != nil {
		a.fail(w, r, "Tuning experiment", err)
		return
	}
	var d katibData
	if err := c.getJSON(r.Context(), tuningPath(ns)+"/"+url.PathEscape(name), &d.Experiment); err != nil {
		a.fail(w, r, "Tuning experiment "+ns+"/"+name, err)
		return
	}
	d.State = d.Experiment.State()
	d.Best = d.Experiment.Status.CurrentOptimalTrial
	obj := d.Experiment.Spec.Objective
	for _, p := range d.Experiment.Spec.Parameters {
		d.ParamNames = append(d.ParamNames, p.Name)
	}
	if obj != nil {
		d.MetricNames = append([]string{obj.ObjectiveMetricName}, obj.AdditionalMetricNames...)
	}
	var xs, ys, bx, by []float64
	best := 0.0
	for _, t := range d.Experiment.TrialsView {
		row := trialRow{Trial: t, State: t.State(), Params: map[string]string{}, Metrics: map[string]string{}}
		for _, p := range t.ParameterAssignments {
			row.Params[p.Name] = p.Value
		}
		for _, m := range t.Observation.Metrics {
			row.Metrics[m.Name] = metricCell(m)
		}
		// The trial's training job: "<kind>/<namespace>/<name>" when the service states it, else (as in
		// Katib) the job named after the trial in the experiment's namespace.
		if parts := strings.SplitN(t.JobKind, "/", 3); len(parts) == 3 && parts[1] != "" && parts[2] != "" {
			row.Job = "/ui/jobs/" + url.PathEscape(parts[1]) + "/" + url.PathEscape(parts[2])
		} else if t.Name != "" {
			row.Job = "/ui/jobs/" + url.PathEscape(ns) + "/" + url.PathEscape(t.Name)
		}
		if d.Best != nil && d.Best.BestTrialName == t.Name {
			row.Best = true
		}
		if obj != nil {
			if v, ok := objectiveValue(t, obj); ok {
				row.Objective = strconv.FormatFloat(v, 'g', 6, 64)
				xs, ys = append(xs, float64(t.Index)), append(ys, v)
				if len(bx) == 0 || (obj.Type == tuningv1.ObjectiveMaximize && v > best) || (obj.Type != tuningv1.ObjectiveMaximize && v < best) {
					best = v
				}
				bx, by = append(bx, float64(t.Index)), append(by, best)
			}
		}
		d.Trials = append(d.Trials, row)
	}
	if len(xs) > 0 {
		ch, err := lineChart(obj.ObjectiveMetricName+" per trial", "trial", obj.ObjectiveMetricName,
			[]series{{Name: "trial", X: xs, Y: ys, Scatter: true}, {Name: "best so far", X: bx, Y: by, Dashes: true}}, false)
		if err != nil {
			d.Problems = append(d.Problems, "chart: "+err.Error())
		} else {
			ch.Alt = fmt.Sprintf("%s of %d trials; best %s", obj.ObjectiveMetricName, len(xs), strconv.FormatFloat(best, 'g', 6, 64))
			d.Chart = &ch
		}
	}
	a.render(w, r, http.StatusOK, "katib_experiment", view{Title: "Tuning experiment " + ns + "/" + name, Nav: "katib", Data: d})
}

// objectiveValue is the value of the objective metric of trial t under the metric's strategy (Katib:
// min for minimize, max for maximize unless metricStrategies says otherwise; latest on request).
func objectiveValue(t tuningv1.Trial, obj *tuningv1.ObjectiveSpec) (float64, bool) {
	v, ok := obj.Value(t.Observation)
	return v, ok && !bad(v)
}

// metricCell shows a metric's latest value, with its min and max when they differ.
func metricCell(m tuningv1.Metric) string {
	if m.Min == m.Max || m.Min == "" {
		return m.Latest
	}
	return fmt.Sprintf("%s (min %s, max %s)", m.Latest, m.Min, m.Max)
}
