// Package kube runs each runtime.Spec as one Kubernetes Pod (restartPolicy Never) through client-go.
//
// The pod is named Spec.Name, labelled with Spec.Labels plus runtime.LabelName=Spec.Name and
// app.kubernetes.io/managed-by=sluice, and has one container, "main", whose command and args are
// Spec.Command and Spec.Args (core/v1 Container semantics: an empty Command keeps the image's
// entrypoint). Mounts become hostPath volumes. Wait follows the pod through a watch; the exit status
// comes from the container's terminated state. Kubernetes merges stdout and stderr, so the container
// log goes to Spec.Stdout only.
package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/sluice-ml/sluice/libs/runtime"
)

// ContainerName is the name of the pod's only container.
const ContainerName = "main"

// LabelManagedBy and ManagedBy mark pods this runtime created (app.kubernetes.io recommended label).
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "sluice"
)

// stuckReasons are container waiting reasons that do not resolve without someone changing the pod or
// the registry; Wait reports them as a program that never ran (code -1).
var stuckReasons = map[string]bool{"ImagePullBackOff": true, "ErrImageNeverPull": true, "InvalidImageName": true}

// Config configures the Kubernetes runtime.
type Config struct {
	// Client talks to the API server (kubernetes.NewForConfig, or k8s.io/client-go/kubernetes/fake in tests).
	Client kubernetes.Interface
	// Namespace, when set, is the Kubernetes namespace of every pod whatever its Sluice namespace
	// (Spec.Namespace). Empty maps each Sluice namespace to its own Kubernetes namespace,
	// NamespacePrefix+name, as Kubeflow profiles map one profile to one namespace.
	Namespace string
	// NamespacePrefix is prepended to Sluice namespaces when Namespace is empty (e.g. "sluice-").
	NamespacePrefix string
	// Dynamic, when set, lets the runtime mirror Kubeflow objects (TFJob, PyTorchJob) that own the pods
	// it creates for them (see Owner); without it, or without their CRDs, pods carry no owner reference.
	Dynamic dynamic.Interface
	// ServiceAccountName is the pods' service account (empty: the namespace default).
	ServiceAccountName string
	// GracePeriod is the pod's termination grace period, used when Start's ctx ends or on
	// Signal(SIGTERM) (default runtime.DefaultGracePeriod, rounded up to whole seconds). It also bounds
	// how long Wait waits for the log stream after the container ends.
	GracePeriod time.Duration
	// KeepExited leaves pods in place after they end (for kubectl logs); by default a pod is deleted once
	// its exit status and log have been collected.
	KeepExited bool
}

// Runtime creates pods in one namespace.
type Runtime struct{ cfg Config }

var _ runtime.Runtime = (*Runtime)(nil)

// New checks cfg and returns the runtime.
func New(cfg Config) (*Runtime, error) {
	if cfg.Client == nil {
		return nil, errors.New("kube: Config.Client is required")
	}
	if cfg.Namespace != "" {
		if msgs := validation.IsDNS1123Label(cfg.Namespace); len(msgs) > 0 {
			return nil, fmt.Errorf("kube: Config.Namespace %q: %s", cfg.Namespace, msgs[0])
		}
	}
	if cfg.GracePeriod <= 0 {
		cfg.GracePeriod = runtime.DefaultGracePeriod
	}
	return &Runtime{cfg: cfg}, nil
}

// NamespaceOf is the Kubernetes namespace of the Sluice namespace ns (runtime.DefaultNamespace when
// empty): Config.Namespace when set, else Config.NamespacePrefix+ns.
func (r *Runtime) NamespaceOf(ns string) string {
	if r.cfg.Namespace != "" {
		return r.cfg.Namespace
	}
	if ns == "" {
		ns = runtime.DefaultNamespace
	}
	return r.cfg.NamespacePrefix + ns
}

// Client is the runtime's API client.
func (r *Runtime) Client() kubernetes.Interface { return r.cfg.Client }

// Name returns "kubernetes".
func (r *Runtime) Name() string { return runtime.NameKubernetes }

func (r *Runtime) graceSeconds() int64 { return int64(math.Ceil(r.cfg.GracePeriod.Seconds())) }

// Validate adds the Kubernetes rules to Spec.Validate: an image is required and label keys and values
// must be valid Kubernetes labels.
func Validate(s runtime.Spec) error {
	errs := []error{s.Validate()}
	if s.Image == "" {
		errs = append(errs, fmt.Errorf("%w: spec.image: required by the kubernetes runtime", runtime.ErrInvalidSpec))
	}
	for k, v := range s.Labels {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, fmt.Errorf("%w: spec.labels[%q]: key %s", runtime.ErrInvalidSpec, k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, fmt.Errorf("%w: spec.labels[%q]: value %s", runtime.ErrInvalidSpec, k, msg))
		}
	}
	return errors.Join(errs...)
}

// Pod builds the pod for s in the runtime's namespace (a pure function; s should be valid).
func (r *Runtime) Pod(s runtime.Spec) *corev1.Pod {
	labels := map[string]string{}
	for k, v := range s.Labels {
		labels[k] = v
	}
	labels[runtime.LabelName] = s.Name
	labels[LabelManagedBy] = ManagedBy
	var env []corev1.EnvVar
	for _, kv := range s.EnvList() {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				env = append(env, corev1.EnvVar{Name: kv[:i], Value: kv[i+1:]})
				break
			}
		}
	}
	c := corev1.Container{
		Name:       ContainerName,
		Image:      s.Image,
		Command:    s.Command,
		Args:       s.Args,
		Env:        env,
		WorkingDir: s.WorkDir,
	}
	var volumes []corev1.Volume
	for i, m := range s.Mounts {
		name := fmt.Sprintf("mount-%d", i)
		volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: m.HostPath}}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: m.ContainerPath, ReadOnly: m.ReadOnly})
	}
	grace := r.graceSeconds()
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: r.NamespaceOf(s.Namespace), Labels: labels},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			Containers:                    []corev1.Container{c},
			Volumes:                       volumes,
			ServiceAccountName:            r.cfg.ServiceAccountName,
			TerminationGracePeriodSeconds: &grace,
		},
	}
}

// Start creates the pod for s and returns once the API server has it. A pod of that name made by this
// runtime (a retried start) is adopted instead, so Start is idempotent per name; a pod of that name
// without runtime.LabelName=s.Name yields runtime.ErrNameInUse. When several handles follow one pod,
// the first to see it end deletes it and the others may report ReasonDeleted.
func (r *Runtime) Start(ctx context.Context, s runtime.Spec) (runtime.Process, error) {
	if err := Validate(s); err != nil {
		return nil, err
	}
	return r.StartPod(ctx, PodRequest{Pod: r.Pod(s), Stdout: s.Stdout, Keep: r.cfg.KeepExited})
}

type process struct {
	r         *Runtime
	namespace string
	name      string
	container string
	keep      bool
	stdout    io.Writer
	// service is the headless Service deleted with the pod ("" for none);
	// events is the object lifecycle Events are recorded on (nil: none).
	service   string
	events    *corev1.ObjectReference
	component string
	done      chan struct{}

	mu       sync.Mutex
	canceled bool
	killSig  syscall.Signal // signal we asked the pod's deletion to deliver
	logs     chan struct{}  // closed when the log copy ends; nil until it started

	status runtime.ExitStatus
	err    error
}

func (p *process) ID() string { return p.namespace + "/" + p.name }

func (p *process) Done() <-chan struct{} { return p.done }

func (p *process) Wait(ctx context.Context) (runtime.ExitStatus, error) {
	select {
	case <-p.done:
		return p.status, p.err
	case <-ctx.Done():
		return runtime.ExitStatus{}, ctx.Err()
	}
}

// Signal deletes the pod: SIGTERM with the configured grace period (the kubelet sends SIGTERM, then
// SIGKILL), SIGKILL at once. Other signals yield runtime.ErrUnsupportedSignal.
func (p *process) Signal(sig syscall.Signal) error {
	var grace int64
	switch sig {
	case syscall.SIGTERM:
		grace = p.r.graceSeconds()
	case syscall.SIGKILL:
	default:
		return fmt.Errorf("%w: %s (kubernetes delivers only SIGTERM and SIGKILL)", runtime.ErrUnsupportedSignal, runtime.SignalName(sig))
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	p.mu.Lock()
	if p.killSig == 0 || sig == syscall.SIGKILL {
		p.killSig = sig
	}
	p.mu.Unlock()
	return p.deletePod(context.Background(), grace)
}

func (p *process) Kill() error { return p.Signal(syscall.SIGKILL) }

func (p *process) run(api, life context.Context) {
	exited := make(chan struct{})
	go func() {
		select {
		case <-exited:
		case <-life.Done():
			p.mu.Lock()
			p.canceled = true
			p.mu.Unlock()
			_ = p.Signal(syscall.SIGTERM)
		}
	}()
	st, deleted, err := p.follow(api)
	close(exited)
	if err == nil && st.Code != 0 && !deleted {
		p.event(api, corev1.EventTypeWarning, ReasonExitedWithCode, fmt.Sprintf("Pod: %s.%s exited with code %d", p.namespace, p.name, st.Code))
	}
	p.mu.Lock()
	logs := p.logs
	p.mu.Unlock()
	if logs != nil {
		select {
		case <-logs:
		case <-time.After(p.r.cfg.GracePeriod):
		}
	}
	if err == nil && !deleted && !p.keep {
		if derr := p.deletePod(api, 0); derr != nil {
			err = fmt.Errorf("kube: delete finished pod %s: %w", p.ID(), derr)
		}
	} else if deleted && !p.keep {
		p.deleteService(api)
	}
	p.status, p.err = st, err
	close(p.done)
}

// follow watches the pod until it ends, returning its status and whether the pod is already gone.
func (p *process) follow(ctx context.Context) (runtime.ExitStatus, bool, error) {
	pods := p.r.cfg.Client.CoreV1().Pods(p.namespace)
	selector := fields.OneTermEqualSelector("metadata.name", p.name).String()
	for {
		w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: selector})
		if err != nil {
			return runtime.ExitStatus{}, false, fmt.Errorf("kube: watch pod %s: %w", p.ID(), err)
		}
		// Read the current state after the watch is open, so no change in between is missed.
		pod, err := pods.Get(ctx, p.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			w.Stop()
			return p.deletedStatus(), true, nil
		}
		if err != nil {
			w.Stop()
			return runtime.ExitStatus{}, false, fmt.Errorf("kube: get pod %s: %w", p.ID(), err)
		}
		if st, ok := p.observe(ctx, pod); ok {
			w.Stop()
			return st, false, nil
		}
		for ev := range w.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok || pod.Name != p.name || pod.Namespace != p.namespace {
				continue
			}
			if ev.Type == watch.Deleted {
				// A pod deleted once it has ended still carries the final status.
				if st, ok := p.observe(ctx, pod); ok {
					w.Stop()
					return st, true, nil
				}
				w.Stop()
				return p.deletedStatus(), true, nil
			}
			if st, ok := p.observe(ctx, pod); ok {
				w.Stop()
				return st, false, nil
			}
		}
		w.Stop() // the server closed the watch (timeout); open a new one
	}
}

// deletedStatus is the status of a pod that disappeared before reporting an exit.
func (p *process) deletedStatus() runtime.ExitStatus {
	p.mu.Lock()
	sig, canceled := p.killSig, p.canceled
	p.mu.Unlock()
	if sig == 0 {
		return runtime.ExitStatus{Code: -1, Reason: runtime.ReasonDeleted, Message: "pod deleted before its container ended"}
	}
	st := runtime.StatusFromCode(128+int(sig), canceled)
	return st
}

// observe starts the log copy once the container runs, and reports the exit status once it is known.
func (p *process) observe(ctx context.Context, pod *corev1.Pod) (runtime.ExitStatus, bool) {
	var cs *corev1.ContainerStatus
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == p.container {
			cs = &pod.Status.ContainerStatuses[i]
		}
	}
	if cs != nil && (cs.State.Running != nil || cs.State.Terminated != nil) {
		p.startLogs(ctx)
	}
	p.mu.Lock()
	canceled := p.canceled
	p.mu.Unlock()
	switch {
	case cs != nil && cs.State.Terminated != nil:
		t := cs.State.Terminated
		st := runtime.StatusFromCode(int(t.ExitCode), canceled)
		if t.Signal != 0 {
			st.Signal = runtime.SignalName(syscall.Signal(t.Signal))
		}
		switch t.Reason {
		case "", "Completed", "Error":
		case "OOMKilled":
			st.Reason = runtime.ReasonOOMKilled
		default:
			if !canceled {
				st.Reason = t.Reason
			}
		}
		st.Message = t.Message
		return st, true
	case cs != nil && cs.State.Waiting != nil && stuckReasons[cs.State.Waiting.Reason]:
		return runtime.ExitStatus{Code: -1, Reason: cs.State.Waiting.Reason, Message: cs.State.Waiting.Message}, true
	case pod.Status.Phase == corev1.PodSucceeded:
		return runtime.ExitStatus{Code: 0, Reason: runtime.ReasonCompleted}, true
	case pod.Status.Phase == corev1.PodFailed:
		reason := pod.Status.Reason
		if reason == "" {
			reason = runtime.ReasonError
		}
		return runtime.ExitStatus{Code: -1, Reason: reason, Message: pod.Status.Message}, true
	}
	return runtime.ExitStatus{}, false
}

// startLogs copies the container log (stdout and stderr merged) to Spec.Stdout, once.
func (p *process) startLogs(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.logs != nil || p.stdout == nil {
		return
	}
	done := make(chan struct{})
	p.logs = done
	req := p.r.cfg.Client.CoreV1().Pods(p.namespace).GetLogs(p.name, &corev1.PodLogOptions{Container: p.container, Follow: true})
	go func() {
		defer close(done)
		rc, err := req.Stream(ctx)
		if err != nil {
			return
		}
		defer rc.Close()
		_, _ = io.Copy(p.stdout, rc)
	}()
}
