package clusterspec

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// Environment variable names set by training-operator v1.
const (
	EnvTFConfig = "TF_CONFIG"

	EnvPythonUnbuffered = "PYTHONUNBUFFERED"
	EnvMasterAddr       = "MASTER_ADDR"
	EnvMasterPort       = "MASTER_PORT"
	EnvWorldSize        = "WORLD_SIZE"
	EnvRank             = "RANK"
	EnvPETMasterAddr    = "PET_MASTER_ADDR"
	EnvPETMasterPort    = "PET_MASTER_PORT"
	EnvPETNprocPerNode  = "PET_NPROC_PER_NODE"
	EnvPETNodeRank      = "PET_NODE_RANK"
	EnvPETNNodes        = "PET_NNODES"
	EnvPETRDZVEndpoint  = "PET_RDZV_ENDPOINT"
	EnvPETRDZVBackend   = "PET_RDZV_BACKEND"
	EnvPETRDZVID        = "PET_RDZV_ID"
	EnvPETRDZVConf      = "PET_RDZV_CONF"
	EnvPETStandalone    = "PET_STANDALONE"
	EnvPETMaxRestarts   = "PET_MAX_RESTARTS"
)

// TFConfig is the TF_CONFIG document: the cluster of every replica type
// present (lower-case type -> "host:port" by index, including evaluator),
// this replica's task, and "environment":"cloud".
type TFConfig struct {
	Cluster     map[string][]string `json:"cluster"`
	Task        Task                `json:"task"`
	Environment string              `json:"environment"`
}

// Task is this replica's place in the cluster.
type Task struct {
	Type  string `json:"type"`
	Index int    `json:"index"`
}

// SparseTFConfig is the TF_CONFIG emitted with enableDynamicWorker, under
// the key "cluster" as training-operator v1.7+ writes it (v1.9
// tensorflow.go; earlier releases wrote "sparseCluster", which TensorFlow's
// TFConfigClusterResolver does not read): a worker sees every PS and only
// itself, a PS only itself, other types neither.
type SparseTFConfig struct {
	Cluster SparseCluster `json:"cluster"`
	Task    Task          `json:"task"`
}

// SparseCluster is the cluster part of SparseTFConfig; worker is keyed by
// index.
type SparseCluster struct {
	Worker map[int32]string `json:"worker"`
	PS     []string         `json:"ps"`
}

// IsDistributed reports whether a TFJob has more than one replica in total
// (a replica type without replicas counts one, as in training-operator).
// TF_CONFIG is set only on distributed jobs.
func IsDistributed(job *trainingv1.Job) bool {
	n := int32(0)
	for _, t := range job.ReplicaTypes() {
		n += job.Replicas(t)
	}
	return n != 1
}

// ClusterSpec returns the TF_CONFIG cluster of job: every replica type
// present, lower-cased, mapped to its replicas' "host:port" (an empty list
// for a type with zero replicas).
func ClusterSpec(job *trainingv1.Job, net Network) (map[string][]string, error) {
	cluster := make(map[string][]string)
	for _, t := range job.ReplicaTypes() {
		n := job.Replicas(t)
		addrs := make([]string, 0, max(n, 0))
		for i := int32(0); i < n; i++ {
			host, port, err := net.Endpoint(job, Replica{Type: t, Index: i}, true)
			if err != nil {
				return nil, err
			}
			addrs = append(addrs, host+":"+strconv.FormatInt(int64(port), 10))
		}
		cluster[strings.ToLower(string(t))] = addrs
	}
	return cluster, nil
}

// TFConfigJSON returns the TF_CONFIG value for replica r of a TFJob
// (encoding/json sorts the cluster keys), or "" when the job is not
// distributed.
func TFConfigJSON(job *trainingv1.Job, r Replica, net Network) (string, error) {
	if job.TFJob == nil {
		return "", fmt.Errorf("clusterspec: TF_CONFIG needs a TFJob, got %s", job.Kind())
	}
	if !IsDistributed(job) {
		return "", nil
	}
	cluster, err := ClusterSpec(job, net)
	if err != nil {
		return "", err
	}
	rt := strings.ToLower(string(r.Type))
	task := Task{Type: rt, Index: int(r.Index)}
	var b []byte
	if job.TFJob.Spec.EnableDynamicWorker {
		sparse := SparseCluster{Worker: map[int32]string{}, PS: []string{}}
		switch r.Type {
		case trainingv1.ReplicaTypePS:
			sparse.PS = append(sparse.PS, cluster[rt][r.Index])
		case trainingv1.ReplicaTypeWorker:
			sparse.PS = cluster["ps"]
			sparse.Worker[r.Index] = cluster[rt][r.Index]
		}
		b, err = json.Marshal(SparseTFConfig{Cluster: sparse, Task: task})
	} else {
		b, err = json.Marshal(TFConfig{Cluster: cluster, Task: task, Environment: "cloud"})
	}
	if err != nil {
		return "", fmt.Errorf("clusterspec: encode TF_CONFIG: %w", err)
	}
	return string(b), nil
}

// Env returns the variables training-operator adds for replica r, in the
// operator's order. For a TFJob they go on the default container only
// (TF_CONFIG, absent for a single-replica job); for a PyTorchJob on every
// container. Use PodSpec to apply them.
func Env(job *trainingv1.Job, r Replica, net Network) ([]corev1.EnvVar, error) {
	switch {
	case job.TFJob != nil:
		cfg, err := TFConfigJSON(job, r, net)
		if err != nil || cfg == "" {
			return nil, err
		}
		return []corev1.EnvVar{{Name: EnvTFConfig, Value: cfg}}, nil
	case job.PyTorchJob != nil:
		return pytorchEnv(job, r, net)
	}
	return nil, fmt.Errorf("clusterspec: empty job")
}

// pytorchEnv is training-operator v1.9's setPodEnv for one container:
// PYTHONUNBUFFERED=1; with a Master, MASTER_PORT/MASTER_ADDR,
// PET_MASTER_PORT/PET_MASTER_ADDR, WORLD_SIZE (replicas x integer
// nprocPerNode), RANK and PET_NODE_RANK; the elastic variables with an
// elasticPolicy, else PET_NNODES; and finally PET_NPROC_PER_NODE for every
// replica shape (worker-only and elastic jobs included).
func pytorchEnv(job *trainingv1.Job, r Replica, net Network) ([]corev1.EnvVar, error) {
	spec := &job.PyTorchJob.Spec
	env := []corev1.EnvVar{{Name: EnvPythonUnbuffered, Value: "1"}}
	total := int32(0)
	for _, t := range job.ReplicaTypes() {
		total += job.Replicas(t)
	}
	if spec.PyTorchReplicaSpecs[trainingv1.ReplicaTypeMaster] != nil {
		host, port, err := net.Endpoint(job, Replica{Type: trainingv1.ReplicaTypeMaster}, false)
		if err != nil {
			return nil, err
		}
		p := strconv.FormatInt(int64(port), 10)
		rank := int(r.Index)
		if r.Type == trainingv1.ReplicaTypeWorker {
			rank++
		}
		env = append(env,
			corev1.EnvVar{Name: EnvMasterPort, Value: p},
			corev1.EnvVar{Name: EnvMasterAddr, Value: host},
			corev1.EnvVar{Name: EnvPETMasterPort, Value: p},
			corev1.EnvVar{Name: EnvPETMasterAddr, Value: host},
			corev1.EnvVar{Name: EnvWorldSize, Value: strconv.Itoa(int(total) * nprocPerNodeInt(spec.NprocPerNode))},
			corev1.EnvVar{Name: EnvRank, Value: strconv.Itoa(rank)},
			corev1.EnvVar{Name: EnvPETNodeRank, Value: strconv.Itoa(rank)},
		)
	}
	if ep := spec.ElasticPolicy; ep != nil {
		elastic, err := elasticEnv(job, ep, net)
		if err != nil {
			return nil, err
		}
		env = append(env, elastic...)
	} else {
		env = append(env, corev1.EnvVar{Name: EnvPETNNodes, Value: strconv.Itoa(int(total))})
	}
	if spec.NprocPerNode != nil {
		env = append(env, corev1.EnvVar{Name: EnvPETNprocPerNode, Value: *spec.NprocPerNode})
	}
	return env, nil
}

// nprocPerNodeInt is nprocPerNode as an integer, 1 when unset or not an
// integer (auto, cpu, gpu).
func nprocPerNodeInt(n *string) int {
	if n == nil {
		return 1
	}
	if v, err := strconv.Atoi(*n); err == nil {
		return v
	}
	return 1
}

func elasticEnv(job *trainingv1.Job, ep *trainingv1.ElasticPolicy, net Network) ([]corev1.EnvVar, error) {
	var host string
	var port int32
	worker0 := Replica{Type: trainingv1.ReplicaTypeWorker}
	if ep.RDZVHost != nil {
		host = *ep.RDZVHost
	}
	if ep.RDZVHost == nil || ep.RDZVPort == nil {
		h, p, err := net.Endpoint(job, worker0, false)
		if err != nil {
			return nil, err
		}
		if ep.RDZVHost == nil {
			host = h
		}
		port = p
	}
	if ep.RDZVPort != nil {
		port = *ep.RDZVPort
	}
	backend := trainingv1.BackendC10D
	if ep.RDZVBackend != nil {
		backend = *ep.RDZVBackend
	}
	var nnodes string
	if ep.MinReplicas == nil && ep.MaxReplicas == nil {
		nnodes = strconv.Itoa(int(job.Replicas(trainingv1.ReplicaTypeWorker)))
	} else {
		nnodes = fmt.Sprintf("%d:%d", deref(ep.MinReplicas), deref(ep.MaxReplicas))
	}
	env := []corev1.EnvVar{
		{Name: EnvPETRDZVEndpoint, Value: host + ":" + strconv.FormatInt(int64(port), 10)},
		{Name: EnvPETRDZVBackend, Value: string(backend)},
		{Name: EnvPETNNodes, Value: nnodes},
	}
	if ep.MaxRestarts != nil {
		env = append(env, corev1.EnvVar{Name: EnvPETMaxRestarts, Value: strconv.Itoa(int(*ep.MaxRestarts))})
	}
	if ep.NProcPerNode != nil {
		env = append(env, corev1.EnvVar{Name: EnvPETNprocPerNode, Value: strconv.Itoa(int(*ep.NProcPerNode))})
	}
	if ep.RDZVID != nil {
		env = append(env, corev1.EnvVar{Name: EnvPETRDZVID, Value: *ep.RDZVID})
	}
	if len(ep.RDZVConf) > 0 {
		kv := make([]string, len(ep.RDZVConf))
		for i, c := range ep.RDZVConf {
			kv[i] = c.Key + "=" + c.Value
		}
		env = append(env, corev1.EnvVar{Name: EnvPETRDZVConf, Value: strings.Join(kv, ",")})
	}
	if ep.Standalone != nil && *ep.Standalone {
		env = append(env, corev1.EnvVar{Name: EnvPETStandalone, Value: ""})
	}
	return env, nil
}

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// PodSpec returns a copy of r's pod template spec as training-operator
// would run it: the distribution environment appended to the containers it
// applies to (after the user's own variables), and the pod restartPolicy
// taken from the replica spec (ExitCode written as Never, since the
// controller, not the kubelet, restarts those).
func PodSpec(job *trainingv1.Job, r Replica, net Network) (corev1.PodSpec, error) {
	spec := job.ReplicaSpecs()[r.Type]
	if spec == nil {
		return corev1.PodSpec{}, fmt.Errorf("clusterspec: job %s has no replica type %s", job.Key(), r.Type)
	}
	pod := *spec.Template.Spec.DeepCopy()
	env, err := Env(job, r, net)
	if err != nil {
		return corev1.PodSpec{}, err
	}
	for i := range pod.Containers {
		c := &pod.Containers[i]
		if job.TFJob != nil && c.Name != job.DefaultContainerName() {
			continue
		}
		c.Env = append(c.Env, env...)
		if job.TFJob != nil {
			break
		}
	}
	if spec.RestartPolicy == trainingv1.RestartPolicyExitCode {
		pod.RestartPolicy = corev1.RestartPolicyNever
	} else {
		pod.RestartPolicy = corev1.RestartPolicy(spec.RestartPolicy)
	}
	return pod, nil
}
