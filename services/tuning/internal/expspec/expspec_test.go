package expspec_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
	"github.com/sluice-ml/sluice/services/tuning/internal/expspec"
)

func load(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return b
}

// Katib's published examples parse unmodified and get Katib's defaults.
func TestParseKatibExamples(t *testing.T) {
	e, err := expspec.Parse(load(t, "tfjob-mnist-with-summaries.yaml"), "default")
	require.NoError(t, err)
	require.Equal(t, "kubeflow", e.Metadata.Namespace)
	require.Equal(t, int32(3), *e.Spec.ParallelTrialCount)
	require.Equal(t, []tuningv1.MetricStrategy{{Name: "loss", Value: tuningv1.StrategyMin}}, e.Spec.Objective.MetricStrategies)
	require.Equal(t, tuningv1.CollectorTensorFlowEvent, e.Spec.MetricsCollectorSpec.Collector.Kind)
	require.Equal(t, "1", e.Spec.Parameters[1].FeasibleSpace.Step)

	job, err := expspec.RenderTrial(e, "tfjob-mnist-with-summaries-abc", []tuningv1.ParameterAssignment{
		{Name: "learning_rate", Value: "0.025"}, {Name: "batch_size", Value: "150"}})
	require.NoError(t, err)
	require.Equal(t, "TFJob", job.Kind)
	require.Equal(t, "worker-0", job.PrimaryReplica)
	doc := string(job.Document)
	require.Contains(t, doc, `"--learning-rate=0.025"`)
	require.Contains(t, doc, `"--batch-size=150"`)
	require.Contains(t, doc, `"name":"tfjob-mnist-with-summaries-abc"`)
	require.NotContains(t, doc, "${trialParameters")

	p, err := expspec.Parse(load(t, "pytorchjob-mnist-tpe.yaml"), "default")
	require.NoError(t, err)
	require.Equal(t, tuningv1.CollectorStdOut, p.Spec.MetricsCollectorSpec.Collector.Kind)
	require.Equal(t, []string{tuningv1.DefaultMetricsFormat}, p.Spec.MetricsCollectorSpec.Source.Filter.MetricsFormat)
	pj, err := expspec.RenderTrial(p, "t1", []tuningv1.ParameterAssignment{{Name: "lr", Value: "0.02"}, {Name: "momentum", Value: "0.6"}, {Name: "optimizer", Value: "adam"}})
	require.NoError(t, err)
	require.Equal(t, "master-0", pj.PrimaryReplica, "a PyTorchJob's metrics come from its Master by default")
	var obj map[string]any
	require.NoError(t, json.Unmarshal(pj.Document, &obj))
}

// Bad input names the field.
func TestValidationNamesTheField(t *testing.T) {
	base := string(load(t, "tfjob-mnist-with-summaries.yaml"))
	cases := map[string]struct {
		old, new, field string
	}{
		"unknown algorithm":        {"algorithmName: random", "algorithmName: hyperband", "spec.algorithm.algorithmName"},
		"bayesian acq_func":        {"algorithmName: random", "algorithmName: bayesianoptimization\n    algorithmSettings: [{name: acq_func, value: EIps}]", "spec.algorithm.algorithmSettings[0].value"},
		"bayesian estimator":       {"algorithmName: random", "algorithmName: bayesianoptimization\n    algorithmSettings: [{name: base_estimator, value: RF}]", "spec.algorithm.algorithmSettings[0].value"},
		"min above max":            {`min: "0.01"`, `min: "0.09"`, "spec.parameters[0].feasibleSpace.max"},
		"int min not an integer":   {`min: "100"`, `min: "1.5"`, "spec.parameters[1].feasibleSpace.min"},
		"bad parameter type":       {"parameterType: int", "parameterType: integer", "spec.parameters[1].parameterType"},
		"bad objective type":       {"type: minimize", "type: minimise", "spec.objective.type"},
		"undeclared placeholder":   {"${trialParameters.batchSize}", "${trialParameters.batch}", "spec.trialTemplate.trialSpec"},
		"unknown reference":        {"reference: batch_size", "reference: batchsize", "spec.trialTemplate.trialParameters[1].reference"},
		"parallel zero":            {"parallelTrialCount: 3", "parallelTrialCount: 0", "spec.parallelTrialCount"},
		"early stopping algorithm": {"  parallelTrialCount: 3", "  earlyStopping: {algorithmName: hyperband}\n  parallelTrialCount: 3", "spec.earlyStopping.algorithmName"},
		"medianstop setting":       {"  parallelTrialCount: 3", "  earlyStopping: {algorithmName: medianstop, algorithmSettings: [{name: start_step, value: \"0\"}]}\n  parallelTrialCount: 3", "spec.earlyStopping.algorithmSettings[0].value"},
		"unknown field":            {"maxTrialCount: 12", "maxTrialCount: 12\n  maxTrials: 3", "spec.maxTrials"},
		"wrong type":               {"maxTrialCount: 12", "maxTrialCount: twelve", "spec.maxTrialCount"},
		"batch Job refused":        {"kind: TFJob", "kind: Job", "spec.trialTemplate.trialSpec.kind"},
		"typo in the trial job":    {"restartPolicy: OnFailure", "restartPolicy: OnFailure\n            replica: 2", "spec.trialTemplate.trialSpec.spec.tfReplicaSpecs.Worker.replica"},
		"normal distribution":      {`max: "0.05"`, "max: \"0.05\"\n        distribution: normal", "spec.parameters[0].feasibleSpace.distribution"},
		"bad primary replica":      {"replica-type: worker", "replica-type: chief", "spec.trialTemplate.primaryPodLabels"},
		"unsupported collector":    {"kind: TensorFlowEvent", "kind: File", "spec.metricsCollectorSpec.collector.kind"},
		"uppercase name":           {"name: tfjob-mnist-with-summaries", "name: TFJob", "metadata.name"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			doc := strings.Replace(base, c.old, c.new, 1)
			require.NotEqual(t, base, doc)
			_, err := expspec.Parse([]byte(doc), "default")
			require.ErrorIs(t, err, expspec.ErrInvalid)
			var inv *expspec.InvalidError
			require.ErrorAs(t, err, &inv)
			var fields []string
			for _, f := range inv.Errors {
				fields = append(fields, f.Field)
			}
			require.Contains(t, fields, c.field, err.Error())
		})
	}
}

func TestConditionTypeOf(t *testing.T) {
	typ, ok := expspec.ConditionTypeOf(`status.conditions.#(type=="Succeeded")#|#(status=="True")#`)
	require.True(t, ok)
	require.Equal(t, "Succeeded", typ)
}
