package expspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluice-ml/sluice/services/training/api/jobspec"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
)

// TrialJob is a trial's rendered training job.
type TrialJob struct {
	// Kind is the trialSpec's kind: TFJob, PyTorchJob or Job (a batch/v1 Job, run as a one-Worker TFJob).
	Kind string
	// JobKind is the kind of the training job that runs the trial: TFJob or PyTorchJob (a batch Job's).
	JobKind string
	// Document is the kubeflow.org/v1 job as JSON, named after the trial, in the experiment's namespace:
	// the data of the training service's io.sluice.training.job.requested.v1. The training service's
	// own parser (services/training/api/jobspec) accepted it: defaults and validation included.
	Document []byte
	// PrimaryReplica is the log name ("worker-0") of the replica whose output the StdOut collector reads.
	PrimaryReplica string
}

// RenderTrial substitutes the trial's assignments for ${trialParameters.x} in the experiment's trial
// template (as Katib does, textually) and names the job after the trial, in the experiment's namespace.
func RenderTrial(e tuningv1.Experiment, trialName string, assignments []tuningv1.ParameterAssignment) (TrialJob, error) {
	values := map[string]string{}
	for _, a := range assignments {
		values[a.Name] = a.Value
	}
	t := e.Spec.TrialTemplate
	byTrialParam := map[string]string{}
	for _, tp := range t.TrialParameters {
		if v, ok := values[tp.Reference]; ok {
			byTrialParam[tp.Name] = v
		}
	}
	return renderJob(t, trialName, e.Metadata.Name, e.Metadata.Namespace, byTrialParam)
}

// TrialJobKind is the kind of the training job a trial of template t runs as: the trialSpec's TFJob or
// PyTorchJob, TFJob for a batch/v1 Job ("" when the trialSpec names none of them).
func TrialJobKind(t *tuningv1.TrialTemplate) string {
	if t == nil {
		return ""
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if json.Unmarshal(t.TrialSpec, &head) != nil {
		return ""
	}
	if isBatchJob(head.APIVersion, head.Kind) {
		return trainingv1.KindTFJob
	}
	return trainingv1.KindOf(head.Kind)
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

func renderJob(t *tuningv1.TrialTemplate, trialName, experiment, ns string, values map[string]string) (TrialJob, error) {
	const f = "spec.trialTemplate.trialSpec"
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(t.TrialSpec, &head); err != nil {
		return TrialJob{}, &InvalidError{[]FieldError{{f, "must be a TFJob, PyTorchJob or batch/v1 Job object: " + err.Error()}}}
	}
	batch := isBatchJob(head.APIVersion, head.Kind)
	if !batch && (head.APIVersion != "kubeflow.org/v1" || (head.Kind != trainingv1.KindTFJob && head.Kind != trainingv1.KindPyTorchJob)) {
		return TrialJob{}, &InvalidError{[]FieldError{{f + ".kind", fmt.Sprintf("trials run kubeflow.org/v1 TFJob or PyTorchJob, or a batch/v1 Job, got %s %s", head.APIVersion, head.Kind)}}}
	}
	meta := func(ref string) (string, bool) {
		switch ref {
		case "${trialSpec.Name}":
			return trialName, true
		case "${trialSpec.Namespace}":
			return ns, true
		case "${trialSpec.Kind}":
			return head.Kind, true
		case "${trialSpec.APIVersion}":
			return head.APIVersion, true
		}
		if k, ok := strings.CutPrefix(ref, "${trialSpec.Labels["); ok {
			return head.Metadata.Labels[strings.TrimSuffix(k, "]}")], true
		}
		if k, ok := strings.CutPrefix(ref, "${trialSpec.Annotations["); ok {
			return head.Metadata.Annotations[strings.TrimSuffix(k, "]}")], true
		}
		return "", false
	}
	doc := string(t.TrialSpec)
	for _, tp := range t.TrialParameters {
		v, ok := values[tp.Name]
		if mv, isMeta := meta(tp.Reference); isMeta {
			v, ok = mv, true
		}
		if !ok {
			return TrialJob{}, fmt.Errorf("expspec: no value for trial parameter %s (reference %s)", tp.Name, tp.Reference)
		}
		doc = strings.ReplaceAll(doc, "${trialParameters."+tp.Name+"}", jsonEscape(v))
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(doc), &obj); err != nil {
		return TrialJob{}, &InvalidError{[]FieldError{{f, "after substitution: " + err.Error()}}}
	}
	md, _ := obj["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
	}
	md["name"], md["namespace"] = trialName, ns
	labels, _ := md["labels"].(map[string]any)
	if labels == nil {
		labels = map[string]any{}
	}
	labels["katib.kubeflow.org/experiment"] = experiment
	labels["katib.kubeflow.org/trial"] = trialName
	md["labels"] = labels
	obj["metadata"] = md
	out, err := json.Marshal(obj)
	if err != nil {
		return TrialJob{}, err
	}
	kind := head.Kind
	if batch {
		if out, err = batchJobAsTFJob(out, t.PrimaryContainerName); err != nil {
			return TrialJob{}, err
		}
		head.Kind = trainingv1.KindTFJob
	}
	// Parse with the training service's own parser (strict: unknown fields are errors; defaults applied;
	// validated as training-operator does), so a job the training service would reject is refused now,
	// with its field paths under trialSpec, and never requested.
	job, err := jobspec.Parse(out)
	if err != nil {
		var inv *jobspec.InvalidError
		if !errors.As(err, &inv) {
			return TrialJob{}, err
		}
		fes := make([]FieldError, len(inv.Errors))
		for i, fe := range inv.Errors {
			fes[i] = FieldError{f, fe.Detail}
			if fe.Field != "" {
				fes[i].Field = f + "." + fe.Field
			}
		}
		return TrialJob{}, &InvalidError{fes}
	}
	specs := job.ReplicaSpecs()
	if len(specs) == 0 {
		return TrialJob{}, &InvalidError{[]FieldError{{f + ".spec", "has no replica specs"}}}
	}
	primary := trainingv1.ReplicaView{Type: trainingv1.ReplicaTypeWorker}.LogName()
	if !batch {
		if primary, err = primaryReplica(t, head.Kind, specs); err != nil {
			return TrialJob{}, err
		}
	}
	return TrialJob{Kind: kind, JobKind: head.Kind, Document: out, PrimaryReplica: primary}, nil
}

// primaryReplica maps primaryPodLabels to a replica: training.kubeflow.org/replica-type (+ replica-index),
// or job-role=master (the Chief or Master). Without labels: Chief, else Master, else Worker 0.
func primaryReplica(t *tuningv1.TrialTemplate, kind string, specs map[trainingv1.ReplicaType]*trainingv1.ReplicaSpec) (string, error) {
	const f = "spec.trialTemplate.primaryPodLabels"
	types := trainingv1.ReplicaTypesOf(kind)
	find := func(lower string) (trainingv1.ReplicaType, bool) {
		for _, rt := range types {
			if strings.EqualFold(string(rt), lower) && specs[rt] != nil {
				return rt, true
			}
		}
		return "", false
	}
	idx := int32(0)
	if s, ok := t.PrimaryPodLabels["training.kubeflow.org/replica-index"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return "", &InvalidError{[]FieldError{{f, fmt.Sprintf("replica-index must be a non-negative integer, got %q", s)}}}
		}
		idx = int32(n)
	}
	var rt trainingv1.ReplicaType
	if want, ok := t.PrimaryPodLabels["training.kubeflow.org/replica-type"]; ok {
		var found bool
		if rt, found = find(want); !found {
			return "", &InvalidError{[]FieldError{{f, fmt.Sprintf("replica-type %q is not a replica of the trial job", want)}}}
		}
	} else {
		order := []string{"chief", "master", "worker"}
		if t.PrimaryPodLabels["training.kubeflow.org/job-role"] == "master" {
			order = order[:2]
		}
		for _, c := range order {
			if r, ok := find(c); ok {
				rt = r
				break
			}
		}
		if rt == "" {
			return "", &InvalidError{[]FieldError{{f, "the trial job has no Chief, Master or Worker replica to collect metrics from"}}}
		}
	}
	n := int32(1)
	if specs[rt].Replicas != nil {
		n = *specs[rt].Replicas
	}
	if idx >= n {
		return "", &InvalidError{[]FieldError{{f, fmt.Sprintf("replica-index %d: %s has %d replicas", idx, rt, n)}}}
	}
	return trainingv1.ReplicaView{Type: rt, Index: idx}.LogName(), nil
}
