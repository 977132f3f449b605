// Package cluster runs notebook servers on Kubernetes (SLUICE_RUNTIME=kubernetes) as Kubeflow's
// notebook-controller v1.9 does: per notebook one StatefulSet and one Service named like it, owned by the
// Notebook (mirrored as a kubeflow.org/v1 object when its CRD is served), stopped and culled by scaling the
// StatefulSet to zero with the kubeflow-resource-stopped annotation on the Notebook. The lifecycle workflow
// drives it through the same activities as the local spawner; readiness comes from the StatefulSet's and
// the pod's status, and the proxy and the culler reach the server through the Service's DNS name.
package cluster

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/kube"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
)

// Values of Kubeflow's notebook-controller v1.9 (components/notebook-controller/controllers/notebook_controller.go).
const (
	// LabelStatefulSet and LabelNotebookName are on the pod template; the StatefulSet and the Service
	// select on LabelStatefulSet.
	LabelStatefulSet  = "statefulset"
	LabelNotebookName = "notebook-name"
	// ContainerPort and ContainerPortName are the server's port when containers[0] declares none.
	ContainerPort     = 8888
	ContainerPortName = "notebook-port"
	// ServingPort is the Service's port, named "http-<notebook>" (Istio's protocol naming).
	ServingPort = 80
	// FSGroup is the pod securityContext.fsGroup set when the template has no securityContext (jovyan's group).
	FSGroup = int64(100)
	// WorkingDir is containers[0].workingDir when the template sets none.
	WorkingDir = "/home/jovyan"
	// EnvPrefix is the variable holding the server's URL prefix, /notebook/<namespace>/<name>.
	EnvPrefix = "NB_PREFIX"
	// Component is the source of the Events recorded on notebooks.
	Component = "notebook-controller"
)

// NotebookResource is the kubeflow.org/v1 Notebook resource the owner object is mirrored as.
var NotebookResource = schema.GroupVersionResource{Group: "kubeflow.org", Version: "v1", Resource: "notebooks"}

// OwnerUID identifies one incarnation of a notebook (its namespace, name and creation time), so the mirror of
// a deleted notebook of the same name is told from the current one (kube.LabelOwnerUID).
func OwnerUID(nb notebooksv1.Notebook) string {
	created := ""
	if nb.Metadata.CreationTimestamp != nil {
		created = nb.Metadata.CreationTimestamp.UTC().Format(time.RFC3339Nano)
	}
	sum := sha1.Sum([]byte(nb.Metadata.Namespace + "/" + nb.Metadata.Name + "/" + created))
	return hex.EncodeToString(sum[:16])
}

// PodSpec converts the Notebook's pod template spec (typed fields and the ones kept as given) into a
// core/v1 PodSpec; an error wraps runtime.ErrInvalidSpec and names the field.
func PodSpec(nb notebooksv1.Notebook) (corev1.PodSpec, error) {
	var ps corev1.PodSpec
	b, err := json.Marshal(nb.Spec.Template.Spec)
	if err == nil {
		err = json.Unmarshal(b, &ps)
	}
	if err != nil {
		return ps, fmt.Errorf("%w: spec.template.spec: not a Kubernetes PodSpec: %v", runtime.ErrInvalidSpec, err)
	}
	if len(ps.Containers) == 0 {
		return ps, fmt.Errorf("%w: spec.template.spec.containers: must list at least one container", runtime.ErrInvalidSpec)
	}
	return ps, nil
}

// Objects returns what notebook-controller v1.9 creates for nb in Kubernetes namespace ns (a pure function):
//
//   - the owner: the Notebook as a kubeflow.org/v1 object (labels and annotations of the notebook, minus the
//     stop annotation, which Start and Stop manage; kube.LabelOwnerUID=OwnerUID(nb));
//   - the StatefulSet "<name>": replicas 1 (0 when stopped), selector statefulset=<name>, pod template
//     labelled statefulset=<name>, notebook-name=<name> plus the notebook's labels, the template's pod spec
//     with containers[0] given workingDir /home/jovyan and port 8888 "notebook-port" when it sets none,
//     NB_PREFIX=/notebook/<namespace>/<name>, and securityContext {fsGroup: 100} when it has none;
//   - the Service "<name>": ClusterIP, selector statefulset=<name>, port 80 "http-<name>" (TCP) to the
//     server's first container port.
//
// The namespace in NB_PREFIX is the notebook's Sluice namespace: it is the proxy's URL path. The
// StatefulSet and Service also carry app.kubernetes.io/managed-by=sluice (outside the selectors), which
// is how Sluice tells its objects from others of the same name. Owner references are set by Start.
func Objects(nb notebooksv1.Notebook, ns string, stopped bool) (*unstructured.Unstructured, *appsv1.StatefulSet, *corev1.Service, error) {
	name := nb.Metadata.Name
	ps, err := PodSpec(nb)
	if err != nil {
		return nil, nil, nil, err
	}
	replicas := int32(1)
	if stopped {
		replicas = 0
	}
	podLabels := map[string]string{LabelStatefulSet: name, LabelNotebookName: name}
	for k, v := range nb.Metadata.Labels {
		podLabels[k] = v
	}
	c := &ps.Containers[0]
	if c.WorkingDir == "" {
		c.WorkingDir = WorkingDir
	}
	if c.Ports == nil {
		c.Ports = []corev1.ContainerPort{{Name: ContainerPortName, ContainerPort: ContainerPort, Protocol: corev1.ProtocolTCP}}
	}
	// Validation refuses NB_PREFIX in the template (nbspec), so it is appended as the controller does.
	c.Env = append(c.Env, corev1.EnvVar{Name: EnvPrefix, Value: strings.TrimSuffix(notebooksv1.PathPrefix(nb.Metadata.Namespace, name), "/")})
	if ps.SecurityContext == nil {
		fsGroup := FSGroup
		ps.SecurityContext = &corev1.PodSecurityContext{FSGroup: &fsGroup}
	}
	managed := map[string]string{kube.LabelManagedBy: kube.ManagedBy}
	sts := &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: maps.Clone(managed)},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelStatefulSet: name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: podLabels}, Spec: ps},
		},
	}
	port := ContainerPort
	if len(c.Ports) > 0 {
		port = int(c.Ports[0].ContainerPort)
	}
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: maps.Clone(managed)},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: map[string]string{LabelStatefulSet: name},
			Ports: []corev1.ServicePort{{Name: "http-" + name, Port: ServingPort, TargetPort: intstr.FromInt32(int32(port)),
				Protocol: corev1.ProtocolTCP}},
		},
	}

	var spec map[string]any
	b, err := json.Marshal(nb.Spec)
	if err == nil {
		err = json.Unmarshal(b, &spec)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: spec: %v", runtime.ErrInvalidSpec, err)
	}
	owner := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	owner.SetAPIVersion(notebooksv1.APIVersion)
	owner.SetKind(notebooksv1.Kind)
	owner.SetName(name)
	owner.SetNamespace(ns)
	labels := maps.Clone(nb.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[kube.LabelOwnerUID] = OwnerUID(nb)
	labels[kube.LabelManagedBy] = kube.ManagedBy
	owner.SetLabels(labels)
	ann := map[string]string{}
	for k, v := range nb.Metadata.Annotations {
		switch k {
		case notebooksv1.AnnotationStopped, notebooksv1.AnnotationLastActivity, notebooksv1.AnnotationLastActivityCheck:
		default:
			ann[k] = v
		}
	}
	if len(ann) > 0 {
		owner.SetAnnotations(ann)
	}
	return owner, sts, svc, nil
}
