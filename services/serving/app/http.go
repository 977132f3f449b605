package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/serving/api/servingv1"
	"github.com/sluice-ml/sluice/services/serving/internal/control"
)

// prefix of every control-plane route.
const prefix = "/apis/serving/v1/namespaces/{ns}/deployments"

// Errors of the control plane.
var (
	ErrNotFound = errors.New("deployment not found")
	// ErrConflict: the model name is served by a deployment in another namespace, or an update
	// changes the model name.
	ErrConflict = errors.New("conflict")
)

// Routes registers the data plane (/v1/models/, /v2, /v2/) and the control plane:
// POST .../deployments (create or update; an InferenceService or tf-serving document, YAML or JSON),
// GET .../deployments, GET/DELETE .../deployments/{name}, POST .../deployments/{name}/promote.
func (a *App) Routes(mux *http.ServeMux) {
	a.server.Routes(mux)
	mux.HandleFunc("POST "+prefix, a.applyDeployment)
	mux.HandleFunc("GET "+prefix, a.listDeployments)
	mux.HandleFunc("GET "+prefix+"/{name}", a.getDeployment)
	mux.HandleFunc("DELETE "+prefix+"/{name}", a.deleteDeployment)
	mux.HandleFunc("POST "+prefix+"/{name}/promote", a.promoteDeployment)
}

// httpError maps an error to a status once, here. Invalid documents answer 400 with
// {"error", "errors": [{"field","detail"}]}.
func httpError(w http.ResponseWriter, err error) {
	var inv *servingv1.InvalidError
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &inv):
		platform.WriteJSON(w, http.StatusBadRequest, map[string]any{"error": inv.Error(), "errors": inv.Errors})
	case errors.Is(err, ErrNotFound), errors.As(err, &nf):
		platform.WriteError(w, http.StatusNotFound, err)
	case errors.Is(err, ErrConflict):
		platform.WriteError(w, http.StatusConflict, err)
	default:
		platform.WriteError(w, http.StatusInternalServerError, err)
	}
}

func (a *App) applyDeployment(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		httpError(w, err)
		return
	}
	spec, err := servingv1.Parse(body, r.PathValue("ns"))
	if err != nil {
		httpError(w, err)
		return
	}
	acc, err := a.apply(r.Context(), spec, "")
	if err != nil {
		httpError(w, err)
		return
	}
	code := http.StatusOK
	if acc.Created {
		code = http.StatusCreated
	}
	platform.WriteJSON(w, code, acc)
}

// record is what Temporal knows of a deployment's workflow.
type record struct {
	running   bool
	modelName string
	requestID string
}

func memoValue(m *commonpb.Memo, key string, v any) {
	if m == nil {
		return
	}
	if p, ok := m.Fields[key]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, v)
	}
}

func (a *App) lookup(ctx context.Context, ns, name string) (*record, error) {
	desc, err := a.d.Temporal.DescribeWorkflowExecution(ctx, servingv1.WorkflowID(ns, name), "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	info := desc.WorkflowExecutionInfo
	rec := &record{running: info.Status == enums.WORKFLOW_EXECUTION_STATUS_RUNNING}
	memoValue(info.Memo, servingv1.MemoModelName, &rec.modelName)
	memoValue(info.Memo, servingv1.MemoRequestID, &rec.requestID)
	return rec, nil
}

// running lists the running deployment workflows as workflow id -> model name.
func (a *App) running(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	var token []byte
	for {
		resp, err := a.d.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: a.d.Namespace, PageSize: 500, NextPageToken: token,
			Query: fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", servingv1.WorkflowType),
		})
		if err != nil {
			return nil, err
		}
		for _, e := range resp.Executions {
			if e.Status != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
				continue
			}
			var model string
			memoValue(e.Memo, servingv1.MemoModelName, &model)
			out[e.Execution.WorkflowId] = model
		}
		token = resp.NextPageToken
		if len(token) == 0 {
			return out, nil
		}
	}
}

// apply creates the deployment's workflow or sends it the new spec. requestID (a CE id) makes a
// redelivered request a no-op.
func (a *App) apply(ctx context.Context, spec *servingv1.Deployment, requestID string) (servingv1.DeploymentAccepted, error) {
	id := servingv1.WorkflowID(spec.Namespace, spec.Name)
	acc := servingv1.DeploymentAccepted{Namespace: spec.Namespace, Name: spec.Name, ModelName: spec.ModelName, WorkflowID: id}
	rec, err := a.lookup(ctx, spec.Namespace, spec.Name)
	if err != nil {
		return acc, err
	}
	if rec != nil && rec.running {
		if rec.modelName != spec.ModelName {
			return acc, &servingv1.InvalidError{Errors: []servingv1.FieldError{{Field: "modelName",
				Detail: fmt.Sprintf("deployment %s serves model %q; the model name cannot change (delete and create again)", spec.Key(), rec.modelName)}}}
		}
		if requestID != "" && rec.requestID == requestID {
			return acc, nil
		}
		err := a.d.Temporal.SignalWorkflow(ctx, id, "", servingv1.SignalUpdate, servingv1.UpdateRequest{Spec: *spec, RequestID: requestID})
		return acc, err
	}
	others, err := a.running(ctx)
	if err != nil {
		return acc, err
	}
	for wid, model := range others {
		if wid != id && model == spec.ModelName {
			return acc, fmt.Errorf("%w: model name %q is already served by %s (the data plane serves by model name across namespaces)", ErrConflict, spec.ModelName, strings.TrimPrefix(wid, "deployment/"))
		}
	}
	_, err = a.d.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: a.cfg.TaskQueue,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		Memo:                     map[string]any{servingv1.MemoModelName: spec.ModelName, servingv1.MemoRequestID: requestID},
		// What the Temporal Web UI shows and filters by (libs/workflow/visibility.go).
		StaticSummary: fmt.Sprintf("InferenceService %s · model %s", spec.Key(), spec.ModelName),
		StaticDetails: wf.Details("InferenceService "+spec.Key(), [][2]string{{"Model name", spec.ModelName}, {"Model format", spec.ModelFormat},
			{"Storage URI", spec.StorageURI}, {"Protocol", spec.ProtocolVersion}, {"Form", spec.Form}},
			[2]string{"Deployment (Sluice API)", "/apis/serving/v1/namespaces/" + url.PathEscape(spec.Namespace) + "/deployments/" + url.PathEscape(spec.Name)}),
		TypedSearchAttributes: wf.Attributes("InferenceService", spec.Namespace, wf.Keyword(wf.SAJobName, spec.Name), wf.Keyword(wf.SAOwner, wf.Owner(ctx))),
	}, servingv1.WorkflowType, servingv1.DeploymentInput{Spec: *spec, RequestID: requestID,
		HeartbeatTimeout: a.cfg.HeartbeatTimeout, LoadTimeout: a.cfg.LoadTimeout})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		// created concurrently: send the spec as an update instead
		return acc, a.d.Temporal.SignalWorkflow(ctx, id, "", servingv1.SignalUpdate, servingv1.UpdateRequest{Spec: *spec, RequestID: requestID})
	}
	if err != nil {
		return acc, err
	}
	acc.Created = true
	return acc, nil
}

// get returns the status of a running deployment.
func (a *App) get(ctx context.Context, ns, name string) (servingv1.DeploymentView, error) {
	var v servingv1.DeploymentView
	rec, err := a.lookup(ctx, ns, name)
	if err != nil {
		return v, err
	}
	if rec == nil || !rec.running {
		return v, fmt.Errorf("%w: %s/%s", ErrNotFound, ns, name)
	}
	res, err := a.d.Temporal.QueryWorkflow(ctx, servingv1.WorkflowID(ns, name), "", servingv1.QueryStatus)
	if err != nil {
		return v, err
	}
	if err := res.Get(&v); err != nil {
		return v, err
	}
	if v.Deleted {
		return v, fmt.Errorf("%w: %s/%s", ErrNotFound, ns, name)
	}
	return v, nil
}

func (a *App) getDeployment(w http.ResponseWriter, r *http.Request) {
	v, err := a.get(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, v)
}

func (a *App) listDeployments(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	ids, err := a.running(r.Context())
	if err != nil {
		httpError(w, err)
		return
	}
	out := servingv1.DeploymentList{Deployments: []servingv1.DeploymentView{}}
	p := servingv1.WorkflowID(ns, "")
	for id := range ids {
		name, ok := strings.CutPrefix(id, p)
		if !ok || strings.Contains(name, "/") {
			continue
		}
		v, err := a.get(r.Context(), ns, name)
		if err != nil {
			continue // deleted since listed
		}
		out.Deployments = append(out.Deployments, v)
	}
	sort.Slice(out.Deployments, func(i, j int) bool { return out.Deployments[i].Name < out.Deployments[j].Name })
	platform.WriteJSON(w, http.StatusOK, out)
}

// deleteWait bounds how long DELETE waits for the deployment's workflow to finish before answering 202.
const deleteWait = 2 * time.Second

func (a *App) deleteDeployment(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	rec, err := a.lookup(r.Context(), ns, name)
	if err == nil && (rec == nil || !rec.running) {
		err = fmt.Errorf("%w: %s/%s", ErrNotFound, ns, name)
	}
	if err != nil {
		httpError(w, err)
		return
	}
	id := servingv1.WorkflowID(ns, name)
	if err := a.d.Temporal.SignalWorkflow(r.Context(), id, "", servingv1.SignalDelete, nil); err != nil {
		httpError(w, err)
		return
	}
	// Wait briefly for the model to be unloaded so the usual answer is definitive (200); a delete that
	// needs longer (a pending load being abandoned, a busy server) is accepted and finishes in the
	// background (202), whatever state the deployment is in.
	ctx, cancel := context.WithTimeout(r.Context(), deleteWait)
	defer cancel()
	if err := a.d.Temporal.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		if ctx.Err() != nil && r.Context().Err() == nil {
			platform.WriteJSON(w, http.StatusAccepted, map[string]any{"namespace": ns, "name": name, "deleted": false, "deleting": true})
			return
		}
		httpError(w, fmt.Errorf("delete %s/%s: %w", ns, name, err))
		return
	}
	platform.WriteJSON(w, http.StatusOK, map[string]any{"namespace": ns, "name": name, "deleted": true})
}

func (a *App) promoteDeployment(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	rec, err := a.lookup(r.Context(), ns, name)
	if err == nil && (rec == nil || !rec.running) {
		err = fmt.Errorf("%w: %s/%s", ErrNotFound, ns, name)
	}
	if err != nil {
		httpError(w, err)
		return
	}
	if err := a.d.Temporal.SignalWorkflow(r.Context(), servingv1.WorkflowID(ns, name), "", servingv1.SignalPromote, nil); err != nil {
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusAccepted, map[string]any{"namespace": ns, "name": name, "promoted": true})
}

// HandleDeploymentRequested (the consumer's handler) creates or updates the deployment in a
// sluice.serving.deployment.requested.v1 event (data: an InferenceService or tf-serving document).
// The CE id is the request id: a redelivered or duplicated event is a no-op. An invalid document
// or a model name taken in another namespace is answered with deployment.rejected and dead-lettered.
func (a *App) HandleDeploymentRequested(ctx context.Context, ev events.Event) error {
	ctx = events.WithPublisher(ctx, ev) // the deployment's owner (SluiceOwner) is the publisher
	// Created in the namespace the gateway authorised the publisher in (events.Namespace) and no other.
	spec, err := servingv1.Parse(ev.Data(), events.Namespace(ev))
	if err != nil {
		var inv *servingv1.InvalidError
		problems := []string{err.Error()}
		if errors.As(err, &inv) {
			problems = inv.Problems()
		}
		a.reject(ctx, ev.ID(), nil, problems)
		return events.Permanent(err)
	}
	_, err = a.apply(ctx, spec, ev.ID())
	var inv *servingv1.InvalidError
	switch {
	case errors.Is(err, ErrConflict):
		a.reject(ctx, ev.ID(), spec, []string{err.Error()})
		return events.Permanent(err)
	case errors.As(err, &inv):
		a.reject(ctx, ev.ID(), spec, inv.Problems())
		return events.Permanent(err)
	}
	return err
}

func (a *App) reject(ctx context.Context, requestID string, spec *servingv1.Deployment, problems []string) {
	r := servingv1.DeploymentRejected{RequestID: requestID, Errors: problems}
	subject := "requests/" + requestID
	if spec != nil {
		r.Namespace, r.Name = spec.Namespace, spec.Name
		subject = "deployments/" + spec.Key()
	}
	out, err := events.New("/sluice/"+Name, events.ServingDeploymentRejectedV1, subject, r)
	if err == nil {
		out.SetID(control.EventID("request/"+requestID, events.ServingDeploymentRejectedV1, 0))
		err = a.d.Bus.Publish(ctx, out)
	}
	if err != nil {
		a.d.Log.WarnContext(ctx, "publish deployment.rejected", "event_id", requestID, "err", err)
	}
}
