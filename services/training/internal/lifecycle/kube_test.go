package lifecycle_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-ml/sluice/libs/runtime/kube"
	"github.com/sluice-ml/sluice/libs/runtime/kube/kubetest"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/internal/lifecycle"
)

// The seed's MNIST TFJob shape (1 chief, 1 PS, 2 workers) submitted with the
// Kubernetes runtime against a real kube-apiserver (kubetest): every replica
// is one Pod and one headless Service named "<job>-<type>-<index>" exactly
// as training-operator v1.9 creates them (labels, job-role, named port
// tfjob-port 2222, TF_CONFIG naming the Services, owner reference to the
// TFJob mirrored with runPolicy.managedBy, scheduling fields and PVC volumes
// passed through). No kubelet runs, so the test writes pod phases and
// container states through the status subresource, as training-operator's
// controller tests do. The chief succeeding ends the job; cleanPodPolicy
// Running deletes the PS's pod and Service and keeps the ended ones.
func TestTFJobAsKubernetesPods(t *testing.T) {
	srv := kubetest.Start(t)
	e := newEnv(t)
	srv.Namespace(t, e.ns)
	srv.CRD(t, "kubeflow.org", "v1", "TFJob")
	rt, err := kube.New(kube.Config{Client: srv.Client, Dynamic: srv.Dynamic, GracePeriod: time.Second})
	require.NoError(t, err)
	require.Equal(t, e.ns, rt.NamespaceOf(e.ns), "Sluice namespaces map to Kubernetes namespaces of the same name by default")
	e.runtime, e.network, e.clusterNS = rt, trainingv1.NetworkKubernetes, rt.NamespaceOf(e.ns)
	e.startWorker()

	replica := func(rtype string, n int) string {
		return fmt.Sprintf(`    %s:
      replicas: %d
      restartPolicy: OnFailure
      template:
        metadata:
          labels: {team: vision}
          annotations: {sidecar.istio.io/inject: "false"}
        spec:
          nodeSelector: {accelerator: nvidia-t4}
          tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
          containers:
            - name: tensorflow
              image: kubeflow/tf-mnist-with-summaries:latest
              command: [python, /var/tf_mnist/mnist_with_summaries.py]
              env: [{name: modelDir, value: /model}]
              resources: {limits: {cpu: "2", memory: 4Gi}}
              volumeMounts: [{name: model, mountPath: /model}]
          volumes: [{name: model, persistentVolumeClaim: {claimName: mnist-model}}]
`, rtype, n)
	}
	_, run := e.submit(tfjob("mnist", "cleanPodPolicy: Running", replica("Chief", 1), replica("PS", 1), replica("Worker", 2)))
	ns := e.ns
	ctx := t.Context()
	names := []string{"mnist-chief-0", "mnist-ps-0", "mnist-worker-0", "mnist-worker-1"}
	pods := map[string]*corev1.Pod{}
	waitUntil(t, "4 pods", func() bool {
		for _, n := range names {
			p, err := srv.Client.CoreV1().Pods(ns).Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false
			}
			pods[n] = p
		}
		return true
	})

	mirror, err := srv.Dynamic.Resource(lifecycle.KubeJobResource("TFJob")).Namespace(ns).Get(ctx, "mnist", metav1.GetOptions{})
	require.NoError(t, err, "the TFJob is mirrored into the cluster")
	managedBy, _, _ := unstructuredString(mirror.Object, "spec", "runPolicy", "managedBy")
	require.Equal(t, lifecycle.ManagedBy, managedBy, "training-operator v1.9 leaves a job managed by another controller alone")
	view := e.view(run.GetID())
	uid := string(view.Job.Meta().UID) // assigned by the workflow
	require.NotEmpty(t, uid)
	require.Equal(t, uid, mirror.GetLabels()[kube.LabelOwnerUID])

	cluster := map[string][]string{
		"chief":  {"mnist-chief-0." + ns + ".svc:2222"},
		"ps":     {"mnist-ps-0." + ns + ".svc:2222"},
		"worker": {"mnist-worker-0." + ns + ".svc:2222", "mnist-worker-1." + ns + ".svc:2222"},
	}
	for _, n := range names {
		p := pods[n]
		parts := strings.Split(strings.TrimPrefix(n, "mnist-"), "-")
		rtype, index := parts[0], parts[1]
		want := map[string]string{
			"training.kubeflow.org/job-name": "mnist", "training.kubeflow.org/operator-name": "tfjob-controller",
			"training.kubeflow.org/replica-type": rtype, "training.kubeflow.org/replica-index": index,
			"team": "vision", kube.LabelManagedBy: kube.ManagedBy, "sluice.io/runtime-name": n,
		}
		if rtype == "chief" {
			want["training.kubeflow.org/job-role"] = "master"
		}
		require.Equal(t, want, p.Labels, "pod %s labels", n)
		require.Equal(t, "false", p.Annotations["sidecar.istio.io/inject"], "pod %s template annotations", n)
		require.Len(t, p.OwnerReferences, 1, "pod %s", n)
		own := p.OwnerReferences[0]
		require.Equal(t, metav1.OwnerReference{APIVersion: "kubeflow.org/v1", Kind: "TFJob", Name: "mnist", UID: mirror.GetUID(),
			Controller: ptr(true), BlockOwnerDeletion: ptr(true)}, own, "pod %s owner", n)
		require.Equal(t, corev1.RestartPolicyNever, p.Spec.RestartPolicy, "pod %s: the workflow applies OnFailure, one pod per attempt", n)
		require.Equal(t, map[string]string{"accelerator": "nvidia-t4"}, p.Spec.NodeSelector)
		// The API server's DefaultTolerationSeconds admission appends not-ready/unreachable ones.
		require.Equal(t, corev1.Toleration{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}, p.Spec.Tolerations[0])
		require.Len(t, p.Spec.Volumes, 1)
		require.Equal(t, "mnist-model", p.Spec.Volumes[0].PersistentVolumeClaim.ClaimName)
		require.Len(t, p.Spec.Containers, 1)
		c := p.Spec.Containers[0]
		require.Equal(t, "tensorflow", c.Name)
		require.Equal(t, []corev1.ContainerPort{{Name: "tfjob-port", ContainerPort: 2222, Protocol: corev1.ProtocolTCP}}, c.Ports)
		require.True(t, c.Resources.Limits.Cpu().Equal(resource.MustParse("2")))
		require.Equal(t, []corev1.VolumeMount{{Name: "model", MountPath: "/model"}}, c.VolumeMounts)
		env := map[string]string{}
		for _, v := range c.Env {
			env[v.Name] = v.Value
		}
		require.Equal(t, "modelDir", c.Env[0].Name, "the job's own variables come first")
		var tfc struct {
			Cluster map[string][]string `json:"cluster"`
			Task    struct {
				Type  string `json:"type"`
				Index int    `json:"index"`
			} `json:"task"`
			Environment string `json:"environment"`
		}
		require.NoError(t, json.Unmarshal([]byte(env["TF_CONFIG"]), &tfc), "pod %s TF_CONFIG %q", n, env["TF_CONFIG"])
		require.Equal(t, cluster, tfc.Cluster, "pod %s TF_CONFIG names the Services", n)
		require.Equal(t, rtype, tfc.Task.Type)
		require.Equal(t, index, fmt.Sprint(tfc.Task.Index))
		require.Equal(t, "cloud", tfc.Environment)

		svc, err := srv.Client.CoreV1().Services(ns).Get(ctx, n, metav1.GetOptions{})
		require.NoError(t, err, "service %s", n)
		require.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP, "service %s is headless", n)
		sel := map[string]string{"training.kubeflow.org/job-name": "mnist", "training.kubeflow.org/operator-name": "tfjob-controller",
			"training.kubeflow.org/replica-type": rtype, "training.kubeflow.org/replica-index": index}
		require.Equal(t, sel, svc.Spec.Selector, "service %s selects its pod", n)
		require.Len(t, svc.Spec.Ports, 1)
		require.Equal(t, "tfjob-port", svc.Spec.Ports[0].Name)
		require.Equal(t, int32(2222), svc.Spec.Ports[0].Port)
		require.Equal(t, own, svc.OwnerReferences[0], "service %s owner", n)
	}

	// The kubelet's part: every container runs, then the workers and the chief exit 0.
	for _, n := range names {
		srv.SetPod(t, ns, n, "tensorflow", corev1.PodRunning, kubetest.Running())
	}
	e.waitFor(run.GetID(), "Running", stateIs(trainingv1.JobRunning))
	for _, n := range []string{"mnist-worker-0", "mnist-worker-1", "mnist-chief-0"} {
		srv.SetPod(t, ns, n, "tensorflow", corev1.PodSucceeded, kubetest.Exited(0))
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	require.NoError(t, run.Get(wctx, nil))
	require.Equal(t, trainingv1.JobSucceeded, e.view(run.GetID()).State)

	// cleanPodPolicy Running: the PS's pod and Service go, the ended ones stay.
	waitUntil(t, "PS pod and service deleted", func() bool {
		_, perr := srv.Client.CoreV1().Pods(ns).Get(ctx, "mnist-ps-0", metav1.GetOptions{})
		_, serr := srv.Client.CoreV1().Services(ns).Get(ctx, "mnist-ps-0", metav1.GetOptions{})
		return apierrors.IsNotFound(perr) && apierrors.IsNotFound(serr)
	})
	for _, n := range []string{"mnist-chief-0", "mnist-worker-0", "mnist-worker-1"} {
		_, err := srv.Client.CoreV1().Pods(ns).Get(ctx, n, metav1.GetOptions{})
		require.NoError(t, err, "ended pod %s is kept under cleanPodPolicy Running", n)
		_, err = srv.Client.CoreV1().Services(ns).Get(ctx, n, metav1.GetOptions{})
		require.NoError(t, err, "service %s is kept with its pod", n)
	}

	// Lifecycle Events on the TFJob, with training-operator's reasons.
	evs, err := srv.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	got := map[string]int{}
	for _, ev := range evs.Items {
		if ev.InvolvedObject.Kind == "TFJob" && ev.InvolvedObject.Name == "mnist" {
			got[ev.Reason]++
		}
	}
	require.Equal(t, 4, got[kube.ReasonSuccessfulCreatePod], "events: %v", got)
	require.Equal(t, 4, got[kube.ReasonSuccessfulCreateService], "events: %v", got)
	require.Equal(t, 1, got[kube.ReasonSuccessfulDeletePod], "events: %v", got)

	if prefix := os.Getenv("SLUICE_RECORD_HISTORIES"); prefix != "" {
		saveHistory(t, e, prefix+"-kubernetes-tfjob", run.GetID(), run.GetRunID())
	}

	// Deleting the finished job (the service purges it, as DELETE does)
	// removes what is left: pods, Services and the mirror.
	require.NoError(t, e.activities().PurgeJob(ctx, lifecycle.PurgeInput{Namespace: ns, Kind: "tfjob", JobName: "mnist", UID: uid}))
	waitUntil(t, "job objects deleted", func() bool {
		ps, err1 := srv.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "training.kubeflow.org/job-name=mnist"})
		ss, err2 := srv.Client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{LabelSelector: "training.kubeflow.org/job-name=mnist"})
		_, err3 := srv.Dynamic.Resource(lifecycle.KubeJobResource("TFJob")).Namespace(ns).Get(ctx, "mnist", metav1.GetOptions{})
		return err1 == nil && err2 == nil && len(ps.Items) == 0 && len(ss.Items) == 0 && apierrors.IsNotFound(err3)
	})
}

// A replica restarted by its restartPolicy replaces its ended pod with a
// new one of the same name (attempt 2), as training-operator does, and a
// failing exit code is recorded as an ExitedWithCode event.
func TestKubernetesReplicaRestartReplacesPod(t *testing.T) {
	srv := kubetest.Start(t)
	e := newEnv(t)
	srv.Namespace(t, e.ns)
	srv.CRD(t, "kubeflow.org", "v1", "TFJob")
	rt, err := kube.New(kube.Config{Client: srv.Client, Dynamic: srv.Dynamic, GracePeriod: time.Second})
	require.NoError(t, err)
	e.runtime, e.network, e.clusterNS = rt, trainingv1.NetworkKubernetes, e.ns
	e.startWorker()
	_, run := e.submit(tfjob("retry", "", `    Worker:
      replicas: 1
      restartPolicy: OnFailure
      template:
        spec:
          containers: [{name: tensorflow, image: example/trainer:1}]
`))
	ctx := t.Context()
	var first *corev1.Pod
	waitUntil(t, "pod", func() bool {
		p, err := srv.Client.CoreV1().Pods(e.ns).Get(ctx, "retry-worker-0", metav1.GetOptions{})
		first = p
		return err == nil
	})
	require.Equal(t, "1", first.Annotations[kube.AnnotationAttempt])
	srv.SetPod(t, e.ns, "retry-worker-0", "tensorflow", corev1.PodFailed, kubetest.Exited(3))
	var second *corev1.Pod
	waitUntil(t, "replacement pod", func() bool {
		p, err := srv.Client.CoreV1().Pods(e.ns).Get(ctx, "retry-worker-0", metav1.GetOptions{})
		second = p
		return err == nil && p.UID != first.UID
	})
	require.Equal(t, "2", second.Annotations[kube.AnnotationAttempt])
	srv.SetPod(t, e.ns, "retry-worker-0", "tensorflow", corev1.PodSucceeded, kubetest.Exited(0))
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	require.NoError(t, run.Get(wctx, nil))
	v := e.view(run.GetID())
	require.Equal(t, trainingv1.JobSucceeded, v.State)
	require.Equal(t, 2, replicaOf(v, "worker-0").Attempt)
	evs, err := srv.Client.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var reasons []string
	for _, ev := range evs.Items {
		reasons = append(reasons, ev.Reason)
	}
	sort.Strings(reasons)
	require.Contains(t, reasons, kube.ReasonExitedWithCode)
}

func ptr[T any](v T) *T { return &v }

func unstructuredString(obj map[string]any, path ...string) (string, bool, error) {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[p]
	}
	s, ok := cur.(string)
	return s, ok, nil
}

// waitUntil polls cond (a condition on the API server) for up to 2 minutes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func saveHistory(t *testing.T, e *env, path, id, runID string) {
	t.Helper()
	var hist historypb.History
	it := e.tc.GetWorkflowHistory(t.Context(), id, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		hist.Events = append(hist.Events, ev)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(&hist)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path+".json", b, 0o644))
}

// A PyTorchJob's pods as training-operator v1.9 creates them: the master
// has job-role=master, every pod the named port pytorchjob-port 23456 and
// MASTER_ADDR (the master's Service), MASTER_PORT, WORLD_SIZE and RANK.
func TestPyTorchJobAsKubernetesPods(t *testing.T) {
	srv := kubetest.Start(t)
	e := newEnv(t)
	srv.Namespace(t, e.ns)
	srv.CRD(t, "kubeflow.org", "v1", "PyTorchJob")
	rt, err := kube.New(kube.Config{Client: srv.Client, Dynamic: srv.Dynamic, GracePeriod: time.Second})
	require.NoError(t, err)
	e.runtime, e.network, e.clusterNS = rt, trainingv1.NetworkKubernetes, e.ns
	e.startWorker()
	replica := func(rtype string, n int) string {
		return fmt.Sprintf(`    %s:
      replicas: %d
      restartPolicy: OnFailure
      template:
        spec:
          containers: [{name: pytorch, image: example/torch:1, command: [python, train.py]}]
`, rtype, n)
	}
	_, run := e.submit(`apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {name: ddp, namespace: "{{ns}}"}
spec:
  pytorchReplicaSpecs:
` + replica("Master", 1) + replica("Worker", 2))
	ctx := t.Context()
	names := []string{"ddp-master-0", "ddp-worker-0", "ddp-worker-1"}
	for i, n := range names {
		var p *corev1.Pod
		waitUntil(t, n, func() bool {
			got, err := srv.Client.CoreV1().Pods(e.ns).Get(ctx, n, metav1.GetOptions{})
			p = got
			return err == nil
		})
		require.Equal(t, "pytorchjob-controller", p.Labels["training.kubeflow.org/operator-name"])
		_, isMaster := p.Labels["training.kubeflow.org/job-role"]
		require.Equal(t, i == 0, isMaster, "pod %s job-role", n)
		require.Equal(t, "PyTorchJob", p.OwnerReferences[0].Kind)
		c := p.Spec.Containers[0]
		require.Equal(t, []corev1.ContainerPort{{Name: "pytorchjob-port", ContainerPort: 23456, Protocol: corev1.ProtocolTCP}}, c.Ports)
		env := map[string]string{}
		for _, v := range c.Env {
			env[v.Name] = v.Value
		}
		require.Equal(t, "ddp-master-0", env["MASTER_ADDR"], "pod %s", n)
		require.Equal(t, "23456", env["MASTER_PORT"])
		require.Equal(t, "3", env["WORLD_SIZE"])
		require.Equal(t, fmt.Sprint(i), env["RANK"], "pod %s", n)
		svc, err := srv.Client.CoreV1().Services(e.ns).Get(ctx, n, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, "pytorchjob-port", svc.Spec.Ports[0].Name)
		require.Equal(t, int32(23456), svc.Spec.Ports[0].Port)
	}
	for _, n := range names {
		srv.SetPod(t, e.ns, n, "pytorch", corev1.PodSucceeded, kubetest.Exited(0))
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	require.NoError(t, run.Get(wctx, nil))
	require.Equal(t, trainingv1.JobSucceeded, e.view(run.GetID()).State)
}
