package expspec

import (
	"bytes"
	"encoding/json"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// Katib's default success condition for a batch/v1 Job trial (katib v1beta1 experiment defaults): the
// Job's Complete condition (its failure condition is Failed, as for Kubeflow jobs).
const (
	jobSuccessCondition = `status.conditions.#(type=="Complete")#|#(status=="True")#`
	// jobDefaultBackoffLimit is Kubernetes' default spec.backoffLimit of a batch/v1 Job.
	jobDefaultBackoffLimit = int32(6)
)

// isBatchJob reports whether a trialSpec head is a Kubernetes batch/v1 Job.
func isBatchJob(apiVersion, kind string) bool { return apiVersion == "batch/v1" && kind == "Job" }

// JobConditionType maps the condition type a trial template tests to the one the training service sets
// on the trial's job: a batch Job's Complete is the training job's Succeeded (Failed is Failed).
func JobConditionType(trialKind, typ string) string {
	if trialKind == "Job" && typ == "Complete" {
		return string(trainingv1.JobSucceeded)
	}
	return typ
}

// batchJobAsTFJob converts a rendered batch/v1 Job into the single-replica TFJob the training service
// runs for it: one Worker replica with the Job's pod template (its primary container — named
// primaryContainer, or the only one — renamed to the TFJob default "tensorflow" so that its exit code
// decides), restarted on failure up to spec.backoffLimit times (Kubernetes' default 6; a Job replaces a
// failed pod whatever its restartPolicy), with activeDeadlineSeconds and suspend carried into runPolicy
// (ttlSecondsAfterFinished is not: the trial's job is kept until its metrics are read and is deleted
// with the experiment). A Job of more than one completion or parallel pod is refused: a trial
// is a single process. The replica also gets TF_CONFIG, which a plain program ignores.
func batchJobAsTFJob(doc []byte, primaryContainer string) ([]byte, error) {
	const f = "spec.trialTemplate.trialSpec"
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	var j batchv1.Job
	if err := dec.Decode(&j); err != nil {
		if inv, ok := locate(decodeError(err), doc).(*InvalidError); ok {
			for i := range inv.Errors {
				inv.Errors[i].Field = f + "." + inv.Errors[i].Field
			}
			return nil, inv
		}
		return nil, err
	}
	var errs []FieldError
	if c := j.Spec.Completions; c != nil && *c != 1 {
		errs = append(errs, FieldError{f + ".spec.completions", fmt.Sprintf("a trial is one process: must be 1, got %d", *c)})
	}
	if p := j.Spec.Parallelism; p != nil && *p != 1 {
		errs = append(errs, FieldError{f + ".spec.parallelism", fmt.Sprintf("a trial is one process: must be 1, got %d", *p)})
	}
	pod := j.Spec.Template
	cs := pod.Spec.Containers
	idx := -1
	for i, c := range cs {
		if c.Name == primaryContainer || (primaryContainer == "" && len(cs) == 1) {
			idx = i
		}
	}
	switch {
	case len(cs) == 0:
		errs = append(errs, FieldError{f + ".spec.template.spec.containers", "required (at least one container)"})
	case idx < 0:
		errs = append(errs, FieldError{"spec.trialTemplate.primaryContainerName", fmt.Sprintf("%q is not a container of the trial Job", primaryContainer)})
	}
	if rp := pod.Spec.RestartPolicy; rp != "" && rp != corev1.RestartPolicyNever && rp != corev1.RestartPolicyOnFailure {
		errs = append(errs, FieldError{f + ".spec.template.spec.restartPolicy", fmt.Sprintf("a Job's pods restart Never or OnFailure, got %q", rp)})
	}
	if len(errs) > 0 {
		return nil, &InvalidError{errs}
	}
	cs[idx].Name = trainingv1.TFJobDefaultContainerName
	pod.Spec.RestartPolicy = ""
	backoff := jobDefaultBackoffLimit
	if j.Spec.BackoffLimit != nil {
		backoff = *j.Spec.BackoffLimit
	}
	one := int32(1)
	tf := trainingv1.TFJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: trainingv1.GroupVersion, Kind: trainingv1.KindTFJob},
		ObjectMeta: metav1.ObjectMeta{Name: j.Name, Namespace: j.Namespace, Labels: j.Labels, Annotations: j.Annotations},
		Spec: trainingv1.TFJobSpec{
			RunPolicy: trainingv1.RunPolicy{BackoffLimit: &backoff, ActiveDeadlineSeconds: j.Spec.ActiveDeadlineSeconds, Suspend: j.Spec.Suspend},
			TFReplicaSpecs: map[trainingv1.ReplicaType]*trainingv1.ReplicaSpec{
				trainingv1.ReplicaTypeWorker: {Replicas: &one, Template: pod, RestartPolicy: trainingv1.RestartPolicyOnFailure},
			},
		},
	}
	return json.Marshal(tf)
}
