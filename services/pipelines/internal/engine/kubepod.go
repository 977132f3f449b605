package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/kube"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
	"github.com/sluice-ml/sluice/services/pipelines/internal/launcher"
)

// Defaults of KubeSteps.
const (
	// DefaultLauncherImage is the launcher image `make images` builds (FROM scratch, /launcher).
	DefaultLauncherImage = "sluice-local/launcher:dev"
	// DefaultS3Secret is the Secret holding the S3 credentials step pods use, with the keys
	// S3SecretAccessKey and S3SecretSecretKey (the key names of KFP's mlpipeline-minio-artifact).
	DefaultS3Secret   = "sluice-s3"
	S3SecretAccessKey = "accesskey"
	S3SecretSecretKey = "secretkey"
)

// KFP v2's executor pod metadata: the compiler's workflow podMetadata sets the v2_component label and
// annotation on every pod (backend/src/v2/compiler/argocompiler, KFP 2.x testdata
// create_pod_metadata.yaml), the API server labels a run's objects with its run id
// (backend/src/common/util LabelKeyWorkflowRunId, which its log reader checks on pods).
const (
	LabelKFPV2Component = "pipelines.kubeflow.org/v2_component"
	LabelKFPRunID       = "pipeline/runid"
)

// Names inside a step pod.
const (
	// LauncherContainer is the init container that copies the launcher (KFP's "kfp-launcher").
	LauncherContainer = "sluice-launcher"
	// LauncherDir is the emptyDir the launcher is copied to; LauncherPath the copy.
	LauncherDir  = "/sluice-launcher"
	LauncherPath = LauncherDir + "/launch"
	// launcherVolume and workVolume are the pod's emptyDirs: the launcher copy, and the attempt's work
	// dir (its s3/ subdirectory also mounted at /s3, where KFP's executor maps s3:// URIs).
	launcherVolume = "sluice-launcher"
	workVolume     = "sluice-work"
)

// KubeSteps configures how steps run on the kubernetes runtime.
type KubeSteps struct {
	// LauncherImage holds the static launcher at /launcher (SLUICE_KUBE_LAUNCHER_IMAGE, default
	// DefaultLauncherImage).
	LauncherImage string
	// S3Endpoint is the S3 endpoint as pods reach it, "http(s)://host:port" (SLUICE_KUBE_S3_ENDPOINT;
	// default the endpoint the service itself uses); S3Region its region (S3_REGION).
	S3Endpoint string
	S3Region   string
	// S3Secret names the Secret, in each step pod's namespace, with the S3 credentials under the keys
	// accesskey and secretkey (SLUICE_KUBE_S3_SECRET, default DefaultS3Secret). Pods reference it
	// through secretKeyRef; the credentials never appear in the pod spec.
	S3Secret string
}

// podStep is what execute hands the kubernetes runtime: the launcher's spec, built while the inputs
// and outputs are laid out.
type podStep struct {
	spec launcher.Spec
	// attempt is the store key prefix (relative to the store) of the attempt's launcher uploads.
	attempt string
}

// fullKey is the object key in the bucket of a store-relative key.
func (a *Activities) fullKey(rel string) string {
	_, k, _ := artifacts.ParseURI(a.Store.URI(rel))
	return k
}

func (a *Activities) newPodStep(in StepInput, st step, prefix string) *podStep {
	ps := &podStep{attempt: path.Join(prefix, "attempts", fmt.Sprint(in.Attempt))}
	endpoint := a.Kube.S3Endpoint
	if endpoint == "" {
		endpoint = a.Store.Client().EndpointURL().String()
	}
	ps.spec = launcher.Spec{
		Endpoint: endpoint, Bucket: a.Store.Bucket(), Region: a.Kube.S3Region,
		S3Root:    filepath.Join(st.dir, "s3"),
		RunPrefix: a.fullKey(path.Join(in.PipelineName, in.RunID)) + "/",
		ExecutorOutput: launcher.Transfer{Path: st.outputFile,
			Key: a.fullKey(path.Join(ps.attempt, "executor_output.json"))},
		ResultKey: a.fullKey(path.Join(ps.attempt, "launcher_result.json")),
	}
	return ps
}

// addInput checks that an input artifact exists (a step whose input is gone fails before its pod
// starts) and adds it to the launcher's downloads.
func (a *Activities) addInput(ctx context.Context, ps *podStep, name string, art Artifact, key, local string) error {
	dir := isDirURI(art.URI)
	var err error
	if dir {
		var objs []artifacts.Object
		objs, err = a.Store.List(ctx, key)
		if err == nil && len(objs) == 0 {
			err = artifacts.ErrNotFound
		}
	} else {
		_, err = a.Store.Stat(ctx, key)
	}
	switch {
	case errors.Is(err, artifacts.ErrNotFound) && art.Digest == "":
		return nil // an output its producer never wrote: consumers find no file, as under KFP
	case errors.Is(err, artifacts.ErrNotFound):
		return wf.NonRetryable(wf.ErrTypeNotFound, fmt.Errorf("input artifact %q: %s no longer exists", name, art.URI))
	case err != nil:
		return fmt.Errorf("input %q: %w", name, err)
	}
	ps.spec.Downloads = append(ps.spec.Downloads, launcher.Transfer{Key: a.fullKey(key), Path: local, Dir: dir})
	return nil
}

// stepPod is the pod of one step attempt on the kubernetes runtime, as KFP v2's backend makes the
// executor pod (an init container copying the launcher into an emptyDir; the main container running
// the launcher with the step's command and args after "--"; KFP_POD_NAME/KFP_POD_UID) with the
// executor's kfp-kubernetes settings applied as KFP's driver applies them (extendPodSpecPatch):
// secretAsEnv/configMapAsEnv as env valueFrom secretKeyRef/configMapKeyRef, secretAsVolume,
// configMapAsVolume and pvcMount as secret, configMap and persistentVolumeClaim volumes, nodeSelector,
// tolerations, podMetadata labels and annotations, imagePullPolicy, and the container resources as
// requests and limits. Secrets and config maps are the cluster's own, in the pod's namespace.
func (a *Activities) stepPod(kr *kube.Runtime, in StepInput, st step, name string, argv []string, ps *podStep) (*corev1.Pod, error) {
	labels := map[string]string{"sluice.io/run-id": in.RunID, "sluice.io/task": shortHash(in.TaskPath),
		LabelKFPV2Component: "true", LabelKFPRunID: in.RunID}
	annotations := map[string]string{LabelKFPV2Component: "true", "sluice.io/task-path": in.TaskPath, "sluice.io/pipeline": in.PipelineName}
	user := in.Labels // before versionPodSettings: podMetadata labels and annotations merged
	if in.Pod != nil {
		user = in.Pod.Labels
		for k, v := range in.Pod.Annotations {
			if _, taken := annotations[k]; !taken {
				annotations[k] = v
			}
		}
	}
	for k, v := range user {
		if _, taken := labels[k]; !taken {
			labels[k] = v
		}
	}
	pod := kr.Pod(runtime.Spec{Name: name, Namespace: in.Namespace, Image: st.image, Labels: labels})
	pod.Annotations = annotations

	spec, err := json.Marshal(ps.spec)
	if err != nil {
		return nil, err
	}
	secret := a.Kube.S3Secret
	if secret == "" {
		secret = DefaultS3Secret
	}
	env := []corev1.EnvVar{
		{Name: "KFP_POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "KFP_POD_UID", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}}},
	}
	plain := withEnv(in.Env, "TMPDIR", filepath.Join(st.dir, "tmp"))
	for _, k := range sortedKeys(plain) {
		env = append(env, corev1.EnvVar{Name: k, Value: plain[k]})
	}
	for _, e := range in.EnvFrom {
		var optional *bool
		if e.Optional {
			optional = ptr(true)
		}
		src := &corev1.EnvVarSource{}
		if e.Kind == dag.ObjectConfigMap {
			src.ConfigMapKeyRef = &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: e.Name}, Key: e.Key, Optional: optional}
		} else {
			src.SecretKeyRef = &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: e.Name}, Key: e.Key, Optional: optional}
		}
		env = append(env, corev1.EnvVar{Name: e.Env, ValueFrom: src})
	}
	env = append(env,
		corev1.EnvVar{Name: launcher.EnvSpec, Value: string(spec)},
		corev1.EnvVar{Name: launcher.EnvAccessKey, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: S3SecretAccessKey}}},
		corev1.EnvVar{Name: launcher.EnvSecretKey, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: S3SecretSecretKey}}},
	)

	volumes := []corev1.Volume{
		{Name: launcherVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: workVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	mounts := []corev1.VolumeMount{
		{Name: launcherVolume, MountPath: LauncherDir},
		{Name: workVolume, MountPath: st.dir},
		{Name: workVolume, MountPath: "/s3", SubPath: "s3"},
	}
	for i, v := range in.Volumes {
		vn := fmt.Sprintf("sluice-pvc-%d", i)
		volumes = append(volumes, corev1.Volume{Name: vn, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: v.Name}}})
		mounts = append(mounts, corev1.VolumeMount{Name: vn, MountPath: v.MountPath})
	}
	for i, v := range in.ObjectVolumes {
		optional := v.Optional
		vs := corev1.VolumeSource{}
		vn := fmt.Sprintf("sluice-secret-%d", i)
		if v.Kind == dag.ObjectConfigMap {
			vn = fmt.Sprintf("sluice-configmap-%d", i)
			vs.ConfigMap = &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: v.Name}, Optional: &optional}
		} else {
			vs.Secret = &corev1.SecretVolumeSource{SecretName: v.Name, Optional: &optional}
		}
		volumes = append(volumes, corev1.Volume{Name: vn, VolumeSource: vs})
		mounts = append(mounts, corev1.VolumeMount{Name: vn, MountPath: v.MountPath, ReadOnly: true})
	}

	image := a.Kube.LauncherImage
	if image == "" {
		image = DefaultLauncherImage
	}
	main := corev1.Container{
		Name: kube.ContainerName, Image: st.image,
		Command: []string{LauncherPath, "--"}, Args: argv,
		Env: env, WorkingDir: st.dir, VolumeMounts: mounts,
		Resources: podResources(in.Resources),
	}
	if in.Pod != nil && in.Pod.ImagePullPolicy != "" {
		main.ImagePullPolicy = corev1.PullPolicy(in.Pod.ImagePullPolicy)
	}
	pod.Spec.InitContainers = []corev1.Container{{
		Name: LauncherContainer, Image: image,
		Command:      []string{"/launcher", "--copy", LauncherPath},
		VolumeMounts: []corev1.VolumeMount{{Name: launcherVolume, MountPath: LauncherDir}},
	}}
	pod.Spec.Containers = []corev1.Container{main}
	pod.Spec.Volumes = volumes
	if in.Pod != nil {
		if len(in.Pod.NodeSelector) > 0 {
			pod.Spec.NodeSelector = map[string]string{}
			for k, v := range in.Pod.NodeSelector {
				pod.Spec.NodeSelector[k] = v
			}
		}
		for _, t := range in.Pod.Tolerations {
			pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Key: t.Key, Operator: corev1.TolerationOperator(t.Operator),
				Value: t.Value, Effect: corev1.TaintEffect(t.Effect), TolerationSeconds: t.TolerationSeconds})
		}
	}
	return pod, nil
}

func ptr[T any](v T) *T { return &v }

// podResources are the executor's CPU (cores) and memory (bytes) requests and limits as quantities.
func podResources(r *dag.DockerResources) corev1.ResourceRequirements {
	var out corev1.ResourceRequirements
	if r == nil {
		return out
	}
	set := func(dst *corev1.ResourceList, cpu float64, mem int64) {
		if cpu > 0 {
			if *dst == nil {
				*dst = corev1.ResourceList{}
			}
			(*dst)[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(math.Round(cpu*1000)), resource.DecimalSI)
		}
		if mem > 0 {
			if *dst == nil {
				*dst = corev1.ResourceList{}
			}
			(*dst)[corev1.ResourceMemory] = *resource.NewQuantity(mem, resource.BinarySI)
		}
	}
	set(&out.Limits, r.CPULimit, r.MemoryLimit)
	set(&out.Requests, r.CPURequest, r.MemoryRequest)
	return out
}

// runPod runs one attempt as its pod and waits for it (see runProcess).
func (a *Activities) runPod(ctx context.Context, kr *kube.Runtime, in StepInput, st step, command, args []string, log io.Writer, ps *podStep) (int, error) {
	if len(command) == 0 {
		return -1, wf.NonRetryable(wf.ErrTypeInvalidSpec, errors.New("on the kubernetes runtime a step needs a command: the launcher runs it, as KFP's launcher does (an image's own entrypoint is not known)"))
	}
	name := fmt.Sprintf("step-%s-a%d", shortHash(in.RunID+"/"+in.TaskPath), in.Attempt)
	pod, err := a.stepPod(kr, in, st, name, append(append([]string(nil), command...), args...), ps)
	if err != nil {
		return -1, err
	}
	proc, err := kr.StartPod(ctx, kube.PodRequest{Pod: pod, Attempt: in.Attempt, Stdout: log, Component: "pipelines"})
	if err != nil {
		if errors.Is(err, runtime.ErrInvalidSpec) {
			return -1, wf.NonRetryable(wf.ErrTypeInvalidSpec, err)
		}
		return -1, wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("start step %s: %w", in.TaskPath, err))
	}
	return waitProcess(ctx, proc)
}

// fetchPodOutputs reads back what the launcher uploaded after a successful program: the
// ExecutorOutput file and the output parameter files, to their paths under the (host) work dir, and
// the launcher's result.
func (a *Activities) fetchPodOutputs(ctx context.Context, ps *podStep) (launcher.Result, error) {
	var res launcher.Result
	get := func(fullKey, local string) error {
		rel, err := a.Store.KeyOf(artifacts.FormatURI(a.Store.Bucket(), fullKey))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			return err
		}
		_, err = a.Store.GetFile(ctx, rel, local)
		return err
	}
	rel, err := a.Store.KeyOf(artifacts.FormatURI(a.Store.Bucket(), ps.spec.ResultKey))
	if err != nil {
		return res, err
	}
	rc, _, err := a.Store.Get(ctx, rel)
	if errors.Is(err, artifacts.ErrNotFound) {
		return res, wf.NonRetryable(wf.ErrTypeStepFailed, errors.New("the step's pod exited 0 but its launcher recorded no result (was the main container's command replaced?)"))
	}
	if err != nil {
		return res, err
	}
	err = json.NewDecoder(rc).Decode(&res)
	rc.Close()
	if err != nil {
		return res, fmt.Errorf("launcher result: %w", err)
	}
	for _, t := range append(append([]launcher.Transfer(nil), ps.spec.Parameters...), ps.spec.ExecutorOutput) {
		if err := get(t.Key, t.Path); err != nil && !errors.Is(err, artifacts.ErrNotFound) {
			return res, fmt.Errorf("read back %s: %w", t.Path, err)
		}
	}
	return res, nil
}

// outputArtifactPod records one declared output artifact of a step that ran in a pod, by the rules of
// outputArtifact, from what the launcher found and uploaded (r) instead of the local files.
func (a *Activities) outputArtifactPod(ctx context.Context, in StepInput, name string, ra dag.RuntimeArtifact, eo executorArtifact, r launcher.OutputResult) (Artifact, error) {
	art := Artifact{Name: name, SchemaTitle: in.OutputArtifacts[name], URI: ra.URI, Metadata: eo.Metadata}
	key, err := a.Store.KeyOf(ra.URI)
	if err != nil {
		return art, err
	}
	if eo.URI != "" && eo.URI != ra.URI {
		outside := wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("output artifact %q: the executor reported URI %q, outside the pipeline root %s", name, eo.URI, a.Store.URI("")))
		switch uri := eo.URI; {
		case strings.HasPrefix(uri, artifacts.URIScheme):
			k, err := a.Store.KeyOf(uri)
			if err != nil {
				return art, outside
			}
			key, art.URI = k, a.Store.URI(k)
			if runPrefix := path.Join(in.PipelineName, in.RunID) + "/"; !strings.HasPrefix(k, runPrefix) {
				if r.Written {
					return art, wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("output artifact %q: the executor wrote it for URI %q; a step's outputs are uploaded only under %s", name, eo.URI, a.Store.URI(runPrefix)))
				}
				obj, err := a.Store.Stat(ctx, k)
				if err == nil {
					art.Digest, art.Size = obj.Digest, obj.Size
				} else if !errors.Is(err, artifacts.ErrNotFound) {
					return art, err
				}
				return art, nil
			}
		case strings.HasPrefix(uri, "gs://") || strings.HasPrefix(uri, "minio://"):
			return art, outside
		default:
			art.URI = eo.URI
			return art, nil
		}
	}
	if !r.Written {
		if in.KFP {
			return art, nil
		}
		what := "was not produced"
		if r.Dir {
			what = "is an empty directory"
		}
		return art, wf.NonRetryable(wf.ErrTypeMissingOutput, fmt.Errorf("declared output artifact %q %s (expected at %s in the step's pod)", name, what, ra.Path))
	}
	if r.Dir {
		objs, err := a.Store.List(ctx, key)
		if err != nil {
			return art, err
		}
		for i, o := range objs {
			if objs[i], err = a.Store.Stat(ctx, o.Key); err != nil {
				return art, fmt.Errorf("output %q: %w", name, err)
			}
			art.Size += objs[i].Size
		}
		sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
		art.URI, art.Digest = a.Store.URI(key)+"/", dirDigest(key, objs)
		return art, nil
	}
	obj, err := a.Store.Stat(ctx, key)
	if err != nil {
		return art, fmt.Errorf("output %q: %w", name, err)
	}
	art.URI, art.Digest, art.Size = obj.URI, obj.Digest, obj.Size
	return art, nil
}
