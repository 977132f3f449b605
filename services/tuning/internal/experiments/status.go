// Package experiments runs a Katib Experiment as one Temporal workflow: it asks for suggestions (an
// activity, so replay reuses the recorded answer), runs each trial as a training job through the
// training service's public REST API (an activity that submits, watches and collects metrics), keeps
// at most parallelTrialCount trials running, tracks conditions and status.currentOptimalTrial as Katib
// reports them, and continues as new after TrialsPerRun trials to bound its history.
package experiments

import (
	"fmt"
	"time"

	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
	"github.com/sluice-ml/sluice/services/tuning/internal/collect"
)

// setCondition sets (or adds) a condition, keeping LastTransitionTime when the status does not change.
func setCondition(cs []tuningv1.Condition, typ, status, reason, msg string, now time.Time) []tuningv1.Condition {
	for i := range cs {
		if cs[i].Type == typ {
			if cs[i].Status != status {
				cs[i].LastTransitionTime = now
			}
			cs[i].Status, cs[i].Reason, cs[i].Message, cs[i].LastUpdateTime = status, reason, msg, now
			return cs
		}
	}
	return append(cs, tuningv1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, LastUpdateTime: now, LastTransitionTime: now})
}

// recount derives the trial counters, the trial lists and currentOptimalTrial from the trials, as
// Katib's updateTrialsSummary does (the first trial with the best objective value wins ties).
func recount(e tuningv1.Experiment, trials []tuningv1.Trial, st *tuningv1.ExperimentStatus) {
	st.Trials = int32(len(trials))
	st.TrialsSucceeded, st.TrialsFailed, st.TrialsRunning, st.TrialMetricsUnavailable = 0, 0, 0, 0
	st.RunningTrialList, st.SucceededTrialList, st.FailedTrialList, st.MetricsUnavailableTrialList = nil, nil, nil, nil
	st.TrialsEarlyStopped, st.EarlyStoppedTrialList, st.TrialsKilled, st.KilledTrialList = 0, nil, 0, nil
	var best *tuningv1.Trial
	var bestV float64
	o := *e.Spec.Objective
	for i := range trials {
		t := &trials[i]
		// As Katib: every trial with an observed objective competes for currentOptimalTrial.
		if v, ok := collect.Objective(o, t.Observation); ok && (best == nil || better(o.Type, v, bestV)) {
			best, bestV = t, v
		}
		switch t.State() {
		case tuningv1.ConditionSucceeded:
			st.TrialsSucceeded++
			st.SucceededTrialList = append(st.SucceededTrialList, t.Name)
		case tuningv1.ConditionKilled:
			st.TrialsKilled++
			st.KilledTrialList = append(st.KilledTrialList, t.Name)
		case tuningv1.ConditionFailed:
			st.TrialsFailed++
			st.FailedTrialList = append(st.FailedTrialList, t.Name)
		case tuningv1.ConditionEarlyStopped:
			st.TrialsEarlyStopped++
			st.EarlyStoppedTrialList = append(st.EarlyStoppedTrialList, t.Name)
		case tuningv1.ConditionMetricsUnavailable:
			st.TrialMetricsUnavailable++
			st.MetricsUnavailableTrialList = append(st.MetricsUnavailableTrialList, t.Name)
		default:
			st.TrialsRunning++
			st.RunningTrialList = append(st.RunningTrialList, t.Name)
		}
	}
	if best != nil {
		st.CurrentOptimalTrial = &tuningv1.OptimalTrial{BestTrialName: best.Name,
			ParameterAssignments: best.ParameterAssignments, Observation: best.Observation}
	}
}

func better(typ tuningv1.ObjectiveType, v, than float64) bool {
	if typ == tuningv1.ObjectiveMaximize {
		return v > than
	}
	return v < than
}

// verdict decides whether the experiment is over, in Katib's order: goal reached, too many failed
// trials (failed > maxFailedTrialCount), maxTrialCount trials completed, suggestions exhausted with
// nothing running. It returns the condition type and reason ("" when it goes on).
func verdict(e tuningv1.Experiment, st tuningv1.ExperimentStatus, exhausted bool) (typ, reason, msg string) {
	s := e.Spec
	if o := s.Objective; o.Goal != nil && st.CurrentOptimalTrial != nil {
		if v, ok := collect.Objective(*o, st.CurrentOptimalTrial.Observation); ok &&
			((o.Type == tuningv1.ObjectiveMinimize && v <= *o.Goal) || (o.Type == tuningv1.ObjectiveMaximize && v >= *o.Goal)) {
			return tuningv1.ConditionSucceeded, tuningv1.ReasonExperimentGoalReached,
				fmt.Sprintf("Experiment has succeeded because Objective goal has reached: %s=%g (goal %g) in trial %s", o.ObjectiveMetricName, v, *o.Goal, st.CurrentOptimalTrial.BestTrialName)
		}
	}
	if s.MaxFailedTrialCount != nil && st.TrialsFailed > *s.MaxFailedTrialCount {
		return tuningv1.ConditionFailed, tuningv1.ReasonExperimentFailed,
			fmt.Sprintf("Experiment has failed because max failed count has reached: %d trials failed (maxFailedTrialCount %d)", st.TrialsFailed, *s.MaxFailedTrialCount)
	}
	// Katib counts succeeded, failed, killed and early-stopped trials; Sluice also counts trials without
	// metrics (Katib would leave them pending forever).
	completed := st.TrialsSucceeded + st.TrialsFailed + st.TrialMetricsUnavailable + st.TrialsEarlyStopped + st.TrialsKilled
	if s.MaxTrialCount != nil && completed >= *s.MaxTrialCount {
		return tuningv1.ConditionSucceeded, tuningv1.ReasonExperimentMaxTrialsReached,
			fmt.Sprintf("Experiment has succeeded because max trial count has reached: %d", *s.MaxTrialCount)
	}
	if exhausted && st.TrialsRunning == 0 {
		return tuningv1.ConditionSucceeded, tuningv1.ReasonExperimentSuggestionEndReached,
			"Experiment has succeeded because suggestion service has reached the end"
	}
	return "", "", ""
}
