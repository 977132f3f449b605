package clusterspec_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-ml/sluice/services/training/internal/clusterspec"
)

// TestUpstreamV19Vectors re-expresses the environment training-operator
// v1.9 gives replicas (its pytorch envvar/elastic and tensorflow TF_CONFIG
// controller tests, and the cases pt-worker-only-nproc-per-node and
// tf-sparse-cluster-key) as a table: every replica shape, on the
// Kubernetes network (service names, declared ports).
func TestUpstreamV19Vectors(t *testing.T) {
	t.Parallel()
	ptWorker := func(cmd string) string {
		return `{"template":{"spec":{"containers":[{"name":"pytorch","image":"example.invalid/printenv:1","command":["sh","-c","` + cmd + `"]}]}}}`
	}
	tfReplica := func(n int) string {
		return `{"replicas":` + string(rune('0'+n)) + `,"template":{"spec":{"containers":[{"name":"tensorflow","image":"example.invalid/printenv:1"}]}}}`
	}
	tests := map[string]struct {
		doc     string
		replica clusterspec.Replica
		want    []string
	}{
		"worker-only PyTorchJob gets PET_NNODES, PET_NPROC_PER_NODE=auto and PYTHONUNBUFFERED=1": {
			doc: `{"apiVersion":"kubeflow.org/v1","kind":"PyTorchJob","metadata":{"name":"pt-w2-only","namespace":"default"},
			  "spec":{"pytorchReplicaSpecs":{"Worker":{"replicas":2,` + ptWorker("env")[1:] + `}}}`,
			replica: clusterspec.Replica{Type: "Worker", Index: 0},
			want:    []string{"PYTHONUNBUFFERED=1", "PET_NNODES=2", "PET_NPROC_PER_NODE=auto"},
		},
		"elastic PyTorchJob gets the six elastic variables, then PET_NPROC_PER_NODE": {
			doc: `{"apiVersion":"kubeflow.org/v1","kind":"PyTorchJob","metadata":{"name":"pt-elastic-full","namespace":"default"},
			  "spec":{"elasticPolicy":{"minReplicas":1,"maxReplicas":3,"rdzvBackend":"c10d","rdzvPort":1234,"rdzvHost":"localhost","rdzvId":"rdzv-id",
			    "rdzvConf":[{"key":"rdzv-conf-name","value":"rdzv-conf-value"},{"key":"rdzv-conf-name-1","value":"rdzv-conf-value-1"}],"maxRestarts":3},
			    "pytorchReplicaSpecs":{"Worker":{"replicas":1,` + ptWorker("env")[1:] + `}}}`,
			replica: clusterspec.Replica{Type: "Worker", Index: 0},
			want: []string{"PYTHONUNBUFFERED=1", "PET_RDZV_ENDPOINT=localhost:1234", "PET_RDZV_BACKEND=c10d", "PET_NNODES=1:3", "PET_MAX_RESTARTS=3",
				"PET_RDZV_ID=rdzv-id", "PET_RDZV_CONF=rdzv-conf-name=rdzv-conf-value,rdzv-conf-name-1=rdzv-conf-value-1", "PET_NPROC_PER_NODE=auto"},
		},
		"elastic PyTorchJob without rdzv host/port rendezvouses at worker-0's service and port; min=max=worker replicas": {
			doc: `{"apiVersion":"kubeflow.org/v1","kind":"PyTorchJob","metadata":{"name":"el","namespace":"default"},
			  "spec":{"elasticPolicy":{},"pytorchReplicaSpecs":{"Worker":{"replicas":3,` + ptWorker("env")[1:] + `}}}`,
			replica: clusterspec.Replica{Type: "Worker", Index: 2},
			want:    []string{"PYTHONUNBUFFERED=1", "PET_RDZV_ENDPOINT=el-worker-0:23456", "PET_RDZV_BACKEND=c10d", "PET_NNODES=3:3", "PET_NPROC_PER_NODE=auto"},
		},
		"master and workers with an integer nprocPerNode multiply WORLD_SIZE": {
			doc: `{"apiVersion":"kubeflow.org/v1","kind":"PyTorchJob","metadata":{"name":"pt","namespace":"default"},
			  "spec":{"nprocPerNode":"2","pytorchReplicaSpecs":{"Master":` + ptWorker("env") + `,"Worker":{"replicas":3,` + ptWorker("env")[1:] + `}}}`,
			replica: clusterspec.Replica{Type: "Worker", Index: 2},
			want: []string{"PYTHONUNBUFFERED=1", "MASTER_PORT=23456", "MASTER_ADDR=pt-master-0", "PET_MASTER_PORT=23456", "PET_MASTER_ADDR=pt-master-0",
				"WORLD_SIZE=8", "RANK=3", "PET_NODE_RANK=3", "PET_NNODES=4", "PET_NPROC_PER_NODE=2"},
		},
		"sparse TF_CONFIG of a worker uses the key cluster and lists every PS": {
			doc: `{"apiVersion":"kubeflow.org/v1","kind":"TFJob","metadata":{"name":"tf-sparse-ps2-w2","namespace":"default"},
			  "spec":{"enableDynamicWorker":true,"tfReplicaSpecs":{"PS":` + tfReplica(2) + `,"Worker":` + tfReplica(2) + `}}}`,
			replica: clusterspec.Replica{Type: "Worker", Index: 1},
			want: []string{`TF_CONFIG={"cluster":{"worker":{"1":"tf-sparse-ps2-w2-worker-1.default.svc:2222"},` +
				`"ps":["tf-sparse-ps2-w2-ps-0.default.svc:2222","tf-sparse-ps2-w2-ps-1.default.svc:2222"]},"task":{"type":"worker","index":1}}`},
		},
		"sparse TF_CONFIG of a PS lists only itself": {
			doc: `{"apiVersion":"kubeflow.org/v1","kind":"TFJob","metadata":{"name":"tf-sparse-ps2-w2","namespace":"default"},
			  "spec":{"enableDynamicWorker":true,"tfReplicaSpecs":{"PS":` + tfReplica(2) + `,"Worker":` + tfReplica(2) + `}}}`,
			replica: clusterspec.Replica{Type: "PS", Index: 1},
			want:    []string{`TF_CONFIG={"cluster":{"worker":{},"ps":["tf-sparse-ps2-w2-ps-1.default.svc:2222"]},"task":{"type":"ps","index":1}}`},
		},
		"dense TF_CONFIG lists every type, the declared tfjob-port and environment cloud": {
			doc: `{"apiVersion":"kubeflow.org/v1","kind":"TFJob","metadata":{"name":"d","namespace":"ns"},
			  "spec":{"tfReplicaSpecs":{"PS":{"replicas":1,"template":{"spec":{"containers":[{"name":"tensorflow","image":"i","ports":[{"name":"tfjob-port","containerPort":3333}]}]}}},
			    "Worker":` + tfReplica(1) + `}}}`,
			replica: clusterspec.Replica{Type: "Worker", Index: 0},
			want: []string{`TF_CONFIG={"cluster":{"ps":["d-ps-0.ns.svc:3333"],"worker":["d-worker-0.ns.svc:2222"]},` +
				`"task":{"type":"worker","index":0},"environment":"cloud"}`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			job := parse(t, tc.doc)
			env, err := clusterspec.Env(job, tc.replica, clusterspec.Kubernetes{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, envMap(env)); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
		})
	}
}
