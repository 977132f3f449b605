package experiments

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/libs/events"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
	"github.com/sluice-ml/sluice/services/tuning/internal/collect"
	"github.com/sluice-ml/sluice/services/tuning/internal/expspec"
	"github.com/sluice-ml/sluice/services/tuning/internal/suggest"
)

// versionTrialJobsByEvent (version 1) marks runs whose trial jobs are requested and deleted by event:
// DeleteTrials heartbeats while it waits for the jobs' deletion (before: a 30 s REST call sequence).
const versionTrialJobsByEvent = "trial-jobs-by-event"

// DefaultTrialsPerRun bounds the trials one workflow run launches before it continues as new.
const DefaultTrialsPerRun = 50

// TrialName is "<experiment>-<8 hex>", derived from the experiment's uid and the trial's index, so
// names are stable across replays and unique across re-creations of an experiment of the same name.
func TrialName(e tuningv1.Experiment, index int) string {
	h := sha1.Sum([]byte(e.Metadata.UID + "/" + strconv.Itoa(index)))
	return e.Metadata.Name + "-" + hex.EncodeToString(h[:4])
}

// seed derives the suggestion seed from the experiment's uid.
func seed(e tuningv1.Experiment) uint64 {
	h := sha1.Sum([]byte(e.Metadata.UID))
	return binary.BigEndian.Uint64(h[:8])
}

type running struct {
	index  int
	cancel workflow.CancelFunc
}

// Run is the workflow of one experiment (ID tuningv1.WorkflowID). It answers tuningv1.QueryExperiment
// with the live ExperimentView and ends on tuningv1.SignalDelete, after deleting its trials' jobs.
func Run(ctx workflow.Context, in tuningv1.ExperimentInput) (tuningv1.ExperimentResult, error) {
	e := in.Experiment
	trials := in.Trials
	perRun := in.TrialsPerRun
	if perRun <= 0 {
		perRun = DefaultTrialsPerRun
	}
	var a *Activities
	actx := workflow.WithActivityOptions(ctx, wf.ShortActivity())
	phases := newPhaseRecorder(ctx)
	publish := func(typ, reason, msg string, t *tuningv1.Trial) {
		phases.upsert(ctx, e.State())
		ev := tuningv1.ExperimentEvent{Namespace: e.Metadata.Namespace, Name: e.Metadata.Name, Condition: conditionOf(typ),
			Reason: reason, Message: msg, Trial: t, CurrentOptimalTrial: e.Status.CurrentOptimalTrial}
		key := typ
		if t != nil {
			key += "/" + t.Name
		}
		// Events are best effort for the experiment: a lost bus must not stop the search.
		_ = workflow.ExecuteActivity(wf.WithSummary(actx, "event "+key), a.Publish, PublishInput{Type: typ, UID: e.Metadata.UID, Key: key, Event: ev}).Get(ctx, nil)
	}
	now := func() time.Time { return workflow.Now(ctx).UTC().Truncate(time.Second) }
	if in.Status != nil {
		e.Status = *in.Status
	} else {
		t := now()
		e.Status = tuningv1.ExperimentStatus{StartTime: &t}
		e.Status.Conditions = setCondition(nil, tuningv1.ConditionCreated, "True", tuningv1.ReasonExperimentCreated, "Experiment is created", t)
	}
	if err := workflow.SetQueryHandler(ctx, tuningv1.QueryExperiment, func() (tuningv1.ExperimentView, error) {
		return tuningv1.ExperimentView{Experiment: e, TrialsView: trials}, nil
	}); err != nil {
		return tuningv1.ExperimentResult{}, err
	}
	if in.Status == nil {
		publish(events.TuningExperimentCreatedV1, tuningv1.ReasonExperimentCreated, "Experiment is created", nil)
		e.Status.Conditions = setCondition(e.Status.Conditions, tuningv1.ConditionRunning, "True", tuningv1.ReasonExperimentRunning, "Experiment is running", now())
		publish(events.TuningExperimentRunningV1, tuningv1.ReasonExperimentRunning, "Experiment is running", nil)
	}

	finished := e.State() == tuningv1.ConditionSucceeded || e.State() == tuningv1.ConditionFailed
	exhausted := in.Exhausted
	deleted := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, tuningv1.SignalDelete), func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		deleted = true
	})
	var live []running
	launched := 0
	trialOpts := wf.LongActivity(30*time.Second, 7*24*time.Hour)
	poll := in.PollInterval

	finishTrial := func(idx int, out TrialOutcome, err error) {
		t := &trials[idx]
		ts := now()
		t.CompletionTime = &ts
		t.Conditions = setCondition(t.Conditions, tuningv1.ConditionRunning, "False", tuningv1.ReasonTrialRunning, "", ts)
		switch {
		case err != nil && temporal.IsCanceledError(err):
			t.Message = "the experiment ended while the trial ran; its training job was deleted"
			t.Conditions = setCondition(t.Conditions, tuningv1.ConditionKilled, "True", tuningv1.ReasonTrialKilled, "Trial is killed: "+t.Message, ts)
		case err != nil:
			t.Message = err.Error()
			var ae *temporal.ApplicationError
			if errors.As(err, &ae) {
				t.Message = ae.Message()
			}
			t.Conditions = setCondition(t.Conditions, tuningv1.ConditionFailed, "True", tuningv1.ReasonTrialFailed, "Trial has failed: "+t.Message, ts)
		case out.EarlyStopped:
			t.Message = out.Message
			t.Observation = out.Observation
			t.Conditions = setCondition(t.Conditions, tuningv1.ConditionEarlyStopped, "True", tuningv1.ReasonTrialEarlyStopped, "Trial is early stopped: "+out.Message, ts)
		case !out.Succeeded:
			t.Message = out.Message
			t.Observation = out.Observation
			t.Conditions = setCondition(t.Conditions, tuningv1.ConditionFailed, "True", tuningv1.ReasonTrialFailed, "Trial has failed: "+out.Message, ts)
		default:
			t.Observation = out.Observation
			if _, ok := collect.Objective(*e.Spec.Objective, out.Observation); !ok {
				t.Message = "objective metric " + e.Spec.Objective.ObjectiveMetricName + " was not reported" + suffix(out.Message)
				t.Conditions = setCondition(t.Conditions, tuningv1.ConditionMetricsUnavailable, "True", tuningv1.ReasonTrialMetricsUnavailable, "Metrics are not available: "+t.Message, ts)
			} else {
				t.Conditions = setCondition(t.Conditions, tuningv1.ConditionSucceeded, "True", tuningv1.ReasonTrialSucceeded, "Trial has succeeded", ts)
			}
		}
		recount(e, trials, &e.Status)
		typ := events.TuningTrialSucceededV1
		if s := t.State(); s != tuningv1.ConditionSucceeded && s != tuningv1.ConditionEarlyStopped && s != tuningv1.ConditionKilled {
			typ = events.TuningTrialFailedV1
		}
		tc := *t
		publish(typ, t.Conditions[len(t.Conditions)-1].Reason, t.Message, &tc)
	}

	for !deleted {
		if !finished {
			recount(e, trials, &e.Status)
			if typ, reason, msg := verdict(e, e.Status, exhausted); typ != "" {
				finished = true
				ts := now()
				e.Status.Conditions = setCondition(e.Status.Conditions, tuningv1.ConditionRunning, "False", reason, msg, ts)
				e.Status.Conditions = setCondition(e.Status.Conditions, typ, "True", reason, msg, ts)
				e.Status.CompletionTime = &ts
				for _, r := range live {
					r.cancel() // goal reached or failed: stop the trials still running
				}
				evType := events.TuningExperimentSucceededV1
				if typ == tuningv1.ConditionFailed {
					evType = events.TuningExperimentFailedV1
				}
				publish(evType, reason, msg, nil)
			}
		}
		if !finished && !exhausted && launched < perRun {
			want := int(*e.Spec.ParallelTrialCount) - len(live)
			if m := e.Spec.MaxTrialCount; m != nil {
				want = min(want, int(*m)-len(trials))
			}
			want = min(want, perRun-launched)
			if want > 0 {
				var resp suggest.Response
				err := workflow.ExecuteActivity(wf.WithSummary(actx, fmt.Sprintf("suggest %d trials", want)), a.Suggest, SuggestInput{Request: suggestRequest(e, trials, want)}).Get(ctx, &resp)
				if err != nil {
					// A suggestion that cannot be computed ends the experiment (Katib: suggestion failed).
					ts := now()
					msg := "Suggestion has failed: " + err.Error()
					e.Status.Conditions = setCondition(e.Status.Conditions, tuningv1.ConditionRunning, "False", tuningv1.ReasonExperimentFailed, msg, ts)
					e.Status.Conditions = setCondition(e.Status.Conditions, tuningv1.ConditionFailed, "True", tuningv1.ReasonExperimentFailed, msg, ts)
					e.Status.CompletionTime = &ts
					finished = true
					publish(events.TuningExperimentFailedV1, tuningv1.ReasonExperimentFailed, msg, nil)
					continue
				}
				exhausted = resp.Exhausted
				for _, as := range resp.Assignments {
					idx := len(trials)
					ts := now()
					t := tuningv1.Trial{Name: TrialName(e, idx), Index: idx, ParameterAssignments: as, StartTime: &ts}
					t.Conditions = setCondition(nil, tuningv1.ConditionCreated, "True", tuningv1.ReasonTrialCreated, "Trial is created", ts)
					t.Conditions = setCondition(t.Conditions, tuningv1.ConditionRunning, "True", tuningv1.ReasonTrialRunning, "Trial is running", ts)
					trials = append(trials, t)
					cctx, cancel := workflow.WithCancel(ctx)
					cctx = workflow.WithActivityOptions(cctx, trialOpts)
					fut := workflow.ExecuteActivity(wf.WithSummary(cctx, "trial "+t.Name), a.RunTrial, RunTrialInput{Experiment: e.WithoutStatus(), Trial: t, PollInterval: poll,
						EarlyStopping: earlyStoppingRule(e, trials)})
					live = append(live, running{index: idx, cancel: cancel})
					launched++
					sel.AddFuture(fut, func(f workflow.Future) {
						var out TrialOutcome
						err := f.Get(ctx, &out)
						for i, r := range live {
							if r.index == idx {
								live = append(live[:i], live[i+1:]...)
								break
							}
						}
						finishTrial(idx, out, err)
					})
				}
				recount(e, trials, &e.Status)
				continue
			}
			if exhausted {
				continue
			}
		}
		if !finished && len(live) == 0 && launched >= perRun {
			st := e.Status
			return tuningv1.ExperimentResult{}, workflow.NewContinueAsNewError(ctx, Run, tuningv1.ExperimentInput{
				Experiment: e.WithoutStatus(), Trials: trials, Status: &st, Exhausted: exhausted,
				TrialsPerRun: in.TrialsPerRun, PollInterval: in.PollInterval})
		}
		sel.Select(ctx)
	}

	// Deleted: stop what runs, remove the trials' jobs, mark the workflow deleted.
	for _, r := range live {
		r.cancel()
	}
	for len(live) > 0 {
		sel.Select(ctx)
	}
	names := make([]string, len(trials))
	for i, t := range trials {
		names[i] = t.Name
	}
	del := DeleteTrialsInput{Namespace: e.Metadata.Namespace, Names: names}
	dctx := actx
	if workflow.GetVersion(ctx, versionTrialJobsByEvent, workflow.DefaultVersion, 1) >= 1 {
		// The deletions are requested by event and awaited through the training service's job events:
		// a heartbeating activity with room for many trials' replicas to stop.
		dctx = workflow.WithActivityOptions(ctx, wf.LongActivity(30*time.Second, 30*time.Minute))
		del.Kind = expspec.TrialJobKind(e.Spec.TrialTemplate)
	}
	dctx = wf.WithSummary(dctx, fmt.Sprintf("delete %d trial jobs", len(names)))
	if err := workflow.ExecuteActivity(dctx, a.DeleteTrials, del).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("delete trial jobs", "err", err)
	}
	publish(events.TuningExperimentDeletedV1, "", "Experiment is deleted", nil)
	if err := workflow.UpsertMemo(ctx, map[string]any{tuningv1.MemoDeleted: true}); err != nil {
		return tuningv1.ExperimentResult{}, err
	}
	return tuningv1.ExperimentResult{Deleted: true}, nil
}

// earlyStoppingRule is medianstop's rule for a new trial: with at least min_trials_required succeeded
// trials, stop when the objective, after start_step reports, is worse than their median objective value.
func earlyStoppingRule(e tuningv1.Experiment, trials []tuningv1.Trial) *tuningv1.EarlyStoppingRule {
	if e.Spec.EarlyStopping == nil {
		return nil
	}
	minTrials, startStep := expspec.MedianStopSettings(e.Spec.EarlyStopping)
	var vs []float64
	for _, t := range trials {
		if t.State() == tuningv1.ConditionSucceeded {
			if v, ok := collect.Objective(*e.Spec.Objective, t.Observation); ok {
				vs = append(vs, v)
			}
		}
	}
	if len(vs) < minTrials {
		return nil
	}
	sort.Float64s(vs)
	median := vs[len(vs)/2]
	if len(vs)%2 == 0 {
		median = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
	}
	cmp := "greater"
	if e.Spec.Objective.Type == tuningv1.ObjectiveMaximize {
		cmp = "less"
	}
	return &tuningv1.EarlyStoppingRule{Name: e.Spec.Objective.ObjectiveMetricName, Value: median, Comparison: cmp, StartStep: startStep}
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func conditionOf(eventType string) string {
	switch eventType {
	case events.TuningExperimentCreatedV1:
		return tuningv1.ConditionCreated
	case events.TuningExperimentRunningV1:
		return tuningv1.ConditionRunning
	case events.TuningExperimentSucceededV1, events.TuningTrialSucceededV1:
		return tuningv1.ConditionSucceeded
	case events.TuningExperimentFailedV1, events.TuningTrialFailedV1:
		return tuningv1.ConditionFailed
	}
	return "Deleted"
}

// suggestRequest builds the suggestion request from the trials so far (unfinished and failed trials
// carry no value).
func suggestRequest(e tuningv1.Experiment, trials []tuningv1.Trial, count int) suggest.Request {
	hist := make([]suggest.Observation, len(trials))
	for i, t := range trials {
		hist[i].Assignments = t.ParameterAssignments
		if s := t.State(); s == tuningv1.ConditionSucceeded || s == tuningv1.ConditionEarlyStopped {
			hist[i].Value, hist[i].Valid = collect.Objective(*e.Spec.Objective, t.Observation)
		}
	}
	return suggest.Request{Parameters: e.Spec.Parameters, Algorithm: *e.Spec.Algorithm, Objective: e.Spec.Objective.Type,
		History: hist, Count: count, Seed: seed(e)}
}
