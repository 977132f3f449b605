package experiments_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	sdkworkflow "go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
	"github.com/sluice-ml/sluice/services/tuning/internal/experiments"
)

func i32(v int32) *int32 { return &v }

func exp(algo string, maxTrials, parallel int32, goal *float64, maxFailed *int32) tuningv1.Experiment {
	e := tuningv1.Experiment{APIVersion: tuningv1.APIVersion, Kind: tuningv1.Kind,
		Metadata: tuningv1.ObjectMeta{Name: "wf", Namespace: "ns", UID: "uid-1"},
		Spec: tuningv1.ExperimentSpec{
			Parameters: []tuningv1.ParameterSpec{{Name: "x", ParameterType: tuningv1.ParameterInt,
				FeasibleSpace: tuningv1.FeasibleSpace{Min: "1", Max: "5", Step: "1", Distribution: tuningv1.DistributionUniform}}},
			Objective: &tuningv1.ObjectiveSpec{Type: tuningv1.ObjectiveMinimize, Goal: goal, ObjectiveMetricName: "loss",
				MetricStrategies: []tuningv1.MetricStrategy{{Name: "loss", Value: tuningv1.StrategyMin}}},
			Algorithm:           &tuningv1.AlgorithmSpec{AlgorithmName: algo},
			ParallelTrialCount:  i32(parallel),
			MaxTrialCount:       i32(maxTrials),
			MaxFailedTrialCount: maxFailed,
			TrialTemplate:       &tuningv1.TrialTemplate{},
		}}
	if maxTrials == 0 {
		e.Spec.MaxTrialCount = nil
	}
	return e
}

// run executes the workflow with RunTrial replaced by outcome (x → outcome), queries the view once
// everything settled, then deletes the experiment.
func run(t *testing.T, e tuningv1.Experiment, perRun int, outcome func(x int) experiments.TrialOutcome) (tuningv1.ExperimentView, []string) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(experiments.Run, sdkworkflow.RegisterOptions{Name: tuningv1.WorkflowType})
	var a *experiments.Activities
	env.RegisterActivity(&experiments.Activities{})
	var published []string
	env.OnActivity(a.Publish, mock.Anything, mock.Anything).Return(func(_ context.Context, in experiments.PublishInput) error {
		published = append(published, in.Type)
		return nil
	})
	env.OnActivity(a.DeleteTrials, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(a.RunTrial, mock.Anything, mock.Anything).Return(func(_ context.Context, in experiments.RunTrialInput) (experiments.TrialOutcome, error) {
		x, _ := strconv.Atoi(in.Trial.ParameterAssignments[0].Value)
		return outcome(x), nil
	})
	var view tuningv1.ExperimentView
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(tuningv1.QueryExperiment)
		require.NoError(t, err)
		require.NoError(t, v.Get(&view))
		env.SignalWorkflow(tuningv1.SignalDelete, nil)
	}, time.Hour)
	env.ExecuteWorkflow(tuningv1.WorkflowType, tuningv1.ExperimentInput{Experiment: e, TrialsPerRun: perRun})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	return view, published
}

func loss(v float64) experiments.TrialOutcome {
	f := strconv.FormatFloat(v, 'g', -1, 64)
	return experiments.TrialOutcome{Succeeded: true, Observation: tuningv1.Observation{Metrics: []tuningv1.Metric{{Name: "loss", Min: f, Max: f, Latest: f}}}}
}

func condition(v tuningv1.ExperimentView, typ string) tuningv1.Condition {
	for _, c := range v.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return tuningv1.Condition{}
}

// Grid over x=1..5 with no maxTrialCount ends when the grid is exhausted; the optimum is x=3.
func TestGridEndsWhenExhausted(t *testing.T) {
	v, published := run(t, exp("grid", 0, 2, nil, nil), 50, func(x int) experiments.TrialOutcome { return loss(float64((x - 3) * (x - 3))) })
	require.Equal(t, tuningv1.ConditionSucceeded, v.State())
	require.Equal(t, tuningv1.ReasonExperimentSuggestionEndReached, condition(v, tuningv1.ConditionSucceeded).Reason)
	require.Equal(t, "False", condition(v, tuningv1.ConditionRunning).Status)
	require.Len(t, v.TrialsView, 5)
	require.Equal(t, []tuningv1.ParameterAssignment{{Name: "x", Value: "3"}}, v.Status.CurrentOptimalTrial.ParameterAssignments)
	require.Contains(t, published, "io.sluice.tuning.experiment.succeeded.v1")
	require.Equal(t, "io.sluice.tuning.experiment.deleted.v1", published[len(published)-1])
}

// The goal stops the experiment early: grid reaches x=2 (loss 0 <= goal 0) long before maxTrialCount.
func TestGoalReachedStopsEarly(t *testing.T) {
	goal := 0.0
	v, _ := run(t, exp("grid", 5, 1, &goal, nil), 50, func(x int) experiments.TrialOutcome { return loss(float64((x - 2) * (x - 2))) })
	require.Equal(t, tuningv1.ReasonExperimentGoalReached, condition(v, tuningv1.ConditionSucceeded).Reason)
	require.Len(t, v.TrialsView, 2)
	require.Equal(t, v.TrialsView[1].Name, v.Status.CurrentOptimalTrial.BestTrialName)
}

// More failed trials than maxFailedTrialCount fail the experiment; a trial without the objective metric
// is MetricsUnavailable, not Failed.
func TestMaxFailedTrialCountFails(t *testing.T) {
	v, published := run(t, exp("grid", 5, 1, nil, i32(1)), 50, func(x int) experiments.TrialOutcome {
		if x == 1 {
			return experiments.TrialOutcome{Succeeded: true}
		}
		return experiments.TrialOutcome{Message: "training job TFJobFailed: exit 1"}
	})
	require.Equal(t, tuningv1.ConditionFailed, v.State())
	require.Equal(t, tuningv1.ReasonExperimentFailed, condition(v, tuningv1.ConditionFailed).Reason)
	require.Equal(t, int32(2), v.Status.TrialsFailed)
	require.Equal(t, int32(1), v.Status.TrialMetricsUnavailable)
	require.Equal(t, tuningv1.ConditionMetricsUnavailable, v.TrialsView[0].State())
	require.Nil(t, v.Status.CurrentOptimalTrial)
	require.Contains(t, published, "io.sluice.tuning.experiment.failed.v1")
}

// After TrialsPerRun trials the workflow continues as new, carrying trials and status.
func TestContinueAsNewCarriesState(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(experiments.Run, sdkworkflow.RegisterOptions{Name: tuningv1.WorkflowType})
	var a *experiments.Activities
	env.RegisterActivity(&experiments.Activities{})
	env.OnActivity(a.Publish, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(a.RunTrial, mock.Anything, mock.Anything).Return(loss(1), nil)
	env.ExecuteWorkflow(tuningv1.WorkflowType, tuningv1.ExperimentInput{Experiment: exp("random", 6, 2, nil, nil), TrialsPerRun: 4})
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	var can *sdkworkflow.ContinueAsNewError
	require.ErrorAs(t, err, &can)
	var next tuningv1.ExperimentInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Len(t, next.Trials, 4)
	require.Equal(t, int32(4), next.Status.TrialsSucceeded)
	require.Equal(t, "True", next.Status.Conditions[1].Status, "still Running")
}
