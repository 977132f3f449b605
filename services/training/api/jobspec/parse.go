// Package jobspec reads TFJob and PyTorchJob documents (the training service's
// public contract for job documents: the training service and the tuning
// service, which validates trial jobs before it requests them, both use it):
// it decodes YAML or
// JSON, normalises replica-type keys, applies training-operator v1's
// defaulting and validates, reporting every problem with its field path.
//
// The seed's kubeflow.org/v1beta2 TFJob is accepted and converted to v1:
// its spec-level cleanPodPolicy, ttlSecondsAfterFinished,
// activeDeadlineSeconds and backoffLimit move into spec.runPolicy.
package jobspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/sluice-ml/sluice/libs/platform"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// DefaultNamespace is used when metadata.namespace is empty.
const DefaultNamespace = "default"

// Parse decodes a TFJob or PyTorchJob document (YAML or JSON), normalises
// replica-type keys case-insensitively, applies the defaults (SetDefaults)
// and validates (Validate). It returns an *InvalidError (errors.Is
// ErrInvalid) listing every problem found.
func Parse(doc []byte) (*trainingv1.Job, error) {
	job, probs := decode(doc)
	if job == nil {
		return nil, probs.err("", "")
	}
	SetDefaults(job)
	probs = append(probs, validate(job, probs)...)
	return job, probs.err(job.Kind(), job.Meta().Name)
}

// envelope is the kind-neutral outer shape of a job document.
type envelope struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            json.RawMessage   `json:"spec"`
}

// v1beta2RunPolicy holds the run-policy fields that kubeflow.org/v1beta2
// kept directly under spec.
type v1beta2RunPolicy struct {
	CleanPodPolicy          *trainingv1.CleanPodPolicy `json:"cleanPodPolicy,omitempty"`
	TTLSecondsAfterFinished *int32                     `json:"ttlSecondsAfterFinished,omitempty"`
	ActiveDeadlineSeconds   *int64                     `json:"activeDeadlineSeconds,omitempty"`
	BackoffLimit            *int32                     `json:"backoffLimit,omitempty"`
}

type tfSpecDoc struct {
	trainingv1.TFJobSpec
	v1beta2RunPolicy
	TFReplicaSpecs map[string]json.RawMessage `json:"tfReplicaSpecs"`
}

type pytorchSpecDoc struct {
	trainingv1.PyTorchJobSpec
	PyTorchReplicaSpecs map[string]json.RawMessage `json:"pytorchReplicaSpecs"`
}

// tfStrictDoc and pytorchStrictDoc are the full shapes of the documents, for finding unknown fields.
type tfStrictDoc struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		trainingv1.TFJobSpec `json:",inline"`
		v1beta2RunPolicy     `json:",inline"`
	} `json:"spec"`
	Status any `json:"status"`
}

type pytorchStrictDoc struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta         `json:"metadata"`
	Spec            trainingv1.PyTorchJobSpec `json:"spec"`
	Status          any                       `json:"status"`
}

// decode returns nil and the problems when the document cannot be read as a
// job at all; otherwise the job (replica keys normalised) and any problems
// found on the way.
func decode(doc []byte) (*trainingv1.Job, problems) {
	var probs problems
	if len(bytes.TrimSpace(doc)) == 0 {
		probs.add("", "empty document")
		return nil, probs
	}
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		probs.add("", "cannot parse document: "+err.Error())
		return nil, probs
	}
	var env envelope
	if err := json.Unmarshal(js, &env); err != nil {
		probs.add(typeErrorField("", err), typeErrorDetail(err))
		return nil, probs
	}
	switch {
	case env.Kind == "":
		probs.add("kind", "required (want TFJob or PyTorchJob)")
	case env.Kind != trainingv1.KindTFJob && env.Kind != trainingv1.KindPyTorchJob:
		probs.add("kind", fmt.Sprintf("unsupported value %q (want TFJob or PyTorchJob)", env.Kind))
	}
	switch {
	case env.APIVersion == "":
		probs.add("apiVersion", "required (want "+trainingv1.GroupVersion+")")
	case env.APIVersion == trainingv1.GroupVersion:
	case env.APIVersion == trainingv1.GroupVersionV1Beta2 && env.Kind == trainingv1.KindTFJob:
	default:
		want := trainingv1.GroupVersion
		if env.Kind == trainingv1.KindTFJob {
			want += " or " + trainingv1.GroupVersionV1Beta2
		}
		probs.add("apiVersion", fmt.Sprintf("unsupported value %q for kind %s (want %s)", env.APIVersion, env.Kind, want))
	}
	if len(probs) > 0 {
		return nil, probs
	}
	// Unknown fields are errors naming their path (as the API server's strict field validation answers),
	// never silently dropped; a status (e.g. from kubectl get -o yaml) is ignored.
	var tree any
	if json.Unmarshal(js, &tree) == nil {
		strict := reflect.TypeOf(tfStrictDoc{})
		if env.Kind == trainingv1.KindPyTorchJob {
			strict = reflect.TypeOf(pytorchStrictDoc{})
		}
		for _, path := range platform.UnknownFields(tree, strict) {
			probs.add(path, "unknown field")
		}
		if len(probs) > 0 {
			return nil, probs
		}
	}
	if len(env.Spec) == 0 || string(env.Spec) == "null" {
		env.Spec = json.RawMessage("{}")
	}
	tm := metav1.TypeMeta{APIVersion: trainingv1.GroupVersion, Kind: env.Kind}
	switch env.Kind {
	case trainingv1.KindTFJob:
		var sd tfSpecDoc
		if err := json.Unmarshal(env.Spec, &sd); err != nil {
			probs.add(typeErrorField("spec", err), typeErrorDetail(err))
			return nil, probs
		}
		spec := sd.TFJobSpec
		mergeV1beta2(&spec.RunPolicy, sd.v1beta2RunPolicy)
		spec.TFReplicaSpecs = decodeReplicaSpecs("spec.tfReplicaSpecs", trainingv1.KindTFJob, sd.TFReplicaSpecs, &probs)
		return &trainingv1.Job{TFJob: &trainingv1.TFJob{TypeMeta: tm, ObjectMeta: env.Metadata, Spec: spec}}, probs
	default:
		var sd pytorchSpecDoc
		if err := json.Unmarshal(env.Spec, &sd); err != nil {
			probs.add(typeErrorField("spec", err), typeErrorDetail(err))
			return nil, probs
		}
		spec := sd.PyTorchJobSpec
		spec.PyTorchReplicaSpecs = decodeReplicaSpecs("spec.pytorchReplicaSpecs", trainingv1.KindPyTorchJob, sd.PyTorchReplicaSpecs, &probs)
		return &trainingv1.Job{PyTorchJob: &trainingv1.PyTorchJob{TypeMeta: tm, ObjectMeta: env.Metadata, Spec: spec}}, probs
	}
}

func mergeV1beta2(rp *trainingv1.RunPolicy, old v1beta2RunPolicy) {
	if rp.CleanPodPolicy == nil {
		rp.CleanPodPolicy = old.CleanPodPolicy
	}
	if rp.TTLSecondsAfterFinished == nil {
		rp.TTLSecondsAfterFinished = old.TTLSecondsAfterFinished
	}
	if rp.ActiveDeadlineSeconds == nil {
		rp.ActiveDeadlineSeconds = old.ActiveDeadlineSeconds
	}
	if rp.BackoffLimit == nil {
		rp.BackoffLimit = old.BackoffLimit
	}
}

// decodeReplicaSpecs decodes each replica spec on its own (so type errors
// name the replica type) and renames keys to their canonical CamelCase, per
// training-operator's setTypeNameToCamelCase. Unknown and duplicate keys are
// reported; a nil map stays nil.
func decodeReplicaSpecs(path, kind string, raw map[string]json.RawMessage, probs *problems) map[trainingv1.ReplicaType]*trainingv1.ReplicaSpec {
	if raw == nil {
		return nil
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	known := trainingv1.ReplicaTypesOf(kind)
	out := make(map[trainingv1.ReplicaType]*trainingv1.ReplicaSpec, len(raw))
	seen := map[trainingv1.ReplicaType]string{}
	for _, k := range keys {
		canon, ok := canonicalReplicaType(known, k)
		if !ok {
			probs.add(path+"."+k, fmt.Sprintf("unsupported replica type (want one of %s, any case)", joinTypes(known)))
			continue
		}
		if prev, dup := seen[canon]; dup {
			probs.add(path+"."+k, fmt.Sprintf("duplicate replica type: %q and %q both normalise to %s", prev, k, canon))
			continue
		}
		seen[canon] = k
		var rs *trainingv1.ReplicaSpec
		if err := json.Unmarshal(raw[k], &rs); err != nil {
			probs.add(typeErrorField(path+"."+string(canon), err), typeErrorDetail(err))
			continue
		}
		out[canon] = rs
	}
	return out
}

func canonicalReplicaType(known []trainingv1.ReplicaType, key string) (trainingv1.ReplicaType, bool) {
	for _, t := range known {
		if strings.EqualFold(string(t), key) {
			return t, true
		}
	}
	return "", false
}

func joinTypes(ts []trainingv1.ReplicaType) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// typeErrorField turns a json type error into a field path under prefix.
// encoding/json reports struct paths without map keys or indexes, so the
// path is as precise as the decoder allows.
func typeErrorField(prefix string, err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		if prefix == "" {
			return te.Field
		}
		return prefix + "." + te.Field
	}
	return prefix
}

func typeErrorDetail(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("must be %s, got %s", jsonTypeName(te.Type.Kind()), te.Value)
	}
	return err.Error()
}

func jsonTypeName(k reflect.Kind) string {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	}
	return k.String()
}
