// Package collect turns what a trial's training job left behind into Katib observations: the StdOut
// collector parses "name=value" lines of the primary replica's log with Katib's metricsFormat regexes,
// the TensorFlowEvent collector reads scalar summaries from event files (libs/tfevents). Observed values
// are summarised per metric as min, max and latest; metricStrategies pick the one that counts.
package collect

import (
	"bufio"
	"bytes"
	"context"
	"math"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-ml/sluice/libs/tfevents"
	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
)

// Series maps a metric name to its values in the order they were reported.
type Series map[string][]float64

// StdOut parses log lines with each metricsFormat regex (group 1 = name, group 2 = value), keeping only
// the named metrics and values that parse as numbers, as Katib's StdOut collector does.
func StdOut(log []byte, formats []string, names []string) (Series, error) {
	res := make([]*regexp.Regexp, 0, len(formats))
	for _, f := range formats {
		re, err := regexp.Compile(f)
		if err != nil {
			return nil, err
		}
		res = append(res, re)
	}
	out := Series{}
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, re := range res {
			for _, m := range re.FindAllStringSubmatch(line, -1) {
				if len(m) < 3 {
					continue
				}
				name := strings.TrimSpace(m[1])
				if !slices.Contains(names, name) {
					continue
				}
				v, err := strconv.ParseFloat(strings.TrimSpace(m[2]), 64)
				if err != nil {
					continue
				}
				out[name] = append(out[name], v)
			}
		}
	}
	return out, sc.Err()
}

// TFEvents reads the scalar series named by names from the event files under src: a tag matches when it
// equals the name, or when "<run>/<tag>" does (run = the event file's directory below src). Values are
// ordered by wall time, then step.
func TFEvents(ctx context.Context, src tfevents.Source, names []string) (Series, error) {
	l := tfevents.NewLogdir(src)
	if err := l.Reload(ctx); err != nil {
		return nil, err
	}
	out := Series{}
	for _, name := range names {
		var pts []tfevents.ScalarPoint
		for _, run := range l.Runs() {
			for tag := range l.ScalarTags()[run] {
				if tag == name || path.Join(run, tag) == name {
					ps, _ := l.Scalars(run, tag)
					pts = append(pts, ps...)
				}
			}
		}
		sort.SliceStable(pts, func(i, j int) bool {
			if pts[i].WallTime != pts[j].WallTime {
				return pts[i].WallTime < pts[j].WallTime
			}
			return pts[i].Step < pts[j].Step
		})
		for _, p := range pts {
			out[name] = append(out[name], p.Value)
		}
	}
	return out, nil
}

func format(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// Observe summarises the series of each metric in names (in that order); metrics never reported are
// left out.
func Observe(s Series, names []string) tuningv1.Observation {
	var obs tuningv1.Observation
	for _, n := range names {
		vs := s[n]
		if len(vs) == 0 {
			continue
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range vs {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		obs.Metrics = append(obs.Metrics, tuningv1.Metric{Name: n, Min: format(lo), Max: format(hi), Latest: format(vs[len(vs)-1])})
	}
	return obs
}

// Value returns the metric's value under strategy (min, max or latest) and whether it was observed.
func Value(obs tuningv1.Observation, name string, strategy tuningv1.MetricStrategyType) (float64, bool) {
	return obs.Value(name, strategy)
}

// Objective returns the objective metric's value under its metric strategy.
func Objective(o tuningv1.ObjectiveSpec, obs tuningv1.Observation) (float64, bool) {
	return o.Value(obs)
}

// MetricNames is the objective metric followed by the additional ones.
func MetricNames(o tuningv1.ObjectiveSpec) []string {
	return append([]string{o.ObjectiveMetricName}, o.AdditionalMetricNames...)
}
