package expspec_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
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
		"not a job":                {"kind: TFJob", "kind: Deployment", "spec.trialTemplate.trialSpec.kind"},
		"typo in the trial job":    {"restartPolicy: OnFailure", "restartPolicy: OnFailure\n            replica: 2", "spec.trialTemplate.trialSpec.spec.tfReplicaSpecs.Worker.replica"},
		// Checks only the training service's own validator (services/training/api/jobspec) makes: a job the
		// training service would reject is refused when the experiment is created, never requested.
		"negative replicas":     {"replicas: 2", "replicas: -1", "spec.trialTemplate.trialSpec.spec.tfReplicaSpecs.Worker.replicas"},
		"bad restart policy":    {"restartPolicy: OnFailure", "restartPolicy: Sometimes", "spec.trialTemplate.trialSpec.spec.tfReplicaSpecs.Worker.restartPolicy"},
		"normal distribution":   {`max: "0.05"`, "max: \"0.05\"\n        distribution: normal", "spec.parameters[0].feasibleSpace.distribution"},
		"bad primary replica":   {"replica-type: worker", "replica-type: chief", "spec.trialTemplate.primaryPodLabels"},
		"unsupported collector": {"kind: TensorFlowEvent", "kind: File", "spec.metricsCollectorSpec.collector.kind"},
		"uppercase name":        {"name: tfjob-mnist-with-summaries", "name: TFJob", "metadata.name"},
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

// A batch/v1 Job trial (Katib's random.yaml shape) runs as a one-Worker TFJob: the primary container
// becomes the replica's "tensorflow" container with its command, parameters substituted; the Job's
// Complete condition is the training job's Succeeded; a failed pod is retried up to backoffLimit (6).
func TestBatchJobTrial(t *testing.T) {
	e, err := expspec.Parse(load(t, "random-batch-job.yaml"), "default")
	require.NoError(t, err)
	require.Equal(t, `status.conditions.#(type=="Complete")#|#(status=="True")#`, e.Spec.TrialTemplate.SuccessCondition)
	job, err := expspec.RenderTrial(e, "random-abc", []tuningv1.ParameterAssignment{{Name: "lr", Value: "0.02"}, {Name: "num-layers", Value: "3"}, {Name: "optimizer", Value: "adam"}})
	require.NoError(t, err)
	require.Equal(t, "Job", job.Kind)
	require.Equal(t, "worker-0", job.PrimaryReplica)
	require.Equal(t, "Succeeded", expspec.JobConditionType(job.Kind, "Complete"))
	require.Equal(t, "Failed", expspec.JobConditionType(job.Kind, "Failed"))
	var tf trainingv1.TFJob
	require.NoError(t, json.Unmarshal(job.Document, &tf))
	require.Equal(t, "TFJob", tf.Kind)
	require.Equal(t, "random-abc", tf.Name)
	require.Equal(t, "random-abc", tf.Labels["katib.kubeflow.org/trial"])
	require.Len(t, tf.Spec.TFReplicaSpecs, 1)
	w := tf.Spec.TFReplicaSpecs[trainingv1.ReplicaTypeWorker]
	require.NotNil(t, w)
	require.Equal(t, int32(1), *w.Replicas)
	require.Equal(t, trainingv1.RestartPolicyOnFailure, w.RestartPolicy)
	require.Equal(t, int32(6), *tf.Spec.RunPolicy.BackoffLimit)
	c := w.Template.Spec.Containers[0]
	require.Equal(t, "tensorflow", c.Name)
	require.Equal(t, []string{"python3", "/opt/mxnet-mnist/mnist.py", "--batch-size=64", "--lr=0.02", "--num-layers=3", "--optimizer=adam"}, c.Command)

	base := string(load(t, "random-batch-job.yaml"))
	for name, c := range map[string]struct{ old, new, field string }{
		"two completions":   {"      spec:\n        template:", "      spec:\n        completions: 2\n        template:", "spec.trialTemplate.trialSpec.spec.completions"},
		"primary missing":   {"primaryContainerName: training-container", "primaryContainerName: main", "spec.trialTemplate.primaryContainerName"},
		"typo in the Job":   {"restartPolicy: Never", "restartPolicy: Never\n            restartPolicies: x", "spec.trialTemplate.trialSpec.spec.template.spec.restartPolicies"},
		"always restarting": {"restartPolicy: Never", "restartPolicy: Always", "spec.trialTemplate.trialSpec.spec.template.spec.restartPolicy"},
	} {
		t.Run(name, func(t *testing.T) {
			doc := strings.Replace(base, c.old, c.new, 1)
			require.NotEqual(t, base, doc)
			_, err := expspec.Parse([]byte(doc), "default")
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
