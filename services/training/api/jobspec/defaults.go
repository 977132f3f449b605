package jobspec

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// SetDefaults applies training-operator v1's defaulting to a decoded job:
// metadata.namespace "default" when empty; replicas 1; restartPolicy Never
// (TFJob) or OnFailure (PyTorchJob); a port named tfjob-port=2222 /
// pytorchjob-port=23456 on the default container (the one named
// tensorflow/pytorch, else the first) unless present; cleanPodPolicy None;
// TFJob successPolicy ""; PyTorchJob nprocPerNode "auto" and elasticPolicy
// min/max replicas from each other or from the Worker replicas.
func SetDefaults(job *trainingv1.Job) {
	if job.Meta().Namespace == "" {
		job.Meta().Namespace = DefaultNamespace
	}
	rp := job.RunPolicy()
	if rp.CleanPodPolicy == nil {
		p := trainingv1.CleanPodPolicyNone
		rp.CleanPodPolicy = &p
	}
	restart := trainingv1.TFJobDefaultRestartPolicy
	if job.PyTorchJob != nil {
		restart = trainingv1.PyTorchJobDefaultRestartPolicy
	}
	for _, rtype := range job.ReplicaTypes() {
		spec := job.ReplicaSpecs()[rtype]
		if spec == nil {
			continue
		}
		if spec.Replicas == nil {
			one := int32(1)
			spec.Replicas = &one
		}
		if spec.RestartPolicy == "" {
			spec.RestartPolicy = restart
		}
		setDefaultPort(&spec.Template.Spec, job.DefaultContainerName(), job.DefaultPortName(), job.DefaultPort())
	}
	if tf := job.TFJob; tf != nil && tf.Spec.SuccessPolicy == nil {
		p := trainingv1.SuccessPolicyDefault
		tf.Spec.SuccessPolicy = &p
	}
	if pt := job.PyTorchJob; pt != nil {
		setElasticDefaults(pt)
		ep := pt.Spec.ElasticPolicy
		if pt.Spec.NprocPerNode == nil && (ep == nil || ep.NProcPerNode == nil) {
			n := trainingv1.PyTorchJobDefaultNprocPerNode
			pt.Spec.NprocPerNode = &n
		}
	}
}

func setDefaultPort(spec *corev1.PodSpec, container, portName string, port int32) {
	if len(spec.Containers) == 0 {
		return
	}
	idx := 0
	for i, c := range spec.Containers {
		if c.Name == container {
			idx = i
			break
		}
	}
	for _, p := range spec.Containers[idx].Ports {
		if p.Name == portName {
			return
		}
	}
	spec.Containers[idx].Ports = append(spec.Containers[idx].Ports, corev1.ContainerPort{Name: portName, ContainerPort: port})
}

func setElasticDefaults(pt *trainingv1.PyTorchJob) {
	ep := pt.Spec.ElasticPolicy
	if ep == nil {
		return
	}
	switch {
	case ep.MinReplicas != nil && ep.MaxReplicas != nil:
	case ep.MaxReplicas != nil:
		ep.MinReplicas = ptrCopy(ep.MaxReplicas)
	case ep.MinReplicas != nil:
		ep.MaxReplicas = ptrCopy(ep.MinReplicas)
	default:
		if w := pt.Spec.PyTorchReplicaSpecs[trainingv1.ReplicaTypeWorker]; w != nil && w.Replicas != nil {
			ep.MinReplicas = ptrCopy(w.Replicas)
			ep.MaxReplicas = ptrCopy(w.Replicas)
		}
	}
}

func ptrCopy[T any](p *T) *T {
	v := *p
	return &v
}
