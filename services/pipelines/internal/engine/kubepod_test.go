package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/kube"
	"github.com/sluice-ml/sluice/libs/runtime/kube/kubetest"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine/enginetest"
	"github.com/sluice-ml/sluice/services/pipelines/internal/launcher"
	"github.com/sluice-ml/sluice/services/pipelines/internal/spec"
)

// kubePodSpec is a two-step KFP IR pipeline (the producer's Dataset artifact is the consumer's input)
// with the kfp-kubernetes settings a step pod carries, written in the shape the kfp 2.x compiler and
// kfp-kubernetes write them (PlatformSpec after the PipelineSpec).
const kubePodSpec = `
components:
  comp-producer:
    executorLabel: exec-producer
    inputDefinitions:
      parameters:
        text: {parameterType: STRING}
    outputDefinitions:
      artifacts:
        data: {artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}}
      parameters:
        size: {parameterType: NUMBER_INTEGER}
  comp-consumer:
    executorLabel: exec-consumer
    inputDefinitions:
      artifacts:
        data: {artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}}
    outputDefinitions:
      parameters:
        Output: {parameterType: STRING}
deploymentSpec:
  executors:
    exec-producer:
      container:
        image: sluice-local/step:dev
        command: [sh, -c, 'printf "%s:%s:%s" "$0" "$DB_PASSWORD" "$MODE" > "$1" && printf 3 > "$2"', "{{$.inputs.parameters['text']}}", "{{$.outputs.artifacts['data'].path}}", "{{$.outputs.parameters['size'].output_file}}"]
        env:
        - {name: MODE, value: fast}
        resources: {resourceCpuLimit: 500m, resourceMemoryLimit: 256Mi, resourceCpuRequest: 250m, resourceMemoryRequest: 128Mi}
    exec-consumer:
      container:
        image: sluice-local/step:dev
        command: [sh, -c, 'printf "got %s (%s)" "$(cat "$0")" "$LEVEL" > "$1"', "{{$.inputs.artifacts['data'].path}}", "{{$.outputs.parameters['Output'].output_file}}"]
pipelineInfo:
  name: kube-pods
root:
  inputDefinitions:
    parameters:
      text: {parameterType: STRING}
  dag:
    tasks:
      producer:
        cachingOptions: {enableCache: false}
        componentRef: {name: comp-producer}
        inputs:
          parameters:
            text: {componentInputParameter: text}
        taskInfo: {name: producer}
      consumer:
        cachingOptions: {enableCache: false}
        componentRef: {name: comp-consumer}
        dependentTasks: [producer]
        inputs:
          artifacts:
            data:
              taskOutputArtifact: {outputArtifactKey: data, producerTask: producer}
        taskInfo: {name: consumer}
schemaVersion: 2.1.0
sdkVersion: kfp-2.7.0
---
platforms:
  kubernetes:
    deploymentSpec:
      executors:
        exec-producer:
          secretAsEnv:
          - secretName: db
            keyToEnv: [{secretKey: password, envVar: DB_PASSWORD}]
          - secretNameParameter: {runtimeValue: {constant: maybe}}
            keyToEnv: [{secretKey: x, envVar: OPTIONAL_VAR}]
            optional: true
          secretAsVolume:
          - {secretName: db, mountPath: /etc/secret, optional: false}
          configMapAsVolume:
          - configMapNameParameter: {runtimeValue: {constant: settings}}
            mountPath: /etc/settings
            optional: true
          pvcMount:
          - {constant: shared-data, mountPath: /data}
          nodeSelector:
            labels: {accelerator: nvidia-tesla-k80}
          tolerations:
          - {key: gpu, operator: Equal, value: "true", effect: NoSchedule}
          - {key: spot, operator: Exists, effect: NoExecute, tolerationSeconds: 3600}
          podMetadata:
            labels: {team: ml}
            annotations: {owner: data team}
          imagePullPolicy: IfNotPresent
        exec-consumer:
          configMapAsEnv:
          - configMapName: settings
            keyToEnv: [{configMapKey: level, envVar: LEVEL}]
`

// kubelet plays the kubelet for the step pods of one namespace (none runs here): for each new pod it
// runs the main container's command on this host — the launcher, built from cmd/launcher, in place of
// the copy the init container would make — with the container's env resolved from the API server
// (secretKeyRef, configMapKeyRef, fieldRef) in its working dir, removes that dir as an emptyDir goes
// with its pod, and writes the container's exit through the status subresource.
type kubelet struct {
	srv      *kubetest.Server
	ns       string
	launcher string
	mu       sync.Mutex
	pods     map[string]*corev1.Pod // by task path, as created
	logs     map[string]string
	// claims, when not nil, gets the PersistentVolumeClaims the pods' volumes name, by name, as they
	// were when the pod started (a kubelet waits for them before starting the containers).
	claims map[string]*corev1.PersistentVolumeClaim
}

func (k *kubelet) run(t *testing.T, ctx context.Context) {
	seen := map[string]bool{}
	for ctx.Err() == nil {
		list, err := k.srv.Client.CoreV1().Pods(k.ns).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelManagedBy + "=" + kube.ManagedBy})
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for i := range list.Items {
			pod := list.Items[i].DeepCopy()
			if seen[pod.Name+"/"+string(pod.UID)] || pod.DeletionTimestamp != nil {
				continue
			}
			seen[pod.Name+"/"+string(pod.UID)] = true
			if k.claims != nil {
				for _, v := range pod.Spec.Volumes {
					if c := v.PersistentVolumeClaim; c != nil {
						pvc, err := k.srv.Client.CoreV1().PersistentVolumeClaims(k.ns).Get(ctx, c.ClaimName, metav1.GetOptions{})
						k.mu.Lock()
						if err == nil {
							k.claims[c.ClaimName] = pvc
						}
						k.mu.Unlock()
					}
				}
			}
			code, log := k.exec(t, ctx, pod)
			k.mu.Lock()
			k.pods[pod.Annotations["sluice.io/task-path"]] = pod
			k.logs[pod.Annotations["sluice.io/task-path"]] = log
			k.mu.Unlock()
			phase := corev1.PodSucceeded
			if code != 0 {
				phase = corev1.PodFailed
			}
			k.srv.SetPod(t, k.ns, pod.Name, kube.ContainerName, phase, kubetest.Exited(int32(code)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (k *kubelet) exec(t *testing.T, ctx context.Context, pod *corev1.Pod) (int, string) {
	c := pod.Spec.Containers[0]
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil:
			v := map[string]string{"metadata.name": pod.Name, "metadata.uid": string(pod.UID)}[e.ValueFrom.FieldRef.FieldPath]
			env = append(env, e.Name+"="+v)
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, err := k.srv.Client.CoreV1().Secrets(k.ns).Get(ctx, ref.Name, metav1.GetOptions{})
			if v, ok := s.Data[ref.Key]; err == nil && ok {
				env = append(env, e.Name+"="+string(v))
			} else if ref.Optional == nil || !*ref.Optional {
				return 1, fmt.Sprintf("kubelet: secret %s key %s: %v", ref.Name, ref.Key, err) // CreateContainerConfigError
			}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, err := k.srv.Client.CoreV1().ConfigMaps(k.ns).Get(ctx, ref.Name, metav1.GetOptions{})
			if v, ok := cm.Data[ref.Key]; err == nil && ok {
				env = append(env, e.Name+"="+v)
			} else if ref.Optional == nil || !*ref.Optional {
				return 1, fmt.Sprintf("kubelet: config map %s key %s: %v", ref.Name, ref.Key, err)
			}
		}
	}
	require.Equal(t, engine.LauncherPath, c.Command[0])
	if err := os.MkdirAll(c.WorkingDir, 0o755); err != nil {
		return 1, err.Error()
	}
	defer os.RemoveAll(c.WorkingDir)
	cmd := exec.CommandContext(ctx, k.launcher, append(append([]string(nil), c.Command[1:]...), c.Args...)...)
	cmd.Env, cmd.Dir = env, c.WorkingDir
	out, _ := cmd.CombinedOutput()
	return cmd.ProcessState.ExitCode(), string(out)
}

// buildLauncher builds cmd/launcher (static, as `make images` builds it for the image).
func buildLauncher(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "launcher")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/sluice-ml/sluice/services/pipelines/cmd/launcher")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// Issue #18 (pipelines) and issue #13 item 6 on the kubernetes runtime, against a real API server: each
// step attempt is a pod built as KFP v2's backend builds executor pods, with the kfp-kubernetes
// settings as real pod fields (asserted field by field), and a two-step pipeline passing an artifact
// completes end to end through the launcher and the real S3, the test playing kubelet.
func TestKubernetesStepPods(t *testing.T) { testStepPods(t, kubetest.Start(t)) }

func testStepPods(t *testing.T, srv *kubetest.Server) {
	ns := fmt.Sprintf("kpods-%d", os.Getpid())
	srv.Namespace(t, ns)
	st := devstacktest.Stack(t)
	ctx := t.Context()
	mk := func(obj any) {
		var err error
		switch o := obj.(type) {
		case *corev1.Secret:
			_, err = srv.Client.CoreV1().Secrets(ns).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.ConfigMap:
			_, err = srv.Client.CoreV1().ConfigMaps(ns).Create(ctx, o, metav1.CreateOptions{})
		}
		require.NoError(t, err)
	}
	mk(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: engine.DefaultS3Secret}, Data: map[string][]byte{
		engine.S3SecretAccessKey: []byte(st.S3AccessKey), engine.S3SecretSecretKey: []byte(st.S3SecretKey)}})
	mk(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Data: map[string][]byte{"password": []byte("s3cr3t")}})
	mk(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"level": "debug"}})

	p, err := spec.Parse([]byte(kubePodSpec))
	require.NoError(t, err)
	require.NoError(t, spec.CheckRuntime(p, "kubernetes"), "the kubernetes runtime applies every setting")
	require.ErrorContains(t, spec.CheckRuntime(p, "docker"), "task producer: kfp-kubernetes nodeSelector is not supported by the docker runtime")

	e := newEnv(t)
	kr, err := kube.New(kube.Config{Client: srv.Client, Namespace: ns, GracePeriod: time.Second})
	require.NoError(t, err)
	e.acts.Runtime = kr
	e.acts.WorkDir = filepath.Join(t.TempDir(), "work")
	e.startWorker(t)
	kl := &kubelet{srv: srv, ns: ns, launcher: buildLauncher(t), pods: map[string]*corev1.Pod{}, logs: map[string]string{}}
	kctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); kl.run(t, kctx) }()
	t.Cleanup(func() { stop(); <-done })

	id, run := e.start(t, kubePodSpec, map[string]any{"text": "hi"})
	res, err := e.wait(t, run)
	kl.mu.Lock()
	defer kl.mu.Unlock()
	require.NoError(t, err, "%+v\nlogs: %v", e.state(t, id), kl.logs)
	require.Equal(t, pipelinesv1.RunSucceeded, res.State)
	enginetest.RecordHistory(t, e.tc, id, "kfp-kubernetes-pod-settings")
	require.Equal(t, "got hi:s3cr3t:fast (debug)", res.Tasks["consumer"].Parameters["Output"], "the artifact went from pod to pod through S3")
	require.EqualValues(t, 3, res.Tasks["producer"].Parameters["size"])
	data := res.Tasks["producer"].Artifacts["data"]
	require.Regexp(t, `^sha256:[0-9a-f]{64}$`, data.Digest, "the launcher's upload has the store's digest")
	require.EqualValues(t, len("hi:s3cr3t:fast"), data.Size)

	prod, cons := kl.pods["producer"], kl.pods["consumer"]
	require.NotNil(t, prod)
	require.NotNil(t, cons)
	name := prod.Name
	require.Regexp(t, `^step-[0-9a-f]{12}-a1$`, name, "one pod per step attempt")
	require.Equal(t, map[string]string{
		"sluice.io/run-id": id, "sluice.io/task": prod.Labels["sluice.io/task"],
		engine.LabelKFPV2Component: "true", engine.LabelKFPRunID: id,
		"team": "ml", runtime.LabelName: name, kube.LabelManagedBy: kube.ManagedBy,
	}, prod.Labels)
	require.Equal(t, map[string]string{
		engine.LabelKFPV2Component: "true", "owner": "data team", kube.AnnotationAttempt: "1",
		"sluice.io/task-path": "producer", "sluice.io/pipeline": "kube-pods",
	}, prod.Annotations)
	require.Empty(t, prod.OwnerReferences, "no owner object: pods are deleted once their exit is collected, as training's under cleanPodPolicy All")
	ps := prod.Spec
	require.Equal(t, corev1.RestartPolicyNever, ps.RestartPolicy)
	require.Equal(t, map[string]string{"accelerator": "nvidia-tesla-k80"}, ps.NodeSelector)
	hour := int64(3600)
	require.Equal(t, []corev1.Toleration{
		{Key: "gpu", Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoSchedule},
		{Key: "spot", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &hour},
		// added by the API server's DefaultTolerationSeconds admission plugin, as on any cluster
		{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr(int64(300))},
		{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr(int64(300))},
	}, ps.Tolerations)
	f, tr := false, true
	defaultMode := ptr(int32(0o644)) // the API server's default for secret and configMap volumes
	require.Equal(t, []corev1.Volume{
		{Name: "sluice-launcher", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "sluice-work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "sluice-pvc-0", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "shared-data"}}},
		{Name: "sluice-configmap-0", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Optional: &tr, DefaultMode: defaultMode}}},
		{Name: "sluice-secret-1", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db", Optional: &f, DefaultMode: defaultMode}}},
	}, ps.Volumes)
	require.Len(t, ps.InitContainers, 1)
	ic := ps.InitContainers[0]
	require.Equal(t, engine.LauncherContainer, ic.Name)
	require.Equal(t, engine.DefaultLauncherImage, ic.Image)
	require.Equal(t, []string{"/launcher", "--copy", "/sluice-launcher/launch"}, ic.Command)
	require.Equal(t, []corev1.VolumeMount{{Name: "sluice-launcher", MountPath: "/sluice-launcher"}}, ic.VolumeMounts)
	require.Len(t, ps.Containers, 1)
	c := ps.Containers[0]
	require.Equal(t, "main", c.Name)
	require.Equal(t, "sluice-local/step:dev", c.Image)
	require.Equal(t, corev1.PullIfNotPresent, c.ImagePullPolicy)
	require.Equal(t, []string{engine.LauncherPath, "--"}, c.Command)
	require.Equal(t, []string{"sh", "-c"}, c.Args[:2])
	require.Equal(t, "hi", c.Args[3], "placeholders rendered")
	require.True(t, strings.HasPrefix(c.Args[4], c.WorkingDir+"/s3/"), "the output path is in the work dir's s3/ tree: %s", c.Args[4])
	require.Equal(t, []corev1.VolumeMount{
		{Name: "sluice-launcher", MountPath: "/sluice-launcher"},
		{Name: "sluice-work", MountPath: c.WorkingDir},
		{Name: "sluice-work", MountPath: "/s3", SubPath: "s3"},
		{Name: "sluice-pvc-0", MountPath: "/data"},
		{Name: "sluice-configmap-0", MountPath: "/etc/settings", ReadOnly: true},
		{Name: "sluice-secret-1", MountPath: "/etc/secret", ReadOnly: true},
	}, c.VolumeMounts)
	require.Equal(t, "500m", ptr(c.Resources.Limits[corev1.ResourceCPU]).String())
	require.Equal(t, "256Mi", ptr(c.Resources.Limits[corev1.ResourceMemory]).String())
	require.Equal(t, "250m", ptr(c.Resources.Requests[corev1.ResourceCPU]).String())
	require.Equal(t, "128Mi", ptr(c.Resources.Requests[corev1.ResourceMemory]).String())
	env := map[string]corev1.EnvVar{}
	var names []string
	for _, e := range c.Env {
		env[e.Name] = e
		names = append(names, e.Name)
	}
	require.Equal(t, []string{"KFP_POD_NAME", "KFP_POD_UID", "MODE", "TMPDIR", "DB_PASSWORD", "OPTIONAL_VAR",
		launcher.EnvSpec, launcher.EnvAccessKey, launcher.EnvSecretKey}, names)
	require.Equal(t, "metadata.name", env["KFP_POD_NAME"].ValueFrom.FieldRef.FieldPath)
	require.Equal(t, "metadata.uid", env["KFP_POD_UID"].ValueFrom.FieldRef.FieldPath)
	require.Equal(t, "fast", env["MODE"].Value)
	require.Equal(t, &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}, env["DB_PASSWORD"].ValueFrom.SecretKeyRef)
	require.Equal(t, &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "maybe"}, Key: "x", Optional: &tr}, env["OPTIONAL_VAR"].ValueFrom.SecretKeyRef)
	require.Equal(t, &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: engine.DefaultS3Secret}, Key: engine.S3SecretAccessKey}, env[launcher.EnvAccessKey].ValueFrom.SecretKeyRef)
	require.Equal(t, &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: engine.DefaultS3Secret}, Key: engine.S3SecretSecretKey}, env[launcher.EnvSecretKey].ValueFrom.SecretKeyRef)
	raw, _ := json.Marshal(prod)
	require.False(t, bytes.Contains(raw, []byte(st.S3SecretKey)), "the S3 secret key is in the pod spec")
	require.False(t, bytes.Contains(raw, []byte("s3cr3t")), "a secret value is in the pod spec")
	var ls launcher.Spec
	require.NoError(t, json.Unmarshal([]byte(env[launcher.EnvSpec].Value), &ls))
	require.Empty(t, ls.Downloads)
	require.Len(t, ls.Outputs, 1)
	require.Equal(t, "data", ls.Outputs[0].Name)
	require.Equal(t, c.Args[4], ls.Outputs[0].Path)

	// The consumer: no scheduling settings, its config map variable, the producer's artifact downloaded.
	cc := cons.Spec.Containers[0]
	require.Empty(t, cons.Spec.NodeSelector)
	require.Len(t, cons.Spec.Tolerations, 2, "only the API server's default tolerations")
	require.Equal(t, map[string]string{engine.LabelKFPV2Component: "true", kube.AnnotationAttempt: "1", "sluice.io/task-path": "consumer", "sluice.io/pipeline": "kube-pods"}, cons.Annotations)
	var level *corev1.EnvVar
	for i := range cc.Env {
		if cc.Env[i].Name == "LEVEL" {
			level = &cc.Env[i]
		}
		if cc.Env[i].Name == launcher.EnvSpec {
			require.NoError(t, json.Unmarshal([]byte(cc.Env[i].Value), &ls))
		}
	}
	require.NotNil(t, level)
	require.Equal(t, &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "level"}, level.ValueFrom.ConfigMapKeyRef)
	require.Len(t, ls.Downloads, 1)
	require.Equal(t, cc.Args[3], ls.Downloads[0].Path, "the consumer's input path is where the launcher downloads it")
	require.True(t, strings.HasSuffix(ls.Downloads[0].Key, "/producer/data"), ls.Downloads[0].Key)

	// Pods are deleted once their exit is collected (no kubelet: deletion is immediate).
	list, err := srv.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "sluice.io/run-id=" + id})
	require.NoError(t, err)
	for _, p := range list.Items {
		require.NotNil(t, p.DeletionTimestamp, "pod %s left behind", p.Name)
	}
}

func ptr[T any](v T) *T { return &v }
