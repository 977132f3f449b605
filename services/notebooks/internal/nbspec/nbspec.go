// Package nbspec parses and validates notebook documents: the kubeflow.org/v1 Notebook (YAML or JSON, as
// Kubeflow's notebook-controller accepts it) and Sluice's compact local form, both normalised to a
// notebooksv1.Notebook. Every error names the field path it is about.
package nbspec

import (
	"reflect"

	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sluice-ml/sluice/libs/platform"
	"maps"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
)

// FieldError is one problem with one field.
type FieldError struct {
	// Path is the field path, e.g. "spec.template.spec.containers[0].image".
	Path    string
	Message string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Message }

// InvalidError lists every problem of a document; it matches ErrInvalid with errors.Is.
type InvalidError struct{ Fields []FieldError }

// ErrInvalid is matched by every validation failure.
var ErrInvalid = errors.New("nbspec: invalid notebook")

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Parse decodes doc (YAML or JSON; the Kubeflow form when it has apiVersion or kind, else the local form),
// fills namespace with defaultNamespace when the document has none, and validates the result.
func Parse(doc []byte, defaultNamespace string) (notebooksv1.Notebook, error) {
	if len(bytes.TrimSpace(doc)) == 0 {
		return notebooksv1.Notebook{}, &InvalidError{[]FieldError{{"(document)", "empty"}}}
	}
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return notebooksv1.Notebook{}, &InvalidError{[]FieldError{{"(document)", "not YAML or JSON: " + err.Error()}}}
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(js, &probe); err != nil {
		return notebooksv1.Notebook{}, &InvalidError{[]FieldError{{"(document)", "must be an object"}}}
	}
	var nb notebooksv1.Notebook
	_, hasAPI := probe["apiVersion"]
	_, hasKind := probe["kind"]
	var generic any
	_ = json.Unmarshal(js, &generic)
	if hasAPI || hasKind {
		if err := json.Unmarshal(js, &nb); err != nil {
			return notebooksv1.Notebook{}, &InvalidError{[]FieldError{{"(document)", decodeMessage(err)}}}
		}
		// One rule across services: a field Sluice does not know is refused, naming its path, never
		// silently dropped. Object metadata and the pod template's own fields (volumes, securityContext,
		// ...) are Kubernetes' and pass as Kubeflow writes them.
		if err := unknownFields(generic, reflect.TypeOf(nb), "metadata.", "spec.template.spec.", "spec.template.metadata."); err != nil {
			return notebooksv1.Notebook{}, err
		}
	} else {
		var l notebooksv1.LocalNotebook
		if err := unknownFields(generic, reflect.TypeOf(l)); err != nil {
			return notebooksv1.Notebook{}, err
		}
		if err := json.Unmarshal(js, &l); err != nil {
			return notebooksv1.Notebook{}, &InvalidError{[]FieldError{{"(document)", decodeMessage(err)}}}
		}
		nb = FromLocal(l)
	}
	if nb.Metadata.Namespace == "" {
		nb.Metadata.Namespace = defaultNamespace
	}
	nb.Status = notebooksv1.NotebookStatus{}
	if err := Validate(nb); err != nil {
		return notebooksv1.Notebook{}, err
	}
	return nb, nil
}

// unknownFields refuses fields of doc that t does not define, except under the given path prefixes.
func unknownFields(doc any, t reflect.Type, keep ...string) error {
	var errs []FieldError
	for _, p := range platform.UnknownFields(doc, t) {
		kept := false
		for _, k := range keep {
			kept = kept || strings.HasPrefix(p, k)
		}
		if !kept {
			errs = append(errs, FieldError{p, "unknown field"})
		}
	}
	if len(errs) > 0 {
		return &InvalidError{errs}
	}
	return nil
}

func decodeMessage(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("field %s: must be %s, got %s", te.Field, te.Type, te.Value)
	}
	return err.Error()
}

// FromLocal converts the compact local form into a kubeflow.org/v1 Notebook.
func FromLocal(l notebooksv1.LocalNotebook) notebooksv1.Notebook {
	c := notebooksv1.Container{Name: l.Name, Image: l.Image, Command: l.Command, Args: l.Args}
	for _, k := range slices.Sorted(maps.Keys(l.Env)) {
		c.Env = append(c.Env, notebooksv1.EnvVar{Name: k, Value: l.Env[k]})
	}
	if l.CPU != "" || l.Memory != "" {
		c.Resources.Requests = map[string]string{}
		if l.CPU != "" {
			c.Resources.Requests["cpu"] = l.CPU
		}
		if l.Memory != "" {
			c.Resources.Requests["memory"] = l.Memory
		}
	}
	nb := notebooksv1.Notebook{
		APIVersion: notebooksv1.APIVersion, Kind: notebooksv1.Kind,
		Metadata: notebooksv1.ObjectMeta{Name: l.Name, Namespace: l.Namespace},
		Spec:     notebooksv1.NotebookSpec{Template: notebooksv1.PodTemplateSpec{Spec: notebooksv1.PodSpec{Containers: []notebooksv1.Container{c}}}},
	}
	if l.Stopped {
		// The value of the stop annotation is a time; the creation path stamps it.
		nb.Metadata.Annotations = map[string]string{notebooksv1.AnnotationStopped: "true"}
	}
	return nb
}

var (
	dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	envName      = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)
	// quantity is the Kubernetes resource quantity grammar (decimal or binary SI suffix, or exponent).
	quantity = regexp.MustCompile(`^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$`)
)

// reservedEnv are variables Sluice sets for the server itself.
var reservedEnv = []string{"NB_PREFIX", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "HOME", "JUPYTER_TOKEN"}

// Validate checks a normalised notebook and returns an *InvalidError listing every problem.
func Validate(nb notebooksv1.Notebook) error {
	var fe []FieldError
	add := func(path, format string, a ...any) { fe = append(fe, FieldError{path, fmt.Sprintf(format, a...)}) }
	if nb.APIVersion != notebooksv1.APIVersion {
		add("apiVersion", "must be %q, got %q", notebooksv1.APIVersion, nb.APIVersion)
	}
	if nb.Kind != notebooksv1.Kind {
		add("kind", "must be %q, got %q", notebooksv1.Kind, nb.Kind)
	}
	checkName := func(path, v string) {
		switch {
		case v == "":
			add(path, "required")
		case len(v) > 63:
			add(path, "must be at most 63 characters, got %d", len(v))
		case !dns1123Label.MatchString(v):
			add(path, "%q must be a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit)", v)
		}
	}
	checkName("metadata.name", nb.Metadata.Name)
	checkName("metadata.namespace", nb.Metadata.Namespace)
	cs := nb.Spec.Template.Spec.Containers
	if len(cs) == 0 {
		add("spec.template.spec.containers", "must list at least one container (containers[0] is the notebook server)")
	}
	for i, c := range cs {
		p := fmt.Sprintf("spec.template.spec.containers[%d]", i)
		if i == 0 && strings.TrimSpace(c.Image) == "" {
			add(p+".image", "required")
		}
		seen := map[string]bool{}
		for j, e := range c.Env {
			ep := fmt.Sprintf("%s.env[%d]", p, j)
			switch {
			case e.Name == "":
				add(ep+".name", "required")
			case !envName.MatchString(e.Name):
				add(ep+".name", "%q is not a valid environment variable name", e.Name)
			case slices.Contains(reservedEnv, e.Name):
				add(ep+".name", "%q is set by Sluice for the server and cannot be overridden", e.Name)
			case seen[e.Name]:
				add(ep+".name", "%q is listed twice", e.Name)
			}
			seen[e.Name] = true
			if e.ValueFrom != nil {
				add(ep+".valueFrom", "not supported; give a literal value")
			}
		}
		for _, kind := range []struct {
			name string
			m    map[string]string
		}{{"limits", c.Resources.Limits}, {"requests", c.Resources.Requests}} {
			for _, r := range slices.Sorted(maps.Keys(kind.m)) {
				if !quantity.MatchString(kind.m[r]) {
					add(fmt.Sprintf("%s.resources.%s.%s", p, kind.name, r), "%q is not a Kubernetes quantity (e.g. 500m, 2, 1Gi)", kind.m[r])
				}
			}
		}
		if i == 0 && len(c.Command) > 0 && !isJupyterCommand(c.Command[0]) {
			add(p+".command", "the server must be Jupyter (command[0] %q is not jupyter, jupyter-notebook or jupyter-lab); leave command empty to use the default server", c.Command[0])
		}
	}
	if v, ok := nb.Metadata.Annotations[notebooksv1.AnnotationStopped]; ok && v == "" {
		add("metadata.annotations."+notebooksv1.AnnotationStopped, "must be a time or \"true\" when present")
	}
	if len(fe) > 0 {
		return &InvalidError{fe}
	}
	return nil
}

func isJupyterCommand(c string) bool {
	base := c[strings.LastIndex(c, "/")+1:]
	return base == "jupyter" || base == "jupyter-notebook" || base == "jupyter-lab"
}
