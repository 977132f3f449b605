package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/runtime/kube"
	"github.com/sluice-ml/sluice/libs/runtime/kube/kubetest"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
	"github.com/sluice-ml/sluice/services/pipelines/internal/spec"
)

// kubePVCSpec is what kfp-kubernetes compiles for CreatePVC → a step with mount_pvc(pvc_name=
// pvc.outputs['name']) → DeletePVC (shape of the SDK's snapshot create_mount_delete_dynamic_pvc.yaml),
// with every CreatePVC input set.
const kubePVCSpec = `
components:
  comp-createpvc:
    executorLabel: exec-createpvc
    inputDefinitions:
      parameters:
        access_modes: {parameterType: LIST}
        annotations: {isOptional: true, parameterType: STRUCT}
        pvc_name: {isOptional: true, parameterType: STRING}
        pvc_name_suffix: {isOptional: true, parameterType: STRING}
        size: {parameterType: STRING}
        storage_class_name: {defaultValue: '', isOptional: true, parameterType: STRING}
        volume_name: {isOptional: true, parameterType: STRING}
    outputDefinitions:
      parameters:
        name: {parameterType: STRING}
  comp-deletepvc:
    executorLabel: exec-deletepvc
    inputDefinitions:
      parameters:
        pvc_name: {parameterType: STRING}
  comp-writer:
    executorLabel: exec-writer
    outputDefinitions:
      parameters:
        Output: {parameterType: STRING}
deploymentSpec:
  executors:
    exec-createpvc:
      container:
        image: argostub/createpvc
    exec-deletepvc:
      container:
        image: argostub/deletepvc
    exec-writer:
      container:
        image: sluice-local/step:dev
        command: [sh, -c, 'printf wrote > "$0"', "{{$.outputs.parameters['Output'].output_file}}"]
pipelineInfo:
  name: kube-pvc
root:
  dag:
    tasks:
      createpvc:
        cachingOptions: {enableCache: true}
        componentRef: {name: comp-createpvc}
        inputs:
          parameters:
            access_modes: {runtimeValue: {constant: [ReadWriteOnce, ReadOnlyMany]}}
            annotations: {runtimeValue: {constant: {team: ml, backup: nightly}}}
            pvc_name_suffix: {runtimeValue: {constant: -my-pvc}}
            size: {runtimeValue: {constant: 5Mi}}
            storage_class_name: {runtimeValue: {constant: fast-ssd}}
            volume_name: {runtimeValue: {constant: pv-0001}}
        taskInfo: {name: createpvc}
      writer:
        cachingOptions: {enableCache: false}
        componentRef: {name: comp-writer}
        dependentTasks: [createpvc]
        taskInfo: {name: writer}
      deletepvc:
        cachingOptions: {enableCache: true}
        componentRef: {name: comp-deletepvc}
        dependentTasks: [writer, createpvc]
        inputs:
          parameters:
            pvc_name:
              taskOutputParameter: {outputParameterKey: name, producerTask: createpvc}
        taskInfo: {name: deletepvc}
schemaVersion: 2.1.0
sdkVersion: kfp-2.7.0
---
platforms:
  kubernetes:
    deploymentSpec:
      executors:
        exec-writer:
          pvcMount:
          - mountPath: /data
            pvcNameParameter:
              taskOutputParameter: {outputParameterKey: name, producerTask: createpvc}
`

// Issue #13 item 6 on the kubernetes runtime, against a real API server: CreatePVC creates the
// PersistentVolumeClaim as KFP's driver does (asserted field by field, as the step's pod saw it), the
// step's pod mounts it through a persistentVolumeClaim volume, and DeletePVC deletes it; Events record
// both. The test plays kubelet.
func TestKubernetesCreateMountDeletePVC(t *testing.T) {
	srv := kubetest.Start(t)
	ns := fmt.Sprintf("kpvc-%d", os.Getpid())
	srv.Namespace(t, ns)
	st := devstacktest.Stack(t)
	ctx := t.Context()
	_, err := srv.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: engine.DefaultS3Secret}, Data: map[string][]byte{
		engine.S3SecretAccessKey: []byte(st.S3AccessKey), engine.S3SecretSecretKey: []byte(st.S3SecretKey)}}, metav1.CreateOptions{})
	require.NoError(t, err)

	p, err := spec.Parse([]byte(kubePVCSpec))
	require.NoError(t, err)
	require.NoError(t, spec.CheckRuntime(p, "kubernetes"), "the kubernetes runtime applies CreatePVC, pvcMount and DeletePVC")

	e := newEnv(t)
	kr, err := kube.New(kube.Config{Client: srv.Client, Namespace: ns, GracePeriod: time.Second})
	require.NoError(t, err)
	e.acts.Runtime = kr
	e.acts.WorkDir = filepath.Join(t.TempDir(), "work")
	e.startWorker(t)
	kl := &kubelet{srv: srv, ns: ns, launcher: buildLauncher(t), pods: map[string]*corev1.Pod{}, logs: map[string]string{},
		claims: map[string]*corev1.PersistentVolumeClaim{}}
	kctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); kl.run(t, kctx) }()
	t.Cleanup(func() { stop(); <-done })

	id, run := e.start(t, kubePVCSpec, nil)
	res, err := e.wait(t, run)
	kl.mu.Lock()
	defer kl.mu.Unlock()
	require.NoError(t, err, "%+v\nlogs: %v", e.state(t, id), kl.logs)
	require.Equal(t, pipelinesv1.RunSucceeded, res.State)
	require.Equal(t, "wrote", res.Tasks["writer"].Parameters["Output"])
	name, _ := res.Tasks["createpvc"].Parameters["name"].(string)
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-my-pvc$`, name, "<uuid><pvc_name_suffix>, as KFP's driver names it")

	// The step's pod mounts the claim.
	pod := kl.pods["writer"]
	require.NotNil(t, pod)
	require.Contains(t, pod.Spec.Volumes, corev1.Volume{Name: "sluice-pvc-0", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name}}})
	require.Contains(t, pod.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "sluice-pvc-0", MountPath: "/data"})

	// The claim, as the API server held it while the step ran.
	pvc := kl.claims[name]
	require.NotNil(t, pvc, "the claim existed when the step's pod started")
	require.Equal(t, name, pvc.Name)
	require.Equal(t, ns, pvc.Namespace)
	require.Equal(t, map[string]string{"sluice.io/run-id": id, engine.LabelKFPRunID: id, "sluice.io/task": pvc.Labels["sluice.io/task"]}, pvc.Labels)
	require.Regexp(t, `^[0-9a-f]{12}$`, pvc.Labels["sluice.io/task"])
	require.NotEqual(t, pod.Labels["sluice.io/task"], pvc.Labels["sluice.io/task"], "the claim is labelled with the createpvc task, not the writer")
	require.Equal(t, map[string]string{"team": "ml", "backup": "nightly"}, pvc.Annotations)
	require.Equal(t, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce, corev1.ReadOnlyMany}, pvc.Spec.AccessModes)
	require.Equal(t, "5Mi", ptr(pvc.Spec.Resources.Requests[corev1.ResourceStorage]).String())
	require.Len(t, pvc.Spec.Resources.Requests, 1)
	require.Empty(t, pvc.Spec.Resources.Limits)
	require.Equal(t, ptr("fast-ssd"), pvc.Spec.StorageClassName)
	require.Equal(t, "pv-0001", pvc.Spec.VolumeName)
	require.Equal(t, ptr(corev1.PersistentVolumeFilesystem), pvc.Spec.VolumeMode, "the API server's default")
	require.Empty(t, pvc.OwnerReferences, "the claim outlives nothing: DeletePVC deletes it")

	// DeletePVC deleted it (the API server's pvc-protection finalizer keeps it until the controller
	// manager, not running here, sees no pod using it).
	cur, err := srv.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		require.NoError(t, err)
		require.NotNil(t, cur.DeletionTimestamp, "DeletePVC deleted the claim")
		require.Equal(t, pvc.UID, cur.UID)
	}

	evs, err := srv.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	require.NoError(t, err)
	reasons := map[string]string{}
	for _, ev := range evs.Items {
		require.Equal(t, "PersistentVolumeClaim", ev.InvolvedObject.Kind)
		require.Equal(t, pvc.UID, ev.InvolvedObject.UID)
		require.Equal(t, "pipelines", ev.Source.Component)
		require.Equal(t, corev1.EventTypeNormal, ev.Type)
		reasons[ev.Reason] = ev.Message
	}
	require.Equal(t, map[string]string{
		engine.ReasonSuccessfulCreatePVC: "Created PVC: " + name,
		engine.ReasonSuccessfulDeletePVC: "Deleted PVC: " + name,
	}, reasons)

	// Retries: a CreatePVC attempt finding the claim an earlier attempt of the same run and task made
	// succeeds with the same name, without creating another; a claim of another task fails the task.
	in := engine.StepInput{RunID: "run-retry", TaskPath: "createpvc", Attempt: 1, Image: "argostub/createpvc",
		Params: map[string]any{"access_modes": []any{"ReadWriteOnce"}, "size": "1Gi", "pvc_name": "retry-pvc"}}
	first, err := e.acts.PVCStep(ctx, in, dag.PVCCreate)
	require.NoError(t, err)
	require.Equal(t, "retry-pvc", first.Outputs.Params["name"])
	made, err := srv.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "retry-pvc", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, ptr("standard"), made.Spec.StorageClassName, "no storage_class_name input: the driver's default")
	require.Empty(t, made.Annotations)
	in.Attempt = 2
	again, err := e.acts.PVCStep(ctx, in, dag.PVCCreate)
	require.NoError(t, err, "the retry finds its own claim")
	require.Equal(t, first.Outputs.Params, again.Outputs.Params)
	same, err := srv.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "retry-pvc", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, made.UID, same.UID, "the claim was not recreated")
	other := in
	other.TaskPath = "other-createpvc"
	_, err = e.acts.PVCStep(ctx, other, dag.PVCCreate)
	require.ErrorContains(t, err, `createpvc: PVC retry-pvc already exists in namespace "`+ns+`" and was not made by this task`)
	require.Equal(t, wf.ErrTypeStepFailed, wf.ErrorType(err), "not retried")

	// Bad inputs fail the task naming the input.
	bad := in
	bad.Params = map[string]any{"access_modes": []any{"ReadWriteOnce"}, "size": "1Gi", "annotations": map[string]any{"n": 1.0}}
	_, err = e.acts.PVCStep(ctx, bad, dag.PVCCreate)
	require.ErrorContains(t, err, `createpvc: annotations: the value of "n" is 1, not a string`)
	bad.Params = map[string]any{"access_modes": []any{"ReadWriteSometimes"}, "size": "1Gi"}
	_, err = e.acts.PVCStep(ctx, bad, dag.PVCCreate)
	require.ErrorContains(t, err, "access_modes: ReadWriteSometimes is not a PVC access mode")

	// DeletePVC of a claim that is not there fails as in KFP's driver, except on a retry (an earlier
	// attempt may have deleted it).
	del := engine.StepInput{RunID: "run-retry", TaskPath: "deletepvc", Attempt: 1, Image: "argostub/deletepvc",
		Params: map[string]any{"pvc_name": "never-made"}}
	_, err = e.acts.PVCStep(ctx, del, dag.PVCDelete)
	require.ErrorContains(t, err, `deletepvc: cannot find PVC never-made in namespace "`+ns+`"`)
	del.Attempt = 2
	_, err = e.acts.PVCStep(ctx, del, dag.PVCDelete)
	require.NoError(t, err)
	del.Attempt, del.Params = 1, map[string]any{"pvc_name": "retry-pvc"}
	_, err = e.acts.PVCStep(ctx, del, dag.PVCDelete)
	require.NoError(t, err)
	cur, err = srv.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "retry-pvc", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err) || cur.DeletionTimestamp != nil, "retry-pvc deleted: %v", err)
}
