package cluster_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluice-ml/sluice/libs/runtime/kube"
	"github.com/sluice-ml/sluice/services/notebooks/internal/cluster"
	"github.com/sluice-ml/sluice/services/notebooks/internal/nbspec"
)

// The controller's defaults apply only where the template is silent: a template's own port is the
// Service's target, its securityContext is kept (no fsGroup added), its workingDir stays; a stopped
// notebook's StatefulSet has zero replicas; the mirror's labels carry the incarnation.
func TestObjectsKeepWhatTheTemplateSets(t *testing.T) {
	nb, err := nbspec.Parse([]byte(`apiVersion: kubeflow.org/v1
kind: Notebook
metadata: {name: vsc, namespace: team-a, labels: {team: a}}
spec:
  template:
    spec:
      securityContext: {runAsUser: 1000}
      containers:
        - name: vsc
          image: kubeflownotebookswg/codeserver-python:v1.9.0
          workingDir: /work
          ports: [{name: code, containerPort: 8080}]
`), "default")
	require.NoError(t, err)
	owner, sts, svc, err := cluster.Objects(nb, "k-team-a", true)
	require.NoError(t, err)
	require.Equal(t, int32(0), *sts.Spec.Replicas)
	require.Equal(t, "k-team-a", sts.Namespace)
	ps := sts.Spec.Template.Spec
	require.Equal(t, &corev1.PodSecurityContext{RunAsUser: ptr(int64(1000))}, ps.SecurityContext)
	c := ps.Containers[0]
	require.Equal(t, "/work", c.WorkingDir)
	require.Equal(t, []corev1.ContainerPort{{Name: "code", ContainerPort: 8080}}, c.Ports)
	require.Equal(t, []corev1.EnvVar{{Name: "NB_PREFIX", Value: "/notebook/team-a/vsc"}}, c.Env)
	require.Equal(t, map[string]string{"statefulset": "vsc", "notebook-name": "vsc", "team": "a"}, sts.Spec.Template.Labels)
	require.Equal(t, intstr.FromInt32(8080), svc.Spec.Ports[0].TargetPort)
	require.Equal(t, "http-vsc", svc.Spec.Ports[0].Name)
	require.Equal(t, cluster.OwnerUID(nb), owner.GetLabels()[kube.LabelOwnerUID])
	require.Equal(t, "a", owner.GetLabels()["team"])
	require.Equal(t, "Notebook", owner.GetKind())
}

func ptr[T any](v T) *T { return &v }
