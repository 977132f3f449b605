package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/kube"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/internal/culling"
	"github.com/sluice-ml/sluice/services/notebooks/internal/spawner"
)

// Event reasons recorded on the Notebook (on the StatefulSet when the Notebook CRD is not installed).
// notebook-controller records none of its own (it re-issues its pods' and StatefulSets' Events on the
// Notebook); these follow the Kubernetes controllers' wording.
const (
	ReasonSuccessfulCreate = "SuccessfulCreate"
	ReasonSuccessfulDelete = "SuccessfulDelete"
	ReasonStarted          = "Started"
	ReasonStopped          = "Stopped"
	ReasonCulled           = "Culled"
	ReasonScaled           = "ScalingReplicaSet"
)

// stuckReasons are container waiting reasons that do not resolve by waiting (image or configuration errors).
var stuckReasons = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true, "ErrImageNeverPull": true,
	"InvalidImageName": true, "CreateContainerConfigError": true, "CreateContainerError": true}

// Config configures Servers.
type Config struct {
	// Runtime is the Kubernetes runtime (namespace mapping, clients). Required.
	Runtime *kube.Runtime
	// Domain is the cluster's DNS domain (default "cluster.local", Kubeflow's CLUSTER_DOMAIN).
	Domain string
	// ReadyTimeout bounds start-to-ready, image pull included (default 10m).
	ReadyTimeout time.Duration
	// PollInterval is how often Start checks readiness (default 500ms).
	PollInterval time.Duration
	// DialContext, when set, dials the servers' Service addresses for the proxy and the culler's probe
	// (default: a net.Dialer, which needs the cluster's DNS, i.e. the service running in the cluster).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	Log         *slog.Logger
}

// Servers runs notebook servers as StatefulSets. It is safe for concurrent use.
type Servers struct {
	cfg       Config
	client    kubernetes.Interface
	transport *http.Transport
	http      *http.Client

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	ep    spawner.Endpoint
	ok    bool
	until time.Time
}

// lookupTTL bounds how stale the proxy's view of a server's readiness may be.
const lookupTTL = 2 * time.Second

// New returns Servers for cfg.
func New(cfg Config) (*Servers, error) {
	if cfg.Runtime == nil {
		return nil, errors.New("cluster: Config.Runtime is required")
	}
	if cfg.Domain == "" {
		cfg.Domain = "cluster.local"
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 10 * time.Minute
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 500 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	dial := cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	tr := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}
	return &Servers{cfg: cfg, client: cfg.Runtime.Client(), transport: tr,
		http: &http.Client{Timeout: 5 * time.Second, Transport: tr}, cache: map[string]cached{}}, nil
}

// Transport is the HTTP transport that reaches the servers (the proxy's).
func (s *Servers) Transport() http.RoundTripper { return s.transport }

// Namespace is the Kubernetes namespace of Sluice namespace ns.
func (s *Servers) Namespace(ns string) string { return s.cfg.Runtime.NamespaceOf(ns) }

// Host is the DNS name of a notebook's Service, "<name>.<kubernetes namespace>.svc.<domain>".
func (s *Servers) Host(ns, name string) string {
	return name + "." + s.Namespace(ns) + ".svc." + s.cfg.Domain
}

func (s *Servers) endpoint(ns, name string, gen int, started time.Time) spawner.Endpoint {
	return spawner.Endpoint{Namespace: ns, Name: name, Generation: gen, Host: s.Host(ns, name), Port: ServingPort,
		ProcessID: s.Namespace(ns) + "/" + name + "-0", StartedAt: started}
}

// Start creates or updates generation gen of the notebook's objects (owner mirror, StatefulSet scaled to 1,
// Service; the stop annotation removed) and waits until the StatefulSet reports a ready replica
// (heartbeat is called while waiting). It is idempotent. The server did not become ready (Ready false)
// when its container restarted during the wait (exit code of its last termination), when it is stuck
// (image pull, configuration errors) or after ReadyTimeout.
func (s *Servers) Start(ctx context.Context, nb notebooksv1.Notebook, gen int, heartbeat func()) (spawner.StartResult, error) {
	ns, name := nb.Metadata.Namespace, nb.Metadata.Name
	kns := s.Namespace(ns)
	s.forget(ns, name)
	owner, sts, svc, err := Objects(nb, kns, false)
	if err != nil {
		return spawner.StartResult{}, err
	}
	mirror, err := s.cfg.Runtime.EnsureOwner(ctx, kns, &kube.Owner{Resource: NotebookResource, Object: owner})
	if err != nil {
		return spawner.StartResult{}, err
	}
	var refs []metav1.OwnerReference
	if mirror != nil {
		t := true
		refs = []metav1.OwnerReference{{APIVersion: mirror.GetAPIVersion(), Kind: mirror.GetKind(), Name: mirror.GetName(),
			UID: mirror.GetUID(), Controller: &t, BlockOwnerDeletion: &t}}
		if _, stopped := mirror.GetAnnotations()[notebooksv1.AnnotationStopped]; stopped {
			if err := s.annotateStopped(ctx, kns, name, nil); err != nil {
				return spawner.StartResult{}, err
			}
		}
	}
	sts.OwnerReferences, svc.OwnerReferences = refs, refs
	if err := s.applyStatefulSet(ctx, sts, mirror); err != nil {
		return spawner.StartResult{}, err
	}
	if err := s.applyService(ctx, svc, mirror); err != nil {
		return spawner.StartResult{}, err
	}
	return s.waitReady(ctx, ns, name, gen, heartbeat)
}

// applyStatefulSet creates sts or brings the existing one (made by Sluice) to its replicas and template,
// as notebook-controller's reconcile copies them.
func (s *Servers) applyStatefulSet(ctx context.Context, sts *appsv1.StatefulSet, mirror *unstructured.Unstructured) error {
	api := s.client.AppsV1().StatefulSets(sts.Namespace)
	for i := 0; i < 5; i++ {
		have, err := api.Get(ctx, sts.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			if _, err := api.Create(ctx, sts, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
				continue
			} else if err != nil {
				s.record(ctx, mirror, sts.Namespace, sts.Name, corev1.EventTypeWarning, "FailedCreate", fmt.Sprintf("create StatefulSet %s failed: %v", sts.Name, err))
				return fmt.Errorf("cluster: create statefulset %s/%s: %w", sts.Namespace, sts.Name, err)
			}
			s.record(ctx, mirror, sts.Namespace, sts.Name, corev1.EventTypeNormal, ReasonSuccessfulCreate, "Created StatefulSet "+sts.Name)
			return nil
		}
		if err != nil {
			return fmt.Errorf("cluster: get statefulset %s/%s: %w", sts.Namespace, sts.Name, err)
		}
		if have.Labels[kube.LabelManagedBy] != kube.ManagedBy {
			return fmt.Errorf("%w: statefulset %s/%s exists and was not created by sluice", runtime.ErrNameInUse, sts.Namespace, sts.Name)
		}
		was := int32(1)
		if have.Spec.Replicas != nil {
			was = *have.Spec.Replicas
		}
		have.Spec.Replicas = sts.Spec.Replicas
		have.Spec.Template = sts.Spec.Template
		have.OwnerReferences = sts.OwnerReferences
		if _, err := api.Update(ctx, have, metav1.UpdateOptions{}); apierrors.IsConflict(err) {
			continue
		} else if err != nil {
			return fmt.Errorf("cluster: update statefulset %s/%s: %w", sts.Namespace, sts.Name, err)
		}
		if now := *sts.Spec.Replicas; now != was {
			s.record(ctx, mirror, sts.Namespace, sts.Name, corev1.EventTypeNormal, ReasonScaled,
				fmt.Sprintf("Scaled StatefulSet %s from %d to %d", sts.Name, was, now))
		}
		return nil
	}
	return fmt.Errorf("cluster: statefulset %s/%s keeps changing", sts.Namespace, sts.Name)
}

func (s *Servers) applyService(ctx context.Context, svc *corev1.Service, mirror *unstructured.Unstructured) error {
	api := s.client.CoreV1().Services(svc.Namespace)
	_, err := api.Create(ctx, svc, metav1.CreateOptions{})
	switch {
	case err == nil:
		s.record(ctx, mirror, svc.Namespace, svc.Name, corev1.EventTypeNormal, ReasonSuccessfulCreate, "Created Service "+svc.Name)
		return nil
	case apierrors.IsAlreadyExists(err):
		have, err := api.Get(ctx, svc.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("cluster: get service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
		if have.Labels[kube.LabelManagedBy] != kube.ManagedBy {
			return fmt.Errorf("%w: service %s/%s exists and was not created by sluice", runtime.ErrNameInUse, svc.Namespace, svc.Name)
		}
		if len(have.OwnerReferences) == 0 && len(svc.OwnerReferences) > 0 || len(have.OwnerReferences) > 0 && len(svc.OwnerReferences) > 0 && have.OwnerReferences[0].UID != svc.OwnerReferences[0].UID {
			have.OwnerReferences = svc.OwnerReferences
			if _, err := api.Update(ctx, have, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
				return fmt.Errorf("cluster: update service %s/%s: %w", svc.Namespace, svc.Name, err)
			}
		}
		return nil
	default:
		s.record(ctx, mirror, svc.Namespace, svc.Name, corev1.EventTypeWarning, "FailedCreate", fmt.Sprintf("create Service %s failed: %v", svc.Name, err))
		return fmt.Errorf("cluster: create service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
}

// observation is the server's state read from the API server.
type observation struct {
	exists   bool  // the StatefulSet exists
	replicas int32 // its spec.replicas
	ready    bool  // it reports a ready replica for its current generation
	pod      *corev1.Pod
	cs       *corev1.ContainerStatus // the server container's status (nil before the kubelet reports one)
}

func (s *Servers) observe(ctx context.Context, ns, name string) (observation, error) {
	kns := s.Namespace(ns)
	var o observation
	sts, err := s.client.AppsV1().StatefulSets(kns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return o, nil
	}
	if err != nil {
		return o, fmt.Errorf("cluster: get statefulset %s/%s: %w", kns, name, err)
	}
	o.exists = true
	o.replicas = 1
	if sts.Spec.Replicas != nil {
		o.replicas = *sts.Spec.Replicas
	}
	o.ready = o.replicas > 0 && sts.Status.ObservedGeneration >= sts.Generation && sts.Status.ReadyReplicas >= 1
	pod, err := s.client.CoreV1().Pods(kns).Get(ctx, name+"-0", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return o, nil
	case err != nil:
		return o, fmt.Errorf("cluster: get pod %s/%s-0: %w", kns, name, err)
	}
	o.pod = pod
	// The notebook's container: the one named like the notebook (notebook-controller's rule), else the first.
	for i := range pod.Status.ContainerStatuses {
		c := &pod.Status.ContainerStatuses[i]
		if c.Name == name || o.cs == nil && len(pod.Spec.Containers) > 0 && c.Name == pod.Spec.Containers[0].Name {
			o.cs = c
		}
	}
	return o, nil
}

func (o observation) restarts() int32 {
	if o.cs == nil {
		return 0
	}
	return o.cs.RestartCount
}

// exit describes how the server's container last ended.
func (o observation) exit() runtime.ExitStatus {
	if o.cs == nil {
		if o.pod != nil && (o.pod.Status.Phase == corev1.PodFailed || o.pod.Status.Phase == corev1.PodSucceeded) {
			return runtime.ExitStatus{Code: -1, Reason: o.pod.Status.Reason, Message: o.pod.Status.Message}
		}
		return runtime.ExitStatus{Code: -1}
	}
	t := o.cs.State.Terminated
	if t == nil {
		t = o.cs.LastTerminationState.Terminated
	}
	if t == nil {
		if w := o.cs.State.Waiting; w != nil {
			return runtime.ExitStatus{Code: -1, Reason: w.Reason, Message: w.Message}
		}
		return runtime.ExitStatus{Code: -1}
	}
	st := runtime.ExitStatus{Code: int(t.ExitCode), Reason: t.Reason, Message: t.Message}
	if t.Reason == "OOMKilled" {
		st.Reason = runtime.ReasonOOMKilled
	}
	return st
}

// crashed: the container ended, or waits to be restarted after it ended (CrashLoopBackOff).
func (o observation) crashed() bool {
	return o.cs != nil && (o.cs.State.Terminated != nil || o.cs.State.Waiting != nil && o.cs.LastTerminationState.Terminated != nil)
}

func (o observation) stuck() bool {
	return o.cs != nil && o.cs.State.Waiting != nil && stuckReasons[o.cs.State.Waiting.Reason]
}

func (o observation) startedAt() time.Time {
	if o.cs != nil && o.cs.State.Running != nil && !o.cs.State.Running.StartedAt.IsZero() {
		return o.cs.State.Running.StartedAt.UTC()
	}
	return time.Now().UTC()
}

func (s *Servers) waitReady(ctx context.Context, ns, name string, gen int, heartbeat func()) (spawner.StartResult, error) {
	deadline := time.Now().Add(s.cfg.ReadyTimeout)
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	base := int32(-1)
	for {
		o, err := s.observe(ctx, ns, name)
		if err != nil {
			return spawner.StartResult{}, err
		}
		if base < 0 && o.pod != nil {
			base = o.restarts() // restarts before this start are not its failures
		}
		ep := s.endpoint(ns, name, gen, o.startedAt())
		switch {
		case !o.exists:
			return spawner.StartResult{}, fmt.Errorf("cluster: statefulset %s/%s disappeared while starting", s.Namespace(ns), name)
		case o.ready && (o.cs == nil || o.cs.State.Running != nil):
			s.remember(ns, name, ep, true)
			return spawner.StartResult{Endpoint: ep, Ready: true}, nil
		case o.stuck():
			return spawner.StartResult{Endpoint: ep, Exit: o.exit()}, nil
		case o.pod != nil && (o.restarts() > base && base >= 0 || o.cs != nil && o.cs.State.Terminated != nil && o.cs.RestartCount == base && o.pod.Status.Phase == corev1.PodFailed):
			return spawner.StartResult{Endpoint: ep, Exit: o.exit()}, nil
		}
		if time.Now().After(deadline) {
			return spawner.StartResult{Endpoint: ep, Exit: runtime.ExitStatus{Code: -1, Reason: "ReadyTimeout",
				Message: fmt.Sprintf("StatefulSet %s/%s reported no ready replica within %s", s.Namespace(ns), name, s.cfg.ReadyTimeout)}}, nil
		}
		if heartbeat != nil {
			heartbeat()
		}
		select {
		case <-ctx.Done():
			return spawner.StartResult{}, ctx.Err()
		case <-t.C:
		}
	}
}

// Watch blocks until the server's container restarts, ends or waits to be restarted after it ended (an
// exit, with the code of its last termination), calling heartbeat every interval; it returns Gone when the StatefulSet was deleted or
// scaled to zero by someone else (the workflow then starts it again, as notebook-controller's reconcile
// would). Servers outlive the service: a Watch on another worker picks the same server up.
func (s *Servers) Watch(ctx context.Context, ns, name string, gen int, interval time.Duration, heartbeat func()) (spawner.WatchResult, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	base := int32(-1)
	for {
		o, err := s.observe(ctx, ns, name)
		if err != nil {
			return spawner.WatchResult{}, err
		}
		if !o.exists || o.replicas == 0 {
			s.forget(ns, name)
			return spawner.WatchResult{Gone: true}, nil
		}
		if o.pod != nil && base < 0 {
			base = o.restarts()
		}
		if o.pod != nil && (o.restarts() > base || o.crashed() ||
			o.pod.Status.Phase == corev1.PodFailed || o.pod.Status.Phase == corev1.PodSucceeded) {
			s.forget(ns, name)
			return spawner.WatchResult{Exit: o.exit()}, nil
		}
		if heartbeat != nil {
			heartbeat()
		}
		select {
		case <-ctx.Done():
			return spawner.WatchResult{}, ctx.Err()
		case <-t.C:
		}
	}
}

// Stop scales the StatefulSet to zero and sets kubeflow-resource-stopped (RFC 3339 time, as the culler
// writes it) on the Notebook, which is how Kubeflow stops and culls; a missing object is not an error.
func (s *Servers) Stop(ctx context.Context, ns, name string) error {
	kns := s.Namespace(ns)
	s.forget(ns, name)
	stamp := time.Now().UTC().Format(time.RFC3339)
	if err := s.annotateStopped(ctx, kns, name, &stamp); err != nil {
		return err
	}
	api := s.client.AppsV1().StatefulSets(kns)
	have, err := api.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster: get statefulset %s/%s: %w", kns, name, err)
	}
	if have.Labels[kube.LabelManagedBy] != kube.ManagedBy || have.Spec.Replicas != nil && *have.Spec.Replicas == 0 {
		return nil
	}
	patch := []byte(`{"spec":{"replicas":0}}`)
	if _, err := api.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("cluster: scale statefulset %s/%s to 0: %w", kns, name, err)
	}
	s.record(ctx, s.mirror(ctx, kns, name), kns, name, corev1.EventTypeNormal, ReasonScaled, fmt.Sprintf("Scaled StatefulSet %s from 1 to 0", name))
	return nil
}

// annotateStopped sets (stamp non-nil) or removes the stop annotation of the Notebook mirror, if any.
func (s *Servers) annotateStopped(ctx context.Context, kns, name string, stamp *string) error {
	dyn := s.cfg.Runtime.Dynamic()
	if dyn == nil {
		return nil
	}
	var v any
	if stamp != nil {
		v = *stamp
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{notebooksv1.AnnotationStopped: v}}})
	_, err := dyn.Resource(NotebookResource).Namespace(kns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("cluster: annotate notebook %s/%s: %w", kns, name, err)
	}
	return nil
}

func (s *Servers) mirror(ctx context.Context, kns, name string) *unstructured.Unstructured {
	dyn := s.cfg.Runtime.Dynamic()
	if dyn == nil {
		return nil
	}
	m, err := dyn.Resource(NotebookResource).Namespace(kns).Get(ctx, name, metav1.GetOptions{})
	if err != nil || m.GetLabels()[kube.LabelManagedBy] != kube.ManagedBy {
		return nil
	}
	return m
}

// Remove deletes the notebook's StatefulSet, Service and pods and its Notebook mirror (those made by
// Sluice): what the garbage collector does by owner reference on a cluster, done at once. Like Kubeflow it
// leaves the workspace's PersistentVolumeClaims alone.
func (s *Servers) Remove(ctx context.Context, ns, name string) error {
	kns := s.Namespace(ns)
	s.forget(ns, name)
	mirror := s.mirror(ctx, kns, name)
	bg := metav1.DeletePropagationBackground
	var errs []error
	if sts, err := s.client.AppsV1().StatefulSets(kns).Get(ctx, name, metav1.GetOptions{}); err == nil && sts.Labels[kube.LabelManagedBy] == kube.ManagedBy {
		err := s.client.AppsV1().StatefulSets(kns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &sts.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("cluster: delete statefulset %s/%s: %w", kns, name, err))
		} else {
			s.record(ctx, mirror, kns, name, corev1.EventTypeNormal, ReasonSuccessfulDelete, "Deleted StatefulSet "+name)
		}
		sel := LabelStatefulSet + "=" + name + "," + LabelNotebookName + "=" + name
		if err := s.client.CoreV1().Pods(kns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: sel}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("cluster: delete pods %s in %s: %w", sel, kns, err))
		}
	} else if err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("cluster: get statefulset %s/%s: %w", kns, name, err))
	}
	if svc, err := s.client.CoreV1().Services(kns).Get(ctx, name, metav1.GetOptions{}); err == nil && svc.Labels[kube.LabelManagedBy] == kube.ManagedBy {
		err := s.client.CoreV1().Services(kns).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &svc.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("cluster: delete service %s/%s: %w", kns, name, err))
		} else {
			s.record(ctx, mirror, kns, name, corev1.EventTypeNormal, ReasonSuccessfulDelete, "Deleted Service "+name)
		}
	} else if err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("cluster: get service %s/%s: %w", kns, name, err))
	}
	if mirror != nil {
		uid := mirror.GetUID()
		err := s.cfg.Runtime.Dynamic().Resource(NotebookResource).Namespace(kns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("cluster: delete notebook %s/%s: %w", kns, name, err))
		}
	}
	return errors.Join(errs...)
}

// Lookup returns the endpoint of a notebook whose StatefulSet reports a ready replica (the answer is
// cached for two seconds, so the proxy does not ask the API server per request).
func (s *Servers) Lookup(ctx context.Context, ns, name string) (spawner.Endpoint, bool) {
	k := ns + "/" + name
	s.mu.Lock()
	c, hit := s.cache[k]
	s.mu.Unlock()
	if hit && time.Now().Before(c.until) {
		return c.ep, c.ok
	}
	o, err := s.observe(ctx, ns, name)
	if err != nil {
		return spawner.Endpoint{}, false
	}
	ok := o.ready && (o.cs == nil || o.cs.State.Running != nil)
	ep := s.endpoint(ns, name, 0, o.startedAt())
	s.remember(ns, name, ep, ok)
	return ep, ok
}

func (s *Servers) remember(ns, name string, ep spawner.Endpoint, ok bool) {
	s.mu.Lock()
	s.cache[ns+"/"+name] = cached{ep: ep, ok: ok, until: time.Now().Add(lookupTTL)}
	s.mu.Unlock()
}

func (s *Servers) forget(ns, name string) {
	s.mu.Lock()
	delete(s.cache, ns+"/"+name)
	s.mu.Unlock()
}

// Kernels reads GET http://<service>/notebook/<ns>/<name>/api/kernels, the address Kubeflow's culler
// probes; spawner.ErrNotRunning when the server is not ready.
func (s *Servers) Kernels(ctx context.Context, ns, name string) ([]culling.Kernel, error) {
	ep, ok := s.Lookup(ctx, ns, name)
	if !ok {
		return nil, spawner.ErrNotRunning
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.BaseURL()+"api/kernels", nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", spawner.ErrProbe, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: api/kernels answered %d", spawner.ErrProbe, resp.StatusCode)
	}
	var ks []culling.Kernel
	if err := json.NewDecoder(resp.Body).Decode(&ks); err != nil {
		return nil, fmt.Errorf("%w: %v", spawner.ErrProbe, err)
	}
	return ks, nil
}

// Record writes the Kubernetes Event of a lifecycle change the workflow reports (eventType is an
// io.sluice.notebook.* type): Started, Stopped, Culled, a Warning for failures (reason from ev), Deleted.
func (s *Servers) Record(ctx context.Context, nb notebooksv1.Notebook, eventType string, ev notebooksv1.Event) {
	typ, reason, msg := corev1.EventTypeNormal, "", ev.Message
	switch eventType {
	case events.NotebookRunningV1:
		reason, msg = ReasonStarted, "Notebook server ready at "+notebooksv1.PathPrefix(nb.Metadata.Namespace, nb.Metadata.Name)
		if ev.SpawnSeconds > 0 {
			msg += " after " + strconv.FormatFloat(ev.SpawnSeconds, 'f', 1, 64) + "s"
		}
	case events.NotebookStoppedV1:
		reason = ReasonStopped
	case events.NotebookCulledV1:
		reason = ReasonCulled
	case events.NotebookFailedV1:
		typ, reason = corev1.EventTypeWarning, ev.Reason
	case events.NotebookDeletedV1:
		reason, msg = ReasonSuccessfulDelete, "Deleted Notebook "+nb.Metadata.Name
	default:
		return
	}
	if reason == "" {
		reason = "Failed"
	}
	kns := s.Namespace(nb.Metadata.Namespace)
	s.record(ctx, s.mirror(ctx, kns, nb.Metadata.Name), kns, nb.Metadata.Name, typ, reason, msg)
}

// record writes an Event on the Notebook mirror, or on the StatefulSet when there is none.
func (s *Servers) record(ctx context.Context, mirror *unstructured.Unstructured, kns, name, typ, reason, msg string) {
	ref := corev1.ObjectReference{APIVersion: "apps/v1", Kind: "StatefulSet", Namespace: kns, Name: name}
	if mirror != nil {
		ref = corev1.ObjectReference{APIVersion: mirror.GetAPIVersion(), Kind: mirror.GetKind(), Namespace: kns, Name: mirror.GetName(),
			UID: mirror.GetUID(), ResourceVersion: mirror.GetResourceVersion()}
	}
	s.cfg.Runtime.Record(ctx, ref, typ, reason, msg, Component)
}

// WithDial returns Servers like s whose proxy transport and probe dial through dial.
func (s *Servers) WithDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) (*Servers, error) {
	cfg := s.cfg
	cfg.DialContext = dial
	return New(cfg)
}

// Runtime is the Kubernetes runtime.
func (s *Servers) Runtime() *kube.Runtime { return s.cfg.Runtime }
