package jobspec_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-ml/sluice/services/training/api/jobspec"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSeedVerbatimReportsYAMLLine(t *testing.T) {
	t.Parallel()
	// The seed document indents restartPolicy/volumes under the containers
	// list, which is not valid YAML; the error must say where.
	_, err := jobspec.Parse(readFile(t, "testdata/seed-v1beta2-verbatim.yaml"))
	if !errors.Is(err, jobspec.ErrInvalid) {
		t.Fatalf("want ErrInvalid, got %v", err)
	}
	if !strings.Contains(err.Error(), "yaml: line 26: did not find expected '-' indicator") {
		t.Fatalf("error should name the line: %v", err)
	}
}

func TestParseSeedV1beta2(t *testing.T) {
	t.Parallel()
	job, err := jobspec.Parse(readFile(t, "testdata/seed-v1beta2.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tf := job.TFJob
	if tf == nil {
		t.Fatal("want a TFJob")
	}
	if tf.APIVersion != trainingv1.GroupVersion || tf.Name != "mnist-train" || tf.Namespace != "kubeflow" {
		t.Fatalf("meta = %+v %+v", tf.TypeMeta, tf.ObjectMeta)
	}
	if got, want := job.ReplicaTypes(), []trainingv1.ReplicaType{"Chief", "PS", "Worker"}; !cmp.Equal(got, want) {
		t.Fatalf("replica types = %v, want %v", got, want)
	}
	for rtype, want := range map[trainingv1.ReplicaType]int32{"Chief": 1, "PS": 1, "Worker": 2} {
		spec := tf.Spec.TFReplicaSpecs[rtype]
		if *spec.Replicas != want {
			t.Errorf("%s replicas = %d, want %d", rtype, *spec.Replicas, want)
		}
		// The replica-level restartPolicy defaults to Never; the pod
		// template's OnFailure is kept but, as in training-operator, the
		// replica spec's policy is the one applied.
		if spec.RestartPolicy != trainingv1.RestartPolicyNever {
			t.Errorf("%s restartPolicy = %q", rtype, spec.RestartPolicy)
		}
		if spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
			t.Errorf("%s template restartPolicy = %q", rtype, spec.Template.Spec.RestartPolicy)
		}
		c := spec.Template.Spec.Containers[0]
		if diff := cmp.Diff([]corev1.ContainerPort{{Name: "tfjob-port", ContainerPort: 2222}}, c.Ports); diff != "" {
			t.Errorf("%s ports (-want +got):\n%s", rtype, diff)
		}
		if len(c.VolumeMounts) != 1 || c.WorkingDir != "/opt" || len(c.Env) != 2 {
			t.Errorf("%s container not fully decoded: %+v", rtype, c)
		}
		if v := spec.Template.Spec.Volumes; len(v) != 1 || v[0].PersistentVolumeClaim.ClaimName != "local-path-pvc" {
			t.Errorf("%s volumes = %+v", rtype, v)
		}
	}
	if *tf.Spec.RunPolicy.CleanPodPolicy != trainingv1.CleanPodPolicyNone {
		t.Errorf("cleanPodPolicy = %v", *tf.Spec.RunPolicy.CleanPodPolicy)
	}
	if *tf.Spec.SuccessPolicy != trainingv1.SuccessPolicyDefault {
		t.Errorf("successPolicy = %q", *tf.Spec.SuccessPolicy)
	}
}

func TestParseV1beta2RunPolicyFields(t *testing.T) {
	t.Parallel()
	doc := `{"apiVersion":"kubeflow.org/v1beta2","kind":"TFJob","metadata":{"name":"a"},
	  "spec":{"cleanPodPolicy":"All","backoffLimit":2,"activeDeadlineSeconds":60,"ttlSecondsAfterFinished":5,
	    "tfReplicaSpecs":{"Worker":{"template":{"spec":{"containers":[{"name":"tensorflow","image":"x"}]}}}}}}`
	job, err := jobspec.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	rp := job.RunPolicy()
	if *rp.CleanPodPolicy != trainingv1.CleanPodPolicyAll || *rp.BackoffLimit != 2 || *rp.ActiveDeadlineSeconds != 60 || *rp.TTLSecondsAfterFinished != 5 {
		t.Fatalf("run policy = %+v", rp)
	}
	if job.Meta().Namespace != "default" {
		t.Fatalf("namespace = %q", job.Meta().Namespace)
	}
}

func TestParseTFJobV1Full(t *testing.T) {
	t.Parallel()
	job, err := jobspec.Parse(readFile(t, "testdata/tfjob-v1-full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	specs := job.TFJob.Spec.TFReplicaSpecs
	if got, want := job.ReplicaTypes(), []trainingv1.ReplicaType{"Chief", "PS", "Worker", "Evaluator"}; !cmp.Equal(got, want) {
		t.Fatalf("replica types = %v, want %v", got, want)
	}
	chief := specs["Chief"]
	if chief.RestartPolicy != trainingv1.RestartPolicyExitCode {
		t.Errorf("chief restartPolicy = %q", chief.RestartPolicy)
	}
	if diff := cmp.Diff([]corev1.ContainerPort{{Name: "tfjob-port", ContainerPort: 3333}}, chief.Template.Spec.Containers[0].Ports); diff != "" {
		t.Errorf("declared port must be kept (-want +got):\n%s", diff)
	}
	if got := job.Port("Chief"); got != 3333 {
		t.Errorf("Port(Chief) = %d", got)
	}
	gpu := chief.Template.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"]
	if gpu.Value() != 1 {
		t.Errorf("gpu limit = %v", gpu.String())
	}
	if specs["Worker"].RestartPolicy != trainingv1.RestartPolicyOnFailure || *specs["Worker"].Replicas != 2 {
		t.Errorf("worker = %+v", specs["Worker"])
	}
	if sc := specs["Worker"].Template.Spec.Containers[1]; len(sc.Ports) != 0 {
		t.Errorf("sidecar must not get the default port: %+v", sc.Ports)
	}
	if *specs["Evaluator"].Replicas != 1 {
		t.Errorf("evaluator replicas = %d", *specs["Evaluator"].Replicas)
	}
	rp := job.RunPolicy()
	if *rp.CleanPodPolicy != trainingv1.CleanPodPolicyRunning || *rp.BackoffLimit != 3 || *rp.SchedulingPolicy.MinAvailable != 5 {
		t.Errorf("run policy = %+v", rp)
	}
	if *job.TFJob.Spec.SuccessPolicy != trainingv1.SuccessPolicyAllWorkers {
		t.Errorf("successPolicy = %q", *job.TFJob.Spec.SuccessPolicy)
	}
}

func TestParsePyTorchJob(t *testing.T) {
	t.Parallel()
	job, err := jobspec.Parse(readFile(t, "testdata/pytorchjob-v1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pt := job.PyTorchJob
	if pt == nil || job.Kind() != trainingv1.KindPyTorchJob {
		t.Fatal("want a PyTorchJob")
	}
	w := pt.Spec.PyTorchReplicaSpecs["Worker"]
	if w == nil || w.RestartPolicy != trainingv1.RestartPolicyOnFailure || *w.Replicas != 2 {
		t.Fatalf("worker = %+v", w)
	}
	if diff := cmp.Diff([]corev1.ContainerPort{{Name: "pytorchjob-port", ContainerPort: 23456}}, w.Template.Spec.Containers[0].Ports); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	if *pt.Spec.NprocPerNode != "auto" || *pt.Spec.RunPolicy.CleanPodPolicy != trainingv1.CleanPodPolicyNone {
		t.Errorf("defaults: nproc=%v clean=%v", *pt.Spec.NprocPerNode, *pt.Spec.RunPolicy.CleanPodPolicy)
	}
}

func TestParseElasticDefaults(t *testing.T) {
	t.Parallel()
	doc := `{"apiVersion":"kubeflow.org/v1","kind":"PyTorchJob","metadata":{"name":"e"},
	  "spec":{"elasticPolicy":{"maxReplicas":4},
	    "pytorchReplicaSpecs":{"Worker":{"replicas":2,"template":{"spec":{"containers":[{"name":"pytorch","image":"x"}]}}}}}}`
	job, err := jobspec.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	ep := job.PyTorchJob.Spec.ElasticPolicy
	if *ep.MinReplicas != 4 || *ep.MaxReplicas != 4 {
		t.Fatalf("elastic = %d:%d", *ep.MinReplicas, *ep.MaxReplicas)
	}
}

const worker = `{"name":"tensorflow","image":"img"}`

func tfDoc(specs string) string {
	return `{"apiVersion":"kubeflow.org/v1","kind":"TFJob","metadata":{"name":"job"},"spec":{"tfReplicaSpecs":{` + specs + `}}}`
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		doc  string
		want []jobspec.FieldError
	}{
		"unknown replica type is named": {
			doc:  tfDoc(`"Launcher":{"template":{"spec":{"containers":[` + worker + `]}}}`),
			want: []jobspec.FieldError{{"spec.tfReplicaSpecs.Launcher", "unsupported replica type (want one of Chief, Master, PS, Worker, Evaluator, any case)"}},
		},
		"duplicate keys after normalisation": {
			doc:  tfDoc(`"Worker":{"template":{"spec":{"containers":[` + worker + `]}}},"worker":{"template":{"spec":{"containers":[` + worker + `]}}}`),
			want: []jobspec.FieldError{{"spec.tfReplicaSpecs.worker", `duplicate replica type: "Worker" and "worker" both normalise to Worker`}},
		},
		// Case security/create-unknown-fields: never silently dropped.
		"unknown top-level field is named": {
			doc: `{"apiVersion":"kubeflow.org/v1","kind":"TFJob","metadata":{"name":"uf-job","namespace":"team-a"},"bogus_field":1,
 "spec":{"tfReplicaSpecs":{"Worker":{"replicas":1,"template":{"spec":{"containers":[{"name":"tensorflow","image":"x","command":["true"]}]}}}}}}`,
			want: []jobspec.FieldError{{"bogus_field", "unknown field"}},
		},
		"unknown field deep in a pod template is named": {
			doc:  tfDoc(`"Worker":{"template":{"spec":{"containers":[{"name":"tensorflow","image":"x","imagePolicy":"Always"}]}}}`),
			want: []jobspec.FieldError{{"spec.tfReplicaSpecs.Worker.template.spec.containers[0].imagePolicy", "unknown field"}},
		},
		"no containers": {
			doc:  tfDoc(`"Worker":{"template":{"spec":{}}}`),
			want: []jobspec.FieldError{{"spec.tfReplicaSpecs.Worker.template.spec.containers", "required (at least one container)"}},
		},
		"no image and no default container": {
			doc: tfDoc(`"PS":{"template":{"spec":{"containers":[{"name":"tf"}]}}}`),
			want: []jobspec.FieldError{
				{"spec.tfReplicaSpecs.PS.template.spec.containers[0].image", "required"},
				{"spec.tfReplicaSpecs.PS.template.spec.containers", `must contain a container named "tensorflow"`},
			},
		},
		"every problem is collected": {
			doc: `{"apiVersion":"kubeflow.org/v1","kind":"TFJob","metadata":{"name":"Bad_Name"},"spec":{
			  "runPolicy":{"cleanPodPolicy":"Sometimes","backoffLimit":-1},"successPolicy":"Most",
			  "tfReplicaSpecs":{
			    "Worker":{"replicas":-2,"restartPolicy":"Maybe","template":{"spec":{"containers":[{"name":"tensorflow"}]}}},
			    "evaluator":{"replicas":2,"template":{"spec":{"containers":[` + worker + `]}}}}}}`,
			want: []jobspec.FieldError{
				{"metadata.name", "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"},
				{"spec.tfReplicaSpecs.Worker.replicas", "must be >= 0"},
				{"spec.tfReplicaSpecs.Worker.restartPolicy", `unsupported value "Maybe" (want Always, OnFailure, Never or ExitCode)`},
				{"spec.tfReplicaSpecs.Worker.template.spec.containers[0].image", "required"},
				{"spec.tfReplicaSpecs.Evaluator.replicas", "must be 0 or 1 for Evaluator"},
				{"spec.successPolicy", `unsupported value "Most" (want "" or AllWorkers)`},
				{"spec.runPolicy.cleanPodPolicy", `unsupported value "Sometimes" (want All, Running or None)`},
				{"spec.runPolicy.backoffLimit", "must be >= 0"},
			},
		},
		"chief and master": {
			doc:  tfDoc(`"Chief":{"template":{"spec":{"containers":[` + worker + `]}}},"Master":{"template":{"spec":{"containers":[` + worker + `]}}}`),
			want: []jobspec.FieldError{{"spec.tfReplicaSpecs", "must not contain both Chief and Master"}},
		},
		"wrong type names the replica": {
			doc:  tfDoc(`"Worker":{"replicas":"two","template":{"spec":{"containers":[` + worker + `]}}}`),
			want: []jobspec.FieldError{{"spec.tfReplicaSpecs.Worker.replicas", "must be an integer, got string"}},
		},
		"empty replica specs": {
			doc:  tfDoc(``),
			want: []jobspec.FieldError{{"spec.tfReplicaSpecs", "must contain at least one replica type"}},
		},
		"missing replica specs": {
			doc:  `{"apiVersion":"kubeflow.org/v1","kind":"TFJob","metadata":{"name":"job"},"spec":{}}`,
			want: []jobspec.FieldError{{"spec.tfReplicaSpecs", "required"}},
		},
		"unsupported kind": {
			doc:  `{"apiVersion":"kubeflow.org/v1","kind":"MPIJob","metadata":{"name":"job"}}`,
			want: []jobspec.FieldError{{"kind", `unsupported value "MPIJob" (want TFJob or PyTorchJob)`}},
		},
		"v1beta2 only for TFJob": {
			doc:  `{"apiVersion":"kubeflow.org/v1beta2","kind":"PyTorchJob","metadata":{"name":"job"}}`,
			want: []jobspec.FieldError{{"apiVersion", `unsupported value "kubeflow.org/v1beta2" for kind PyTorchJob (want kubeflow.org/v1)`}},
		},
		"pytorch master must be one, nproc and elastic checked": {
			doc: `{"apiVersion":"kubeflow.org/v1","kind":"PyTorchJob","metadata":{"name":"p"},"spec":{"nprocPerNode":"many",
			  "elasticPolicy":{"minReplicas":3,"maxReplicas":2,"rdzvBackend":"zk"},
			  "pytorchReplicaSpecs":{"master":{"replicas":2,"template":{"spec":{"containers":[{"name":"tensorflow","image":"x"}]}}}}}}`,
			want: []jobspec.FieldError{
				{"spec.pytorchReplicaSpecs.Master.replicas", "must be 1 (a PyTorchJob has exactly one Master)"},
				{"spec.pytorchReplicaSpecs.Master.template.spec.containers", `must contain a container named "pytorch"`},
				{"spec.nprocPerNode", `unsupported value "many" (want auto, cpu, gpu or a positive integer)`},
				{"spec.pytorchReplicaSpecs.Worker", "required when spec.elasticPolicy is set"},
				{"spec.elasticPolicy.maxReplicas", "must be >= minReplicas"},
				{"spec.elasticPolicy.rdzvBackend", `unsupported value "zk" (want c10d, etcd or etcd-v2)`},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := jobspec.Parse([]byte(tc.doc))
			var inv *jobspec.InvalidError
			if !errors.As(err, &inv) || !errors.Is(err, jobspec.ErrInvalid) {
				t.Fatalf("want *InvalidError, got %v", err)
			}
			if diff := cmp.Diff(tc.want, inv.Errors); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInvalidErrorMessage(t *testing.T) {
	t.Parallel()
	_, err := jobspec.Parse([]byte(tfDoc(`"Worker":{"replicas":-1,"template":{"spec":{"containers":[{"name":"tensorflow"}]}}}`)))
	want := `invalid TFJob "job": spec.tfReplicaSpecs.Worker.replicas: must be >= 0; spec.tfReplicaSpecs.Worker.template.spec.containers[0].image: required`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}
