// Package expspec parses, defaults and validates Katib kubeflow.org/v1beta1 Experiment documents (YAML
// or JSON, as Katib's published examples are written) and renders a trial's training job from the
// trial template. Every problem names its field path (spec.parameters[0].feasibleSpace.min: ...).
package expspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
)

// ErrInvalid is matched (errors.Is) by every validation failure.
var ErrInvalid = errors.New("expspec: invalid experiment")

// FieldError is one problem with the field path it is about.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// InvalidError lists every problem of a document.
type InvalidError struct{ Errors []FieldError }

func (e *InvalidError) Error() string {
	s := make([]string, len(e.Errors))
	for i, f := range e.Errors {
		s[i] = f.Field + ": " + f.Detail
	}
	return "invalid experiment: " + strings.Join(s, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

type problems struct{ errs []FieldError }

func (p *problems) add(field, format string, args ...any) {
	p.errs = append(p.errs, FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
}

func (p *problems) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return &InvalidError{Errors: p.errs}
}

// Algorithms lists the supported algorithm names.
var Algorithms = []string{"random", "grid", "tpe", "bayesianoptimization"}

// locate completes an unknown-field error with the field's path in doc (json's error names the key only).
func locate(err error, doc []byte) error {
	inv, ok := err.(*InvalidError)
	if !ok || len(inv.Errors) != 1 || inv.Errors[0].Detail != "unknown field" {
		return err
	}
	var v any
	if json.Unmarshal(doc, &v) != nil {
		return err
	}
	if p, found := findKey(v, inv.Errors[0].Field, ""); found {
		inv.Errors[0].Field = p
	}
	return err
}

// findKey returns the dotted path of the first key named name (maps in sorted key order).
func findKey(v any, name, at string) (string, bool) {
	join := func(k string) string {
		if at == "" {
			return k
		}
		return at + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x[name]; ok {
			return join(name), true
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if p, ok := findKey(x[k], name, join(k)); ok {
				return p, true
			}
		}
	case []any:
		for i, e := range x {
			if p, ok := findKey(e, name, fmt.Sprintf("%s[%d]", at, i)); ok {
				return p, true
			}
		}
	}
	return "", false
}

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Parse decodes doc strictly (unknown fields are errors), fills metadata.namespace with
// defaultNamespace when empty, applies Katib's defaults and validates.
func Parse(doc []byte, defaultNamespace string) (tuningv1.Experiment, error) {
	var e tuningv1.Experiment
	if len(bytes.TrimSpace(doc)) == 0 {
		return e, &InvalidError{[]FieldError{{"(document)", "empty"}}}
	}
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return e, &InvalidError{[]FieldError{{"(document)", "not YAML or JSON: " + err.Error()}}}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, locate(decodeError(err), js)
	}
	if e.Metadata.Namespace == "" {
		e.Metadata.Namespace = defaultNamespace
	}
	e.Status = tuningv1.ExperimentStatus{}
	Default(&e)
	return e, Validate(e)
}

func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return &InvalidError{[]FieldError{{te.Field, fmt.Sprintf("must be %s, got %s", te.Type, te.Value)}}}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return &InvalidError{[]FieldError{{strings.Trim(f, `"`), "unknown field"}}}
	}
	return &InvalidError{[]FieldError{{"(document)", msg}}}
}

// Default applies Katib's defaults: parallelTrialCount 3, objective metricStrategies (objective: min
// for minimize, max for maximize; additional metrics: latest), StdOut collector with the default
// metricsFormat, uniform distributions, int step 1, resumePolicy Never.
func Default(e *tuningv1.Experiment) {
	s := &e.Spec
	if s.ParallelTrialCount == nil {
		v := int32(3)
		s.ParallelTrialCount = &v
	}
	if o := s.Objective; o != nil {
		have := map[string]bool{}
		for _, m := range o.MetricStrategies {
			have[m.Name] = true
		}
		if !have[o.ObjectiveMetricName] && o.ObjectiveMetricName != "" {
			v := tuningv1.StrategyMin
			if o.Type == tuningv1.ObjectiveMaximize {
				v = tuningv1.StrategyMax
			}
			o.MetricStrategies = append(o.MetricStrategies, tuningv1.MetricStrategy{Name: o.ObjectiveMetricName, Value: v})
		}
		for _, n := range o.AdditionalMetricNames {
			if !have[n] {
				o.MetricStrategies = append(o.MetricStrategies, tuningv1.MetricStrategy{Name: n, Value: tuningv1.StrategyLatest})
				have[n] = true
			}
		}
	}
	for i := range s.Parameters {
		fs := &s.Parameters[i].FeasibleSpace
		switch s.Parameters[i].ParameterType {
		case tuningv1.ParameterInt, tuningv1.ParameterDouble:
			if fs.Distribution == "" {
				fs.Distribution = tuningv1.DistributionUniform
			}
		}
		if s.Parameters[i].ParameterType == tuningv1.ParameterInt && fs.Step == "" {
			fs.Step = "1"
		}
	}
	if s.MetricsCollectorSpec == nil {
		s.MetricsCollectorSpec = &tuningv1.MetricsCollectorSpec{}
	}
	mc := s.MetricsCollectorSpec
	if mc.Collector == nil {
		mc.Collector = &tuningv1.CollectorSpec{Kind: tuningv1.CollectorStdOut}
	}
	if mc.Collector.Kind == tuningv1.CollectorStdOut {
		if mc.Source == nil {
			mc.Source = &tuningv1.SourceSpec{}
		}
		if mc.Source.Filter == nil {
			mc.Source.Filter = &tuningv1.FilterSpec{}
		}
		if len(mc.Source.Filter.MetricsFormat) == 0 {
			mc.Source.Filter.MetricsFormat = []string{tuningv1.DefaultMetricsFormat}
		}
	}
	if s.ResumePolicy == "" {
		s.ResumePolicy = "Never"
	}
	if t := s.TrialTemplate; t != nil {
		var head struct{ APIVersion, Kind string }
		_ = json.Unmarshal(t.TrialSpec, &head)
		if t.SuccessCondition == "" && isBatchJob(head.APIVersion, head.Kind) {
			t.SuccessCondition = jobSuccessCondition
		}
		if t.SuccessCondition == "" {
			t.SuccessCondition = `status.conditions.#(type=="Succeeded")#|#(status=="True")#`
		}
		if t.FailureCondition == "" {
			t.FailureCondition = `status.conditions.#(type=="Failed")#|#(status=="True")#`
		}
	}
}

// Validate checks a defaulted experiment.
func Validate(e tuningv1.Experiment) error {
	var p problems
	if e.APIVersion != tuningv1.APIVersion {
		p.add("apiVersion", "must be %s, got %q", tuningv1.APIVersion, e.APIVersion)
	}
	if e.Kind != tuningv1.Kind {
		p.add("kind", "must be %s, got %q", tuningv1.Kind, e.Kind)
	}
	checkName(&p, "metadata.name", e.Metadata.Name, 40)
	checkName(&p, "metadata.namespace", e.Metadata.Namespace, 63)
	s := e.Spec
	validateEarlyStopping(&p, s.EarlyStopping)
	if s.NasConfig != nil {
		p.add("spec.nasConfig", "neural architecture search is not supported")
	}
	switch s.ResumePolicy {
	case "Never", "LongRunning":
	case "FromVolume":
		p.add("spec.resumePolicy", "FromVolume is not supported; use Never or LongRunning")
	default:
		p.add("spec.resumePolicy", "must be Never, LongRunning or FromVolume, got %q", s.ResumePolicy)
	}
	if *s.ParallelTrialCount < 1 {
		p.add("spec.parallelTrialCount", "must be at least 1, got %d", *s.ParallelTrialCount)
	}
	if s.MaxTrialCount != nil && *s.MaxTrialCount < 1 {
		p.add("spec.maxTrialCount", "must be at least 1, got %d", *s.MaxTrialCount)
	}
	if s.MaxFailedTrialCount != nil && *s.MaxFailedTrialCount < 0 {
		p.add("spec.maxFailedTrialCount", "must not be negative, got %d", *s.MaxFailedTrialCount)
	}
	if s.MaxTrialCount != nil && *s.ParallelTrialCount > *s.MaxTrialCount {
		p.add("spec.parallelTrialCount", "must not exceed spec.maxTrialCount (%d)", *s.MaxTrialCount)
	}
	validateObjective(&p, s.Objective)
	validateAlgorithm(&p, s.Algorithm, s.Parameters)
	names := validateParameters(&p, s.Parameters, s.Algorithm)
	validateCollector(&p, s.MetricsCollectorSpec)
	validateTemplate(&p, s.TrialTemplate, names)
	return p.err()
}

func validateEarlyStopping(p *problems, es *tuningv1.EarlyStoppingSpec) {
	if es == nil {
		return
	}
	const f = "spec.earlyStopping"
	if es.AlgorithmName != "medianstop" {
		p.add(f+".algorithmName", "%q is not supported yet; use medianstop", es.AlgorithmName)
		return
	}
	for i, st := range es.AlgorithmSettings {
		ff := fmt.Sprintf("%s.algorithmSettings[%d]", f, i)
		switch st.Name {
		case "min_trials_required", "start_step":
			if n, err := strconv.Atoi(st.Value); err != nil || n < 1 {
				p.add(ff+".value", "%s must be a positive integer, got %q", st.Name, st.Value)
			}
		default:
			p.add(ff+".name", "%q is not a setting of medianstop (known: min_trials_required, start_step)", st.Name)
		}
	}
}

// MedianStopSettings returns medianstop's min_trials_required (default 3) and start_step (default 4).
func MedianStopSettings(es *tuningv1.EarlyStoppingSpec) (minTrials, startStep int) {
	minTrials, startStep = 3, 4
	for _, st := range es.AlgorithmSettings {
		n, _ := strconv.Atoi(st.Value)
		switch st.Name {
		case "min_trials_required":
			minTrials = n
		case "start_step":
			startStep = n
		}
	}
	return minTrials, startStep
}

func checkName(p *problems, field, v string, max int) {
	switch {
	case v == "":
		p.add(field, "is required")
	case len(v) > max:
		p.add(field, "must be at most %d characters (trial names append a suffix), got %d", max, len(v))
	case !dns1123Label.MatchString(v):
		p.add(field, "must be a DNS-1123 label (lower case alphanumerics and '-'), got %q", v)
	}
}

func validateObjective(p *problems, o *tuningv1.ObjectiveSpec) {
	if o == nil {
		p.add("spec.objective", "is required")
		return
	}
	if o.Type != tuningv1.ObjectiveMinimize && o.Type != tuningv1.ObjectiveMaximize {
		p.add("spec.objective.type", "must be minimize or maximize, got %q", o.Type)
	}
	if o.ObjectiveMetricName == "" {
		p.add("spec.objective.objectiveMetricName", "is required")
	}
	seen := map[string]bool{o.ObjectiveMetricName: true}
	for i, n := range o.AdditionalMetricNames {
		f := fmt.Sprintf("spec.objective.additionalMetricNames[%d]", i)
		if n == "" {
			p.add(f, "must not be empty")
		} else if seen[n] {
			p.add(f, "%q is listed twice (or is the objective metric)", n)
		}
		seen[n] = true
	}
	if o.Goal != nil && (math.IsNaN(*o.Goal) || math.IsInf(*o.Goal, 0)) {
		p.add("spec.objective.goal", "must be a finite number")
	}
	named := map[string]bool{}
	for i, m := range o.MetricStrategies {
		f := fmt.Sprintf("spec.objective.metricStrategies[%d]", i)
		if !seen[m.Name] {
			p.add(f+".name", "%q is neither the objective metric nor an additional metric", m.Name)
		}
		if named[m.Name] {
			p.add(f+".name", "%q has two strategies", m.Name)
		}
		named[m.Name] = true
		switch m.Value {
		case tuningv1.StrategyMin, tuningv1.StrategyMax, tuningv1.StrategyLatest:
		default:
			p.add(f+".value", "must be min, max or latest, got %q", m.Value)
		}
	}
}

// Setting names each algorithm accepts.
var algorithmSettings = map[string][]string{
	"random": {"random_state"},
	"grid":   {},
	"tpe":    {"random_state", "n_startup_trials", "n_EI_candidates", "gamma", "prior_weight"},
	// Katib's skopt service settings (pkg/suggestion/v1beta1/skopt/service.py).
	"bayesianoptimization": {"random_state", "base_estimator", "n_initial_points", "acq_func", "acq_optimizer"},
}

func validateAlgorithm(p *problems, a *tuningv1.AlgorithmSpec, params []tuningv1.ParameterSpec) {
	if a == nil {
		p.add("spec.algorithm", "is required")
		return
	}
	allowed, ok := algorithmSettings[a.AlgorithmName]
	switch {
	case !ok:
		p.add("spec.algorithm.algorithmName", "%q is not supported; use one of %s", a.AlgorithmName, strings.Join(Algorithms, ", "))
		return
	}
	for i, st := range a.AlgorithmSettings {
		f := fmt.Sprintf("spec.algorithm.algorithmSettings[%d]", i)
		if !slices.Contains(allowed, st.Name) {
			p.add(f+".name", "%q is not a setting of %s (known: %s)", st.Name, a.AlgorithmName, strings.Join(allowed, ", "))
			continue
		}
		switch st.Name {
		case "base_estimator":
			if st.Value != "GP" {
				p.add(f+".value", "base_estimator %q is not supported; Sluice's bayesianoptimization is a Gaussian process (GP)", st.Value)
			}
		case "acq_func":
			if !slices.Contains([]string{"gp_hedge", "EI", "PI", "LCB"}, st.Value) {
				p.add(f+".value", "acq_func must be gp_hedge, EI, PI or LCB, got %q (EIps/PIps need a trial duration metric, which Sluice does not collect)", st.Value)
			}
		case "acq_optimizer":
			if !slices.Contains([]string{"auto", "sampling"}, st.Value) {
				p.add(f+".value", "acq_optimizer must be auto or sampling (the acquisition is maximised over random candidates), got %q", st.Value)
			}
		case "random_state", "n_startup_trials", "n_EI_candidates", "n_initial_points":
			if n, err := strconv.Atoi(st.Value); err != nil || n < 0 || (st.Name == "n_EI_candidates" && n < 1) {
				p.add(f+".value", "%s must be a non-negative integer, got %q", st.Name, st.Value)
			}
		case "gamma":
			if g, err := strconv.ParseFloat(st.Value, 64); err != nil || g <= 0 || g >= 1 {
				p.add(f+".value", "gamma must be a number in (0, 1), got %q", st.Value)
			}
		case "prior_weight":
			if g, err := strconv.ParseFloat(st.Value, 64); err != nil || g <= 0 {
				p.add(f+".value", "prior_weight must be a positive number, got %q", st.Value)
			}
		}
	}
}

func validateParameters(p *problems, params []tuningv1.ParameterSpec, a *tuningv1.AlgorithmSpec) map[string]bool {
	names := map[string]bool{}
	if len(params) == 0 {
		p.add("spec.parameters", "at least one parameter is required")
	}
	grid := a != nil && a.AlgorithmName == "grid"
	for i, ps := range params {
		f := fmt.Sprintf("spec.parameters[%d]", i)
		if ps.Name == "" {
			p.add(f+".name", "is required")
		} else if names[ps.Name] {
			p.add(f+".name", "%q is defined twice", ps.Name)
		}
		names[ps.Name] = true
		fs := ps.FeasibleSpace
		ff := f + ".feasibleSpace"
		switch ps.ParameterType {
		case tuningv1.ParameterInt, tuningv1.ParameterDouble:
			isInt := ps.ParameterType == tuningv1.ParameterInt
			parse := func(field, v string) (float64, bool) {
				if isInt {
					n, err := strconv.ParseInt(v, 10, 64)
					if err != nil {
						p.add(ff+"."+field, "must be an integer, got %q", v)
						return 0, false
					}
					return float64(n), true
				}
				x, err := strconv.ParseFloat(v, 64)
				if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
					p.add(ff+"."+field, "must be a number, got %q", v)
					return 0, false
				}
				return x, true
			}
			if len(fs.List) > 0 {
				p.add(ff+".list", "is for discrete and categorical parameters; %s uses min and max", ps.ParameterType)
			}
			if fs.Min == "" || fs.Max == "" {
				p.add(ff, "min and max are required for %s", ps.ParameterType)
				continue
			}
			lo, ok1 := parse("min", fs.Min)
			hi, ok2 := parse("max", fs.Max)
			if ok1 && ok2 && lo > hi {
				p.add(ff+".max", "must be at least min (%s), got %s", fs.Min, fs.Max)
			}
			if fs.Step != "" {
				if st, ok := parse("step", fs.Step); ok && st <= 0 {
					p.add(ff+".step", "must be positive, got %s", fs.Step)
				}
			} else if grid {
				p.add(ff+".step", "is required for double parameters with the grid algorithm")
			}
			switch fs.Distribution {
			case tuningv1.DistributionUniform:
			case tuningv1.DistributionLogUniform:
				if ok1 && lo <= 0 {
					p.add(ff+".min", "must be positive for the logUniform distribution, got %s", fs.Min)
				}
			case tuningv1.DistributionNormal, tuningv1.DistributionLogNormal:
				p.add(ff+".distribution", "%s is not supported yet; use uniform or logUniform", fs.Distribution)
			default:
				p.add(ff+".distribution", "must be uniform or logUniform, got %q", fs.Distribution)
			}
		case tuningv1.ParameterDiscrete, tuningv1.ParameterCategorical:
			if fs.Min != "" || fs.Max != "" || fs.Step != "" {
				p.add(ff, "min, max and step are for int and double; %s uses list", ps.ParameterType)
			}
			if len(fs.List) == 0 {
				p.add(ff+".list", "must list at least one value")
			}
			seen := map[string]bool{}
			for j, v := range fs.List {
				if seen[v] {
					p.add(fmt.Sprintf("%s.list[%d]", ff, j), "%q is listed twice", v)
				}
				seen[v] = true
				if ps.ParameterType == tuningv1.ParameterDiscrete {
					if _, err := strconv.ParseFloat(v, 64); err != nil {
						p.add(fmt.Sprintf("%s.list[%d]", ff, j), "discrete values must be numbers, got %q", v)
					}
				}
			}
		default:
			p.add(f+".parameterType", "must be int, double, discrete or categorical, got %q", ps.ParameterType)
		}
	}
	return names
}

func validateCollector(p *problems, mc *tuningv1.MetricsCollectorSpec) {
	const f = "spec.metricsCollectorSpec"
	switch mc.Collector.Kind {
	case tuningv1.CollectorStdOut:
		for i, r := range mc.Source.Filter.MetricsFormat {
			re, err := regexp.Compile(r)
			if err != nil {
				p.add(fmt.Sprintf("%s.source.filter.metricsFormat[%d]", f, i), "not a regular expression: %v", err)
			} else if re.NumSubexp() < 2 {
				p.add(fmt.Sprintf("%s.source.filter.metricsFormat[%d]", f, i), "must have two groups (metric name, value), has %d", re.NumSubexp())
			}
		}
	case tuningv1.CollectorTensorFlowEvent:
		if mc.Source == nil || mc.Source.FileSystemPath == nil || mc.Source.FileSystemPath.Path == "" {
			p.add(f+".source.fileSystemPath.path", "is required for the TensorFlowEvent collector (a directory or s3://bucket/prefix)")
		}
	case tuningv1.CollectorFile, tuningv1.CollectorNone, "PrometheusMetric", "Custom":
		p.add(f+".collector.kind", "%s is not supported yet; use StdOut or TensorFlowEvent", mc.Collector.Kind)
	default:
		p.add(f+".collector.kind", "must be StdOut or TensorFlowEvent, got %q", mc.Collector.Kind)
	}
	if mc.Source != nil && mc.Source.HTTPGet != nil {
		p.add(f+".source.httpGet", "is not supported")
	}
}

var placeholder = regexp.MustCompile(`\$\{trialParameters\.([^}]*)\}`)

// metaRefs are Katib's trialParameters references to the trial's own metadata.
var metaRefs = regexp.MustCompile(`^\$\{trialSpec\.(Name|Namespace|Kind|APIVersion|Labels\[.+\]|Annotations\[.+\])\}$`)

var conditionType = regexp.MustCompile(`type\s*==\s*"([A-Za-z]+)"`)

// ConditionTypeOf reads the job condition type a Katib success/failure condition tests
// (`status.conditions.#(type=="Succeeded")#|#(status=="True")#` → "Succeeded").
func ConditionTypeOf(cond string) (string, bool) {
	m := conditionType.FindStringSubmatch(cond)
	if m == nil {
		return "", false
	}
	return m[1], true
}

func validateTemplate(p *problems, t *tuningv1.TrialTemplate, params map[string]bool) {
	const f = "spec.trialTemplate"
	if t == nil {
		p.add(f, "is required")
		return
	}
	if t.ConfigMap != nil {
		p.add(f+".configMap", "is not supported (no Kubernetes ConfigMaps); inline the job as trialSpec")
	}
	if len(bytes.TrimSpace(t.TrialSpec)) == 0 || string(t.TrialSpec) == "null" {
		p.add(f+".trialSpec", "is required")
		return
	}
	declared := map[string]bool{}
	for i, tp := range t.TrialParameters {
		ff := fmt.Sprintf("%s.trialParameters[%d]", f, i)
		if tp.Name == "" {
			p.add(ff+".name", "is required")
		} else if declared[tp.Name] {
			p.add(ff+".name", "%q is declared twice", tp.Name)
		}
		declared[tp.Name] = true
		if !params[tp.Reference] && !metaRefs.MatchString(tp.Reference) {
			p.add(ff+".reference", "%q is neither a parameter of spec.parameters nor ${trialSpec.Name|Namespace|Kind|APIVersion|Labels[k]|Annotations[k]}", tp.Reference)
		}
		if !strings.Contains(string(t.TrialSpec), "${trialParameters."+tp.Name+"}") {
			p.add(ff+".name", "${trialParameters.%s} is not used in trialSpec", tp.Name)
		}
	}
	for _, m := range placeholder.FindAllStringSubmatch(string(t.TrialSpec), -1) {
		if !declared[m[1]] {
			p.add(f+".trialSpec", "${trialParameters.%s} is not declared in spec.trialTemplate.trialParameters", m[1])
			declared[m[1]] = true
		}
	}
	for _, c := range []struct{ field, v string }{{"successCondition", t.SuccessCondition}, {"failureCondition", t.FailureCondition}} {
		if _, ok := ConditionTypeOf(c.v); !ok {
			p.add(f+"."+c.field, "must test a job condition type (e.g. status.conditions.#(type==\"Succeeded\")#|#(status==\"True\")#), got %q", c.v)
		}
	}
	for k := range t.PrimaryPodLabels {
		if k != "training.kubeflow.org/replica-type" && k != "training.kubeflow.org/job-role" && k != "training.kubeflow.org/replica-index" {
			p.add(f+".primaryPodLabels", "label %q cannot select a replica (use training.kubeflow.org/replica-type, replica-index or job-role)", k)
		}
	}
	// Render once with placeholder values so that errors in the job are found at create time.
	sample := map[string]string{}
	for _, tp := range t.TrialParameters {
		sample[tp.Name] = "1"
	}
	if p.err() != nil {
		return
	}
	if _, err := renderJob(t, "trial-check", "check", "ns", sample); err != nil {
		var inv *InvalidError
		if errors.As(err, &inv) {
			p.errs = append(p.errs, inv.Errors...)
		} else {
			p.add(f+".trialSpec", "%v", err)
		}
	}
}
