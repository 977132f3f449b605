package engine

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/activity"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice-ml/sluice/libs/runtime/kube"
	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

// Event reasons of CreatePVC and DeletePVC tasks, named as training-operator v1.9's job controller names
// its pod and service events (SuccessfulCreatePod, FailedDeletePod, ...).
const (
	ReasonSuccessfulCreatePVC = "SuccessfulCreatePVC"
	ReasonFailedCreatePVC     = "FailedCreatePVC"
	ReasonSuccessfulDeletePVC = "SuccessfulDeletePVC"
	ReasonFailedDeletePVC     = "FailedDeletePVC"
)

// defaultStorageClass is the storage class KFP's driver gives a PVC when the CreatePVC task has no
// storage_class_name input at all (backend/src/v2/driver createPVC); an empty one is kept empty.
const defaultStorageClass = "standard"

// kubePVCStep carries out a kfp-kubernetes CreatePVC or DeletePVC task on the kubernetes runtime as
// KFP's driver does (backend/src/v2/driver k8s.go createPVC/deletePVC; no pod runs), in the run's
// namespace (kube.Runtime.NamespaceOf):
//
// CreatePVC creates the PersistentVolumeClaim named by pvcCreateInputs with spec.accessModes from
// access_modes, spec.resources.requests.storage from size, spec.storageClassName from
// storage_class_name ("standard" when the input is absent, as the driver; an empty value stays empty,
// i.e. no dynamic provisioning), spec.volumeName from volume_name and metadata.annotations from
// annotations (a struct of strings), and outputs its name as the parameter "name". The claim is
// labelled with the run id (pipeline/runid, sluice.io/run-id) and the task (sluice.io/task): a claim of
// that name that already exists with the same run and task labels is the one an earlier attempt made,
// and is success (the driver would fail); any other existing claim fails the task.
//
// DeletePVC deletes the claim named by pvc_name. A claim that is not there fails the task, as in the
// driver ("cannot find pvc"), except on a retry (activity or task attempt > 1), when an earlier attempt
// may have deleted it. With the API server's pvc-protection a claim still mounted by a pod is only
// marked for deletion until no pod uses it.
//
// Each outcome is recorded as an Event on the claim (source component "pipelines").
func (a *Activities) kubePVCStep(ctx context.Context, kr *kube.Runtime, in StepInput, op string) (StepResult, error) {
	ns := kr.NamespaceOf(in.Namespace)
	pvcs := kr.Client().CoreV1().PersistentVolumeClaims(ns)
	ref := func(name string, uid string) corev1.ObjectReference {
		return corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: ns, Name: name, UID: types.UID(uid)}
	}
	if op == dag.PVCDelete {
		name := paramString(in, "pvc_name")
		if name == "" {
			return StepResult{}, pvcFail(op, "required parameter pvc_name not provided")
		}
		done := StepResult{Outputs: outputs{Params: map[string]any{}}}
		cur, err := pvcs.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			if retried(ctx, in) {
				return done, nil
			}
			return StepResult{}, pvcFail(op, "cannot find PVC %s in namespace %q", name, ns)
		}
		if err != nil {
			return StepResult{}, fmt.Errorf("%s: get PVC %s: %w", op, name, err) // retried
		}
		err = pvcs.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID}})
		switch {
		case err == nil:
			kr.Record(ctx, ref(name, string(cur.UID)), corev1.EventTypeNormal, ReasonSuccessfulDeletePVC, "Deleted PVC: "+name, "pipelines")
		case apierrors.IsNotFound(err):
		default:
			kr.Record(ctx, ref(name, string(cur.UID)), corev1.EventTypeWarning, ReasonFailedDeletePVC, fmt.Sprintf("Error deleting: %v", err), "pipelines")
			if apierrors.IsForbidden(err) || apierrors.IsConflict(err) {
				return StepResult{}, pvcFail(op, "delete PVC %s: %v", name, err)
			}
			return StepResult{}, fmt.Errorf("%s: delete PVC %s: %w", op, name, err)
		}
		return done, nil
	}

	name, modes, size, err := pvcCreateInputs(in, op)
	if err != nil {
		return StepResult{}, err
	}
	qty, err := resource.ParseQuantity(size)
	if err != nil {
		return StepResult{}, pvcFail(op, "size: %v", err)
	}
	class := defaultStorageClass
	if v, ok := in.Params["storage_class_name"]; ok {
		s, isStr := v.(string)
		if !isStr && v != nil {
			return StepResult{}, pvcFail(op, "storage_class_name: %v is not a string", v)
		}
		class = s
	}
	volumeName, _ := in.Params["volume_name"].(string)
	var annotations map[string]string
	if raw, ok := in.Params["annotations"].(map[string]any); ok && len(raw) > 0 {
		annotations = map[string]string{}
		for k, v := range raw {
			s, isStr := v.(string)
			if !isStr {
				return StepResult{}, pvcFail(op, "annotations: the value of %q is %v, not a string", k, v)
			}
			annotations[k] = s
		}
	}
	accessModes := make([]corev1.PersistentVolumeAccessMode, len(modes))
	for i, m := range modes {
		accessModes[i] = corev1.PersistentVolumeAccessMode(m)
	}
	labels := map[string]string{"sluice.io/run-id": in.RunID, LabelKFPRunID: in.RunID, "sluice.io/task": shortHash(in.TaskPath)}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      accessModes,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: qty}},
			StorageClassName: &class,
			VolumeName:       volumeName,
		},
	}
	made, err := pvcs.Create(ctx, pvc, metav1.CreateOptions{})
	switch {
	case err == nil:
		kr.Record(ctx, ref(name, string(made.UID)), corev1.EventTypeNormal, ReasonSuccessfulCreatePVC, "Created PVC: "+name, "pipelines")
	case apierrors.IsAlreadyExists(err):
		cur, gerr := pvcs.Get(ctx, name, metav1.GetOptions{})
		if gerr != nil {
			return StepResult{}, fmt.Errorf("%s: get existing PVC %s: %w", op, name, gerr) // retried
		}
		if cur.Labels[LabelKFPRunID] != in.RunID || cur.Labels["sluice.io/task"] != labels["sluice.io/task"] {
			return StepResult{}, pvcFail(op, "PVC %s already exists in namespace %q and was not made by this task (run %s, task %s)", name, ns, in.RunID, in.TaskPath)
		}
		if cur.DeletionTimestamp != nil {
			return StepResult{}, pvcFail(op, "PVC %s of this task is being deleted", name)
		}
	default:
		kr.Record(ctx, ref(name, ""), corev1.EventTypeWarning, ReasonFailedCreatePVC, fmt.Sprintf("Error creating: %v", err), "pipelines")
		if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) {
			return StepResult{}, pvcFail(op, "create PVC %s: %v", name, err)
		}
		return StepResult{}, fmt.Errorf("%s: create PVC %s: %w", op, name, err)
	}
	return StepResult{Outputs: outputs{Params: map[string]any{"name": name}}}, nil
}

// retried reports whether this is not the first try of the task: a later task attempt, or a retry of the
// activity.
func retried(ctx context.Context, in StepInput) bool {
	return in.Attempt > 1 || (activity.IsActivity(ctx) && activity.GetInfo(ctx).Attempt > 1)
}
