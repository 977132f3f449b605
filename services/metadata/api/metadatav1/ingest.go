package metadatav1

import "time"

// MLMD type names the event ingest records (KFP's names where KFP has one, per its
// metadata/client.go; Sluice's own otherwise).
const (
	ContextTypePipeline        = "system.Pipeline"        // name = pipeline name
	ContextTypePipelineRun     = "system.PipelineRun"     // name = run id
	ContextTypeExperiment      = "sluice.Experiment"      // name = experiment id
	ContextTypeTrainingJob     = "sluice.TrainingJob"     // name = "<namespace>/<name>"
	ContextTypeModelDeployment = "sluice.ModelDeployment" // name = "<namespace>/<name>"

	ExecutionTypeContainer   = "system.ContainerExecution" // one pipeline task, name = "<run id>/<task path>"
	ExecutionTypeDAG         = "system.DAGExecution"       // one pipeline run, name = run id
	ExecutionTypeTrainingRun = "sluice.TrainingRun"        // one training job, name = "<namespace>/<name>"
	ExecutionTypeImporter    = "system.ImporterExecution"  // one importer task (KFP dsl.importer), name = "<run id>/<task path>"

	// ArtifactTypeDefault is used when an event names no schema title; exported models are
	// ArtifactTypeModel.
	ArtifactTypeDefault = "system.Artifact"
	ArtifactTypeModel   = "system.Model"
)

// External ids of ingested nodes: every event about one subject lands on the same node.
// Artifacts use their URI (without a trailing slash) as external id, so one URI is one
// artifact whichever service reports it.
const (
	ExternalIDPipelineTask = "sluice:pipeline-task:" // + "<run id>/<task path>"
	ExternalIDPipelineRun  = "sluice:pipeline-run:"  // + run id
	ExternalIDTrainingJob  = "sluice:training-job:"  // + "<namespace>/<name>"
)

// ModelDeploymentEvent is the data the metadata service reads from the serving events
// io.sluice.serving.model.deployed.v1, io.sluice.serving.model.version-loaded.v1,
// io.sluice.serving.model.failed.v1 and io.sluice.serving.deployment.deleted.v1 (a
// consumer-side contract: unknown fields are ignored). Namespace and Name are required;
// StorageURI (KServe's spec.predictor.model.storageUri) links the deployment to the model
// artifact with that URI.
type ModelDeploymentEvent struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Model is the served model name and Version the version concerned, when known
	// (field names as services/serving/api/servingv1.ModelEvent writes them).
	Model       string    `json:"modelName,omitempty"`
	Version     int64     `json:"version,omitempty"`
	ModelFormat string    `json:"modelFormat,omitempty"`
	StorageURI  string    `json:"storageUri,omitempty"`
	ModelURI    string    `json:"modelUri,omitempty"`
	Digest      string    `json:"digest,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Time        time.Time `json:"time,omitzero"`
}
