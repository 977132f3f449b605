package spec

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

const nativeTraining = `apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: train}
spec:
  tasks:
    prepare:
      image: alpine
      command: [echo, ok]
    train:
      dependsOn: [prepare]
      retry: {maxRetries: 1}
      trainingJob:
        apiVersion: kubeflow.org/v1
        kind: TFJob
        metadata: {name: mnist-train, namespace: kubeflow}
        spec:
          tfReplicaSpecs:
            Worker:
              replicas: 2
              template:
                spec:
                  containers:
                    - name: tensorflow
                      image: busybox
                      command: [sh, -c, 'exit 0']
      outputs: {artifacts: {model: {type: system.Model}}}
`

func TestParseNativeTrainingJob(t *testing.T) {
	p, err := Parse([]byte(nativeTraining))
	if err != nil {
		t.Fatal(err)
	}
	c := p.Components["comp-train"]
	if c.Kind != dag.KindTrainingJob || c.Executor != nil {
		t.Fatalf("component = %+v", c)
	}
	if a, ok := c.OutputArtifact("model"); !ok || a.SchemaTitle != "system.Model" {
		t.Fatalf("model output = %+v", a)
	}
	var doc struct {
		Kind string `json:"kind"`
		Spec struct {
			TFReplicaSpecs map[string]struct {
				Replicas int `json:"replicas"`
			} `json:"tfReplicaSpecs"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(c.TrainingJob, &doc); err != nil || doc.Kind != "TFJob" || doc.Spec.TFReplicaSpecs["Worker"].Replicas != 2 {
		t.Fatalf("document %s: %v", c.TrainingJob, err)
	}
	ns, name := dag.TrainingJobRef(c.TrainingJob)
	if ns != "kubeflow" || name != "mnist-train" {
		t.Fatalf("ref = %s/%s", ns, name)
	}
	task, _ := p.Root.DAG.Task("train")
	if len(task.DependsOn) != 1 || task.Retry == nil || task.Retry.MaxRetryCount != 1 {
		t.Fatalf("task = %+v", task)
	}
	// The compiled model round-trips through JSON (it is what the workflow recompiles from the spec).
	b, _ := json.Marshal(p)
	var back dag.Pipeline
	if err := json.Unmarshal(b, &back); err != nil || string(back.Components["comp-train"].TrainingJob) != string(c.TrainingJob) {
		t.Fatalf("round trip: %v", err)
	}
}

func TestValidationNativeTrainingJob(t *testing.T) {
	cases := map[string]struct {
		edits [][2]string
		want  [][2]string
	}{
		"no kind": {
			edits: [][2]string{{"        kind: TFJob\n", ""}},
			want:  [][2]string{{"spec.tasks.train.trainingJob.kind", "required (TFJob or PyTorchJob)"}},
		},
		"unknown kind and apiVersion": {
			edits: [][2]string{{"kind: TFJob", "kind: MPIJob"}, {"kubeflow.org/v1\n", "batch/v1\n"}},
			want: [][2]string{{"spec.tasks.train.trainingJob.kind", `"MPIJob" is not TFJob or PyTorchJob`},
				{"spec.tasks.train.trainingJob.apiVersion", `"batch/v1" is not kubeflow.org/v1`}},
		},
		"no name": {
			edits: [][2]string{{"{name: mnist-train, namespace: kubeflow}", "{namespace: kubeflow}"}},
			want:  [][2]string{{"spec.tasks.train.trainingJob.metadata.name", "required"}},
		},
		"container fields": {
			edits: [][2]string{{"      retry:", "      image: alpine\n      command: [x]\n      cache: true\n      retry:"}},
			want: [][2]string{{"spec.tasks.train.image", "not allowed with trainingJob"}, {"spec.tasks.train.command", "not allowed with trainingJob"},
				{"spec.tasks.train.cache", "not allowed with trainingJob"}},
		},
		"inputs and loop": {
			edits: [][2]string{{"      retry:", "      inputs: {x: 1}\n      forEach: {items: [1, 2]}\n      retry:"}},
			want:  [][2]string{{"spec.tasks.train.inputs", "takes no inputs"}, {"spec.tasks.train.forEach", "not allowed with trainingJob"}},
		},
		"other outputs": {
			edits: [][2]string{{"{artifacts: {model: {type: system.Model}}}", "{artifacts: [weights], parameters: [acc]}"}},
			want: [][2]string{{"spec.tasks.train.outputs.artifacts.weights", `one output artifact, "model"`},
				{"spec.tasks.train.outputs.parameters.acc", "no output parameters"}},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			doc := nativeTraining
			for _, e := range c.edits {
				if !strings.Contains(doc, e[0]) {
					t.Fatalf("edit target %q not in base", e[0])
				}
				doc = strings.Replace(doc, e[0], e[1], 1)
			}
			p, err := Parse([]byte(doc))
			if p != nil {
				t.Fatal("a rejected spec returned a pipeline")
			}
			matchErrors(t, err, c.want)
		})
	}
	// A file name instead of a document.
	_, err := Parse([]byte(`apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: train}
spec:
  tasks:
    train: {trainingJob: tfjob.yaml}
`))
	matchErrors(t, err, [][2]string{{"spec.tasks.train.trainingJob", "must be a TFJob or PyTorchJob document (a mapping)"}})
}

func TestTrainingJobName(t *testing.T) {
	a := dag.TrainingJobName("mnist-train", "run-1", "train", 1)
	if !strings.HasPrefix(a, "mnist-train-") || len(a) != len("mnist-train-")+8 {
		t.Fatalf("name %q", a)
	}
	for _, other := range []string{dag.TrainingJobName("mnist-train", "run-2", "train", 1), dag.TrainingJobName("mnist-train", "run-1", "loop/0/train", 1),
		dag.TrainingJobName("mnist-train", "run-1", "train", 2)} {
		if other == a {
			t.Fatalf("collision %q", a)
		}
	}
	if a != dag.TrainingJobName("mnist-train", "run-1", "train", 1) {
		t.Fatal("not deterministic")
	}
	if long := dag.TrainingJobName(strings.Repeat("x", 80), "r", "t", 1); len(long) != 63 {
		t.Fatalf("long name %q (%d)", long, len(long))
	}
	doc, err := dag.WithTrainingJobName([]byte(`{"kind":"TFJob","metadata":{"name":"a","labels":{"x":"y"}},"spec":{}}`), "ns", "a-1")
	if err != nil {
		t.Fatal(err)
	}
	if ns, name := dag.TrainingJobRef(doc); ns != "ns" || name != "a-1" || !strings.Contains(string(doc), `"labels":{"x":"y"}`) {
		t.Fatalf("renamed %s", doc)
	}
}
