package jobspec

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// Validate checks a defaulted job and returns an *InvalidError listing every
// problem, each naming its field path, or nil. Rules (training-operator v1
// validation plus the checks Sluice needs before starting replicas):
//   - metadata.name is a DNS-1035 label; metadata.namespace a DNS-1123 label;
//   - the replica specs map is present; every spec has at least one
//     container, every container a name and an image, one container has the
//     default name (tensorflow / pytorch);
//   - replicas >= 0; Evaluator, Chief, Master at most 1 replica (PyTorchJob
//     Master exactly 1); not both Chief and Master;
//   - restartPolicy is Always, OnFailure, Never or ExitCode; cleanPodPolicy
//     All, Running or None; successPolicy "" or AllWorkers; backoffLimit,
//     activeDeadlineSeconds, ttlSecondsAfterFinished >= 0;
//   - PyTorchJob elasticPolicy: 1 <= minReplicas <= maxReplicas, a known
//     rdzvBackend, a Worker replica type; nprocPerNode auto|cpu|gpu|integer.
func Validate(job *trainingv1.Job) error {
	return validate(job, nil).err(job.Kind(), job.Meta().Name)
}

// validate checks job; decoded holds the problems already found while
// decoding, so that a replica spec dropped for a decode error is not
// reported a second time as a missing one.
func validate(job *trainingv1.Job, decoded problems) problems {
	var p problems
	meta := job.Meta()
	if meta.Name == "" {
		p.add("metadata.name", "required")
	} else if msgs := validation.IsDNS1035Label(meta.Name); len(msgs) > 0 {
		p.add("metadata.name", strings.Join(msgs, "; "))
	}
	if meta.Namespace != "" {
		if msgs := validation.IsDNS1123Label(meta.Namespace); len(msgs) > 0 {
			p.add("metadata.namespace", strings.Join(msgs, "; "))
		}
	}

	path := "spec.tfReplicaSpecs"
	if job.PyTorchJob != nil {
		path = "spec.pytorchReplicaSpecs"
	}
	specs := job.ReplicaSpecs()
	if specs == nil {
		p.add(path, "required")
	} else if len(specs) == 0 && len(decoded) == 0 {
		p.add(path, "must contain at least one replica type")
	}
	for _, rtype := range job.ReplicaTypes() {
		validateReplica(&p, job, path+"."+string(rtype), rtype, specs[rtype])
	}
	if job.TFJob != nil {
		if specs[trainingv1.ReplicaTypeChief] != nil && specs[trainingv1.ReplicaTypeMaster] != nil {
			p.add(path, "must not contain both Chief and Master")
		}
		sp := job.TFJob.Spec.SuccessPolicy
		if sp != nil && *sp != trainingv1.SuccessPolicyDefault && *sp != trainingv1.SuccessPolicyAllWorkers {
			p.add("spec.successPolicy", fmt.Sprintf("unsupported value %q (want \"\" or AllWorkers)", *sp))
		}
	}
	if pt := job.PyTorchJob; pt != nil {
		validatePyTorch(&p, pt)
	}
	validateRunPolicy(&p, job.RunPolicy())
	return p
}

func validateReplica(p *problems, job *trainingv1.Job, path string, rtype trainingv1.ReplicaType, spec *trainingv1.ReplicaSpec) {
	if spec == nil {
		p.add(path, "required")
		return
	}
	if spec.Replicas != nil {
		n := *spec.Replicas
		switch {
		case n < 0:
			p.add(path+".replicas", "must be >= 0")
		case rtype == trainingv1.ReplicaTypeMaster && job.PyTorchJob != nil && n != 1:
			p.add(path+".replicas", "must be 1 (a PyTorchJob has exactly one Master)")
		case n > 1 && (rtype == trainingv1.ReplicaTypeEvaluator || rtype == trainingv1.ReplicaTypeChief || rtype == trainingv1.ReplicaTypeMaster):
			p.add(path+".replicas", fmt.Sprintf("must be 0 or 1 for %s", rtype))
		}
	}
	switch spec.RestartPolicy {
	case trainingv1.RestartPolicyAlways, trainingv1.RestartPolicyOnFailure, trainingv1.RestartPolicyNever, trainingv1.RestartPolicyExitCode:
	default:
		p.add(path+".restartPolicy", fmt.Sprintf("unsupported value %q (want Always, OnFailure, Never or ExitCode)", spec.RestartPolicy))
	}
	cpath := path + ".template.spec.containers"
	containers := spec.Template.Spec.Containers
	if len(containers) == 0 {
		p.add(cpath, "required (at least one container)")
		return
	}
	hasDefault := false
	for i, c := range containers {
		ip := cpath + "[" + strconv.Itoa(i) + "]"
		if c.Name == "" {
			p.add(ip+".name", "required")
		}
		if c.Image == "" {
			p.add(ip+".image", "required")
		}
		if c.Name != job.DefaultContainerName() {
			continue
		}
		hasDefault = true
		for j, port := range c.Ports {
			if port.ContainerPort < 1 || port.ContainerPort > 65535 {
				p.add(ip+".ports["+strconv.Itoa(j)+"].containerPort", "must be between 1 and 65535")
			}
		}
	}
	if !hasDefault {
		p.add(cpath, fmt.Sprintf("must contain a container named %q", job.DefaultContainerName()))
	}
}

func validatePyTorch(p *problems, pt *trainingv1.PyTorchJob) {
	if n := pt.Spec.NprocPerNode; n != nil {
		switch *n {
		case "auto", "cpu", "gpu":
		default:
			if v, err := strconv.Atoi(*n); err != nil || v < 1 {
				p.add("spec.nprocPerNode", fmt.Sprintf("unsupported value %q (want auto, cpu, gpu or a positive integer)", *n))
			}
		}
	}
	ep := pt.Spec.ElasticPolicy
	if ep == nil {
		return
	}
	if pt.Spec.PyTorchReplicaSpecs[trainingv1.ReplicaTypeWorker] == nil {
		p.add("spec.pytorchReplicaSpecs.Worker", "required when spec.elasticPolicy is set")
	}
	if ep.MinReplicas != nil && *ep.MinReplicas < 1 {
		p.add("spec.elasticPolicy.minReplicas", "must be >= 1")
	}
	if ep.MinReplicas != nil && ep.MaxReplicas != nil && *ep.MaxReplicas < *ep.MinReplicas {
		p.add("spec.elasticPolicy.maxReplicas", "must be >= minReplicas")
	}
	if b := ep.RDZVBackend; b != nil {
		switch *b {
		case trainingv1.BackendC10D, trainingv1.BackendETCD, trainingv1.BackendETCDv2:
		default:
			p.add("spec.elasticPolicy.rdzvBackend", fmt.Sprintf("unsupported value %q (want c10d, etcd or etcd-v2)", *b))
		}
	}
	if ep.RDZVPort != nil && (*ep.RDZVPort < 1 || *ep.RDZVPort > 65535) {
		p.add("spec.elasticPolicy.rdzvPort", "must be between 1 and 65535")
	}
	if ep.MaxRestarts != nil && *ep.MaxRestarts < 0 {
		p.add("spec.elasticPolicy.maxRestarts", "must be >= 0")
	}
}

func validateRunPolicy(p *problems, rp *trainingv1.RunPolicy) {
	if c := rp.CleanPodPolicy; c != nil {
		switch *c {
		case trainingv1.CleanPodPolicyAll, trainingv1.CleanPodPolicyRunning, trainingv1.CleanPodPolicyNone:
		default:
			p.add("spec.runPolicy.cleanPodPolicy", fmt.Sprintf("unsupported value %q (want All, Running or None)", *c))
		}
	}
	if rp.BackoffLimit != nil && *rp.BackoffLimit < 0 {
		p.add("spec.runPolicy.backoffLimit", "must be >= 0")
	}
	if rp.ActiveDeadlineSeconds != nil && *rp.ActiveDeadlineSeconds < 0 {
		p.add("spec.runPolicy.activeDeadlineSeconds", "must be >= 0")
	}
	if rp.TTLSecondsAfterFinished != nil && *rp.TTLSecondsAfterFinished < 0 {
		p.add("spec.runPolicy.ttlSecondsAfterFinished", "must be >= 0")
	}
}
