package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/kube"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/internal/clusterspec"
)

// Labels training-operator v1.9 puts on a job's pods and Services
// (kubeflow/training-operator pkg/apis/kubeflow.org/v1/common_types.go).
const (
	LabelJobName      = "training.kubeflow.org/job-name"
	LabelOperatorName = "training.kubeflow.org/operator-name"
	LabelReplicaType  = "training.kubeflow.org/replica-type"
	LabelReplicaIndex = "training.kubeflow.org/replica-index"
	LabelJobRole      = "training.kubeflow.org/job-role"
)

// ManagedBy is the runPolicy.managedBy of the job objects Sluice mirrors
// into a cluster: training-operator v1.9 leaves jobs managed by another
// controller alone, so an operator installed beside Sluice runs nothing twice.
const ManagedBy = "sluice.io/training"

// KubeReplica is what the Kubernetes runtime needs beyond a ReplicaRun to
// create a replica's objects as training-operator v1.9 does.
type KubeReplica struct {
	// Pod is the replica's pod spec: the template with the distribution
	// environment (clusterspec.PodSpec) and restartPolicy Never (see
	// kubePod).
	Pod corev1.PodSpec `json:"pod"`
	// Labels and Annotations are the template's.
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Container is the default container ("tensorflow", "pytorch");
	// PortName and Port its named port (tfjob-port 2222, pytorchjob-port
	// 23456), exposed by the headless Service.
	Container string `json:"container"`
	PortName  string `json:"portName"`
	Port      int32  `json:"port"`
	// Master is training-operator's IsMasterRole (job-role=master): Chief
	// or Master (TFJob: Worker 0 when there is neither); PyTorchJob: Master.
	Master bool `json:"master,omitempty"`
	// CleanPodPolicy is the job's (None, Running, All).
	CleanPodPolicy string `json:"cleanPodPolicy"`
	// Kind is TFJob or PyTorchJob; Spec the job's spec, mirrored as the
	// kubeflow.org/v1 object that owns the pods.
	Kind string          `json:"kind"`
	Spec json.RawMessage `json:"spec"`
}

// kubeReplica builds r's KubeReplica from its pod spec (a pure function,
// called by the workflow).
func kubeReplica(job *trainingv1.Job, r clusterspec.Replica, pod corev1.PodSpec) *KubeReplica {
	spec := job.ReplicaSpecs()[r.Type]
	k := &KubeReplica{Pod: pod, Container: job.DefaultContainerName(), PortName: job.DefaultPortName(), Port: job.Port(r.Type), Kind: job.Kind()}
	// Sluice's workflow applies the replica restartPolicy itself (backoff,
	// backoffLimit, Lost replicas) on every runtime, so the kubelet must
	// not restart containers in place: every restart is a new pod of the
	// same name, as training-operator does for ExitCode.
	k.Pod.RestartPolicy = corev1.RestartPolicyNever
	if spec != nil {
		k.Labels, k.Annotations = spec.Template.Labels, spec.Template.Annotations
	}
	rp := job.RunPolicy()
	k.CleanPodPolicy = string(trainingv1.CleanPodPolicyNone)
	if rp.CleanPodPolicy != nil {
		k.CleanPodPolicy = string(*rp.CleanPodPolicy)
	}
	specs := job.ReplicaSpecs()
	switch job.Kind() {
	case trainingv1.KindTFJob:
		if specs[trainingv1.ReplicaTypeChief] != nil || specs[trainingv1.ReplicaTypeMaster] != nil {
			k.Master = r.Type == trainingv1.ReplicaTypeChief || r.Type == trainingv1.ReplicaTypeMaster
		} else {
			k.Master = r.Type == trainingv1.ReplicaTypeWorker && r.Index == 0
		}
		s := job.TFJob.Spec
		s.RunPolicy.ManagedBy = ptrTo(ManagedBy)
		k.Spec, _ = json.Marshal(s)
	case trainingv1.KindPyTorchJob:
		k.Master = r.Type == trainingv1.ReplicaTypeMaster
		s := job.PyTorchJob.Spec
		s.RunPolicy.ManagedBy = ptrTo(ManagedBy)
		k.Spec, _ = json.Marshal(s)
	}
	return k
}

func ptrTo[T any](v T) *T { return &v }

// KubeJobResource is the kubeflow.org/v1 resource of a job kind (tfjobs,
// pytorchjobs).
func KubeJobResource(kind string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "kubeflow.org", Version: "v1", Resource: strings.ToLower(kind) + "s"}
}

// KubeJobSelector selects the pods and Services of one job: job-name and
// operator-name ("tfjob-controller"), as training-operator's GenLabels,
// and made by Sluice (app.kubernetes.io/managed-by=sluice).
func KubeJobSelector(kindSegment, job string) string {
	return LabelJobName + "=" + job + "," + LabelOperatorName + "=" + kindSegment + "-controller," + kube.LabelManagedBy + "=" + kube.ManagedBy
}

// KubeObjects returns the job mirror, pod and headless Service of one
// replica attempt in Kubernetes namespace ns, as training-operator v1.9
// creates them: pod and Service named "<job>-<type>-<index>"; labels
// job-name, operator-name, replica-type, replica-index (and job-role=master
// on the pod of the master role) over the template's; the Service headless
// (clusterIP None), selecting exactly that pod, exposing the default
// container's named port. env is added to the default container where the
// job does not set the variable (the artifact store's S3_*); extra labels
// (the service's owner label) go on both.
func KubeObjects(in ReplicaRun, ns string, env, extra map[string]string) (*kube.Owner, *corev1.Pod, *corev1.Service, error) {
	k := in.Kube
	if k == nil {
		return nil, nil, nil, fmt.Errorf("replica %s has no Kubernetes objects", in.Name)
	}
	labels := map[string]string{
		LabelJobName:      in.JobName,
		LabelOperatorName: trainingv1.KindSegment(k.Kind) + "-controller",
		LabelReplicaType:  strings.ToLower(string(in.Replica.Type)),
		LabelReplicaIndex: fmt.Sprint(in.Replica.Index),
	}
	for k, v := range extra {
		labels[k] = v
	}
	podLabels := map[string]string{}
	for k, v := range k.Labels {
		podLabels[k] = v
	}
	for k, v := range labels {
		podLabels[k] = v
	}
	if k.Master {
		podLabels[LabelJobRole] = "master"
	}
	spec := *k.Pod.DeepCopy()
	for i := range spec.Containers {
		c := &spec.Containers[i]
		if c.Name != k.Container {
			continue
		}
		have := map[string]bool{}
		for _, e := range c.Env {
			have[e.Name] = true
		}
		names := make([]string, 0, len(env))
		for n := range env {
			if !have[n] {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			c.Env = append(c.Env, corev1.EnvVar{Name: n, Value: env[n]})
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: in.Name, Namespace: ns, Labels: podLabels, Annotations: maps.Clone(k.Annotations)},
		Spec:       spec,
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: in.Name, Namespace: ns, Labels: maps.Clone(labels)},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  maps.Clone(labels),
			Ports:     []corev1.ServicePort{{Name: k.PortName, Port: k.Port}},
		},
	}
	obj := &unstructured.Unstructured{Object: map[string]any{}}
	var specObj map[string]any
	if err := json.Unmarshal(k.Spec, &specObj); err != nil {
		return nil, nil, nil, fmt.Errorf("replica %s: job spec: %w", in.Name, err)
	}
	obj.SetAPIVersion("kubeflow.org/v1")
	obj.SetKind(k.Kind)
	obj.SetName(in.JobName)
	obj.SetNamespace(ns)
	obj.SetLabels(map[string]string{kube.LabelOwnerUID: in.UID, kube.LabelManagedBy: kube.ManagedBy})
	obj.Object["spec"] = specObj
	return &kube.Owner{Resource: KubeJobResource(k.Kind), Object: obj}, pod, svc, nil
}

// startKube starts one replica attempt as its pod (with the job mirror
// and the headless Service). Ended pods stay under cleanPodPolicy None and
// Running (Running deletes only running pods, which the workflow stops);
// under All they are deleted once their log is collected.
func (a *Activities) startKube(ctx context.Context, kr *kube.Runtime, in ReplicaRun, log io.Writer) (runtime.Process, error) {
	ns := kr.NamespaceOf(in.Namespace)
	owner, pod, svc, err := KubeObjects(in, ns, a.Env, a.Labels)
	if err != nil {
		return nil, err
	}
	keep := in.Kube.CleanPodPolicy != string(trainingv1.CleanPodPolicyAll)
	return kr.StartPod(ctx, kube.PodRequest{Pod: pod, Service: svc, Owner: owner, Container: in.Kube.Container, Attempt: in.Attempt,
		Keep: keep, Stdout: log, Component: trainingv1.KindSegment(in.Kube.Kind) + "-controller"})
}
