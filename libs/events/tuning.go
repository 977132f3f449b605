package events

// Tuning domain (stream SLUICE_TUNING): Katib experiments run by the tuning service. Data is
// tuningv1.ExperimentEvent.
const (
	TuningExperimentCreatedV1   = "io.sluice.tuning.experiment.created.v1"
	TuningExperimentRunningV1   = "io.sluice.tuning.experiment.running.v1"
	TuningExperimentSucceededV1 = "io.sluice.tuning.experiment.succeeded.v1"
	TuningExperimentFailedV1    = "io.sluice.tuning.experiment.failed.v1"
	TuningExperimentDeletedV1   = "io.sluice.tuning.experiment.deleted.v1"
	TuningTrialSucceededV1      = "io.sluice.tuning.trial.succeeded.v1"
	TuningTrialFailedV1         = "io.sluice.tuning.trial.failed.v1"
)

// StreamTuning holds sluice.tuning.>.
const StreamTuning = "SLUICE_TUNING"

// The tuning stream is added here (not in the Streams literal) so the domain lives in one file.
func init() {
	Streams = append(Streams, StreamSpec{Name: StreamTuning, Subjects: []string{"sluice.tuning.>"}})
}
