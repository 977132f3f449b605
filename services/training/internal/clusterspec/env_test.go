package clusterspec_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-ml/sluice/services/training/api/jobspec"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/internal/clusterspec"
)

func parse(t *testing.T, doc string) *trainingv1.Job {
	t.Helper()
	job, err := jobspec.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return job
}

const tfContainer = `{"template":{"spec":{"containers":[{"name":"tensorflow","image":"img","env":[{"name":"USER_VAR","value":"1"}]},{"name":"sidecar","image":"s"}]}}}`

func tfJob(t *testing.T, specs string, extra string) *trainingv1.Job {
	return parse(t, `{"apiVersion":"kubeflow.org/v1","kind":"TFJob","metadata":{"name":"mnist","namespace":"kubeflow"},
	  "spec":{`+extra+`"tfReplicaSpecs":{`+specs+`}}}`)
}

func fullTF(t *testing.T, extra string) *trainingv1.Job {
	c := tfContainer[:len(tfContainer)-1]
	return tfJob(t, `"Chief":`+c+`,"replicas":1},"PS":`+c+`,"replicas":1},"Worker":`+c+`,"replicas":2},"Evaluator":`+c+`,"replicas":1}`, extra)
}

func TestTFConfigGolden(t *testing.T) {
	t.Parallel()
	job := fullTF(t, "")
	tests := map[string]struct {
		replica clusterspec.Replica
		want    string
	}{
		"worker 1 (wire-contracts example)": {
			replica: clusterspec.Replica{Type: "Worker", Index: 1},
			want:    `{"cluster":{"chief":["mnist-chief-0.kubeflow.svc:2222"],"evaluator":["mnist-evaluator-0.kubeflow.svc:2222"],"ps":["mnist-ps-0.kubeflow.svc:2222"],"worker":["mnist-worker-0.kubeflow.svc:2222","mnist-worker-1.kubeflow.svc:2222"]},"task":{"type":"worker","index":1},"environment":"cloud"}`,
		},
		"chief": {
			replica: clusterspec.Replica{Type: "Chief", Index: 0},
			want:    `{"cluster":{"chief":["mnist-chief-0.kubeflow.svc:2222"],"evaluator":["mnist-evaluator-0.kubeflow.svc:2222"],"ps":["mnist-ps-0.kubeflow.svc:2222"],"worker":["mnist-worker-0.kubeflow.svc:2222","mnist-worker-1.kubeflow.svc:2222"]},"task":{"type":"chief","index":0},"environment":"cloud"}`,
		},
		"evaluator": {
			replica: clusterspec.Replica{Type: "Evaluator", Index: 0},
			want:    `{"cluster":{"chief":["mnist-chief-0.kubeflow.svc:2222"],"evaluator":["mnist-evaluator-0.kubeflow.svc:2222"],"ps":["mnist-ps-0.kubeflow.svc:2222"],"worker":["mnist-worker-0.kubeflow.svc:2222","mnist-worker-1.kubeflow.svc:2222"]},"task":{"type":"evaluator","index":0},"environment":"cloud"}`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := clusterspec.TFConfigJSON(job, tc.replica, clusterspec.Kubernetes{})
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("TF_CONFIG\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestTFConfigClusterDomainAndPort(t *testing.T) {
	t.Parallel()
	job := tfJob(t, `"PS":{"template":{"spec":{"containers":[{"name":"tensorflow","image":"i","ports":[{"name":"tfjob-port","containerPort":3000}]}]}}},
	  "Worker":{"replicas":1,"template":{"spec":{"containers":[{"name":"tensorflow","image":"i"}]}}}`, "")
	got, err := clusterspec.TFConfigJSON(job, clusterspec.Replica{Type: "PS"}, clusterspec.Kubernetes{ClusterDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cluster":{"ps":["mnist-ps-0.kubeflow.svc.cluster.local:3000"],"worker":["mnist-worker-0.kubeflow.svc.cluster.local:2222"]},"task":{"type":"ps","index":0},"environment":"cloud"}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestTFConfigSingleReplicaNotSet(t *testing.T) {
	t.Parallel()
	for name, specs := range map[string]string{
		"one worker":              `"Worker":` + tfContainer,
		"one chief, zero workers": `"Chief":` + tfContainer + `,"Worker":{"replicas":0,"template":{"spec":{"containers":[{"name":"tensorflow","image":"i"}]}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			job := tfJob(t, specs, "")
			env, err := clusterspec.Env(job, clusterspec.Replicas(job)[0], clusterspec.Kubernetes{})
			if err != nil {
				t.Fatal(err)
			}
			if len(env) != 0 {
				t.Errorf("single-replica job must get no TF_CONFIG, got %v", env)
			}
		})
	}
}

func TestTFConfigZeroReplicaTypeListedEmpty(t *testing.T) {
	t.Parallel()
	c := tfContainer[:len(tfContainer)-1]
	job := tfJob(t, `"PS":`+c+`,"replicas":0},"Worker":`+c+`,"replicas":2}`, "")
	if got := clusterspec.Replicas(job); len(got) != 2 || got[0].Type != "Worker" {
		t.Fatalf("replicas = %v (zero-replica PS must not be started)", got)
	}
	got, err := clusterspec.TFConfigJSON(job, clusterspec.Replica{Type: "Worker", Index: 0}, clusterspec.Kubernetes{})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cluster":{"ps":[],"worker":["mnist-worker-0.kubeflow.svc:2222","mnist-worker-1.kubeflow.svc:2222"]},"task":{"type":"worker","index":0},"environment":"cloud"}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestTFConfigSparse(t *testing.T) {
	t.Parallel()
	job := fullTF(t, `"enableDynamicWorker":true,`)
	tests := map[clusterspec.Replica]string{
		{Type: "Worker", Index: 1}: `{"cluster":{"worker":{"1":"mnist-worker-1.kubeflow.svc:2222"},"ps":["mnist-ps-0.kubeflow.svc:2222"]},"task":{"type":"worker","index":1}}`,
		{Type: "PS", Index: 0}:     `{"cluster":{"worker":{},"ps":["mnist-ps-0.kubeflow.svc:2222"]},"task":{"type":"ps","index":0}}`,
		{Type: "Chief", Index: 0}:  `{"cluster":{"worker":{},"ps":[]},"task":{"type":"chief","index":0}}`,
	}
	for r, want := range tests {
		got, err := clusterspec.TFConfigJSON(job, r, clusterspec.Kubernetes{})
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s:\n got %s\nwant %s", r, got, want)
		}
	}
}

func TestLoopbackTFConfig(t *testing.T) {
	t.Parallel()
	job := fullTF(t, "")
	lb, err := clusterspec.AllocateLoopback(job)
	if err != nil {
		t.Fatal(err)
	}
	if len(lb.Ports) != 5 {
		t.Fatalf("ports = %v", lb.Ports)
	}
	seen := map[int32]bool{}
	for _, p := range lb.Ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports must be distinct and set: %v", lb.Ports)
		}
		seen[p] = true
	}
	s, err := clusterspec.TFConfigJSON(job, clusterspec.Replica{Type: "Worker", Index: 1}, lb)
	if err != nil {
		t.Fatal(err)
	}
	var cfg clusterspec.TFConfig
	if err := json.Unmarshal([]byte(s), &cfg); err != nil {
		t.Fatal(err)
	}
	addr := func(name string) string { return "127.0.0.1:" + itoa(lb.Ports[name]) }
	want := clusterspec.TFConfig{
		Cluster: map[string][]string{
			"chief":     {addr("mnist-chief-0")},
			"evaluator": {addr("mnist-evaluator-0")},
			"ps":        {addr("mnist-ps-0")},
			"worker":    {addr("mnist-worker-0"), addr("mnist-worker-1")},
		},
		Task:        clusterspec.Task{Type: "worker", Index: 1},
		Environment: "cloud",
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("TF_CONFIG (-want +got):\n%s", diff)
	}
	if _, err := clusterspec.TFConfigJSON(job, clusterspec.Replica{Type: "Worker"}, clusterspec.Loopback{}); err == nil {
		t.Error("missing port must be an error")
	}
}

func itoa(p int32) string { b, _ := json.Marshal(p); return string(b) }

func TestPodSpecTF(t *testing.T) {
	t.Parallel()
	job := fullTF(t, "")
	job.TFJob.Spec.TFReplicaSpecs["Worker"].RestartPolicy = trainingv1.RestartPolicyExitCode
	pod, err := clusterspec.PodSpec(job, clusterspec.Replica{Type: "Worker", Index: 0}, clusterspec.Kubernetes{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("ExitCode must be written as Never, got %q", pod.RestartPolicy)
	}
	tfc := pod.Containers[0]
	if len(tfc.Env) != 2 || tfc.Env[0].Name != "USER_VAR" || tfc.Env[1].Name != "TF_CONFIG" {
		t.Errorf("tensorflow env = %v", tfc.Env)
	}
	if len(pod.Containers[1].Env) != 0 {
		t.Errorf("sidecar must not get TF_CONFIG: %v", pod.Containers[1].Env)
	}
	if n := len(job.TFJob.Spec.TFReplicaSpecs["Worker"].Template.Spec.Containers[0].Env); n != 1 {
		t.Errorf("template mutated: %d env vars", n)
	}
}

const ptContainer = `{"template":{"spec":{"containers":[{"name":"pytorch","image":"img"},{"name":"sidecar","image":"s"}]}}}`

func envMap(env []corev1.EnvVar) []string {
	out := make([]string, len(env))
	for i, e := range env {
		out[i] = e.Name + "=" + e.Value
	}
	return out
}

func TestPyTorchEnv(t *testing.T) {
	t.Parallel()
	job := parse(t, `{"apiVersion":"kubeflow.org/v1","kind":"PyTorchJob","metadata":{"name":"pt","namespace":"ml"},
	  "spec":{"pytorchReplicaSpecs":{"Master":`+ptContainer+`,"Worker":{"replicas":2,`+ptContainer[1:]+`}}}`)
	tests := map[clusterspec.Replica][]string{
		{Type: "Master", Index: 0}: {"PYTHONUNBUFFERED=1", "MASTER_PORT=23456", "MASTER_ADDR=pt-master-0", "PET_MASTER_PORT=23456", "PET_MASTER_ADDR=pt-master-0", "WORLD_SIZE=3", "RANK=0", "PET_NODE_RANK=0", "PET_NNODES=3", "PET_NPROC_PER_NODE=auto"},
		{Type: "Worker", Index: 1}: {"PYTHONUNBUFFERED=1", "MASTER_PORT=23456", "MASTER_ADDR=pt-master-0", "PET_MASTER_PORT=23456", "PET_MASTER_ADDR=pt-master-0", "WORLD_SIZE=3", "RANK=2", "PET_NODE_RANK=2", "PET_NNODES=3", "PET_NPROC_PER_NODE=auto"},
	}
	for r, want := range tests {
		env, err := clusterspec.Env(job, r, clusterspec.Kubernetes{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, envMap(env)); diff != "" {
			t.Errorf("%s env (-want +got):\n%s", r, diff)
		}
	}
	pod, err := clusterspec.PodSpec(job, clusterspec.Replica{Type: "Worker", Index: 0}, clusterspec.Kubernetes{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pod.Containers[1].Env) != 10 || pod.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("every PyTorch container gets the env: %v, restart %q", pod.Containers[1].Env, pod.RestartPolicy)
	}
}

func TestPyTorchEnvNprocAndLoopback(t *testing.T) {
	t.Parallel()
	job := parse(t, `{"apiVersion":"kubeflow.org/v1","kind":"PyTorchJob","metadata":{"name":"pt"},
	  "spec":{"nprocPerNode":"4","pytorchReplicaSpecs":{"Master":`+ptContainer+`,"Worker":{"replicas":1,`+ptContainer[1:]+`}}}`)
	lb := clusterspec.Loopback{Ports: map[string]int32{"pt-master-0": 40001, "pt-worker-0": 40002}}
	env, err := clusterspec.Env(job, clusterspec.Replica{Type: "Worker"}, lb)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PYTHONUNBUFFERED=1", "MASTER_PORT=40001", "MASTER_ADDR=127.0.0.1", "PET_MASTER_PORT=40001", "PET_MASTER_ADDR=127.0.0.1", "WORLD_SIZE=8", "RANK=1", "PET_NODE_RANK=1", "PET_NNODES=2", "PET_NPROC_PER_NODE=4"}
	if diff := cmp.Diff(want, envMap(env)); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
}

func TestPyTorchElasticEnv(t *testing.T) {
	t.Parallel()
	job := parse(t, `{"apiVersion":"kubeflow.org/v1","kind":"PyTorchJob","metadata":{"name":"el"},
	  "spec":{"elasticPolicy":{"minReplicas":1,"maxReplicas":3,"rdzvId":"abc","maxRestarts":5,"standalone":true,
	    "rdzvConf":[{"key":"a","value":"1"},{"key":"b","value":"2"}]},
	    "pytorchReplicaSpecs":{"Worker":{"replicas":2,`+ptContainer[1:]+`}}}`)
	env, err := clusterspec.Env(job, clusterspec.Replica{Type: "Worker", Index: 1}, clusterspec.Kubernetes{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PYTHONUNBUFFERED=1", "PET_RDZV_ENDPOINT=el-worker-0:23456", "PET_RDZV_BACKEND=c10d", "PET_NNODES=1:3", "PET_MAX_RESTARTS=5", "PET_RDZV_ID=abc", "PET_RDZV_CONF=a=1,b=2", "PET_STANDALONE=", "PET_NPROC_PER_NODE=auto"}
	if diff := cmp.Diff(want, envMap(env)); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
}
