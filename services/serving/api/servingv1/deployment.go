// Package servingv1 holds the serving service's wire types: the Deployment resource (parsed from a
// serving.kserve.io/v1beta1 InferenceService subset or from TensorFlow Serving's command-line flags),
// its status (KServe-style conditions, model status and traffic), the REST and event payloads, and
// the workflow's task queue, signals and I/O.
package servingv1

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// InferenceService identity (KServe v1beta1).
const (
	APIVersionKServe = "serving.kserve.io/v1beta1"
	KindKServe       = "InferenceService"
)

// Annotations an InferenceService may carry for what TF Serving configures in its model config file.
const (
	// AnnotationVersionPolicy is "latest:N", "all" or "specific:1,3" (TF Serving model_version_policy).
	AnnotationVersionPolicy = "serving.sluice.io/model-version-policy"
	// AnnotationVersionLabels is "stable=3,canary=4" (TF Serving version_labels).
	AnnotationVersionLabels = "serving.sluice.io/version-labels"
)

// Model formats the runtime executes (the version directory holds model.onnx).
var ModelFormats = []string{"onnx"}

// VersionPolicy selects the served versions of a model base path; exactly one field may be set and
// the zero value is latest 1 (TF Serving ServableVersionPolicy).
type VersionPolicy struct {
	Latest   int     `json:"latest,omitempty"`
	All      bool    `json:"all,omitempty"`
	Specific []int64 `json:"specific,omitempty"`
}

// Deployment is a model deployment: one model name served from one model base path, with an optional
// canary percent for new revisions. It is the normalised form of both accepted documents.
type Deployment struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// ModelName is the name the data plane serves (/v1/models/{ModelName}); metadata.name for an
	// InferenceService, --model_name for the flags form. Unique across namespaces.
	ModelName string `json:"modelName"`
	// ModelFormat is the predictor's modelFormat.name ("onnx").
	ModelFormat string `json:"modelFormat"`
	// StorageURI is the model base path: s3://bucket/prefix, file:///abs/path or /abs/path.
	StorageURI string `json:"storageUri"`
	// ProtocolVersion is "v1" (TF Serving REST) or "v2" (Open Inference Protocol); both are served.
	ProtocolVersion string `json:"protocolVersion,omitempty"`
	MinReplicas     *int   `json:"minReplicas,omitempty"`
	MaxReplicas     *int   `json:"maxReplicas,omitempty"`
	// CanaryTrafficPercent (0..100) is the share a new revision receives while the previous one keeps
	// the rest; nil rolls a new revision out at 100% (KServe semantics).
	CanaryTrafficPercent *int             `json:"canaryTrafficPercent,omitempty"`
	VersionPolicy        VersionPolicy    `json:"versionPolicy,omitzero"`
	VersionLabels        map[string]int64 `json:"versionLabels,omitempty"`
	// Form is how the document was written: "InferenceService" or "tf-serving".
	Form string `json:"form"`
}

// Key is "<namespace>/<name>".
func (d Deployment) Key() string { return d.Namespace + "/" + d.Name }

// Forms of a deployment document.
const (
	FormInferenceService = "InferenceService"
	FormTFServing        = "tf-serving"
)

// FieldError is one problem in a deployment document; Field is its path, e.g.
// "spec.predictor.maxReplicas" (empty when the document cannot be read at all).
type FieldError struct {
	Field  string `json:"field,omitempty"`
	Detail string `json:"detail"`
}

func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Detail
	}
	return e.Field + ": " + e.Detail
}

// ErrInvalid matches every *InvalidError.
var ErrInvalid = errors.New("servingv1: invalid deployment")

// InvalidError lists every problem of a deployment document; nothing is created for it.
type InvalidError struct {
	Errors []FieldError `json:"errors"`
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Error()
	}
	return "invalid deployment: " + strings.Join(parts, "; ")
}

// Is reports whether target is ErrInvalid.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Problems returns the field errors as strings.
func (e *InvalidError) Problems() []string {
	out := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		out[i] = fe.Error()
	}
	return out
}

type problems []FieldError

func (p *problems) add(field, format string, a ...any) {
	*p = append(*p, FieldError{Field: field, Detail: fmt.Sprintf(format, a...)})
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &InvalidError{Errors: p}
}

// isvc is the accepted InferenceService subset; other fields are ignored.
type isvc struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Predictor *struct {
			MinReplicas          *int `json:"minReplicas"`
			MaxReplicas          *int `json:"maxReplicas"`
			CanaryTrafficPercent *int `json:"canaryTrafficPercent"`
			Model                *struct {
				ModelFormat *struct {
					Name    string `json:"name"`
					Version string `json:"version"`
				} `json:"modelFormat"`
				ProtocolVersion string `json:"protocolVersion"`
				StorageURI      string `json:"storageUri"`
			} `json:"model"`
		} `json:"predictor"`
	} `json:"spec"`
}

// tfServing is the flags form: a document carrying tensorflow_model_server arguments, either at the
// top level ({name, namespace, args}) or in a Kubernetes Deployment's containers (the seed's manifest).
type tfServing struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Namespace  string `json:"namespace"`
	Args       []string
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Template struct {
			Spec struct {
				Containers []struct {
					Args    []string `json:"args"`
					Command []string `json:"command"`
				} `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// modelNameRE: TF Serving model names are path segments; keep them URL- and subject-safe.
var modelNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// Parse reads a deployment document (YAML or JSON): an InferenceService (apiVersion
// serving.kserve.io/v1beta1) or the TF Serving flags form (args --model_name, --model_base_path,
// optional --model_version_policy, --version_label). defaultNamespace fills a missing namespace; a
// document naming another namespace than a non-empty defaultNamespace is invalid. Errors are an
// *InvalidError naming each field path.
func Parse(doc []byte, defaultNamespace string) (*Deployment, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, &InvalidError{Errors: []FieldError{{Detail: "document: " + err.Error()}}}
	}
	var head struct {
		APIVersion string          `json:"apiVersion"`
		Kind       string          `json:"kind"`
		Args       json.RawMessage `json:"args"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return nil, &InvalidError{Errors: []FieldError{{Detail: "document: must be an object: " + err.Error()}}}
	}
	var d *Deployment
	var p problems
	switch {
	case head.Kind == KindKServe || head.APIVersion == APIVersionKServe:
		d, p = parseISVC(js)
	case head.Args != nil || head.Kind == "Deployment":
		d, p = parseTFServing(js)
	default:
		return nil, &InvalidError{Errors: []FieldError{{Field: "kind", Detail: fmt.Sprintf("want %s (apiVersion %s) or a tf-serving document with args --model_name/--model_base_path, got kind %q", KindKServe, APIVersionKServe, head.Kind)}}}
	}
	if d != nil {
		if d.Namespace == "" {
			d.Namespace = defaultNamespace
		}
		if d.Namespace == "" {
			d.Namespace = "default"
		}
		if defaultNamespace != "" && d.Namespace != defaultNamespace {
			p.add("metadata.namespace", "%q does not match the request's namespace %q", d.Namespace, defaultNamespace)
		}
		if !dnsLabel.MatchString(d.Namespace) || len(d.Namespace) > 63 {
			p.add("metadata.namespace", "%q is not a DNS label (lower-case letters, digits, '-')", d.Namespace)
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return d, nil
}

func parseISVC(js []byte) (*Deployment, problems) {
	var p problems
	var doc isvc
	if err := json.Unmarshal(js, &doc); err != nil {
		p.add("", "document: %v", err)
		return nil, p
	}
	if doc.APIVersion != APIVersionKServe {
		p.add("apiVersion", "must be %s, got %q", APIVersionKServe, doc.APIVersion)
	}
	if doc.Kind != KindKServe {
		p.add("kind", "must be %s, got %q", KindKServe, doc.Kind)
	}
	d := &Deployment{Namespace: doc.Metadata.Namespace, Name: doc.Metadata.Name, ModelName: doc.Metadata.Name, Form: FormInferenceService}
	checkName(&p, "metadata.name", d.Name)
	pred := doc.Spec.Predictor
	if pred == nil {
		p.add("spec.predictor", "required")
		return d, p
	}
	d.MinReplicas, d.MaxReplicas, d.CanaryTrafficPercent = pred.MinReplicas, pred.MaxReplicas, pred.CanaryTrafficPercent
	if pred.MinReplicas != nil && *pred.MinReplicas < 0 {
		p.add("spec.predictor.minReplicas", "must be >= 0, got %d", *pred.MinReplicas)
	}
	if pred.MaxReplicas != nil {
		switch {
		case *pred.MaxReplicas < 0:
			p.add("spec.predictor.maxReplicas", "must be >= 0, got %d", *pred.MaxReplicas)
		case *pred.MaxReplicas != 0 && *pred.MaxReplicas < minReplicas(pred.MinReplicas):
			p.add("spec.predictor.maxReplicas", "must be >= minReplicas (%d) unless 0, got %d", minReplicas(pred.MinReplicas), *pred.MaxReplicas)
		}
	}
	if c := pred.CanaryTrafficPercent; c != nil && (*c < 0 || *c > 100) {
		p.add("spec.predictor.canaryTrafficPercent", "must be within 0..100, got %d", *c)
	}
	m := pred.Model
	if m == nil {
		p.add("spec.predictor.model", "required")
		return d, p
	}
	if m.ModelFormat == nil || m.ModelFormat.Name == "" {
		p.add("spec.predictor.model.modelFormat.name", "required (one of %s)", strings.Join(ModelFormats, ", "))
	} else {
		d.ModelFormat = strings.ToLower(m.ModelFormat.Name)
		if !slices.Contains(ModelFormats, d.ModelFormat) {
			p.add("spec.predictor.model.modelFormat.name", "%q is not supported (one of %s)", m.ModelFormat.Name, strings.Join(ModelFormats, ", "))
		}
	}
	switch m.ProtocolVersion {
	case "", "v1", "v2":
		d.ProtocolVersion = m.ProtocolVersion
	default:
		p.add("spec.predictor.model.protocolVersion", "must be v1 or v2, got %q", m.ProtocolVersion)
	}
	d.StorageURI = m.StorageURI
	checkStorageURI(&p, "spec.predictor.model.storageUri", m.StorageURI)
	if v, ok := doc.Metadata.Annotations[AnnotationVersionPolicy]; ok {
		pol, err := ParseVersionPolicy(v)
		if err != nil {
			p.add("metadata.annotations."+AnnotationVersionPolicy, "%v", err)
		}
		d.VersionPolicy = pol
	}
	if v, ok := doc.Metadata.Annotations[AnnotationVersionLabels]; ok {
		for _, kv := range strings.Split(v, ",") {
			if err := addLabel(&d.VersionLabels, strings.TrimSpace(kv)); err != nil {
				p.add("metadata.annotations."+AnnotationVersionLabels, "%v", err)
			}
		}
	}
	return d, p
}

func minReplicas(v *int) int {
	if v == nil {
		return 1
	}
	return *v
}

func checkName(p *problems, field, name string) {
	switch {
	case name == "":
		p.add(field, "required")
	case len(name) > 63 || !dnsLabel.MatchString(name):
		p.add(field, "%q is not a DNS label (lower-case letters, digits, '-', at most 63)", name)
	}
}

func checkStorageURI(p *problems, field, uri string) {
	switch {
	case uri == "":
		p.add(field, "required (s3://bucket/prefix or file:///path)")
	case strings.HasPrefix(uri, "s3://"):
		rest := strings.TrimPrefix(uri, "s3://")
		bucket, _, _ := strings.Cut(rest, "/")
		if bucket == "" {
			p.add(field, "%q has no bucket", uri)
		}
	case strings.HasPrefix(uri, "file://"):
		if !strings.HasPrefix(strings.TrimPrefix(uri, "file://"), "/") {
			p.add(field, "%q: file:// URIs need an absolute path", uri)
		}
	case strings.HasPrefix(uri, "/"):
	default:
		p.add(field, "%q: scheme not supported (s3:// or file://)", uri)
	}
}

// ParseVersionPolicy parses "latest", "latest:N", "all" or "specific:1,3".
func ParseVersionPolicy(s string) (VersionPolicy, error) {
	kind, arg, hasArg := strings.Cut(strings.TrimSpace(s), ":")
	switch kind {
	case "latest":
		if !hasArg {
			return VersionPolicy{Latest: 1}, nil
		}
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 {
			return VersionPolicy{}, fmt.Errorf("latest:%s: num_versions must be an integer >= 1", arg)
		}
		return VersionPolicy{Latest: n}, nil
	case "all":
		if hasArg {
			return VersionPolicy{}, fmt.Errorf("%q: all takes no argument", s)
		}
		return VersionPolicy{All: true}, nil
	case "specific":
		var vs []int64
		for _, f := range strings.Split(arg, ",") {
			v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil || v < 0 {
				return VersionPolicy{}, fmt.Errorf("specific: %q is not a version (integer >= 0)", f)
			}
			vs = append(vs, v)
		}
		return VersionPolicy{Specific: vs}, nil
	}
	return VersionPolicy{}, fmt.Errorf("%q: want latest[:N], all or specific:V1,V2", s)
}

// String renders the policy in the form ParseVersionPolicy reads.
func (p VersionPolicy) String() string {
	switch {
	case p.All:
		return "all"
	case len(p.Specific) > 0:
		s := make([]string, len(p.Specific))
		for i, v := range p.Specific {
			s[i] = strconv.FormatInt(v, 10)
		}
		return "specific:" + strings.Join(s, ",")
	}
	return "latest:" + strconv.Itoa(max(p.Latest, 1))
}

func addLabel(m *map[string]int64, kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	n, err := strconv.ParseInt(v, 10, 64)
	if !ok || k == "" || err != nil || n < 0 {
		return fmt.Errorf("%q: want label=version", kv)
	}
	if *m == nil {
		*m = map[string]int64{}
	}
	(*m)[k] = n
	return nil
}

func parseTFServing(js []byte) (*Deployment, problems) {
	var p problems
	var doc tfServing
	if err := json.Unmarshal(js, &doc); err != nil {
		p.add("", "document: %v", err)
		return nil, p
	}
	var raw struct {
		Args []string `json:"args"`
	}
	_ = json.Unmarshal(js, &raw)
	args, field := raw.Args, "args"
	if doc.Kind == "Deployment" {
		args = nil
		for i, c := range doc.Spec.Template.Spec.Containers {
			if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--model_base_path") }) {
				args, field = c.Args, fmt.Sprintf("spec.template.spec.containers[%d].args", i)
				break
			}
		}
		if args == nil {
			p.add("spec.template.spec.containers", "no container has a --model_base_path argument")
			return nil, p
		}
	}
	d := &Deployment{Name: firstNonEmpty(doc.Metadata.Name, doc.Name), Namespace: firstNonEmpty(doc.Metadata.Namespace, doc.Namespace),
		ModelFormat: "onnx", Form: FormTFServing}
	for i, a := range args {
		f := fmt.Sprintf("%s[%d]", field, i)
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			p.add(f, "%q is not a flag", a)
			continue
		}
		switch name {
		case "model_name":
			d.ModelName = val
		case "model_base_path":
			d.StorageURI = val
		case "model_version_policy":
			pol, err := ParseVersionPolicy(val)
			if err != nil {
				p.add(f, "--model_version_policy: %v", err)
			}
			d.VersionPolicy = pol
		case "version_label", "version_labels":
			for _, kv := range strings.Split(val, ",") {
				if err := addLabel(&d.VersionLabels, kv); err != nil {
					p.add(f, "--%s: %v", name, err)
				}
			}
		case "canary_traffic_percent":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || n > 100 {
				p.add(f, "--canary_traffic_percent: must be an integer within 0..100, got %q", val)
			}
			d.CanaryTrafficPercent = &n
		case "port", "rest_api_port", "file_system_poll_wait_seconds", "rest_api_num_threads", "rest_api_timeout_in_ms",
			"enable_batching", "model_config_file", "monitoring_config_file", "tensorflow_session_parallelism":
			// accepted and ignored: one HTTP listener serves every model here
		default:
			p.add(f, "unknown flag --%s", name)
		}
		_ = hasVal
	}
	if d.ModelName == "" {
		p.add(field, "--model_name is required")
	} else if !modelNameRE.MatchString(d.ModelName) {
		p.add(field+" --model_name", "%q: letters, digits, '_', '.', '-' (at most 128)", d.ModelName)
	}
	if d.Name == "" {
		d.Name = strings.ToLower(strings.ReplaceAll(d.ModelName, "_", "-"))
	}
	checkName(&p, "metadata.name", d.Name)
	checkStorageURI(&p, field+" --model_base_path", d.StorageURI)
	return d, p
}

func firstNonEmpty(a ...string) string {
	for _, s := range a {
		if s != "" {
			return s
		}
	}
	return ""
}
