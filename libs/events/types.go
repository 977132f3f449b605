// Package events carries Sluice's CloudEvents 1.0 over NATS JetStream.
//
// Every event type is a constant below, named io.sluice.<domain>.<entity>.<event>.v<major>; its NATS
// subject is the type without the leading "io." (see [SubjectFor]) and it is stored in the stream of its
// domain (SLUICE_PIPELINE holds sluice.pipeline.>, and so on; see [Streams]). Events are written in
// CloudEvents binary mode: attributes travel as "ce-*" NATS headers, the data is the message body.
package events

// Pipeline domain (stream SLUICE_PIPELINE).
const (
	// PipelineRunRequestedV1 asks for a pipeline run; data is pipelinesv1.RunRequest. The CE id becomes the run id.
	PipelineRunRequestedV1 = "io.sluice.pipeline.run.requested.v1"
	// PipelineRunRejectedV1 reports a run request refused before anything was created (data lists the field errors).
	PipelineRunRejectedV1   = "io.sluice.pipeline.run.rejected.v1"
	PipelineRunStartedV1    = "io.sluice.pipeline.run.started.v1"
	PipelineRunSucceededV1  = "io.sluice.pipeline.run.succeeded.v1"
	PipelineRunFailedV1     = "io.sluice.pipeline.run.failed.v1"
	PipelineRunCancelledV1  = "io.sluice.pipeline.run.cancelled.v1"
	PipelineTaskStartedV1   = "io.sluice.pipeline.task.started.v1"
	PipelineTaskSucceededV1 = "io.sluice.pipeline.task.succeeded.v1"
	PipelineTaskFailedV1    = "io.sluice.pipeline.task.failed.v1"
	PipelineTaskSkippedV1   = "io.sluice.pipeline.task.skipped.v1"
	PipelineTaskCachedV1    = "io.sluice.pipeline.task.cached.v1"
	// PipelineTaskCancelledV1 reports a task that ended CANCELED (run cancelled while it ran or before it started).
	PipelineTaskCancelledV1 = "io.sluice.pipeline.task.cancelled.v1"
)

// Training domain (stream SLUICE_TRAINING).
const (
	// TrainingJobRequestedV1 asks for a training job; data is a TFJob or PyTorchJob document.
	TrainingJobRequestedV1  = "io.sluice.training.job.requested.v1"
	TrainingJobRejectedV1   = "io.sluice.training.job.rejected.v1"
	TrainingJobCreatedV1    = "io.sluice.training.job.created.v1"
	TrainingJobRunningV1    = "io.sluice.training.job.running.v1"
	TrainingJobRestartingV1 = "io.sluice.training.job.restarting.v1"
	TrainingJobSucceededV1  = "io.sluice.training.job.succeeded.v1"
	TrainingJobFailedV1     = "io.sluice.training.job.failed.v1"
	TrainingJobSuspendedV1  = "io.sluice.training.job.suspended.v1"
	TrainingJobResumedV1    = "io.sluice.training.job.resumed.v1"
	TrainingJobDeletedV1    = "io.sluice.training.job.deleted.v1"
	// TrainingModelExportedV1 records a model written by a job (URI, digest, metrics) for lineage.
	TrainingModelExportedV1 = "io.sluice.training.model.exported.v1"
)

// TrainingJobDeletionRequestedV1 asks for a training job's deletion (stream SLUICE_TRAINING); data is
// trainingv1.JobDeletionRequest (kind, namespace, name). A job already gone counts as deleted; the job's
// io.sluice.training.job.deleted.v1 reports the deletion.
const TrainingJobDeletionRequestedV1 = "io.sluice.training.job-deletion.requested.v1"

// Serving domain (stream SLUICE_SERVING).
const (
	// ServingDeploymentRequestedV1 asks for a model deployment; data is an InferenceService-like document.
	ServingDeploymentRequestedV1 = "io.sluice.serving.deployment.requested.v1"
	ServingDeploymentRejectedV1  = "io.sluice.serving.deployment.rejected.v1"
	ServingDeploymentDeletedV1   = "io.sluice.serving.deployment.deleted.v1"
	ServingModelDeployedV1       = "io.sluice.serving.model.deployed.v1"
	ServingModelVersionLoadedV1  = "io.sluice.serving.model.version-loaded.v1"
	ServingModelFailedV1         = "io.sluice.serving.model.failed.v1"
	ServingModelTrafficShiftedV1 = "io.sluice.serving.model.traffic-shifted.v1"
)

// Notebook domain (stream SLUICE_NOTEBOOK).
const (
	// NotebookRequestedV1 asks for a notebook server; data is a kubeflow.org/v1 Notebook document.
	NotebookRequestedV1 = "io.sluice.notebook.requested.v1"
	NotebookRejectedV1  = "io.sluice.notebook.rejected.v1"
	NotebookRunningV1   = "io.sluice.notebook.server.running.v1"
	NotebookStoppedV1   = "io.sluice.notebook.server.stopped.v1"
	NotebookCulledV1    = "io.sluice.notebook.server.culled.v1"
	NotebookFailedV1    = "io.sluice.notebook.server.failed.v1"
	NotebookDeletedV1   = "io.sluice.notebook.server.deleted.v1"
	// TensorboardCreatedV1 / TensorboardDeletedV1: a tensorboard.kubeflow.org/v1alpha1 Tensorboard was
	// created (data: the Tensorboard with its status after the logs-path probe) or deleted.
	TensorboardCreatedV1 = "io.sluice.notebook.tensorboard.created.v1"
	TensorboardDeletedV1 = "io.sluice.notebook.tensorboard.deleted.v1"
)

// Metadata domain (stream SLUICE_METADATA).
const (
	// MetadataArtifactRecordedV1 reports an artifact written to the lineage store.
	MetadataArtifactRecordedV1 = "io.sluice.metadata.artifact.recorded.v1"
)

// DeadLetterV1 is the type of a dead-letter event; it is published on "sluice.deadletter.<original subject>"
// with a [DeadLetter] as data.
const DeadLetterV1 = "io.sluice.deadletter.event.recorded.v1"

// Stream names, one per domain.
const (
	StreamPipeline   = "SLUICE_PIPELINE"
	StreamTraining   = "SLUICE_TRAINING"
	StreamServing    = "SLUICE_SERVING"
	StreamNotebook   = "SLUICE_NOTEBOOK"
	StreamMetadata   = "SLUICE_METADATA"
	StreamDeadLetter = "SLUICE_DEADLETTER"
)

// Streams lists every stream with the subjects it holds, in a fixed order.
var Streams = []StreamSpec{
	{Name: StreamPipeline, Subjects: []string{"sluice.pipeline.>"}},
	{Name: StreamTraining, Subjects: []string{"sluice.training.>"}},
	{Name: StreamServing, Subjects: []string{"sluice.serving.>"}},
	{Name: StreamNotebook, Subjects: []string{"sluice.notebook.>"}},
	{Name: StreamMetadata, Subjects: []string{"sluice.metadata.>"}},
	{Name: StreamDeadLetter, Subjects: []string{DeadLetterPrefix + ">"}},
}

// StreamSpec names a stream and its subject filters.
type StreamSpec struct {
	Name     string
	Subjects []string
}
