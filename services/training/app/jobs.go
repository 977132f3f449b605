package app

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/google/uuid"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/kube"
	"github.com/sluice-ml/sluice/services/training/api/jobspec"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/internal/lifecycle"
)

// Errors of job operations, mapped to HTTP codes by httpError.
var (
	// ErrNotFound: no such job (or it was deleted). HTTP 404.
	ErrNotFound = errors.New("training: job not found")
	// ErrExists: a job with that namespace/name exists. HTTP 409.
	ErrExists = errors.New("training: job already exists")
	// ErrFinished: the job can no longer be suspended or resumed. HTTP 409.
	ErrFinished = errors.New("training: job is no longer running")
	// ErrAmbiguous: a TFJob and a PyTorchJob share the name and the request
	// did not say which kind it means. HTTP 409.
	ErrAmbiguous = errors.New("training: ambiguous job name")
)

// parse reads a TFJob/PyTorchJob document. When ns is set (the REST path's namespace, or the namespace
// the event gateway authorised a request event's publisher in), metadata.namespace defaults to it and
// must equal it when present.
func parse(doc []byte, ns string) (*trainingv1.Job, error) {
	var probe struct {
		Metadata struct {
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	_ = yaml.Unmarshal(doc, &probe)
	job, err := jobspec.Parse(doc)
	if err != nil {
		return nil, err
	}
	if ns != "" {
		switch probe.Metadata.Namespace {
		case "":
			job.Meta().Namespace = ns
			if err := jobspec.Validate(job); err != nil {
				return nil, err
			}
		case ns:
		default:
			return nil, &jobspec.InvalidError{Kind: job.Kind(), Name: job.Meta().Name, Errors: []jobspec.FieldError{{
				Field: "metadata.namespace", Detail: fmt.Sprintf("%q does not match the namespace %q of the request", probe.Metadata.Namespace, ns)}}}
		}
	}
	return job, nil
}

// jobRecord is what Temporal knows of a job's latest workflow run.
type jobRecord struct {
	// id is the job's workflow ID (kind-qualified, or legacy).
	id        string
	kind      string
	ns, name  string
	runID     string
	running   bool
	deleted   bool
	requestID string
}

// legacy reports a job created before the kind was part of its identity.
func (r *jobRecord) legacy() bool { return r.id == trainingv1.LegacyWorkflowID(r.ns, r.name) }

// kindSegment is the kind in the job's store keys ("" for the legacy layout).
func (r *jobRecord) kindSegment() string {
	if r.legacy() {
		return ""
	}
	return trainingv1.KindSegment(r.kind)
}

func memoValue(m *commonpb.Memo, key string, v any) {
	if m == nil {
		return
	}
	if p, ok := m.Fields[key]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, v)
	}
}

// describe describes the latest run of workflow id, the job ns/name (nil when none).
func (a *App) describe(ctx context.Context, id, ns, name string) (*jobRecord, error) {
	desc, err := a.d.Temporal.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	info := desc.WorkflowExecutionInfo
	r := &jobRecord{id: id, ns: ns, name: name, runID: info.Execution.RunId, running: info.Status == enums.WORKFLOW_EXECUTION_STATUS_RUNNING}
	memoValue(info.Memo, trainingv1.MemoDeleted, &r.deleted)
	memoValue(info.Memo, trainingv1.MemoRequestID, &r.requestID)
	memoValue(info.Memo, trainingv1.MemoKind, &r.kind)
	if !r.deleted && !r.running {
		ok, err := a.d.Artifacts.Exists(ctx, tombstoneKey(r))
		if err != nil {
			return nil, err
		}
		r.deleted = ok
	}
	return r, nil
}

// lookup describes the latest run of the job kind ns/name: its
// kind-qualified workflow, else a legacy workflow of that kind (nil when
// neither exists).
func (a *App) lookup(ctx context.Context, kind, ns, name string) (*jobRecord, error) {
	r, err := a.describe(ctx, trainingv1.WorkflowID(kind, ns, name), ns, name)
	if err != nil || (r != nil && !r.deleted) {
		if r != nil && r.kind == "" {
			r.kind = kind
		}
		return r, err
	}
	old, err := a.describe(ctx, trainingv1.LegacyWorkflowID(ns, name), ns, name)
	if err != nil {
		return nil, err
	}
	if old != nil && (old.kind == "" || old.kind == kind) && (r == nil || !old.deleted) {
		if old.kind == "" {
			old.kind = kind
		}
		return old, nil
	}
	return r, nil
}

// resolve finds the live (not deleted) job ns/name. kind may be empty when
// only one kind has a job of that name; with both it is ErrAmbiguous.
func (a *App) resolve(ctx context.Context, kind, ns, name string) (*jobRecord, error) {
	kinds := trainingv1.Kinds
	if kind != "" {
		kinds = []string{kind}
	}
	var found []*jobRecord
	for _, k := range kinds {
		r, err := a.lookup(ctx, k, ns, name)
		if err != nil {
			return nil, err
		}
		if r != nil && !r.deleted && (len(found) == 0 || found[0].id != r.id) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		what := "job"
		if kind != "" {
			what = kind
		}
		return nil, fmt.Errorf("%w: %s %s/%s", ErrNotFound, what, ns, name)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%w: both a %s and a %s are named %s/%s; say which with ?kind= (sluice jobs --kind)",
		ErrAmbiguous, found[0].kind, found[1].kind, ns, name)
}

// tombstoneKey marks a finished job's run as deleted. Temporal deletes
// closed executions asynchronously (and lazily on a dev server), so the
// tombstone is what makes the deletion visible at once.
func tombstoneKey(r *jobRecord) string {
	return path.Join("training", r.ns, r.kindSegment(), r.name, "deleted", r.runID)
}

// create starts the job's lifecycle unless a job of that kind and name
// exists (a deleted job's name may be reused; a TFJob and a PyTorchJob
// may share a name). A requestID already used by the existing job is a
// duplicate: created reports false and no error.
func (a *App) create(ctx context.Context, job *trainingv1.Job, requestID string) (created bool, err error) {
	meta := job.Meta()
	rec, err := a.lookup(ctx, job.Kind(), meta.Namespace, meta.Name)
	if err != nil {
		return false, err
	}
	if rec != nil && requestID != "" && rec.requestID == requestID {
		// The request that created this job (even one deleted since): a redelivered or re-published
		// event, never a second job.
		return false, nil
	}
	if rec != nil && !rec.deleted {
		return false, fmt.Errorf("%w: %s %s", ErrExists, job.Kind(), job.Key())
	}
	if requestID == "" {
		requestID = uuid.NewString()
	}
	// Every job gets a fresh UID, as the API server assigns metadata.uid
	// on create (a submitted uid is ignored): logs, work dirs and events
	// of a job re-created under the same name never mix with the old one's.
	job.Meta().UID = types.UID(uuid.NewString())
	_, err = lifecycle.StartOn(ctx, a.d.Temporal, a.cfg.TaskQueue, trainingv1.JobInput{Job: *job, RequestID: requestID, HeartbeatTimeout: a.cfg.HeartbeatTimeout,
		RestartBackoff: a.cfg.RestartBackoff, HistoryLimit: a.cfg.HistoryLimit, Network: a.network(), ClusterNamespace: a.clusterNamespace(meta.Namespace)})
	if errors.Is(err, lifecycle.ErrJobExists) {
		if rec, lerr := a.lookup(ctx, job.Kind(), meta.Namespace, meta.Name); lerr == nil && rec != nil && rec.requestID == requestID {
			return false, nil
		}
		return false, fmt.Errorf("%w: %s %s", ErrExists, job.Kind(), job.Key())
	}
	return err == nil, err
}

// network is how the runtime's replicas address each other: loopback ports
// for local processes, service names on a per-job network for containers.
func (a *App) network() string {
	switch a.acts.Runtime.Name() {
	case runtime.NameLocal:
		return ""
	case runtime.NameKubernetes:
		return trainingv1.NetworkKubernetes
	}
	return trainingv1.NetworkDNS
}

// clusterNamespace is the Kubernetes namespace of a job's pods ("" unless
// the runtime is Kubernetes).
func (a *App) clusterNamespace(ns string) string {
	if kr, ok := a.acts.Runtime.(*kube.Runtime); ok {
		return kr.NamespaceOf(ns)
	}
	return ""
}

// get returns the live view of a job that exists and is not deleted (kind
// may be empty, see resolve).
func (a *App) get(ctx context.Context, kind, ns, name string) (trainingv1.JobView, error) {
	rec, err := a.resolve(ctx, kind, ns, name)
	if err != nil {
		return trainingv1.JobView{}, err
	}
	return a.view(ctx, rec)
}

func (a *App) view(ctx context.Context, rec *jobRecord) (trainingv1.JobView, error) {
	v, err := lifecycle.Query(ctx, a.d.Temporal, rec.id)
	if err != nil {
		return v, err
	}
	if v.Deleted {
		return trainingv1.JobView{}, fmt.Errorf("%w: %s %s/%s", ErrNotFound, rec.kind, rec.ns, rec.name)
	}
	return v, nil
}

// signal sends a control signal to a running job.
func (a *App) signal(ctx context.Context, kind, ns, name, sig string) error {
	rec, err := a.resolve(ctx, kind, ns, name)
	if err != nil {
		return err
	}
	if !rec.running {
		return fmt.Errorf("%w: %s %s/%s has finished", ErrFinished, rec.kind, ns, name)
	}
	return a.d.Temporal.SignalWorkflow(ctx, rec.id, rec.runID, sig, nil)
}

// remove deletes a job: a running lifecycle terminates its replicas and
// ends; a finished one has its workflow execution deleted, and the deleted
// event is published here (same deterministic id the workflow would use).
func (a *App) remove(ctx context.Context, kind, ns, name string) error {
	rec, err := a.resolve(ctx, kind, ns, name)
	if err != nil {
		return err
	}
	kind, id := rec.kind, rec.id
	if rec.running {
		// The workflow terminates the replicas, publishes job.deleted and
		// ends; wait for that, so a later GET answers 404.
		err := a.d.Temporal.SignalWorkflow(ctx, id, rec.runID, trainingv1.SignalDelete, nil)
		var nf *serviceerror.NotFound
		if err != nil && !errors.As(err, &nf) {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_ = a.d.Temporal.GetWorkflow(wctx, id, rec.runID).Get(wctx, nil)
		cancel()
		if rec, err = a.describe(ctx, id, ns, name); err != nil || rec == nil || rec.deleted {
			return err
		}
		if rec.kind == "" {
			rec.kind = kind
		}
		if rec.running {
			return fmt.Errorf("training: %s %s/%s is still stopping its replicas", kind, ns, name)
		}
		// It was finishing when the signal came: delete the finished run.
	}
	view, _ := lifecycle.Query(ctx, a.d.Temporal, id)
	ev := trainingv1.JobEvent{Kind: kind, Namespace: ns, Name: name, Condition: "Deleted",
		Message: fmt.Sprintf("%s %s/%s is deleted: deleted by request", kind, ns, name)}
	out, err := events.New("/sluice/"+Name, events.TrainingJobDeletedV1, trainingv1.EventSubject(rec.kindSegment(), ns, name), ev)
	if err != nil {
		return err
	}
	out.SetID(lifecycle.EventID(id, rec.runID, events.TrainingJobDeletedV1, "1"))
	if err := a.d.Bus.Publish(ctx, out); err != nil {
		return err
	}
	if _, err := a.d.Artifacts.Put(ctx, tombstoneKey(rec), strings.NewReader(""), 0); err != nil {
		return err
	}
	if uid := string(view.Job.Meta().UID); uid != "" {
		if err := a.acts.PurgeJob(ctx, lifecycle.PurgeInput{Namespace: ns, Kind: rec.kindSegment(), JobName: name, UID: uid}); err != nil {
			a.d.Log.WarnContext(ctx, "remove deleted job's logs", "trainjob", id, "err", err)
		}
	}
	if _, err := a.d.Temporal.WorkflowService().DeleteWorkflowExecution(ctx, deleteRequest(a.d.Namespace, id, rec.runID)); err != nil {
		a.d.Log.WarnContext(ctx, "delete finished job workflow", "workflow_id", id, "err", err)
	}
	return nil
}

// HandleJobRequested (the consumer's handler) creates the job in a sluice.training.job.requested.v1
// event (data: the TFJob/PyTorchJob document). The CE id is recorded as the
// job's request id, so a redelivered or duplicated event is a no-op. An
// invalid document (or a name in use by another request) is answered with
// job.rejected and dead-lettered.
func (a *App) HandleJobRequested(ctx context.Context, ev events.Event) error {
	ctx = events.WithPublisher(ctx, ev) // the job's owner (SluiceOwner) is the publisher
	// Created in the namespace the gateway authorised the publisher in (events.Namespace) and no other.
	job, err := parse(ev.Data(), events.Namespace(ev))
	if err != nil {
		a.reject(ctx, ev.ID(), nil, problemsOf(err))
		return events.Permanent(err)
	}
	_, err = a.create(ctx, job, ev.ID())
	if errors.Is(err, ErrExists) {
		a.reject(ctx, ev.ID(), job, []string{err.Error()})
		return events.Permanent(err)
	}
	return err
}

// HandleRequest (the consumer's handler) dispatches job and job-deletion requests.
func (a *App) HandleRequest(ctx context.Context, ev events.Event) error {
	if ev.Type() == events.TrainingJobDeletionRequestedV1 {
		return a.HandleJobDeletionRequested(ctx, ev)
	}
	return a.HandleJobRequested(ctx, ev)
}

// HandleJobDeletionRequested deletes the job a sluice.training.job-deletion.requested.v1 event names
// (data: trainingv1.JobDeletionRequest), as DELETE /jobs/{name}?kind= does: the replicas are stopped
// and job.deleted is published. A job that no longer exists is a no-op (the request is idempotent);
// a malformed request, or a name both kinds use without a kind, is dead-lettered.
func (a *App) HandleJobDeletionRequested(ctx context.Context, ev events.Event) error {
	var r trainingv1.JobDeletionRequest
	if err := ev.DataAs(&r); err != nil {
		return events.Permanent(fmt.Errorf("job deletion request: data: %w", err))
	}
	var problems []string
	if r.Namespace == "" {
		problems = append(problems, "namespace: is required")
	}
	if r.Name == "" {
		problems = append(problems, "name: is required")
	}
	kind := trainingv1.KindOf(r.Kind)
	if r.Kind != "" && kind == "" {
		problems = append(problems, fmt.Sprintf("kind: %q is not a job kind (want TFJob or PyTorchJob)", r.Kind))
	}
	if len(problems) > 0 {
		return events.Permanent(fmt.Errorf("job deletion request: %s", strings.Join(problems, "; ")))
	}
	err := a.remove(ctx, kind, r.Namespace, r.Name)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case errors.Is(err, ErrAmbiguous):
		return events.Permanent(err)
	}
	return err
}

func problemsOf(err error) []string {
	var inv *jobspec.InvalidError
	if errors.As(err, &inv) {
		out := make([]string, len(inv.Errors))
		for i, fe := range inv.Errors {
			out[i] = fe.Error()
		}
		return out
	}
	return []string{err.Error()}
}

func (a *App) reject(ctx context.Context, requestID string, job *trainingv1.Job, problems []string) {
	r := trainingv1.Rejected{RequestID: requestID, Errors: problems}
	subject := "requests/" + requestID
	if job != nil {
		r.Kind, r.Namespace, r.Name = job.Kind(), job.Meta().Namespace, job.Meta().Name
		subject = trainingv1.EventSubject(job.Kind(), r.Namespace, r.Name)
	}
	out, err := events.New("/sluice/"+Name, events.TrainingJobRejectedV1, subject, r)
	if err == nil {
		out.SetID(lifecycle.EventID(requestID, events.TrainingJobRejectedV1))
		err = a.d.Bus.Publish(ctx, out)
	}
	if err != nil {
		a.d.Log.WarnContext(ctx, "publish job.rejected", "event_id", requestID, "err", err)
	}
}

func deleteRequest(namespace, id, runID string) *workflowservice.DeleteWorkflowExecutionRequest {
	return &workflowservice.DeleteWorkflowExecutionRequest{Namespace: namespace,
		WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: runID}}
}
