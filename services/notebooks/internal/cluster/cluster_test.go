package cluster_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/runtime/kube"
	"github.com/sluice-ml/sluice/libs/runtime/kube/kubetest"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/internal/cluster"
	"github.com/sluice-ml/sluice/services/notebooks/internal/nbspec"
	"github.com/sluice-ml/sluice/services/notebooks/internal/spawner"
)

func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.Stop()
	os.Exit(code)
}

// notebook is the Kubeflow Notebook of the nbspec testdata (PVC workspace, service account, resources,
// imagePullPolicy), created in Sluice namespace ns.
func notebook(t *testing.T, ns string) notebooksv1.Notebook {
	t.Helper()
	doc, err := os.ReadFile("../nbspec/testdata/kubeflow-notebook.yaml")
	require.NoError(t, err)
	nb, err := nbspec.Parse([]byte(strings.Replace(string(doc), "namespace: kubeflow-user-example-com", "namespace: "+ns, 1)), "default")
	require.NoError(t, err)
	created := time.Now().UTC()
	nb.Metadata.CreationTimestamp = &created
	return nb
}

// fakeJupyter stands in for the cluster network: the Service address resolves to a local server answering
// the notebook's api/status and api/kernels (no kubelet runs a container here).
func fakeJupyter(t *testing.T, prefix string) (dial func(context.Context, string, string) (net.Conn, error), dialed *atomic.Value, hits *atomic.Int32) {
	hits = &atomic.Int32{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix+"api/kernels", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, `[{"id":"k1","name":"python3","last_activity":"2026-01-02T03:04:05Z","execution_state":"busy","connections":1}]`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	dialed = &atomic.Value{}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed.Store(addr)
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Listener.Addr().String())
	}, dialed, hits
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// controller plays the StatefulSet controller and the kubelet (neither runs here): it creates pod <name>-0
// from the StatefulSet's template and writes the pod's and the StatefulSet's status through the status
// subresource, as notebook-controller's envtest tests do.
type controller struct {
	t    *testing.T
	srv  *kubetest.Server
	ns   string
	name string
}

func (c controller) sts() *appsv1.StatefulSet {
	s, err := c.srv.Client.AppsV1().StatefulSets(c.ns).Get(context.Background(), c.name, metav1.GetOptions{})
	require.NoError(c.t, err)
	return s
}

// run creates the pod (if absent) with its container running and reports the replica ready.
func (c controller) run(restarts int32, last *corev1.ContainerStateTerminated) {
	ctx := context.Background()
	sts := c.sts()
	pods := c.srv.Client.CoreV1().Pods(c.ns)
	pod, err := pods.Get(ctx, c.name+"-0", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		t := true
		pod, err = pods.Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: c.name + "-0", Labels: sts.Spec.Template.Labels,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts.Name, UID: sts.UID, Controller: &t}}},
			Spec: sts.Spec.Template.Spec,
		}, metav1.CreateOptions{})
	}
	require.NoError(c.t, err)
	c.setContainer(pod, corev1.PodRunning, corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}, restarts, last)
	c.setReady(1)
}

func (c controller) setContainer(pod *corev1.Pod, phase corev1.PodPhase, state corev1.ContainerState, restarts int32, last *corev1.ContainerStateTerminated) {
	cs := corev1.ContainerStatus{Name: pod.Spec.Containers[0].Name, Image: pod.Spec.Containers[0].Image, State: state,
		Ready: state.Running != nil, RestartCount: restarts}
	if last != nil {
		cs.LastTerminationState.Terminated = last
	}
	pod.Status.Phase = phase
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
	_, err := c.srv.Client.CoreV1().Pods(c.ns).UpdateStatus(context.Background(), pod, metav1.UpdateOptions{})
	require.NoError(c.t, err)
}

func (c controller) setReady(n int32) {
	sts := c.sts()
	sts.Status.ObservedGeneration = sts.Generation
	sts.Status.Replicas, sts.Status.ReadyReplicas, sts.Status.CurrentReplicas, sts.Status.AvailableReplicas = n, n, n, n
	_, err := c.srv.Client.AppsV1().StatefulSets(c.ns).UpdateStatus(context.Background(), sts, metav1.UpdateOptions{})
	require.NoError(c.t, err)
}

// A Kubeflow Notebook run with SLUICE_RUNTIME=kubernetes against a real kube-apiserver: the StatefulSet
// and Service are notebook-controller v1.9's, field by field, owned by the mirrored Notebook; readiness
// comes from the StatefulSet's status; a container restart ends the watch with its exit code; stop/cull
// scales to zero and sets kubeflow-resource-stopped (RFC 3339), start removes it and scales to one; delete
// removes every object; Events are recorded on the Notebook.
func TestNotebookAsStatefulSet(t *testing.T) {
	srv := kubetest.Start(t)
	ns := fmt.Sprintf("nb-%d", os.Getpid())
	srv.Namespace(t, ns)
	srv.CRD(t, "kubeflow.org", "v1", "Notebook")
	rt, err := kube.New(kube.Config{Client: srv.Client, Dynamic: srv.Dynamic, GracePeriod: time.Second})
	require.NoError(t, err)
	nb := notebook(t, ns)
	name := nb.Metadata.Name
	dial, dialed, hits := fakeJupyter(t, notebooksv1.PathPrefix(ns, name))
	s, err := cluster.New(cluster.Config{Runtime: rt, ReadyTimeout: 2 * time.Minute, PollInterval: 20 * time.Millisecond, DialContext: dial})
	require.NoError(t, err)
	ctx := t.Context()
	c := controller{t: t, srv: srv, ns: ns, name: name}

	type started struct {
		r   spawner.StartResult
		err error
	}
	start := func() chan started {
		ch := make(chan started, 1)
		go func() {
			r, err := s.Start(ctx, nb, 1, nil)
			ch <- started{r, err}
		}()
		return ch
	}
	first := start()
	var sts *appsv1.StatefulSet
	waitFor(t, "the StatefulSet", func() bool {
		sts, err = srv.Client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil
	})
	mirror, err := srv.Dynamic.Resource(cluster.NotebookResource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "jupyter", mirror.GetAnnotations()["notebooks.kubeflow.org/server-type"])
	require.Equal(t, "my-notebook", mirror.GetLabels()["app"])
	image, _, _ := unstructuredString(mirror.Object, "spec", "template", "spec", "containers", "0", "image")
	require.Equal(t, "kubeflownotebookswg/jupyter-scipy:v1.8.0", image)
	t.Logf("mirror spec: %v", mirror.Object["spec"])

	tr := true
	owner := []metav1.OwnerReference{{APIVersion: "kubeflow.org/v1", Kind: "Notebook", Name: name, UID: mirror.GetUID(), Controller: &tr, BlockOwnerDeletion: &tr}}
	require.Equal(t, owner, sts.OwnerReferences)
	require.Equal(t, map[string]string{kube.LabelManagedBy: kube.ManagedBy}, sts.Labels)
	require.Equal(t, int32(1), *sts.Spec.Replicas)
	require.Equal(t, &metav1.LabelSelector{MatchLabels: map[string]string{"statefulset": name}}, sts.Spec.Selector)
	require.Equal(t, map[string]string{"statefulset": name, "notebook-name": name, "app": "my-notebook"}, sts.Spec.Template.Labels)
	ps := sts.Spec.Template.Spec
	require.Equal(t, "default-editor", ps.ServiceAccountName)
	require.Equal(t, []corev1.Volume{{Name: "workspace", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "my-notebook-workspace"}}}}, ps.Volumes)
	require.NotNil(t, ps.SecurityContext)
	require.Equal(t, int64(100), *ps.SecurityContext.FSGroup)
	require.Len(t, ps.Containers, 1)
	ctr := ps.Containers[0]
	require.Equal(t, "my-notebook", ctr.Name)
	require.Equal(t, "kubeflownotebookswg/jupyter-scipy:v1.8.0", ctr.Image)
	require.Equal(t, corev1.PullIfNotPresent, ctr.ImagePullPolicy)
	require.Equal(t, "/home/jovyan", ctr.WorkingDir)
	require.Equal(t, []corev1.ContainerPort{{Name: "notebook-port", ContainerPort: 8888, Protocol: corev1.ProtocolTCP}}, ctr.Ports)
	require.Equal(t, []corev1.EnvVar{{Name: "GREETING", Value: "hello"}, {Name: "NB_PREFIX", Value: "/notebook/" + ns + "/" + name}}, ctr.Env)
	require.Equal(t, []corev1.VolumeMount{{Name: "workspace", MountPath: "/home/jovyan"}}, ctr.VolumeMounts)
	require.True(t, ctr.Resources.Requests.Cpu().Equal(resource.MustParse("500m")), "cpu request %s", ctr.Resources.Requests.Cpu())
	require.True(t, ctr.Resources.Requests.Memory().Equal(resource.MustParse("1Gi")))
	require.True(t, ctr.Resources.Limits.Cpu().Equal(resource.MustParse("1")))
	require.True(t, ctr.Resources.Limits.Memory().Equal(resource.MustParse("2Gi")))

	var svc *corev1.Service // created right after the StatefulSet
	waitFor(t, "the Service", func() bool {
		svc, err = srv.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil
	})
	require.Equal(t, owner, svc.OwnerReferences)
	require.Equal(t, corev1.ServiceTypeClusterIP, svc.Spec.Type)
	require.NotEmpty(t, svc.Spec.ClusterIP)
	require.Equal(t, map[string]string{"statefulset": name}, svc.Spec.Selector)
	require.Equal(t, []corev1.ServicePort{{Name: "http-" + name, Port: 80, TargetPort: intstr.FromInt32(8888), Protocol: corev1.ProtocolTCP}}, svc.Spec.Ports)

	// Not ready until the StatefulSet says so.
	select {
	case r := <-first:
		t.Fatalf("Start returned before the replica was ready: %+v %v", r.r, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	c.run(0, nil)
	r := <-first
	require.NoError(t, r.err)
	require.True(t, r.r.Ready, "%+v", r.r)
	require.Equal(t, name+"."+ns+".svc.cluster.local:80", r.r.Endpoint.Addr())
	require.Equal(t, "http://"+name+"."+ns+".svc.cluster.local:80/notebook/"+ns+"/"+name+"/", r.r.Endpoint.BaseURL())

	// The culler's probe and the proxy reach the server by the Service's DNS name.
	ks, err := s.Kernels(ctx, ns, name)
	require.NoError(t, err)
	require.Len(t, ks, 1)
	require.Equal(t, "busy", ks[0].ExecutionState)
	require.Equal(t, int32(1), hits.Load())
	require.Equal(t, name+"."+ns+".svc.cluster.local:80", dialed.Load())
	ep, ok := s.Lookup(ctx, ns, name)
	require.True(t, ok)
	require.Equal(t, name+"."+ns+".svc.cluster.local:80", ep.Addr())

	// The kubelet restarts the crashed container: the watch ends with its exit code.
	watched := make(chan spawner.WatchResult, 1)
	go func() {
		w, err := s.Watch(ctx, ns, name, 1, 20*time.Millisecond, nil)
		require.NoError(t, err)
		watched <- w
	}()
	pod, err := srv.Client.CoreV1().Pods(ns).Get(ctx, name+"-0", metav1.GetOptions{})
	require.NoError(t, err)
	c.setContainer(pod, corev1.PodRunning, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}, 1,
		&corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"})
	select {
	case w := <-watched:
		require.False(t, w.Gone)
		require.Equal(t, 137, w.Exit.Code)
		require.Equal(t, "OOMKilled", w.Exit.Reason)
	case <-time.After(2 * time.Minute):
		t.Fatal("the watch did not see the restart")
	}

	// Cull / stop: replicas 0 and the stop annotation (an RFC 3339 time) on the Notebook.
	require.NoError(t, s.Stop(ctx, ns, name))
	require.Equal(t, int32(0), *c.sts().Spec.Replicas)
	mirror, err = srv.Dynamic.Resource(cluster.NotebookResource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	stamp := mirror.GetAnnotations()[notebooksv1.AnnotationStopped]
	_, err = time.Parse(time.RFC3339, stamp)
	require.NoError(t, err, "kubeflow-resource-stopped = %q", stamp)
	c.setReady(0)
	_, ok = s.Lookup(ctx, ns, name)
	require.False(t, ok, "a stopped notebook is not proxied")
	_, err = s.Kernels(ctx, ns, name)
	require.ErrorIs(t, err, spawner.ErrNotRunning)

	// Start: the annotation goes, replicas 1; ready again once the (new generation's) replica is.
	second := start()
	waitFor(t, "replicas 1", func() bool { return *c.sts().Spec.Replicas == 1 })
	mirror, err = srv.Dynamic.Resource(cluster.NotebookResource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	_, stopped := mirror.GetAnnotations()[notebooksv1.AnnotationStopped]
	require.False(t, stopped, "start left kubeflow-resource-stopped on the Notebook")
	c.run(1, &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"})
	r = <-second
	require.NoError(t, r.err)
	require.True(t, r.r.Ready, "%+v", r.r)

	s.Record(ctx, nb, events.NotebookCulledV1, notebooksv1.Event{Reason: notebooksv1.ReasonCulled, Message: "idle"})

	// Delete: every object goes (no garbage collector runs here; a cluster's would follow the owner references).
	require.NoError(t, s.Remove(ctx, ns, name))
	_, err = srv.Client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "statefulset: %v", err)
	_, err = srv.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "service: %v", err)
	waitFor(t, "the pod gone", func() bool {
		_, err := srv.Client.CoreV1().Pods(ns).Get(ctx, name+"-0", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	_, err = srv.Dynamic.Resource(cluster.NotebookResource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "notebook mirror: %v", err)
	require.NoError(t, s.Remove(ctx, ns, name), "a second delete is a no-op")

	evs, err := srv.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, ev := range evs.Items {
		require.Equal(t, "Notebook", ev.InvolvedObject.Kind, "%s %s", ev.Reason, ev.Message)
		require.Equal(t, cluster.Component, ev.Source.Component)
		seen[ev.Reason+": "+ev.Message] = true
	}
	for _, want := range []string{"SuccessfulCreate: Created StatefulSet " + name, "SuccessfulCreate: Created Service " + name,
		"ScalingReplicaSet: Scaled StatefulSet " + name + " from 1 to 0", "ScalingReplicaSet: Scaled StatefulSet " + name + " from 0 to 1",
		"Culled: idle", "SuccessfulDelete: Deleted StatefulSet " + name, "SuccessfulDelete: Deleted Service " + name} {
		require.True(t, seen[want], "no event %q in %v", want, seen)
	}
}

func unstructuredString(obj map[string]any, path ...string) (string, bool, error) {
	var cur any = obj
	for _, p := range path {
		switch v := cur.(type) {
		case map[string]any:
			cur = v[p]
		case []any:
			var i int
			fmt.Sscan(p, &i)
			if i >= len(v) {
				return "", false, nil
			}
			cur = v[i]
		default:
			return "", false, nil
		}
	}
	s, ok := cur.(string)
	return s, ok, nil
}
