package kube_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/kube"
	"github.com/sluice-ml/sluice/libs/runtime/kube/kubetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.Stop()
	os.Exit(code)
}

var nsSeq int

func apiNamespace(t *testing.T, srv *kubetest.Server) string {
	t.Helper()
	nsSeq++
	ns := fmt.Sprintf("kube-%d-%d", os.Getpid(), nsSeq)
	srv.Namespace(t, ns)
	return ns
}

func waitPod(t *testing.T, srv *kubetest.Server, ns, name string, cond func(*corev1.Pod, error) bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p, err := srv.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if cond(p, err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s/%s: condition not met (last error %v)", ns, name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Against a real API server: a pod with its headless Service and the owner mirror (served by a CRD)
// carries the controller owner reference; the runtime follows the status a kubelet would write, and an
// ended pod (Keep false) goes with its Service. Events land on the owner.
func TestStartPodAgainstAPIServer(t *testing.T) {
	srv := kubetest.Start(t)
	ns := apiNamespace(t, srv)
	gvr := srv.CRD(t, "example.sluice.io", "v1", "Widget")
	rt, err := kube.New(kube.Config{Client: srv.Client, Dynamic: srv.Dynamic, Namespace: ns, GracePeriod: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	owner := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"size": int64(3)}}}
	owner.SetAPIVersion("example.sluice.io/v1")
	owner.SetKind("Widget")
	owner.SetName("w1")
	owner.SetLabels(map[string]string{kube.LabelOwnerUID: "uid-1"})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "w1-main-0", Labels: map[string]string{"app": "w1"}},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "main", Image: "example/w:1"}}}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "w1-main-0"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "w1"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	ctx := context.Background()
	p, err := rt.StartPod(ctx, kube.PodRequest{Pod: pod, Service: svc, Owner: &kube.Owner{Resource: gvr, Object: owner}, Component: "widget-controller"})
	if err != nil {
		t.Fatal(err)
	}
	mirror, err := srv.Dynamic.Resource(gvr).Namespace(ns).Get(ctx, "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := srv.Client.CoreV1().Pods(ns).Get(ctx, "w1-main-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.OwnerReferences) != 1 || got.OwnerReferences[0].UID != mirror.GetUID() || !*got.OwnerReferences[0].Controller {
		t.Fatalf("pod owner references: %+v (mirror uid %s)", got.OwnerReferences, mirror.GetUID())
	}
	if got.Annotations[kube.AnnotationAttempt] != "1" || got.Labels[runtime.LabelName] != "w1-main-0" || got.Labels["app"] != "w1" {
		t.Fatalf("pod metadata: %+v %+v", got.Labels, got.Annotations)
	}
	s, err := srv.Client.CoreV1().Services(ns).Get(ctx, "w1-main-0", metav1.GetOptions{})
	if err != nil || s.OwnerReferences[0].UID != mirror.GetUID() {
		t.Fatalf("service: %v %+v", err, s)
	}
	// A second start of the same attempt adopts the pod.
	if _, err := rt.StartPod(ctx, kube.PodRequest{Pod: pod, Service: svc, Owner: &kube.Owner{Resource: gvr, Object: owner}}); err != nil {
		t.Fatalf("retried start: %v", err)
	}

	srv.SetPod(t, ns, "w1-main-0", "main", corev1.PodRunning, kubetest.Running())
	srv.SetPod(t, ns, "w1-main-0", "main", corev1.PodFailed, kubetest.Exited(2))
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	st, err := p.Wait(wctx)
	if err != nil || st.Code != 2 {
		t.Fatalf("Wait: %+v %v", st, err)
	}
	waitPod(t, srv, ns, "w1-main-0", func(_ *corev1.Pod, err error) bool { return apierrors.IsNotFound(err) })
	if _, err := srv.Client.CoreV1().Services(ns).Get(ctx, "w1-main-0", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("service outlived its pod: %v", err)
	}
	evs, err := srv.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, ev := range evs.Items {
		if ev.InvolvedObject.Kind != "Widget" || ev.Source.Component != "widget-controller" && ev.Source.Component != "sluice" {
			t.Fatalf("event on %+v from %q", ev.InvolvedObject, ev.Source.Component)
		}
		reasons[ev.Reason]++
	}
	for _, r := range []string{kube.ReasonSuccessfulCreateService, kube.ReasonSuccessfulCreatePod, kube.ReasonExitedWithCode, kube.ReasonSuccessfulDeletePod} {
		if reasons[r] == 0 {
			t.Errorf("no %s event: %v", r, reasons)
		}
	}

	// A mirror of another job of that name is replaced; an object Sluice did not make is refused.
	owner2 := owner.DeepCopy()
	owner2.SetLabels(map[string]string{kube.LabelOwnerUID: "uid-2"})
	m2, err := rt.EnsureOwner(ctx, ns, &kube.Owner{Resource: gvr, Object: owner2})
	if err != nil || m2.GetUID() == mirror.GetUID() {
		t.Fatalf("stale mirror not replaced: %v", err)
	}
	foreign := owner.DeepCopy()
	foreign.SetName("theirs")
	foreign.SetLabels(nil)
	foreign.SetNamespace(ns)
	if _, err := srv.Dynamic.Resource(gvr).Namespace(ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	foreign.SetLabels(map[string]string{kube.LabelOwnerUID: "uid-3"})
	if _, err := rt.EnsureOwner(ctx, ns, &kube.Owner{Resource: gvr, Object: foreign}); err == nil {
		t.Fatal("EnsureOwner took over an object sluice did not create")
	}
}

// Without the owner's CRD the pod carries no owner reference and Events go to the pod; a new attempt
// replaces the ended pod of the previous one under the same name (Keep leaves it until then).
func TestStartPodWithoutCRDAndAttempts(t *testing.T) {
	srv := kubetest.Start(t)
	ns := apiNamespace(t, srv)
	rt, err := kube.New(kube.Config{Client: srv.Client, Dynamic: srv.Dynamic, NamespacePrefix: "", GracePeriod: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rt.NamespaceOf(ns) != ns {
		t.Fatalf("NamespaceOf(%q) = %q", ns, rt.NamespaceOf(ns))
	}
	owner := &unstructured.Unstructured{}
	owner.SetAPIVersion("kubeflow.org/v1")
	owner.SetKind("Nothing")
	owner.SetName("job")
	gvr := schema.GroupVersionResource{Group: "kubeflow.org", Version: "v1", Resource: "nothings"}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "job-worker-0", Namespace: ns},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "pytorch", Image: "example/t:1"}}}}
	ctx := context.Background()
	p1, err := rt.StartPod(ctx, kube.PodRequest{Pod: pod, Owner: &kube.Owner{Resource: gvr, Object: owner}, Attempt: 1, Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	first, err := srv.Client.CoreV1().Pods(ns).Get(ctx, "job-worker-0", metav1.GetOptions{})
	if err != nil || len(first.OwnerReferences) != 0 {
		t.Fatalf("pod without CRD: %v %+v", err, first.OwnerReferences)
	}
	srv.SetPod(t, ns, "job-worker-0", "pytorch", corev1.PodSucceeded, kubetest.Exited(0))
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if st, err := p1.Wait(wctx); err != nil || st.Code != 0 {
		t.Fatalf("Wait: %+v %v", st, err)
	}
	if _, err := srv.Client.CoreV1().Pods(ns).Get(ctx, "job-worker-0", metav1.GetOptions{}); err != nil {
		t.Fatalf("Keep: the ended pod is gone: %v", err)
	}
	p2, err := rt.StartPod(ctx, kube.PodRequest{Pod: pod, Attempt: 2, Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	second, err := srv.Client.CoreV1().Pods(ns).Get(ctx, "job-worker-0", metav1.GetOptions{})
	if err != nil || second.UID == first.UID || second.Annotations[kube.AnnotationAttempt] != "2" {
		t.Fatalf("attempt 2 did not replace attempt 1's pod: %v", err)
	}
	if err := p2.Kill(); err != nil {
		t.Fatal(err)
	}
	if st, err := p2.Wait(wctx); err != nil || st.Code != 137 {
		t.Fatalf("Kill: %+v %v", st, err)
	}
	evs, err := srv.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Pod"})
	if err != nil || len(evs.Items) == 0 {
		t.Fatalf("no events on the pod: %v", err)
	}
}
