package app_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/libs/runtime/kube/kubetest"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/app"
)

var notebooksGVR = schema.GroupVersionResource{Group: "kubeflow.org", Version: "v1", Resource: "notebooks"}

// SLUICE_RUNTIME=kubernetes end to end, against a real kube-apiserver (kubetest) and the devstack's Temporal
// and NATS: a Kubeflow Notebook posted to the REST API becomes notebook-controller's StatefulSet and Service;
// it is Running once the StatefulSet reports a ready replica (the test plays the StatefulSet controller and
// the kubelet through the status subresource: neither runs here); the proxy reaches the server at the
// Service's DNS name without forwarding the Sluice token (the cluster network is replaced by a dialer to a
// local stand-in for the Jupyter server, which cannot run as a pod here); the culler culls it by scaling to
// zero with kubeflow-resource-stopped; start scales it back and removes the annotation; delete removes it all.
func TestNotebookOnKubernetes(t *testing.T) {
	srv := kubetest.Start(t)
	const ns, name = "kteam", "lab"
	srv.Namespace(t, ns)
	srv.CRD(t, "kubeflow.org", "v1", "Notebook")
	ctx := t.Context()

	var upstreamAuth atomic.Value
	var dialed atomic.Value
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+notebooksv1.PathPrefix(ns, name)+"api/kernels", func(w http.ResponseWriter, r *http.Request) {
		upstreamAuth.Store(r.Header.Get("Authorization") + "|" + r.URL.RawQuery)
		fmt.Fprint(w, `[{"id":"k1","name":"python3","last_activity":"2020-01-01T00:00:00Z","execution_state":"idle","connections":0}]`)
	})
	jupyter := httptest.NewServer(mux)
	t.Cleanup(jupyter.Close)

	stack := devstacktest.Stack(t)
	env := map[string]string{
		"SLUICE_NOTEBOOKS_TOKENS": tokenA + "=" + ns, platform.EnvKubeconfig: srv.Kubeconfig,
		"SLUICE_NOTEBOOKS_ENABLE_CULLING": "true", "SLUICE_NOTEBOOKS_CULL_IDLE_TIME": "8s",
		"SLUICE_NOTEBOOKS_IDLENESS_CHECK_PERIOD": "1s",
	}
	h := &harness{t: t, stack: stack, env: env}
	h.deps = newDeps(t, stack, t.TempDir(), env)
	h.deps.RuntimeKind = "kubernetes"
	svc, err := app.New(ctx, h.deps)
	if err != nil {
		t.Fatal(err)
	}
	if svc.KubeRuntime() == nil || svc.WarmReady() != 0 {
		t.Fatal("SLUICE_RUNTIME=kubernetes did not select the Kubernetes servers (or kept a warm pool)")
	}
	if err := svc.SetClusterDial(func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed.Store(addr)
		var d net.Dialer
		return d.DialContext(ctx, network, jupyter.Listener.Addr().String())
	}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	h.srv = httptest.NewServer(platform.Handler(h.deps.Metrics, h.deps.Log, nil, svc))
	t.Cleanup(h.close)
	h.forget(ns, name)

	doc, err := yaml.YAMLToJSON([]byte(`apiVersion: kubeflow.org/v1
kind: Notebook
metadata:
  name: lab
  namespace: kteam
  labels: {app: lab}
spec:
  template:
    spec:
      serviceAccountName: default-editor
      containers:
        - name: lab
          image: kubeflownotebookswg/jupyter-scipy:v1.9.0
          volumeMounts: [{mountPath: /home/jovyan, name: workspace}]
      volumes: [{name: workspace, persistentVolumeClaim: {claimName: lab-workspace}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", h.srv.URL+"/apis/notebooks/v1/namespaces/"+ns+"/notebooks", bytes.NewReader(doc))
	req.Header.Set("Authorization", "Bearer "+tokenA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d", resp.StatusCode)
	}

	sts := waitSTS(t, srv, ns, name, func(s *appsv1.StatefulSet) bool { return *s.Spec.Replicas == 1 })
	ps := sts.Spec.Template.Spec
	if ps.ServiceAccountName != "default-editor" || len(ps.Volumes) != 1 || ps.Volumes[0].PersistentVolumeClaim.ClaimName != "lab-workspace" ||
		ps.Containers[0].VolumeMounts[0].MountPath != "/home/jovyan" || ps.Containers[0].Env[len(ps.Containers[0].Env)-1].Value != "/notebook/kteam/lab" ||
		len(sts.OwnerReferences) != 1 || sts.OwnerReferences[0].Kind != "Notebook" {
		t.Fatalf("StatefulSet not the Notebook's: %+v owners %+v", ps, sts.OwnerReferences)
	}
	// The Service is created right after the StatefulSet.
	var service *corev1.Service
	deadline := time.Now().Add(2 * time.Minute)
	for service, err = srv.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{}); err != nil && time.Now().Before(deadline); service, err = srv.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{}) {
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || service.Spec.Ports[0].Name != "http-lab" || service.Spec.Ports[0].Port != 80 {
		t.Fatalf("Service: %v %+v", err, service)
	}
	if nb, _ := h.get(ns, name, tokenA); running(nb, 200) {
		t.Fatal("Running before the StatefulSet reported a ready replica")
	}
	replicaReady(t, srv, ns, name)
	h.waitFor(ns, name, tokenA, 2*time.Minute, "running", running)

	// The proxy reaches the Service's DNS name; the Sluice token stays with Sluice.
	code, body := h.do("GET", "/notebook/"+ns+"/"+name+"/api/kernels?token="+tokenA, tokenA, nil)
	if code != 200 {
		t.Fatalf("proxy: %d %s", code, body)
	}
	if got := dialed.Load(); got != "lab.kteam.svc.cluster.local:80" {
		t.Fatalf("proxy dialed %v, want the Service's DNS name", got)
	}
	if got := upstreamAuth.Load(); got != "|" {
		t.Fatalf("the server saw Authorization|query %q", got)
	}

	// Idle kernels: culled by scaling to zero with kubeflow-resource-stopped on the Notebook.
	h.waitFor(ns, name, tokenA, 2*time.Minute, "culled", terminated(notebooksv1.ReasonCulled))
	waitSTS(t, srv, ns, name, func(s *appsv1.StatefulSet) bool { return *s.Spec.Replicas == 0 })
	mirror, err := srv.Dynamic.Resource(notebooksGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.RFC3339, mirror.GetAnnotations()[notebooksv1.AnnotationStopped]); err != nil {
		t.Fatalf("kubeflow-resource-stopped on the culled Notebook: %v", err)
	}
	if code, _ := h.do("GET", "/notebook/"+ns+"/"+name+"/api/kernels", tokenA, nil); code != http.StatusServiceUnavailable {
		t.Fatalf("proxy to a culled notebook: %d, want 503", code)
	}

	// Start: replicas 1, annotation removed.
	if code, b := h.do("POST", "/apis/notebooks/v1/namespaces/"+ns+"/notebooks/"+name+":start", tokenA, nil); code != 202 {
		t.Fatalf("start: %d %s", code, b)
	}
	waitSTS(t, srv, ns, name, func(s *appsv1.StatefulSet) bool { return *s.Spec.Replicas == 1 })
	mirror, err = srv.Dynamic.Resource(notebooksGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mirror.GetAnnotations()[notebooksv1.AnnotationStopped]; ok {
		t.Fatal("start left kubeflow-resource-stopped on the Notebook")
	}
	replicaReady(t, srv, ns, name)
	h.waitFor(ns, name, tokenA, 2*time.Minute, "running again", running)

	// Delete: the objects go with the notebook.
	if code, b := h.do("DELETE", "/apis/notebooks/v1/namespaces/"+ns+"/notebooks/"+name, tokenA, nil); code != 202 {
		t.Fatalf("delete: %d %s", code, b)
	}
	h.waitFor(ns, name, tokenA, time.Minute, "deleted", func(_ notebooksv1.Notebook, code int) bool { return code == 404 })
	if _, err := srv.Client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("StatefulSet outlived its notebook: %v", err)
	}
	if _, err := srv.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("Service outlived its notebook: %v", err)
	}
	if _, err := srv.Dynamic.Resource(notebooksGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("Notebook mirror outlived its notebook: %v", err)
	}
	evs, err := srv.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Notebook"})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, ev := range evs.Items {
		reasons[ev.Reason] = true
	}
	for _, r := range []string{"SuccessfulCreate", "Started", "Culled", "ScalingReplicaSet", "SuccessfulDelete"} {
		if !reasons[r] {
			t.Errorf("no %s Event on the Notebook: %v", r, reasons)
		}
	}
	if os.Getenv("SLUICE_RECORD_HISTORIES") != "" {
		recordHistory(t, h, notebooksv1.WorkflowID(ns, name), "../internal/lifecycle/testdata/histories/notebook-kubernetes.json")
	}
}

func waitSTS(t *testing.T, srv *kubetest.Server, ns, name string, ok func(*appsv1.StatefulSet) bool) *appsv1.StatefulSet {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s, err := srv.Client.AppsV1().StatefulSets(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("StatefulSet %s/%s: condition not met (%v)", ns, name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// replicaReady plays the StatefulSet controller and the kubelet: pod <name>-0 from the template, its
// container running, the StatefulSet's status reporting one ready replica of its current generation.
func replicaReady(t *testing.T, srv *kubetest.Server, ns, name string) {
	t.Helper()
	ctx := context.Background()
	sts := waitSTS(t, srv, ns, name, func(*appsv1.StatefulSet) bool { return true })
	pods := srv.Client.CoreV1().Pods(ns)
	pod, err := pods.Get(ctx, name+"-0", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		pod, err = pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name + "-0", Labels: sts.Spec.Template.Labels},
			Spec: sts.Spec.Template.Spec}, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: name, Image: pod.Spec.Containers[0].Image, Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}
	if _, err := pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	sts.Status.ObservedGeneration = sts.Generation
	sts.Status.Replicas, sts.Status.ReadyReplicas, sts.Status.AvailableReplicas = 1, 1, 1
	if _, err := srv.Client.AppsV1().StatefulSets(ns).UpdateStatus(ctx, sts, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
