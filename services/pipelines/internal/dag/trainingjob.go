package dag

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// TrainingModelOutput is the only output a training job component may
// declare: the artifact the job's chief/master exports to its s3://
// exportDir.
const TrainingModelOutput = "model"

// DefaultTrainingNamespace is the namespace of a training job document
// without metadata.namespace (Kubernetes' default namespace).
const DefaultTrainingNamespace = "default"

// trainingJobDoc is the part of a TFJob/PyTorchJob document the pipelines
// service reads; the training service parses and validates the rest.
type trainingJobDoc struct {
	APIVersion *string `json:"apiVersion"`
	Kind       *string `json:"kind"`
	Metadata   *struct {
		Name      *string `json:"name"`
		Namespace *string `json:"namespace"`
	} `json:"metadata"`
	Spec *json.RawMessage `json:"spec"`
}

// TrainingJobRef returns the namespace (DefaultTrainingNamespace when
// unset) and name of a training job document. The document must have
// passed Compile.
func TrainingJobRef(doc json.RawMessage) (namespace, name string) {
	var d trainingJobDoc
	_ = json.Unmarshal(doc, &d)
	namespace = DefaultTrainingNamespace
	if d.Metadata != nil {
		if d.Metadata.Namespace != nil && *d.Metadata.Namespace != "" {
			namespace = *d.Metadata.Namespace
		}
		if d.Metadata.Name != nil {
			name = *d.Metadata.Name
		}
	}
	return namespace, name
}

// TrainingJobName is the name a training job task submits its job under,
// "<metadata.name>-<8 hex digits>", the digits derived from the run ID, the
// task path and the attempt so that runs, loop iterations and retries never
// collide, and a retried activity finds the job it created. The name part
// is cut so the result stays a 63-character DNS-1035 label.
func TrainingJobName(name, runID, taskPath string, attempt int) string {
	sum := sha256.Sum256([]byte(runID + "\x00" + taskPath + "\x00" + strconv.Itoa(attempt)))
	const maxBase = 63 - 9
	if len(name) > maxBase {
		name = name[:maxBase]
	}
	return name + "-" + hex.EncodeToString(sum[:4])
}

// WithTrainingJobName returns doc with metadata.name set to name and
// metadata.namespace to namespace; every other field is kept as written.
func WithTrainingJobName(doc json.RawMessage, namespace, name string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, err
	}
	meta := map[string]json.RawMessage{}
	if raw, ok := m["metadata"]; ok {
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, err
		}
	}
	meta["name"], _ = json.Marshal(name)
	meta["namespace"], _ = json.Marshal(namespace)
	m["metadata"], _ = json.Marshal(meta)
	return json.Marshal(m)
}

// trainingJob checks a training job component: the document is a JSON
// object with a kubeflow.org apiVersion, kind TFJob or PyTorchJob,
// metadata.name and spec; the interface is at most the output artifact
// "model". The training service validates the rest when the job is
// submitted (per training-operator v1).
func (c *compiler) trainingJob(comp *Component) {
	path := comp.Path + ".trainingJob"
	if len(comp.InputParams) > 0 || len(comp.InputArtifacts) > 0 {
		c.errs.add(orDefault(comp.Paths.InputParams, comp.Path+".inputs"), "a trainingJob task takes no inputs (order it with dependsOn)")
	}
	for _, p := range comp.OutputParams {
		c.errs.add(orDefault(comp.Paths.OutputParams, comp.Path+".outputs.parameters")+"."+p.Name, "a trainingJob task has no output parameters")
	}
	for _, a := range comp.OutputArtifacts {
		if a.Name != TrainingModelOutput {
			c.errs.add(orDefault(comp.Paths.OutputArtifacts, comp.Path+".outputs.artifacts")+"."+a.Name,
				"a trainingJob task has one output artifact, %q (the chief's exportDir)", TrainingModelOutput)
		}
	}
	var d trainingJobDoc
	if len(comp.TrainingJob) == 0 || json.Unmarshal(comp.TrainingJob, &d) != nil || comp.TrainingJob[0] != '{' {
		c.errs.add(path, "must be a TFJob or PyTorchJob document (a mapping)")
		return
	}
	switch {
	case d.APIVersion == nil || *d.APIVersion == "":
		c.errs.add(path+".apiVersion", "required (%s)", trainingv1.GroupVersion)
	case *d.APIVersion != trainingv1.GroupVersion && *d.APIVersion != trainingv1.GroupVersionV1Beta2:
		c.errs.add(path+".apiVersion", "%q is not %s or %s", *d.APIVersion, trainingv1.GroupVersion, trainingv1.GroupVersionV1Beta2)
	}
	switch {
	case d.Kind == nil || *d.Kind == "":
		c.errs.add(path+".kind", "required (%s or %s)", trainingv1.KindTFJob, trainingv1.KindPyTorchJob)
	case *d.Kind != trainingv1.KindTFJob && *d.Kind != trainingv1.KindPyTorchJob:
		c.errs.add(path+".kind", "%q is not %s or %s", *d.Kind, trainingv1.KindTFJob, trainingv1.KindPyTorchJob)
	}
	if d.Metadata == nil || d.Metadata.Name == nil || *d.Metadata.Name == "" {
		c.errs.add(path+".metadata.name", "required")
	}
	if d.Spec == nil {
		c.errs.add(path+".spec", "required")
	}
}
