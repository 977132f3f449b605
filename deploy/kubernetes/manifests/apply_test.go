package manifests

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/kube"
	"github.com/sluice-ml/sluice/libs/runtime/kube/kubetest"
)

func TestMain(m *testing.M) {
	// RoleBindings count: the services' ServiceAccounts get exactly what rbac.yaml grants.
	kubetest.AuthorizationMode = "RBAC"
	code := m.Run()
	kubetest.Stop()
	os.Exit(code)
}

// warnings collects the API server's warning headers (Pod Security admission warns about pod templates
// that its namespace's level would refuse).
type warnings struct {
	mu  sync.Mutex
	got []string
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, text)
}

// kindOrder applies what others refer to first.
var kindOrder = map[string]int{"Namespace": 0, "ServiceAccount": 1, "Secret": 1, "ConfigMap": 1, "ClusterRole": 1}

// apply creates or updates every object by server-side apply (field manager "sluice-manifests-test",
// as `kubectl apply --server-side`), so the API server validates each in full, and returns the warnings.
func apply(t *testing.T, srv *kubetest.Server, objs []*unstructured.Unstructured) []string {
	t.Helper()
	w := &warnings{}
	cfg := rest.CopyConfig(srv.Config)
	cfg.WarningHandler = w
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(srv.Client.Discovery()))
	sorted := append([]*unstructured.Unstructured(nil), objs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		oi, ok := kindOrder[sorted[i].GetKind()]
		if !ok {
			oi = 2
		}
		oj, ok := kindOrder[sorted[j].GetKind()]
		if !ok {
			oj = 2
		}
		return oi < oj
	})
	ctx := context.Background()
	for _, o := range sorted {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s %s: %v", gvk, o.GetName(), err)
		}
		var res dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			if o.GetNamespace() == "" {
				t.Fatalf("%s %s has no namespace", gvk.Kind, o.GetName())
			}
			res = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		data, err := json.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		force := true
		got, err := res.Patch(ctx, o.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "sluice-manifests-test", Force: &force})
		if err != nil {
			t.Fatalf("apply %s %s/%s: %v", gvk.Kind, o.GetNamespace(), o.GetName(), err)
		}
		if got.GetUID() == "" || got.GetKind() != gvk.Kind {
			t.Fatalf("apply %s %s: got %s uid %q", gvk.Kind, o.GetName(), got.GetKind(), got.GetUID())
		}
		// Read it back: what was stored is what was written (no field pruned as unknown).
		back, err := res.Get(ctx, o.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get %s %s: %v", gvk.Kind, o.GetName(), err)
		}
		if spec, ok := o.Object["spec"]; ok && !contains(back.Object["spec"], spec) {
			t.Errorf("%s %s/%s: stored spec differs from the manifest's", gvk.Kind, o.GetNamespace(), o.GetName())
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.got
}

// contains reports whether every field of want is in got with the same value (got may have defaults
// the API server filled in). Numbers are compared through JSON.
func contains(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if !contains(g[k], v) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !contains(g[i], w[i]) {
				return false
			}
		}
		return true
	default:
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(want)
		return bytes.Equal(a, b) || strings.Trim(string(a), `"`) == strings.Trim(string(b), `"`)
	}
}

// TestApplyToAPIServer applies everything a deployment creates without helm — the Secrets of
// secrets.sh, the base, the example overlay's Ingress, infra's namespace and PostgreSQL — to a real
// kube-apiserver, which validates every object (server-side apply) and whose Pod Security admission
// checks the pod templates against each namespace's level (restricted for sluice).
func TestApplyToAPIServer(t *testing.T) {
	srv := kubetest.Start(t)
	objs := append(secrets(t), render(t, "base")...)
	objs = append(objs, readObjects(t, "infra/namespace.yaml", "infra/postgres.yaml")...)
	for _, o := range render(t, "overlays/example") {
		if o.GetKind() == "Ingress" {
			objs = append(objs, o)
		}
	}
	if warns := apply(t, srv, objs); len(warns) > 0 {
		t.Errorf("API server warnings: %q", warns)
	}
	// The overlay applies over the base: its images replace the base's.
	apply(t, srv, render(t, "overlays/example"))
	d, err := srv.Client.AppsV1().Deployments("sluice").Get(context.Background(), "training", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != "registry.example.com/sluice/training:v0.1.0" {
		t.Fatalf("training after the overlay: %v %v", err, d)
	}
}

// saClient is a client authenticated as ServiceAccount sluice/<name> by a token the API server issues
// (TokenRequest), as the in-cluster config of its pods is.
func saClient(t *testing.T, srv *kubetest.Server, name string) (*rest.Config, kubernetes.Interface, dynamic.Interface) {
	t.Helper()
	tok, err := srv.Client.CoreV1().ServiceAccounts("sluice").CreateToken(context.Background(), name,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token of %s: %v", name, err)
	}
	cfg := rest.AnonymousClientConfig(srv.Config)
	cfg.BearerToken = tok.Status.Token
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, cs, dyn
}

func ptr[T any](v T) *T { return &v }

// allowed asks the API server (SubjectAccessReview) whether ServiceAccount <saNamespace>/<sa> may do verb on
// resource (group/resource[/subresource]) in namespace ns ("" for cluster-wide).
func allowed(t *testing.T, srv *kubetest.Server, saNamespace, sa, verb, resource, ns string) bool {
	t.Helper()
	group, res := "", resource
	if g, r, ok := strings.Cut(resource, "/"); ok && (strings.Contains(g, ".") || g == "apps") {
		group, res = g, r
	}
	res, sub, _ := strings.Cut(res, "/")
	r, err := srv.Client.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User:               "system:serviceaccount:" + saNamespace + ":" + sa,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + saNamespace, "system:authenticated"},
		ResourceAttributes: &authzv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: group, Resource: res, Subresource: sub},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Status.Allowed
}

// TestRBAC: with the manifests applied and RBAC deciding, each service's ServiceAccount can do what the
// Kubernetes runtime does for it, in sluice-jobs and nowhere else. The training service's account runs
// the runtime itself — a replica pod with its headless Service owned by a mirrored TFJob, followed to its
// end, then everything a job's deletion removes — and the pipelines account a step pod; the
// SubjectAccessReviews pin the rest, including what must stay denied (Secrets anywhere, pods in the
// services' own namespace, anything for the services that do not use the API server).
func TestRBAC(t *testing.T) {
	srv := kubetest.Start(t)
	apply(t, srv, append(secrets(t), render(t, "base")...))
	const jobs = "sluice-jobs"
	ctx := context.Background()

	t.Run("training runs a replica", func(t *testing.T) {
		tfjobs := srv.CRD(t, "kubeflow.org", "v1", "TFJob")
		_, cs, dyn := saClient(t, srv, "training")
		rt, err := kube.New(kube.Config{Client: cs, Dynamic: dyn, Namespace: jobs, GracePeriod: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		owner := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{}}}
		owner.SetAPIVersion("kubeflow.org/v1")
		owner.SetKind("TFJob")
		owner.SetName("mnist")
		owner.SetLabels(map[string]string{kube.LabelOwnerUID: "job-uid-1"})
		lbl := map[string]string{"training.kubeflow.org/job-name": "mnist", "training.kubeflow.org/replica-type": "worker",
			"training.kubeflow.org/replica-index": "0"}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "mnist-worker-0", Labels: lbl},
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "tensorflow", Image: "sluice-local/mnist-trainer:dev"}}}}
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "mnist-worker-0", Labels: lbl},
			Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: lbl, Ports: []corev1.ServicePort{{Name: "tfjob-port", Port: 2222}}}}
		p, err := rt.StartPod(ctx, kube.PodRequest{Pod: pod, Service: svc, Owner: &kube.Owner{Resource: tfjobs, Object: owner},
			Container: "tensorflow", Component: "tfjob-controller", Keep: true})
		if err != nil {
			t.Fatalf("StartPod as sluice/training: %v", err)
		}
		got, err := srv.Client.CoreV1().Pods(jobs).Get(ctx, "mnist-worker-0", metav1.GetOptions{})
		if err != nil || len(got.OwnerReferences) != 1 || got.OwnerReferences[0].Kind != "TFJob" {
			t.Fatalf("pod %v: want it owned by the mirrored TFJob (%v)", got.OwnerReferences, err)
		}
		srv.SetPod(t, jobs, "mnist-worker-0", "tensorflow", corev1.PodRunning, kubetest.Running())
		srv.SetPod(t, jobs, "mnist-worker-0", "tensorflow", corev1.PodSucceeded, kubetest.Exited(0))
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if st, err := p.Wait(wctx); err != nil || st.Code != 0 {
			t.Fatalf("Wait as sluice/training: %+v %v", st, err)
		}
		evs, err := srv.Client.CoreV1().Events(jobs).List(ctx, metav1.ListOptions{})
		if err != nil || len(evs.Items) == 0 {
			t.Fatalf("no Events recorded by sluice/training (%v)", err)
		}
		sel := "training.kubeflow.org/job-name=mnist," + kube.LabelManagedBy + "=" + kube.ManagedBy
		if err := rt.DeleteOwned(ctx, jobs, sel, tfjobs, "mnist", "job-uid-1"); err != nil {
			t.Fatalf("DeleteOwned as sluice/training: %v", err)
		}
		if _, err := srv.Client.CoreV1().Services(jobs).Get(ctx, "mnist-worker-0", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("Service after DeleteOwned: %v", err)
		}
		if _, err := srv.Dynamic.Resource(tfjobs).Namespace(jobs).Get(ctx, "mnist", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("TFJob after DeleteOwned: %v", err)
		}
		// What it must not do, asked directly as the account.
		for what, err := range map[string]error{
			"list secrets in sluice-jobs": func() error { _, err := cs.CoreV1().Secrets(jobs).List(ctx, metav1.ListOptions{}); return err }(),
			"list secrets cluster-wide":   func() error { _, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); return err }(),
			"get the sluice-auth Secret": func() error {
				_, err := cs.CoreV1().Secrets("sluice").Get(ctx, "sluice-auth", metav1.GetOptions{})
				return err
			}(),
			"create pods in sluice": func() error {
				_, err := cs.CoreV1().Pods("sluice").Create(ctx, pod.DeepCopy(), metav1.CreateOptions{})
				return err
			}(),
			"list pods in default": func() error { _, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); return err }(),
		} {
			if !apierrors.IsForbidden(err) {
				t.Errorf("sluice/training may %s: %v", what, err)
			}
		}
	})

	t.Run("pipelines runs a step", func(t *testing.T) {
		_, cs, _ := saClient(t, srv, "pipelines")
		rt, err := kube.New(kube.Config{Client: cs, Namespace: jobs, GracePeriod: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		p, err := rt.Start(ctx, runtime.Spec{Name: "run-1-hello-a1", Image: "sluice-local/step:dev", Command: []string{"echo", "hello"}})
		if err != nil {
			t.Fatalf("Start as sluice/pipelines: %v", err)
		}
		srv.SetPod(t, jobs, "run-1-hello-a1", kube.ContainerName, corev1.PodSucceeded, kubetest.Exited(0))
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if st, err := p.Wait(wctx); err != nil || st.Code != 0 {
			t.Fatalf("Wait as sluice/pipelines: %+v %v", st, err)
		}
	})

	// verb, resource, namespace, and who may (everyone else may not).
	checks := []struct {
		verb, resource, ns string
		who                []string
	}{
		{"create", "pods", jobs, []string{"training", "pipelines"}},
		{"watch", "pods", jobs, []string{"training", "pipelines", "notebooks"}},
		{"get", "pods/log", jobs, []string{"training", "pipelines", "notebooks"}},
		{"deletecollection", "pods", jobs, []string{"training"}},
		{"update", "pods", jobs, nil},
		{"create", "services", jobs, []string{"training", "notebooks"}},
		{"create", "events", jobs, []string{"training", "pipelines", "notebooks"}},
		{"create", "kubeflow.org/tfjobs", jobs, []string{"training"}},
		{"update", "kubeflow.org/tfjobs/finalizers", jobs, []string{"training"}},
		{"create", "kubeflow.org/pytorchjobs", jobs, []string{"training"}},
		{"create", "apps/statefulsets", jobs, []string{"notebooks"}},
		{"patch", "apps/statefulsets", jobs, []string{"notebooks"}},
		{"create", "kubeflow.org/notebooks", jobs, []string{"notebooks"}},
		{"create", "apps/deployments", jobs, nil},
		{"get", "secrets", jobs, nil},
		{"list", "secrets", "", nil},
		{"get", "secrets", "sluice", nil},
		{"get", "configmaps", "sluice", nil},
		{"create", "pods", "sluice", nil},
		{"delete", "pods", "sluice", nil},
		{"create", "pods", "default", nil},
		{"list", "pods", "", nil},
		{"create", "rbac.authorization.k8s.io/rolebindings", jobs, nil},
	}
	for _, c := range checks {
		for _, sa := range services {
			want := false
			for _, w := range c.who {
				want = want || w == sa
			}
			if got := allowed(t, srv, "sluice", sa, c.verb, c.resource, c.ns); got != want {
				t.Errorf("sluice/%s %s %s in %q: allowed %v, want %v", sa, c.verb, c.resource, c.ns, got, want)
			}
		}
	}
	// The default account of users' pods has no token and no permissions.
	if allowed(t, srv, jobs, "default", "get", "pods", jobs) {
		t.Error("sluice/default may get pods in sluice-jobs")
	}
}
