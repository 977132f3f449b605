package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sluice-ml/sluice/libs/runtime"
)

// AnnotationAttempt records which attempt of a deterministic pod name a pod is (1-based), so a restart
// replaces the ended pod of the previous attempt while a retried start of the same attempt adopts it.
const AnnotationAttempt = "sluice.io/attempt"

// LabelOwnerUID marks the Kubeflow objects the runtime mirrors with the UID Sluice gave the job, so a
// mirror left by an earlier job of the same name is told from the current one.
const LabelOwnerUID = "sluice.io/owner-uid"

// Event reasons, as training-operator v1.9's job controller records them (common/pkg/controller.v1/control).
const (
	ReasonSuccessfulCreatePod     = "SuccessfulCreatePod"
	ReasonFailedCreatePod         = "FailedCreatePod"
	ReasonSuccessfulDeletePod     = "SuccessfulDeletePod"
	ReasonSuccessfulCreateService = "SuccessfulCreateService"
	ReasonFailedCreateService     = "FailedCreateService"
	ReasonSuccessfulDeleteService = "SuccessfulDeleteService"
	ReasonExitedWithCode          = "ExitedWithCode"
)

// PodRequest is one pod to run together with what a Kubeflow controller creates around it: the object
// that owns it, a headless Service, and Events.
type PodRequest struct {
	// Pod is the complete pod (name, namespace, labels, annotations, spec). Required. An empty namespace
	// means NamespaceOf(""). The runtime adds runtime.LabelName=name, the managed-by label,
	// AnnotationAttempt and, with an Owner, the controller owner reference.
	Pod *corev1.Pod
	// Service, when set, is created (in the pod's namespace, with the same owner) before the pod and
	// deleted with it; it is kept while an existing one of its name carries runtime.LabelName.
	Service *corev1.Service
	// Owner, when set, is mirrored into the cluster (created unless present) and becomes the controller
	// owner of the pod and the Service; Events are recorded on it. When its resource is not served (the
	// CRD is not installed) the pod and Service carry no owner reference and Events go to the pod.
	Owner *Owner
	// Container is the container whose termination is the exit status (default ContainerName, or the
	// pod's first container when it has none of that name); its log goes to Stdout.
	Container string
	// Attempt numbers the pod's attempt (0 means 1). A pod of the same name and attempt is adopted (a
	// retried start); one of an earlier attempt is deleted and replaced, as training-operator replaces a
	// failed replica's pod.
	Attempt int
	// Keep leaves the pod and its Service in place once the pod ended (cleanPodPolicy None, or Running
	// for pods that ended); by default both are deleted once the exit status and log are collected.
	// Kill and Signal always delete both.
	Keep bool
	// Stdout receives the container's log (stdout and stderr merged).
	Stdout io.Writer
	// Component is the Events' source component (e.g. "tfjob-controller"; default "sluice").
	Component string
}

// Owner is a Kubeflow object (TFJob, PyTorchJob, Notebook) mirrored into the cluster to own pods.
type Owner struct {
	// Resource is the object's group, version and resource (e.g. kubeflow.org/v1 tfjobs).
	Resource schema.GroupVersionResource
	// Object is created when no object of its name exists: apiVersion, kind, metadata.name and
	// metadata.namespace set (the namespace is replaced by the pod's), and LabelOwnerUID in its labels.
	Object *unstructured.Unstructured
}

// Ref returns the controller owner reference of obj as Kubernetes controllers set it.
func ownerRef(obj *unstructured.Unstructured) metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{APIVersion: obj.GetAPIVersion(), Kind: obj.GetKind(), Name: obj.GetName(), UID: obj.GetUID(),
		Controller: &t, BlockOwnerDeletion: &t}
}

// EnsureOwner mirrors o into namespace ns and returns the object as stored, or nil when its resource
// is not served (no CRD) or the runtime has no dynamic client. An object of that name mirrored for an
// earlier job (another LabelOwnerUID) is replaced; one Sluice did not create yields runtime.ErrNameInUse.
func (r *Runtime) EnsureOwner(ctx context.Context, ns string, o *Owner) (*unstructured.Unstructured, error) {
	if o == nil || o.Object == nil || r.cfg.Dynamic == nil {
		return nil, nil
	}
	want := o.Object.DeepCopy()
	want.SetNamespace(ns)
	uid := want.GetLabels()[LabelOwnerUID]
	res := r.cfg.Dynamic.Resource(o.Resource).Namespace(ns)
	for i := 0; i < 5; i++ {
		got, err := res.Get(ctx, want.GetName(), metav1.GetOptions{})
		if err == nil {
			switch have := got.GetLabels()[LabelOwnerUID]; {
			case have == uid:
				return got, nil
			case have == "":
				return nil, fmt.Errorf("%w: %s %s/%s exists and was not created by sluice", runtime.ErrNameInUse, want.GetKind(), ns, want.GetName())
			}
			// A mirror of an earlier job of this name: replace it (its pods go with it).
			bg := metav1.DeletePropagationBackground
			if err := res.Delete(ctx, want.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: ptr(got.GetUID())}}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return nil, fmt.Errorf("kube: replace stale %s %s/%s: %w", want.GetKind(), ns, want.GetName(), err)
			}
			continue
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("kube: get %s %s/%s: %w", want.GetKind(), ns, want.GetName(), err)
		}
		got, err = res.Create(ctx, want, metav1.CreateOptions{})
		switch {
		case err == nil:
			return got, nil
		case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err):
			continue
		case apierrors.IsNotFound(err):
			return nil, nil // the resource is not served: no CRD
		default:
			return nil, fmt.Errorf("kube: create %s %s/%s: %w", want.GetKind(), ns, want.GetName(), err)
		}
	}
	return nil, fmt.Errorf("kube: %s %s/%s keeps changing", want.GetKind(), ns, want.GetName())
}

func ptr[T any](v T) *T { return &v }

// StartPod creates req's owner mirror, Service and pod (in that order) and follows the pod like Start.
// It is idempotent per pod name and attempt.
func (r *Runtime) StartPod(ctx context.Context, req PodRequest) (runtime.Process, error) {
	if req.Pod == nil || req.Pod.Name == "" {
		return nil, fmt.Errorf("%w: pod name: required", runtime.ErrInvalidSpec)
	}
	api := context.WithoutCancel(ctx)
	pod := req.Pod.DeepCopy()
	if pod.Namespace == "" {
		pod.Namespace = r.NamespaceOf("")
	}
	ns := pod.Namespace
	attempt := max(req.Attempt, 1)
	container := req.Container
	if container == "" {
		container = ContainerName
		if len(pod.Spec.Containers) > 0 && !hasContainer(pod, container) {
			container = pod.Spec.Containers[0].Name
		}
	}
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[runtime.LabelName] = pod.Name
	pod.Labels[LabelManagedBy] = ManagedBy
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationAttempt] = strconv.Itoa(attempt)
	p := &process{r: r, namespace: ns, name: pod.Name, container: container, keep: req.Keep, stdout: req.Stdout,
		component: req.Component, done: make(chan struct{})}
	if p.component == "" {
		p.component = ManagedBy
	}

	owner, err := r.EnsureOwner(api, ns, req.Owner)
	if err != nil {
		return nil, err
	}
	var refs []metav1.OwnerReference
	if owner != nil {
		refs = []metav1.OwnerReference{ownerRef(owner)}
		p.events = &corev1.ObjectReference{APIVersion: owner.GetAPIVersion(), Kind: owner.GetKind(), Namespace: ns, Name: owner.GetName(), UID: owner.GetUID(), ResourceVersion: owner.GetResourceVersion()}
	} else {
		p.events = &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: ns, Name: pod.Name}
	}
	pod.OwnerReferences = refs

	if req.Service != nil {
		svc := req.Service.DeepCopy()
		svc.Namespace = ns
		if svc.Labels == nil {
			svc.Labels = map[string]string{}
		}
		svc.Labels[runtime.LabelName] = svc.Name
		svc.Labels[LabelManagedBy] = ManagedBy
		svc.OwnerReferences = refs
		_, err := r.cfg.Client.CoreV1().Services(ns).Create(api, svc, metav1.CreateOptions{})
		switch {
		case err == nil:
			p.event(api, corev1.EventTypeNormal, ReasonSuccessfulCreateService, "Created service: "+svc.Name)
		case apierrors.IsAlreadyExists(err):
			have, gerr := r.cfg.Client.CoreV1().Services(ns).Get(api, svc.Name, metav1.GetOptions{})
			if gerr == nil && have.Labels[runtime.LabelName] != svc.Name {
				return nil, fmt.Errorf("%w: service %s/%s exists and was not created by the sluice runtime", runtime.ErrNameInUse, ns, svc.Name)
			}
		default:
			p.event(api, corev1.EventTypeWarning, ReasonFailedCreateService, fmt.Sprintf("Error creating: %v", err))
			return nil, fmt.Errorf("kube: create service %s/%s: %w", ns, svc.Name, err)
		}
		p.service = svc.Name
	}

	if err := r.createPod(api, pod, attempt); err != nil {
		p.event(api, corev1.EventTypeWarning, ReasonFailedCreatePod, fmt.Sprintf("Error creating: %v", err))
		return nil, err
	}
	p.event(api, corev1.EventTypeNormal, ReasonSuccessfulCreatePod, "Created pod: "+pod.Name)
	go p.run(api, ctx)
	return p, nil
}

func hasContainer(pod *corev1.Pod, name string) bool {
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// createPod creates pod, adopting one of the same name and attempt and replacing one of another attempt.
func (r *Runtime) createPod(ctx context.Context, pod *corev1.Pod, attempt int) error {
	pods := r.cfg.Client.CoreV1().Pods(pod.Namespace)
	for i := 0; i < 5; i++ {
		_, err := pods.Create(ctx, pod, metav1.CreateOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("kube: create pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		have, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("kube: get pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		if have.Labels[runtime.LabelName] != pod.Name {
			return fmt.Errorf("%w: pod %s/%s exists and was not created by the sluice runtime", runtime.ErrNameInUse, pod.Namespace, pod.Name)
		}
		if have.Annotations[AnnotationAttempt] == strconv.Itoa(attempt) || have.Annotations[AnnotationAttempt] == "" && attempt == 1 {
			return nil // a retried start of this attempt
		}
		// The pod of an earlier attempt: replace it once it is gone.
		zero := int64(0)
		if err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &have.UID}}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("kube: delete pod %s/%s of an earlier attempt: %w", pod.Namespace, pod.Name, err)
		}
		if err := waitGone(ctx, func(ctx context.Context) error {
			_, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
			return err
		}, have.UID); err != nil {
			return fmt.Errorf("kube: pod %s/%s of an earlier attempt: %w", pod.Namespace, pod.Name, err)
		}
	}
	return fmt.Errorf("kube: pod %s/%s keeps changing", pod.Namespace, pod.Name)
}

// waitGone polls get until it reports NotFound (a pod with a kubelet-side finalizer takes a moment).
func waitGone(ctx context.Context, get func(context.Context) error, _ types.UID) error {
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		err := get(ctx)
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, nil
	})
}

// deletePod deletes the pod with the grace period and, unless absent, its Service.
func (p *process) deletePod(ctx context.Context, grace int64) error {
	err := p.r.cfg.Client.CoreV1().Pods(p.namespace).Delete(ctx, p.name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kube: delete pod %s: %w", p.ID(), err)
	}
	if err == nil {
		p.event(ctx, corev1.EventTypeNormal, ReasonSuccessfulDeletePod, "Deleted pod: "+p.name)
	}
	p.deleteService(ctx)
	return nil
}

func (p *process) deleteService(ctx context.Context) {
	if p.service == "" {
		return
	}
	err := p.r.cfg.Client.CoreV1().Services(p.namespace).Delete(ctx, p.service, metav1.DeleteOptions{})
	if err == nil {
		p.event(ctx, corev1.EventTypeNormal, ReasonSuccessfulDeleteService, "Deleted service: "+p.service)
	}
}

// event records a core/v1 Event on the owner (or the pod) as client-go's record.EventRecorder writes
// them (reason, message, source component, counts); failures are ignored like the recorder's.
func (p *process) event(ctx context.Context, typ, reason, msg string) {
	if p.events == nil {
		return
	}
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		// GenerateName: concurrent replicas record events on one owner in the same instant.
		ObjectMeta:     metav1.ObjectMeta{GenerateName: p.events.Name + ".", Namespace: p.namespace},
		InvolvedObject: *p.events, Reason: reason, Message: msg, Type: typ,
		Source: corev1.EventSource{Component: p.component}, FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: p.component,
	}
	_, _ = p.r.cfg.Client.CoreV1().Events(p.namespace).Create(ctx, ev, metav1.CreateOptions{})
}

// DeleteOwned deletes the pods and Services in namespace ns matching selector (a label selector) and
// the owner mirror named name of resource res whose LabelOwnerUID is ownerUID (none when res is empty):
// what a job's deletion removes where no garbage collector follows owner references, and at once where
// one does.
func (r *Runtime) DeleteOwned(ctx context.Context, ns, selector string, res schema.GroupVersionResource, name, ownerUID string) error {
	var errs []error
	zero := int64(0)
	if err := r.cfg.Client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{LabelSelector: selector}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("kube: delete pods %s in %s: %w", selector, ns, err))
	}
	svcs, err := r.cfg.Client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		errs = append(errs, fmt.Errorf("kube: list services %s in %s: %w", selector, ns, err))
	} else {
		for _, s := range svcs.Items {
			if err := r.cfg.Client.CoreV1().Services(ns).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("kube: delete service %s/%s: %w", ns, s.Name, err))
			}
		}
	}
	if res.Resource != "" && name != "" && r.cfg.Dynamic != nil {
		obj, err := r.cfg.Dynamic.Resource(res).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && obj.GetLabels()[LabelOwnerUID] == ownerUID {
			bg := metav1.DeletePropagationBackground
			err = r.cfg.Dynamic.Resource(res).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: ptr(obj.GetUID())}})
		}
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("kube: delete %s %s/%s: %w", res.Resource, ns, name, err))
		}
	}
	return errors.Join(errs...)
}
