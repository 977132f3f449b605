package kube_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/kube"
	"github.com/sluice-ml/sluice/libs/runtime/runtimetest"
)

const ns = "team-a"

func newRuntime(t *testing.T) (*kube.Runtime, *fake.Clientset) {
	t.Helper()
	cs := fake.NewClientset()
	rt, err := kube.New(kube.Config{Client: cs, Namespace: ns, GracePeriod: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return rt, cs
}

func spec(name string) runtime.Spec {
	return runtime.Spec{Name: name, Image: "ghcr.io/example/trainer:1", Command: []string{"python", "-m", "train"}, Args: []string{"--lr={{$.inputs.parameters['lr']}}", "line\nbreak"}}
}

// setContainer drives the fake pod's status as a kubelet would.
func setContainer(t *testing.T, cs *fake.Clientset, name string, phase corev1.PodPhase, state corev1.ContainerState) {
	t.Helper()
	ctx := context.Background()
	pod, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = phase
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: kube.ContainerName, State: state}}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func wait(t *testing.T, p runtime.Process) runtime.ExitStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return st
}

func podGone(t *testing.T, cs *fake.Clientset, name string) bool {
	t.Helper()
	_, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	return apierrors.IsNotFound(err)
}

func TestPodBuilder(t *testing.T) {
	t.Parallel()
	rt, _ := newRuntime(t)
	s := spec("run-1-train-a1")
	s.Env = map[string]string{"TF_CONFIG": `{"task":{"type":"worker","index":0}}`, "A": "1"}
	s.WorkDir = "/work"
	s.Labels = map[string]string{"sluice.io/run-id": "1"}
	s.Mounts = []runtime.Mount{{HostPath: "/srv/data", ContainerPath: "/data", ReadOnly: true}}
	grace := int64(2)
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "run-1-train-a1", Namespace: ns, Labels: map[string]string{
			"sluice.io/run-id": "1", runtime.LabelName: "run-1-train-a1", kube.LabelManagedBy: kube.ManagedBy,
		}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: kube.ContainerName, Image: s.Image, Command: s.Command, Args: s.Args, WorkingDir: "/work",
				Env:          []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "TF_CONFIG", Value: s.Env["TF_CONFIG"]}},
				VolumeMounts: []corev1.VolumeMount{{Name: "mount-0", MountPath: "/data", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: "mount-0", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv/data"}}}},
		},
	}
	if got := rt.Pod(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("Pod mismatch\n got: %+v\nwant: %+v", got, want)
	}
}

func TestLifecycleToExitCode(t *testing.T) {
	t.Parallel()
	rt, cs := newRuntime(t)
	var out runtimetest.Buffer
	s := spec("step-exit")
	s.Stdout = &out
	p, err := rt.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID() != ns+"/step-exit" {
		t.Fatalf("ID = %q", p.ID())
	}
	pod, err := cs.CoreV1().Pods(ns).Get(context.Background(), "step-exit", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := pod.Spec.Containers[0].Args; !reflect.DeepEqual(got, s.Args) {
		t.Fatalf("args = %q", got)
	}
	setContainer(t, cs, "step-exit", corev1.PodRunning, corev1.ContainerState{Running: &corev1.ContainerStateRunning{}})
	select {
	case <-p.Done():
		t.Fatal("Done while the container runs")
	case <-time.After(50 * time.Millisecond):
	}
	setContainer(t, cs, "step-exit", corev1.PodFailed, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error", Message: "bad input"}})
	st := wait(t, p)
	if want := (runtime.ExitStatus{Code: 3, Reason: runtime.ReasonError, Message: "bad input"}); st != want {
		t.Fatalf("status %+v, want %+v", st, want)
	}
	if out.String() != "fake logs" { // the fake clientset's log body
		t.Fatalf("stdout = %q", out.String())
	}
	if !podGone(t, cs, "step-exit") {
		t.Fatal("finished pod not deleted")
	}
}

func TestTerminalStates(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		phase corev1.PodPhase
		state corev1.ContainerState
		want  runtime.ExitStatus
	}{
		"completed": {corev1.PodSucceeded, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}},
			runtime.ExitStatus{Code: 0, Reason: runtime.ReasonCompleted}},
		"oom": {corev1.PodFailed, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}},
			runtime.ExitStatus{Code: 137, Signal: "SIGKILL", Reason: runtime.ReasonOOMKilled}},
		"image pull back-off": {corev1.PodPending, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "not found"}},
			runtime.ExitStatus{Code: -1, Reason: "ImagePullBackOff", Message: "not found"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rt, cs := newRuntime(t)
			p, err := rt.Start(context.Background(), spec("pod-x"))
			if err != nil {
				t.Fatal(err)
			}
			setContainer(t, cs, "pod-x", tc.phase, tc.state)
			if st := wait(t, p); st != tc.want {
				t.Fatalf("status %+v, want %+v", st, tc.want)
			}
		})
	}
}

func TestKillSignalAndCancel(t *testing.T) {
	t.Parallel()
	t.Run("Kill deletes at once and reports 137", func(t *testing.T) {
		t.Parallel()
		rt, cs := newRuntime(t)
		p, err := rt.Start(context.Background(), spec("replica-0"))
		if err != nil {
			t.Fatal(err)
		}
		setContainer(t, cs, "replica-0", corev1.PodRunning, corev1.ContainerState{Running: &corev1.ContainerStateRunning{}})
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		if st := wait(t, p); st.Code != 137 || st.Signal != "SIGKILL" || st.Reason != runtime.ReasonKilled {
			t.Fatalf("status %+v", st)
		}
		if !podGone(t, cs, "replica-0") {
			t.Fatal("pod not deleted")
		}
		if err := p.Kill(); err != nil {
			t.Fatalf("Kill after exit: %v", err)
		}
	})
	t.Run("SIGTERM deletes gracefully, other signals are refused", func(t *testing.T) {
		t.Parallel()
		rt, _ := newRuntime(t)
		p, err := rt.Start(context.Background(), spec("replica-1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Signal(syscall.SIGUSR1); !errors.Is(err, runtime.ErrUnsupportedSignal) {
			t.Fatalf("Signal(SIGUSR1) = %v", err)
		}
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if st := wait(t, p); st.Code != 143 || st.Signal != "SIGTERM" {
			t.Fatalf("status %+v", st)
		}
	})
	t.Run("ending Start's context terminates the pod", func(t *testing.T) {
		t.Parallel()
		rt, cs := newRuntime(t)
		ctx, cancel := context.WithCancel(context.Background())
		p, err := rt.Start(ctx, spec("notebook"))
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		if st := wait(t, p); st.Code != 143 || st.Reason != runtime.ReasonCanceled {
			t.Fatalf("status %+v", st)
		}
		if !podGone(t, cs, "notebook") {
			t.Fatal("pod not deleted")
		}
	})
	t.Run("deleted by someone else", func(t *testing.T) {
		t.Parallel()
		rt, cs := newRuntime(t)
		p, err := rt.Start(context.Background(), spec("victim"))
		if err != nil {
			t.Fatal(err)
		}
		if err := cs.CoreV1().Pods(ns).Delete(context.Background(), "victim", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if st := wait(t, p); st.Code != -1 || st.Reason != runtime.ReasonDeleted {
			t.Fatalf("status %+v", st)
		}
	})
}

func TestStartIsIdempotentPerName(t *testing.T) {
	t.Parallel()
	rt, cs := newRuntime(t)
	// A pod left by an earlier instance (e.g. before a worker restart) is adopted, not recreated.
	if _, err := cs.CoreV1().Pods(ns).Create(context.Background(), rt.Pod(spec("run-7-a1")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := rt.Start(context.Background(), spec("run-7-a1"))
	if err != nil {
		t.Fatalf("Start over an existing pod: %v", err)
	}
	setContainer(t, cs, "run-7-a1", corev1.PodSucceeded, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}})
	if st := wait(t, p); st.Code != 0 {
		t.Fatalf("status %+v", st)
	}
	pods, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(pods.Items) != 0 {
		t.Fatalf("pods left: %v, %v", pods, err)
	}

	foreign := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "someone-elses", Namespace: ns}}
	if _, err := cs.CoreV1().Pods(ns).Create(context.Background(), foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Start(context.Background(), spec("someone-elses")); !errors.Is(err, runtime.ErrNameInUse) {
		t.Fatalf("Start over a foreign pod = %v, want ErrNameInUse", err)
	}
}

func TestInvalidSpecCreatesNothing(t *testing.T) {
	t.Parallel()
	rt, cs := newRuntime(t)
	for field, s := range map[string]runtime.Spec{
		"spec.image":              {Name: "no-image", Command: []string{"x"}},
		`spec.labels["bad key!"]`: {Name: "bad-label", Image: "x", Labels: map[string]string{"bad key!": "v"}},
		`spec.labels["ok"]`:       {Name: "bad-value", Image: "x", Labels: map[string]string{"ok": strings.Repeat("v", 64)}},
		"spec.name":               {Name: "UPPER", Image: "x"},
	} {
		if _, err := rt.Start(context.Background(), s); !errors.Is(err, runtime.ErrInvalidSpec) || !strings.Contains(err.Error(), field+":") {
			t.Errorf("%s: Start = %v", field, err)
		}
	}
	if pods, _ := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{}); len(pods.Items) != 0 {
		t.Fatalf("pods created for invalid specs: %d", len(pods.Items))
	}
	if _, err := kube.New(kube.Config{Namespace: ns}); err == nil {
		t.Fatal("New without client succeeded")
	}
}
