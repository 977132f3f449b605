package trainingv1

import (
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Job is a training job of either kind. Exactly one field is set. It is the
// unit the training service passes around (workflow input, REST bodies), so
// it serialises as {"tfJob": {...}} or {"pyTorchJob": {...}}.
type Job struct {
	TFJob      *TFJob      `json:"tfJob,omitempty"`
	PyTorchJob *PyTorchJob `json:"pyTorchJob,omitempty"`
}

// tfReplicaOrder and pytorchReplicaOrder fix the iteration order of replica
// types so that callers (including Temporal workflows) never range over maps.
var (
	tfReplicaOrder      = []ReplicaType{ReplicaTypeChief, ReplicaTypeMaster, ReplicaTypePS, ReplicaTypeWorker, ReplicaTypeEvaluator}
	pytorchReplicaOrder = []ReplicaType{ReplicaTypeMaster, ReplicaTypeWorker}
)

// ReplicaTypesOf returns the replica types a kind supports, in canonical order.
func ReplicaTypesOf(kind string) []ReplicaType {
	switch kind {
	case KindTFJob:
		return append([]ReplicaType(nil), tfReplicaOrder...)
	case KindPyTorchJob:
		return append([]ReplicaType(nil), pytorchReplicaOrder...)
	}
	return nil
}

// Kind returns KindTFJob or KindPyTorchJob ("" for an empty Job).
func (j *Job) Kind() string {
	switch {
	case j.TFJob != nil:
		return KindTFJob
	case j.PyTorchJob != nil:
		return KindPyTorchJob
	}
	return ""
}

// Meta returns the job's object metadata.
func (j *Job) Meta() *metav1.ObjectMeta {
	switch {
	case j.TFJob != nil:
		return &j.TFJob.ObjectMeta
	case j.PyTorchJob != nil:
		return &j.PyTorchJob.ObjectMeta
	}
	return &metav1.ObjectMeta{}
}

// Key returns "<namespace>/<name>", the job's business key.
func (j *Job) Key() string {
	m := j.Meta()
	return m.Namespace + "/" + m.Name
}

// ReplicaSpecs returns tfReplicaSpecs or pytorchReplicaSpecs.
func (j *Job) ReplicaSpecs() map[ReplicaType]*ReplicaSpec {
	switch {
	case j.TFJob != nil:
		return j.TFJob.Spec.TFReplicaSpecs
	case j.PyTorchJob != nil:
		return j.PyTorchJob.Spec.PyTorchReplicaSpecs
	}
	return nil
}

// ReplicaTypes returns the replica types present in the job, in canonical
// order (TFJob: Chief, Master, PS, Worker, Evaluator; PyTorchJob: Master,
// Worker).
func (j *Job) ReplicaTypes() []ReplicaType {
	specs := j.ReplicaSpecs()
	var out []ReplicaType
	for _, t := range ReplicaTypesOf(j.Kind()) {
		if _, ok := specs[t]; ok {
			out = append(out, t)
		}
	}
	return out
}

// Replicas returns the replica count of rtype (0 when absent; 1 when unset).
func (j *Job) Replicas(rtype ReplicaType) int32 {
	s := j.ReplicaSpecs()[rtype]
	if s == nil {
		return 0
	}
	if s.Replicas == nil {
		return 1
	}
	return *s.Replicas
}

// RunPolicy returns the job's run policy.
func (j *Job) RunPolicy() *RunPolicy {
	switch {
	case j.TFJob != nil:
		return &j.TFJob.Spec.RunPolicy
	case j.PyTorchJob != nil:
		return &j.PyTorchJob.Spec.RunPolicy
	}
	return &RunPolicy{}
}

// Status returns the job's status.
func (j *Job) Status() *JobStatus {
	switch {
	case j.TFJob != nil:
		return &j.TFJob.Status
	case j.PyTorchJob != nil:
		return &j.PyTorchJob.Status
	}
	return &JobStatus{}
}

// DefaultContainerName is the container that carries the distribution
// environment and whose exit code decides ExitCode restarts:
// "tensorflow" for TFJob, "pytorch" for PyTorchJob.
func (j *Job) DefaultContainerName() string {
	if j.PyTorchJob != nil {
		return PyTorchJobDefaultContainerName
	}
	return TFJobDefaultContainerName
}

// DefaultPortName is the named port of the default container:
// "tfjob-port" or "pytorchjob-port".
func (j *Job) DefaultPortName() string {
	if j.PyTorchJob != nil {
		return PyTorchJobDefaultPortName
	}
	return TFJobDefaultPortName
}

// DefaultPort is the port used when the default container declares none:
// 2222 for TFJob, 23456 for PyTorchJob.
func (j *Job) DefaultPort() int32 {
	if j.PyTorchJob != nil {
		return PyTorchJobDefaultPort
	}
	return TFJobDefaultPort
}

// Port returns the default container's named port for rtype, or
// DefaultPort when the replica type or port is absent.
func (j *Job) Port(rtype ReplicaType) int32 {
	s := j.ReplicaSpecs()[rtype]
	if s == nil {
		return j.DefaultPort()
	}
	for _, c := range s.Template.Spec.Containers {
		if c.Name != j.DefaultContainerName() {
			continue
		}
		for _, p := range c.Ports {
			if p.Name == j.DefaultPortName() {
				return p.ContainerPort
			}
		}
	}
	return j.DefaultPort()
}

// ReplicaName returns the pod/service name of a replica,
// "<job>-<lower(rtype)>-<index>" with any "/" replaced by "-", per
// training-operator's GenGeneralName.
func ReplicaName(jobName string, rtype ReplicaType, index int32) string {
	n := jobName + "-" + strings.ToLower(string(rtype)) + "-" + strconv.FormatInt(int64(index), 10)
	return strings.ReplaceAll(n, "/", "-")
}

// DeepCopy returns a copy of s sharing no memory with it.
func (s *ReplicaSpec) DeepCopy() *ReplicaSpec {
	if s == nil {
		return nil
	}
	out := &ReplicaSpec{RestartPolicy: s.RestartPolicy, Template: *s.Template.DeepCopy()}
	if s.Replicas != nil {
		n := *s.Replicas
		out.Replicas = &n
	}
	return out
}

// ExportDir returns the exportDir environment variable (the name the seed's and Kubeflow's TFJob examples
// use for where the model is exported) of the coordinating replica's default container: Chief, else Master,
// else Worker. It is "" when unset.
func (j *Job) ExportDir() string {
	for _, t := range []ReplicaType{ReplicaTypeChief, ReplicaTypeMaster, ReplicaTypeWorker} {
		spec := j.ReplicaSpecs()[t]
		if spec == nil || j.Replicas(t) == 0 {
			continue
		}
		for _, c := range spec.Template.Spec.Containers {
			if c.Name != j.DefaultContainerName() {
				continue
			}
			for _, e := range c.Env {
				if e.Name == "exportDir" {
					return e.Value
				}
			}
		}
		return ""
	}
	return ""
}
