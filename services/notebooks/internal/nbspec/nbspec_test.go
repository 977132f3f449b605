package nbspec_test

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/internal/nbspec"
)

func TestParseKubeflowNotebookUnmodified(t *testing.T) {
	doc, err := os.ReadFile("testdata/kubeflow-notebook.yaml")
	if err != nil {
		t.Fatal(err)
	}
	nb, err := nbspec.Parse(doc, "default")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	c := nb.Spec.Template.Spec.Containers[0]
	if nb.Metadata.Name != "my-notebook" || nb.Metadata.Namespace != "kubeflow-user-example-com" {
		t.Errorf("metadata = %+v", nb.Metadata)
	}
	if c.Image != "kubeflownotebookswg/jupyter-scipy:v1.8.0" || c.Resources.Limits["memory"] != "2Gi" || c.Env[0].Value != "hello" {
		t.Errorf("container = %+v", c)
	}
	if nb.Metadata.Annotations["notebooks.kubeflow.org/server-type"] != "jupyter" {
		t.Errorf("annotations lost: %v", nb.Metadata.Annotations)
	}
}

func TestParseLocalForm(t *testing.T) {
	nb, err := nbspec.Parse([]byte(`{"name":"nb1","image":"jupyter/base","env":{"B":"2","A":"1"},"cpu":"1","stopped":true}`), "team-a")
	if err != nil {
		t.Fatal(err)
	}
	c := nb.Spec.Template.Spec.Containers[0]
	if nb.APIVersion != notebooksv1.APIVersion || nb.Metadata.Namespace != "team-a" || c.Env[0].Name != "A" || c.Resources.Requests["cpu"] != "1" {
		t.Errorf("got %+v", nb)
	}
	if _, ok := nb.Metadata.Annotations[notebooksv1.AnnotationStopped]; !ok {
		t.Error("stopped not mapped to the kubeflow-resource-stopped annotation")
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	cases := map[string]struct {
		doc  string
		want []string
	}{
		"missing image": {`{"name":"nb"}`, []string{"spec.template.spec.containers[0].image: required"}},
		"bad name":      {`{"name":"NB_1","image":"x"}`, []string{"metadata.name: \"NB_1\" must be a DNS-1123 label"}},
		"no containers": {"apiVersion: kubeflow.org/v1\nkind: Notebook\nmetadata: {name: a, namespace: b}\nspec: {template: {spec: {containers: []}}}", []string{"spec.template.spec.containers: must list"}},
		"wrong kind":    {"apiVersion: kubeflow.org/v1\nkind: Pod\nmetadata: {name: a}\nspec: {template: {spec: {containers: [{image: x}]}}}", []string{"kind: must be \"Notebook\""}},
		"bad quantity": {"apiVersion: kubeflow.org/v1\nkind: Notebook\nmetadata: {name: a}\nspec: {template: {spec: {containers: [{image: x, resources: {limits: {memory: lots}}}]}}}",
			[]string{"spec.template.spec.containers[0].resources.limits.memory: \"lots\" is not a Kubernetes quantity"}},
		"reserved env": {`{"name":"a","image":"x","env":{"NB_PREFIX":"/x"}}`, []string{"spec.template.spec.containers[0].env[0].name: \"NB_PREFIX\" is set by Sluice"}},
		"valueFrom": {"apiVersion: kubeflow.org/v1\nkind: Notebook\nmetadata: {name: a}\nspec: {template: {spec: {containers: [{image: x, env: [{name: A, valueFrom: {secretKeyRef: {name: s, key: k}}}]}]}}}",
			[]string{"spec.template.spec.containers[0].env[0].valueFrom: not supported"}},
		"custom command": {`{"name":"a","image":"x","command":["/bin/sh"]}`, []string{"spec.template.spec.containers[0].command: the server must be Jupyter"}},
		"not an object":  {`[1,2]`, []string{"(document): must be an object"}},
		"wrong type":     {`{"name":"a","image":"x","args":"--x"}`, []string{"(document): field args: must be []string"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := nbspec.Parse([]byte(tc.doc), "default")
			if !errors.Is(err, nbspec.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// The pod template's Kubernetes fields that Sluice does not type survive parsing and a JSON round trip (the
// workflow's payload), so the Kubernetes runtime gets the template unmodified.
func TestPodTemplateFieldsAreKept(t *testing.T) {
	doc, err := os.ReadFile("testdata/kubeflow-notebook.yaml")
	if err != nil {
		t.Fatal(err)
	}
	nb, err := nbspec.Parse(doc, "default")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(nb)
	if err != nil {
		t.Fatal(err)
	}
	var back notebooksv1.Notebook
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	ps := back.Spec.Template.Spec
	if got := string(ps.Extra["serviceAccountName"]); got != `"default-editor"` {
		t.Errorf("serviceAccountName = %s", got)
	}
	if got := string(ps.Extra["volumes"]); got != `[{"name":"workspace","persistentVolumeClaim":{"claimName":"my-notebook-workspace"}}]` {
		t.Errorf("volumes = %s", got)
	}
	c := ps.Containers[0]
	if got := string(c.Extra["volumeMounts"]); got != `[{"mountPath":"/home/jovyan","name":"workspace"}]` {
		t.Errorf("volumeMounts = %s", got)
	}
	if got := string(c.Extra["imagePullPolicy"]); got != `"IfNotPresent"` || c.Image != "kubeflownotebookswg/jupyter-scipy:v1.8.0" {
		t.Errorf("imagePullPolicy = %s, image %q", got, c.Image)
	}
	if _, typed := c.Extra["image"]; typed {
		t.Error("a typed field is also kept in Extra")
	}
}
