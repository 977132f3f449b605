package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"go.temporal.io/sdk/activity"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/tfevents"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/training/api/trainingclient"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
	"github.com/sluice-ml/sluice/services/tuning/internal/collect"
	"github.com/sluice-ml/sluice/services/tuning/internal/expspec"
	"github.com/sluice-ml/sluice/services/tuning/internal/jobevents"
	"github.com/sluice-ml/sluice/services/tuning/internal/suggest"
)

// Source is the CloudEvents source of tuning events.
const Source = "/sluice/tuning"

// eventNamespace seeds the deterministic CE ids of tuning events.
var eventNamespace = uuid.MustParse("6f1c1f64-2b7e-4c55-8d0e-0b1f3b8f2a11")

// Activities are the experiment workflow's side effects. Register the pointer with the worker.
//
// A trial runs as a training job requested by event, as every other Sluice client requests one: RunTrial
// publishes io.sluice.training.job.requested.v1 (source Source, id TrialJobRequestID: experiment and
// trial, so a retried attempt's request is the same event and creates no second job), learns the job's
// state from the training service's job events (Jobs), and deletes it with
// io.sluice.training.job-deletion.requested.v1. The training REST API is read only: the job once after
// the watch starts (the events before it are not replayed: a retried attempt whose job already
// finished), every Resync in case the consumer was reset, and the primary replica's log for the StdOut
// collector.
type Activities struct {
	// Training reads the trials' jobs and logs through the training service's REST API.
	Training *trainingclient.Client
	// Bus publishes the trials' job requests and the io.sluice.tuning.* events; nil publishes nothing
	// (and runs no trial).
	Bus *events.Bus
	// Jobs delivers the training service's job events; trials need it.
	Jobs *jobevents.Watcher
	// S3 reads event files of s3:// TensorFlowEvent paths; nil refuses them.
	S3 *minio.Client
	// Resync is how often a running trial also reads its job through the REST API (0: 30 s).
	Resync time.Duration
}

// TrialJobRequestID is the CloudEvents id of the job.requested event of trial in experiment ns/experiment:
// a name-based UUID of that business key, the same for every attempt of the trial's activity, so the
// stream drops a re-publish and the training service never creates a second job for it.
func TrialJobRequestID(ns, experiment, trial string) string {
	return uuid.NewSHA1(eventNamespace, []byte("trial-job/"+ns+"/"+experiment+"/"+trial)).String()
}

// deletionID is the id of the job-deletion request of trial's job for reason (early-stopped, killed,
// experiment-deleted; n counts the requests of one deletion).
func deletionID(ns, trial, reason string, n int) string {
	return uuid.NewSHA1(eventNamespace, []byte(fmt.Sprintf("trial-job-deletion/%s/%s/%s/%d", ns, trial, reason, n))).String()
}

// SuggestInput asks the algorithm for new assignments.
type SuggestInput struct {
	Request suggest.Request `json:"request"`
}

// Suggest runs the suggestion algorithm (pure, so retries and replays agree).
func (a *Activities) Suggest(_ context.Context, in SuggestInput) (suggest.Response, error) {
	resp, err := suggest.Suggest(in.Request)
	if err != nil {
		return resp, wf.NonRetryable(wf.ErrTypeInvalidSpec, err)
	}
	return resp, nil
}

// RunTrialInput runs one trial.
type RunTrialInput struct {
	Experiment tuningv1.Experiment `json:"experiment"`
	Trial      tuningv1.Trial      `json:"trial"`
	// PollInterval between status reads of the training job (0: 1 s).
	PollInterval time.Duration `json:"pollInterval,omitempty"`
	// EarlyStopping, when set, is checked against the metrics collected at every poll while the job runs.
	EarlyStopping *tuningv1.EarlyStoppingRule `json:"earlyStopping,omitempty"`
}

// TrialOutcome is how the trial's job ended and what the collector observed.
type TrialOutcome struct {
	Succeeded bool `json:"succeeded"`
	// EarlyStopped: the early-stopping rule matched; the job was deleted.
	EarlyStopped bool                 `json:"earlyStopped,omitempty"`
	Message      string               `json:"message,omitempty"`
	Observation  tuningv1.Observation `json:"observation"`
}

func (a *Activities) training() *trainingclient.Client {
	if a.Training == nil {
		return &trainingclient.Client{}
	}
	return a.Training
}

func (a *Activities) resync() time.Duration {
	if a.Resync > 0 {
		return a.Resync
	}
	return 30 * time.Second
}

// trialJob is what a trial knows of its training job.
type trialJob struct {
	a                         *Activities
	kind, ns, name, requestID string
	okType, failType          string
	watch                     *jobevents.Watch
	// seen: the job was observed to exist (so a 404 means it was deleted, not that it is still to come).
	seen bool
	// done with out.Succeeded / out.Message: the success or failure condition became true.
	done bool
	out  TrialOutcome
	// gone is set once the job no longer exists; refused when the training service rejected the request.
	gone    string
	refused error
}

func (j *trialJob) finished() bool { return j.done || j.gone != "" || j.refused != nil }

// condition applies a condition that became true.
func (j *trialJob) condition(typ, reason, msg string) {
	j.seen = true
	switch typ {
	case j.okType:
		j.out.Succeeded, j.done = true, true
	case j.failType:
		j.out.Message, j.done = fmt.Sprintf("training job %s: %s", reason, msg), true
	}
}

// apply takes one job event: a transition (io.sluice.training.job.<condition>.v1), job.deleted, or
// job.rejected for this trial's request.
func (j *trialJob) apply(ev events.Event) {
	switch ev.Type() {
	case events.TrainingJobRejectedV1:
		var r trainingv1.Rejected
		if ev.DataAs(&r) == nil && r.RequestID == j.requestID {
			j.refused = fmt.Errorf("training service refused the trial job: %s", strings.Join(r.Errors, "; "))
		}
	case events.TrainingJobDeletedV1:
		j.gone = "training job " + j.name + " was deleted"
	default:
		var je trainingv1.JobEvent
		if ev.DataAs(&je) == nil && !j.done {
			j.condition(je.Condition, je.Reason, je.Message)
		}
	}
}

// drain applies the events queued on the watch.
func (j *trialJob) drain() {
	for _, ev := range j.watch.Take() {
		j.apply(ev)
	}
}

// read reads the job through the REST API (the fallback for what happened before the watch started).
func (j *trialJob) read(ctx context.Context) {
	v, err := j.a.training().Get(ctx, j.kind, j.ns, j.name)
	switch {
	case trainingclient.IsNotFound(err):
		if j.seen {
			j.gone = "training job " + j.name + " no longer exists"
		}
	case err != nil: // unreachable for now: the events go on, the next resync reads again
	case v.Deleted:
		j.gone = "training job " + j.name + " was deleted"
	default:
		j.seen = true
		for _, c := range v.Job.Status().Conditions {
			if c.Status == "True" && !j.done {
				j.condition(string(c.Type), c.Reason, c.Message)
			}
		}
	}
}

// RunTrial requests the trial's training job by event (a retried attempt publishes the same event:
// the stream or the training service drops it), follows the job's events until the template's success
// or failure condition type is true, then collects the metrics. It heartbeats every poll interval,
// applies the early-stopping rule to the metrics collected meanwhile, and deletes the job (by event)
// when it stops it early or is cancelled. A job the training service rejects fails the trial with its
// field errors; one deleted by someone else ends it with that message.
//
// Only a cancellation the workflow requested (or the attempt's end: its deadline, its worker shutting
// down) deletes the job: when a heartbeat fails, which makes the SDK cancel the activity's context even
// for a transient failure on a busy machine, the trial is followed on under wf.Steady while the attempt
// lives, and when the attempt is gone (timed out) the job is left to the retried attempt, which
// requests it again under the same id and follows it.
func (a *Activities) RunTrial(ctx context.Context, in RunTrialInput) (TrialOutcome, error) {
	var seen atomic.Bool // j.seen as last heartbeated, for Steady's own heartbeats
	ctx, stop := wf.Steady(ctx, time.Second, func() any { return seen.Load() }, nil)
	defer stop()
	e, t := in.Experiment, in.Trial
	ns := e.Metadata.Namespace
	job, err := expspec.RenderTrial(e, t.Name, t.ParameterAssignments)
	if err != nil {
		return TrialOutcome{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, err)
	}
	if a.Bus == nil || a.Jobs == nil {
		return TrialOutcome{}, wf.NonRetryable(wf.ErrTypePermanent, errors.New("tuning: no event bus to request the trial's training job on"))
	}
	okType, _ := expspec.ConditionTypeOf(e.Spec.TrialTemplate.SuccessCondition)
	failType, _ := expspec.ConditionTypeOf(e.Spec.TrialTemplate.FailureCondition)
	j := &trialJob{a: a, kind: job.JobKind, ns: ns, name: t.Name, requestID: TrialJobRequestID(ns, e.Metadata.Name, t.Name),
		okType: expspec.JobConditionType(job.Kind, okType), failType: expspec.JobConditionType(job.Kind, failType)}
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &j.seen) // an earlier attempt saw the job
		seen.Store(j.seen)
	}
	subject := trainingv1.EventSubject(j.kind, ns, t.Name)
	j.watch = a.Jobs.Watch(subject, j.requestID)
	defer j.watch.Close()
	req, err := events.New(Source, events.TrainingJobRequestedV1, subject, json.RawMessage(job.Document))
	if err != nil {
		return TrialOutcome{}, wf.NonRetryable(wf.ErrTypePermanent, err)
	}
	req.SetID(j.requestID)
	if err := a.Bus.Publish(ctx, req); err != nil {
		return TrialOutcome{}, err
	}
	poll := in.PollInterval
	if poll <= 0 {
		poll = time.Second
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	j.read(ctx)
	lastRead := time.Now()
	for !j.finished() {
		select {
		case <-ctx.Done():
			if !wf.LostContact(ctx) {
				a.deleteTrialJob(ctx, j, "killed")
			}
			return TrialOutcome{}, ctx.Err()
		case <-j.watch.Ready():
			j.drain()
		case <-tick.C:
			seen.Store(j.seen)
			activity.RecordHeartbeat(ctx, j.seen)
			if time.Since(lastRead) >= a.resync() {
				j.read(ctx)
				lastRead = time.Now()
			}
			if r := in.EarlyStopping; r != nil && j.seen && !j.finished() {
				if obs, err := a.collect(ctx, e, t, job.JobKind, job.PrimaryReplica); err == nil {
					if stop, msg := ShouldStop(*r, obs.Observation, len(obs.Series[r.Name])); stop {
						a.deleteTrialJob(ctx, j, "early-stopped")
						return TrialOutcome{EarlyStopped: true, Message: msg, Observation: obs.Observation}, nil
					}
				}
			}
		}
	}
	switch {
	case j.refused != nil:
		return TrialOutcome{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, j.refused)
	case !j.done:
		return TrialOutcome{Message: j.gone}, nil
	}
	out := j.out
	obs, err := a.collect(ctx, e, t, job.JobKind, job.PrimaryReplica)
	if err != nil {
		out.Message = strings.TrimPrefix(strings.TrimSpace(out.Message+"; metrics: "+err.Error()), "; ")
	}
	out.Observation = obs.Observation
	return out, nil
}

// deleteTrialJob asks the training service to delete a running trial's job (event
// io.sluice.training.job-deletion.requested.v1) and waits, heartbeating, until it is gone: its
// job.deleted event or a 404 (at most a minute; the experiment's deletion sweeps what is left). A job
// not seen yet (cancelled right after its request) is first waited for (at most 10 s), so the deletion
// cannot overtake the request in the training service's consumer.
func (a *Activities) deleteTrialJob(actx context.Context, j *trialJob, reason string) {
	hctx := context.WithoutCancel(actx)
	ctx, cancel := context.WithTimeout(hctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	wait := func(until func() bool, within time.Duration) {
		deadline := time.Now().Add(within)
		for !until() && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return
			case <-j.watch.Ready():
				j.drain()
			case <-tick.C:
				activity.RecordHeartbeat(hctx, j.seen)
				j.read(ctx)
			}
		}
	}
	wait(func() bool { return j.seen || j.refused != nil || j.gone != "" }, 10*time.Second)
	if j.refused != nil || j.gone != "" {
		return
	}
	ev, err := events.New(Source, events.TrainingJobDeletionRequestedV1, trainingv1.EventSubject(j.kind, j.ns, j.name),
		trainingv1.JobDeletionRequest{Kind: j.kind, Namespace: j.ns, Name: j.name})
	if err == nil {
		ev.SetID(deletionID(j.ns, j.name, reason, 1))
		err = a.Bus.Publish(ctx, ev)
	}
	if err != nil {
		activity.GetLogger(actx).Warn("request deletion of the trial's training job", "job", j.name, "err", err)
		return
	}
	j.seen = true // it was seen, or it must count as gone once it is not found
	wait(func() bool { return j.gone != "" }, time.Minute)
}

// collected is an observation with the raw series it summarises.
type collected struct {
	tuningv1.Observation
	Series collect.Series
}

// ShouldStop applies Katib's early-stopping rule to a running trial whose metric was reported reports
// times: once reports >= StartStep, a latest value "less" (maximize) / "greater" (minimize) than the
// rule's value stops it.
func ShouldStop(r tuningv1.EarlyStoppingRule, obs tuningv1.Observation, reports int) (bool, string) {
	if reports < r.StartStep {
		return false, ""
	}
	v, ok := collect.Value(obs, r.Name, tuningv1.StrategyLatest)
	if !ok {
		return false, ""
	}
	if (r.Comparison == "less" && v < r.Value) || (r.Comparison == "greater" && v > r.Value) {
		return true, fmt.Sprintf("early stopped by medianstop: %s=%g after %d reports is %s than the median %g of completed trials",
			r.Name, v, reports, map[string]string{"less": "worse (less)", "greater": "worse (greater)"}[r.Comparison], r.Value)
	}
	return false, ""
}

// collect runs the experiment's metrics collector over the finished trial.
func (a *Activities) collect(ctx context.Context, e tuningv1.Experiment, t tuningv1.Trial, kind, replica string) (collected, error) {
	o := *e.Spec.Objective
	names := collect.MetricNames(o)
	mc := e.Spec.MetricsCollectorSpec
	var s collect.Series
	switch mc.Collector.Kind {
	case tuningv1.CollectorTensorFlowEvent:
		p := strings.ReplaceAll(mc.Source.FileSystemPath.Path, "{trialName}", t.Name)
		var src tfevents.Source = tfevents.Dir(p)
		if rest, ok := strings.CutPrefix(p, "s3://"); ok {
			if a.S3 == nil {
				return collected{}, errors.New("no S3 store configured for " + p)
			}
			bucket, prefix, _ := strings.Cut(rest, "/")
			src = tfevents.S3{Client: a.S3, Bucket: bucket, Prefix: prefix}
		}
		var err error
		if s, err = collect.TFEvents(ctx, src, names); err != nil {
			return collected{}, err
		}
	default:
		body, err := a.training().Logs(ctx, kind, e.Metadata.Namespace, t.Name, replica)
		if err != nil {
			return collected{}, err
		}
		if s, err = collect.StdOut(body, mc.Source.Filter.MetricsFormat, names); err != nil {
			return collected{}, err
		}
	}
	return collected{Observation: collect.Observe(s, names), Series: s}, nil
}

// DeleteTrialsInput names the trial jobs to delete.
type DeleteTrialsInput struct {
	Namespace string `json:"namespace"`
	// Kind is the trials' job kind (TFJob, PyTorchJob; "" in inputs recorded before it was set: each
	// name is then resolved by the training service).
	Kind  string   `json:"kind,omitempty"`
	Names []string `json:"names"`
}

// DeleteTrials requests the deletion of each trial's training job by event and waits, heartbeating,
// until every one is gone (its job.deleted event, or a 404: jobs already deleted count as deleted).
func (a *Activities) DeleteTrials(ctx context.Context, in DeleteTrialsInput) error {
	if a.Bus == nil || a.Jobs == nil {
		return wf.NonRetryable(wf.ErrTypePermanent, errors.New("tuning: no event bus to request the deletion of the trials' jobs on"))
	}
	pending := map[string]*jobevents.Watch{}
	defer func() {
		for _, w := range pending {
			w.Close()
		}
	}()
	for _, n := range in.Names {
		subject := trainingv1.EventSubject(in.Kind, in.Namespace, n)
		pending[n] = a.Jobs.Watch(subject, "")
		ev, err := events.New(Source, events.TrainingJobDeletionRequestedV1, subject,
			trainingv1.JobDeletionRequest{Kind: in.Kind, Namespace: in.Namespace, Name: n})
		if err != nil {
			return wf.NonRetryable(wf.ErrTypePermanent, err)
		}
		ev.SetID(deletionID(in.Namespace, n, "experiment-deleted", 1))
		if err := a.Bus.Publish(ctx, ev); err != nil {
			return err
		}
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for round := 0; len(pending) > 0; round++ {
		activity.RecordHeartbeat(ctx, len(pending))
		for n, w := range pending {
			gone := false
			for _, ev := range w.Take() {
				gone = gone || ev.Type() == events.TrainingJobDeletedV1
			}
			if !gone && round%4 == 0 { // and read every second
				v, err := a.training().Get(ctx, in.Kind, in.Namespace, n)
				gone = trainingclient.IsNotFound(err) || (err == nil && v.Deleted)
			}
			if gone {
				w.Close()
				delete(pending, n)
			}
		}
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// PublishInput is one tuning event; Key makes its CE id deterministic within the experiment.
type PublishInput struct {
	Type  string                   `json:"type"`
	UID   string                   `json:"uid"`
	Key   string                   `json:"key"`
	Event tuningv1.ExperimentEvent `json:"event"`
}

// Publish sends the event with a CE id derived from the experiment uid and Key, so a retry is
// deduplicated by the stream.
func (a *Activities) Publish(ctx context.Context, in PublishInput) error {
	if a.Bus == nil {
		return nil
	}
	subject := "experiments/" + in.Event.Namespace + "/" + in.Event.Name
	if in.Event.Trial != nil {
		subject += "/trials/" + in.Event.Trial.Name
	}
	ev, err := events.New(Source, in.Type, subject, in.Event)
	if err != nil {
		return wf.NonRetryable(wf.ErrTypePermanent, err)
	}
	ev.SetID(uuid.NewSHA1(eventNamespace, []byte(in.UID+"/"+in.Key)).String())
	return a.Bus.Publish(ctx, ev)
}
