package engine

// Training job tasks: a `trainingJob:` task submits its TFJob/PyTorchJob
// document to the training service and waits for the job to finish.
//
// The training service's lifecycle workflow takes a parsed, defaulted and
// validated job (trainingv1.JobInput), and parsing/defaulting/validation live
// in services/training/api/jobspec, which other services must not
// import. So the engine talks to the training service through its public
// REST API (POST/GET/DELETE /apis/training/v1/namespaces/{ns}/jobs[/{name}],
// decoding trainingv1.JobView), from one long activity that heartbeats while
// it polls: the training service stays the only place that interprets a
// job document, and a bad document is refused with its field paths before
// anything is created.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/events"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
	"github.com/sluice-ml/sluice/services/training/api/trainingclient"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// DefaultTrainingURL is the training service's base URL when none is configured (`sluice dev`'s API port).
const DefaultTrainingURL = trainingclient.DefaultBaseURL

// DefaultTrainingPoll is how often a training job task polls the job's state.
const DefaultTrainingPoll = time.Second

// trainingHeartbeat is the heartbeat timeout of RunTrainingJob. The SDK sends heartbeats (and so learns
// of a cancellation) at most every 80% of it, so it bounds how long a cancelled run's job keeps running.
const trainingHeartbeat = 3 * time.Second

// TaskExtraTrainingJob is the TaskState.Extra key naming a training job task's job, "<namespace>/<name>".
const TaskExtraTrainingJob = "training_job"

// TrainingJobInput is one attempt of a training job task.
type TrainingJobInput struct {
	RunID        string `json:"run_id"`
	PipelineName string `json:"pipeline_name"`
	TaskPath     string `json:"task_path"`
	TaskName     string `json:"task_name"`
	Component    string `json:"component"`
	Attempt      int    `json:"attempt"`
	// Namespace and Name are where the job is created (Name is unique per run, task path and attempt).
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Document is the TFJob/PyTorchJob JSON document as written in the spec.
	Document json.RawMessage `json:"document"`
	// OutputArtifacts maps each declared output artifact ("model" only) to its schema title.
	OutputArtifacts map[string]string `json:"output_artifacts,omitempty"`
	// LastAttempt tells the activity to publish task.failed when the job fails.
	LastAttempt bool `json:"last_attempt"`
}

// runTrainingJob runs a training job task: one RunTrainingJob activity per attempt under the task's retry
// policy, each attempt a new job named dag.TrainingJobName(...).
func (r *runner) runTrainingJob(ctx workflow.Context, t *dag.Task, comp *dag.Component, path string) taskResult {
	ns, base := dag.TrainingJobRef(comp.TrainingJob)
	if r.in.Namespace != "" {
		// A namespaced run creates its jobs in its own namespace: a document naming another one was
		// refused when the run was created, so this only fills in one that names none.
		ns = r.in.Namespace
	}
	maxRetries := 0
	if t.Retry != nil {
		maxRetries = t.Retry.MaxRetryCount
	}
	var a *Activities
	actx := workflow.WithActivityOptions(ctx, wf.LongActivity(trainingHeartbeat, 7*24*time.Hour))
	var lastErr string
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			if d := t.Retry.Delay(attempt - 1); d > 0 {
				if err := sleep(ctx, d, fmt.Sprintf("backoff %s before attempt %d of training job %s", d, attempt, path)); err != nil {
					return taskResult{State: pipelinesv1.TaskCancelled, Error: "cancelled during retry backoff after: " + lastErr}
				}
			}
		}
		in := TrainingJobInput{RunID: r.in.RunID, PipelineName: r.p.Name, TaskPath: path, TaskName: t.Name, Component: comp.Name,
			Attempt: attempt, Namespace: ns, Name: dag.TrainingJobName(base, r.in.RunID, path, attempt), Document: comp.TrainingJob,
			OutputArtifacts: map[string]string{}, LastAttempt: attempt > maxRetries}
		for _, oa := range comp.OutputArtifacts {
			in.OutputArtifacts[oa.Name] = oa.SchemaTitle
		}
		r.setTask(ctx, path, t.Name, pipelinesv1.TaskRunning, func(ts *pipelinesv1.TaskState) {
			ts.Attempts = attempt
			if ts.Extra == nil {
				ts.Extra = map[string]string{}
			}
			ts.Extra[TaskExtraTrainingJob] = in.Namespace + "/" + in.Name
		})
		var out StepResult
		summary := fmt.Sprintf("training job %s/%s for step %s (attempt %d)", in.Namespace, in.Name, path, attempt)
		err := workflow.ExecuteActivity(withSummary(actx, summary), a.RunTrainingJob, in).Get(ctx, &out)
		if err == nil {
			return taskResult{State: pipelinesv1.TaskSucceeded, Outputs: out.Outputs}
		}
		var ce *temporal.CanceledError
		if errors.As(err, &ce) || ctx.Err() != nil {
			return taskResult{State: pipelinesv1.TaskCancelled, Error: "cancelled"}
		}
		lastErr = rootMessage(err)
		if wf.ErrorType(err) == wf.ErrTypeInvalidSpec || attempt > maxRetries {
			return taskResult{State: pipelinesv1.TaskFailed, Error: lastErr}
		}
		r.setTask(ctx, path, t.Name, pipelinesv1.TaskRunning, func(ts *pipelinesv1.TaskState) { ts.Error = lastErr })
	}
}

// RunTrainingJob runs one attempt of a training job task: it creates the job through the training
// service's REST API (a 409 is the job an earlier try of this attempt created), polls it while
// heartbeating until it is Succeeded or Failed, and resolves the "model" output to the chief's s3://
// exportDir. Cancellation deletes the job. A refused document fails with ErrTypeInvalidSpec (the training
// service's field errors in the message), a failed job with ErrTypeStepFailed and the Failed condition's
// message; an unreachable training service is retried.
func (a *Activities) RunTrainingJob(ctx context.Context, in TrainingJobInput) (StepResult, error) {
	step := StepInput{RunID: in.RunID, Namespace: in.Namespace, PipelineName: in.PipelineName, TaskPath: in.TaskPath, TaskName: in.TaskName,
		Component: in.Component, Attempt: in.Attempt}
	started := a.taskEventAsync(ctx, events.PipelineTaskStartedV1, step, pipelinesv1.TaskEvent{State: pipelinesv1.TaskRunning})
	res, jobErr := a.trainingJob(ctx, in)
	if err := started(ctx); err != nil && jobErr == nil {
		return res, err
	}
	if jobErr != nil {
		if ctx.Err() == nil && (in.LastAttempt || wf.ErrorType(jobErr) == wf.ErrTypeInvalidSpec) && isBusinessFailure(jobErr) {
			_ = a.taskEvent(ctx, events.PipelineTaskFailedV1, step, pipelinesv1.TaskEvent{State: pipelinesv1.TaskFailed, Error: jobErr.Error()})
		}
		return res, jobErr
	}
	ev := pipelinesv1.TaskEvent{State: pipelinesv1.TaskSucceeded, Outputs: firstArtifacts(res.Outputs.Artifacts)}
	if err := a.taskEvent(ctx, events.PipelineTaskSucceededV1, step, ev); err != nil {
		return res, err
	}
	return res, nil
}

func (a *Activities) trainingJob(ctx context.Context, in TrainingJobInput) (StepResult, error) {
	doc, err := dag.WithTrainingJobName(in.Document, in.Namespace, in.Name)
	if err != nil {
		return StepResult{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, fmt.Errorf("trainingJob: %w", err))
	}
	var head struct {
		Kind string `json:"kind"`
	}
	_ = json.Unmarshal(doc, &head)
	kind := trainingv1.KindOf(head.Kind) // "" for a document the service refuses anyway
	tc := a.training()
	key := in.Namespace + "/" + in.Name
	err = tc.Create(ctx, in.Namespace, in.Name, doc)
	switch {
	case err == nil, trainingclient.IsConflict(err):
		// 409: the name is unique per run, task and attempt, so the job is the one this attempt created
		// before its worker died.
	case trainingclient.IsInvalid(err):
		return StepResult{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, fmt.Errorf("training service refused job %s: %s", key, messageOf(err)))
	case trainingclient.StatusOf(err) == 0:
		if wf.CancelRequested(ctx) { // the request may have reached the service: make sure no job outlives the task
			a.deleteTrainingJob(context.WithoutCancel(ctx), kind, in.Namespace, in.Name)
		}
		return StepResult{}, fmt.Errorf("create training job %s: %w", key, err)
	default:
		return StepResult{}, fmt.Errorf("create training job %s: %w", key, err)
	}
	poll := a.TrainingPoll
	if poll <= 0 {
		poll = DefaultTrainingPoll
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	// Heartbeats go out with a context that is never cancelled: the SDK sends batched heartbeats with the
	// context of the first call of a batch, and they must keep flowing while a cancelled task deletes its job.
	hctx := context.WithoutCancel(ctx)
	for {
		activity.RecordHeartbeat(hctx, key)
		v, err := tc.Get(ctx, kind, in.Namespace, in.Name)
		code := trainingclient.StatusOf(err)
		switch {
		case ctx.Err() != nil:
		case err != nil && (code == 0 || code/100 == 5):
			a.logger().WarnContext(ctx, "training job poll failed; retrying", "job", key, "code", code, "err", err)
		case code == 404:
			return StepResult{}, wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("training job %s was deleted before it finished", key))
		case err != nil:
			return StepResult{}, fmt.Errorf("get training job %s: %w", key, err)
		default:
			switch v.State {
			case trainingv1.JobSucceeded:
				return a.trainingOutputs(ctx, in, &v)
			case trainingv1.JobFailed:
				return StepResult{}, wf.NonRetryable(wf.ErrTypeStepFailed, fmt.Errorf("training job %s failed: %s", key, failedMessage(&v)))
			}
		}
		select {
		case <-ctx.Done():
			// Only a cancellation of the task deletes the job; a lost attempt (heartbeat timeout) leaves
			// it to the retry, which finds it by name.
			if wf.CancelRequested(ctx) {
				a.deleteTrainingJob(hctx, kind, in.Namespace, in.Name)
			}
			return StepResult{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// messageOf is the training service's message of an answer (its field errors for a 400).
func messageOf(err error) string {
	var e *trainingclient.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// deleteTrainingJob deletes a cancelled task's job. The training service answers once the job's replicas
// are stopped (their grace period included), so the activity keeps heartbeating meanwhile.
func (a *Activities) deleteTrainingJob(hctx context.Context, kind, ns, name string) {
	ctx, cancel := context.WithTimeout(hctx, time.Minute)
	defer cancel()
	key := ns + "/" + name
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.training().Delete(ctx, kind, ns, name); err != nil && !trainingclient.IsNotFound(err) {
			a.logger().Warn("delete of a cancelled task's training job failed", "job", key, "err", err)
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			activity.RecordHeartbeat(hctx, key)
		}
	}
}

func (a *Activities) logger() *slog.Logger {
	if a.Log == nil {
		return slog.Default()
	}
	return a.Log
}

// trainingOutputs resolves the declared "model" artifact: the s3:// exportDir of the finished job's
// chief/master (else worker 0) default container, as a directory artifact with its listing digest.
func (a *Activities) trainingOutputs(ctx context.Context, in TrainingJobInput, v *trainingv1.JobView) (StepResult, error) {
	title, ok := in.OutputArtifacts[dag.TrainingModelOutput]
	if !ok {
		return StepResult{}, nil
	}
	dir := v.Job.ExportDir()
	if !strings.HasPrefix(dir, artifacts.URIScheme) {
		return StepResult{}, wf.NonRetryable(wf.ErrTypeMissingOutput, fmt.Errorf(
			"declared output artifact %q: the job's chief/master container has no exportDir env with an s3:// URI (got %q)", dag.TrainingModelOutput, dir))
	}
	bucket, key, err := artifacts.ParseURI(dir)
	if err != nil {
		return StepResult{}, wf.NonRetryable(wf.ErrTypeMissingOutput, fmt.Errorf("declared output artifact %q: exportDir: %w", dag.TrainingModelOutput, err))
	}
	key = strings.TrimSuffix(key, "/")
	art := Artifact{Name: dag.TrainingModelOutput, SchemaTitle: title, URI: strings.TrimSuffix(dir, "/") + "/"}
	if bucket == a.Store.Bucket() && key != "" {
		objs, err := a.Store.List(ctx, key)
		if err != nil {
			return StepResult{}, fmt.Errorf("list exportDir %s: %w", dir, err)
		}
		if len(objs) == 0 {
			return StepResult{}, wf.NonRetryable(wf.ErrTypeMissingOutput, fmt.Errorf("declared output artifact %q: the job exported nothing to %s", dag.TrainingModelOutput, dir))
		}
		for i, o := range objs {
			st, err := a.Store.Stat(ctx, o.Key)
			if err != nil {
				return StepResult{}, fmt.Errorf("stat %s: %w", o.Key, err)
			}
			objs[i] = st
			art.Size += st.Size
		}
		art.Digest = dirDigest(key, objs)
	}
	return StepResult{Outputs: outputs{Artifacts: map[string][]Artifact{dag.TrainingModelOutput: {art}}}}, nil
}

// failedMessage is the message of the job's Failed condition.
func failedMessage(v *trainingv1.JobView) string {
	conds := v.Job.Status().Conditions
	for i := len(conds) - 1; i >= 0; i-- {
		if conds[i].Type == trainingv1.JobFailed {
			return conds[i].Message
		}
	}
	return "job failed"
}

// training is the client of the training service's REST API.
func (a *Activities) training() *trainingclient.Client {
	return &trainingclient.Client{BaseURL: a.TrainingURL, HTTP: a.HTTP}
}
