package tuningv1

import "strconv"

// Value returns the named metric's value under strategy (min, max or latest, per Katib v1beta1's
// metricStrategies) and whether it was observed as a number.
func (o Observation) Value(name string, strategy MetricStrategyType) (float64, bool) {
	for _, m := range o.Metrics {
		if m.Name != name {
			continue
		}
		s := m.Latest
		switch strategy {
		case StrategyMin:
			s = m.Min
		case StrategyMax:
			s = m.Max
		}
		v, err := strconv.ParseFloat(s, 64)
		return v, err == nil
	}
	return 0, false
}

// Strategy is the metric strategy of the objective metric: the one metricStrategies names, else min
// for a minimize objective and max for a maximize one (Katib's defaults).
func (o ObjectiveSpec) Strategy() MetricStrategyType {
	strategy := StrategyMin
	if o.Type == ObjectiveMaximize {
		strategy = StrategyMax
	}
	for _, m := range o.MetricStrategies {
		if m.Name == o.ObjectiveMetricName {
			strategy = m.Value
		}
	}
	return strategy
}

// Value returns the objective metric's value in obs under the objective's strategy.
func (o ObjectiveSpec) Value(obs Observation) (float64, bool) {
	return obs.Value(o.ObjectiveMetricName, o.Strategy())
}
