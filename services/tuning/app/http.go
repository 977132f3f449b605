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

	"github.com/google/uuid"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/sluice-ml/sluice/libs/platform"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
	"github.com/sluice-ml/sluice/services/tuning/internal/expspec"
)

const prefix = "/apis/tuning/v1/namespaces/{ns}/experiments"

// Errors of the REST API.
var (
	ErrNotFound = errors.New("tuning: experiment not found")
	ErrExists   = errors.New("tuning: experiment already exists")
)

// Routes registers the REST API:
//
//	POST   /apis/tuning/v1/namespaces/{ns}/experiments                 create (Katib Experiment, YAML or JSON) → 201 Experiment
//	GET    /apis/tuning/v1/namespaces/{ns}/experiments                 list → ExperimentList
//	GET    /apis/tuning/v1/namespaces/{ns}/experiments/{name}          get → ExperimentView (with trialList)
//	GET    /apis/tuning/v1/namespaces/{ns}/experiments/{name}/trials   trials → {"items": [Trial]}
//	DELETE /apis/tuning/v1/namespaces/{ns}/experiments/{name}          delete (stops trials, deletes their jobs) → 202
//
// Invalid experiments answer 400 {"error", "errors": [{"field", "detail"}]}.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+prefix, s.create)
	mux.HandleFunc("GET "+prefix, s.list)
	mux.HandleFunc("GET "+prefix+"/{name}", s.get)
	mux.HandleFunc("GET "+prefix+"/{name}/trials", s.trials)
	mux.HandleFunc("DELETE "+prefix+"/{name}", s.delete)
}

// httpError maps an error to its status code, once, here.
func (s *Service) httpError(w http.ResponseWriter, err error) {
	var inv *expspec.InvalidError
	switch {
	case errors.As(err, &inv):
		platform.WriteJSON(w, http.StatusBadRequest, map[string]any{"error": inv.Error(), "errors": inv.Errors})
	case errors.Is(err, ErrNotFound):
		platform.WriteError(w, http.StatusNotFound, err)
	case errors.Is(err, ErrExists):
		platform.WriteError(w, http.StatusConflict, err)
	default:
		s.log.Error("tuning request failed", "err", err)
		platform.WriteError(w, http.StatusInternalServerError, err)
	}
}

// Create starts the workflow of a parsed experiment; ErrExists when one of that name exists.
func (s *Service) Create(ctx context.Context, e tuningv1.Experiment) error {
	id := tuningv1.WorkflowID(e.Metadata.Namespace, e.Metadata.Name)
	_, err := s.d.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: s.cfg.TaskQueue,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy:                 enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// What the Temporal Web UI shows and filters by (libs/workflow/visibility.go).
		StaticSummary: "Experiment " + e.Metadata.Namespace + "/" + e.Metadata.Name,
		StaticDetails: wf.Details("Experiment "+e.Metadata.Namespace+"/"+e.Metadata.Name, nil,
			[2]string{"Experiment (Sluice API)", "/apis/tuning/v1/namespaces/" + url.PathEscape(e.Metadata.Namespace) + "/experiments/" + url.PathEscape(e.Metadata.Name)}),
		TypedSearchAttributes: wf.Attributes("Experiment", e.Metadata.Namespace, wf.Keyword(wf.SAJobName, e.Metadata.Name),
			wf.Keyword(wf.SAExperiment, e.Metadata.Name), wf.Keyword(wf.SAOwner, wf.Owner(ctx))),
	}, tuningv1.WorkflowType, tuningv1.ExperimentInput{Experiment: e, TrialsPerRun: s.cfg.TrialsPerRun, PollInterval: s.cfg.PollInterval})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return fmt.Errorf("%w: %s/%s", ErrExists, e.Metadata.Namespace, e.Metadata.Name)
	}
	if err != nil {
		return fmt.Errorf("tuning: start experiment %s: %w", id, err)
	}
	return nil
}

// Get returns the live experiment and its trials; ErrNotFound when none exists (or it was deleted).
func (s *Service) Get(ctx context.Context, ns, name string) (tuningv1.ExperimentView, error) {
	var v tuningv1.ExperimentView
	var resp *client.QueryWorkflowWithOptionsResponse
	var err error
	// An experiment continues as new to bound its history: a query that lands on the run that just
	// closed is rejected (CONTINUED_AS_NEW) or finds the next run before its first workflow task; both
	// are the same experiment, so ask again rather than answer 404.
	for attempt := 0; ; attempt++ {
		resp, err = s.d.Temporal.QueryWorkflowWithOptions(ctx, &client.QueryWorkflowWithOptionsRequest{
			WorkflowID: tuningv1.WorkflowID(ns, name), QueryType: tuningv1.QueryExperiment,
			QueryRejectCondition: enums.QUERY_REJECT_CONDITION_NOT_OPEN,
		})
		var notReady *serviceerror.WorkflowNotReady
		transient := errors.As(err, &notReady) ||
			(err == nil && resp.QueryRejected != nil && resp.QueryRejected.Status == enums.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW)
		if !transient || attempt >= 50 || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf), err == nil && resp.QueryRejected != nil:
		return v, fmt.Errorf("%w: %s/%s", ErrNotFound, ns, name)
	case err != nil:
		return v, err
	}
	return v, resp.QueryResult.Get(&v)
}

func (s *Service) create(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		platform.WriteError(w, http.StatusBadRequest, err)
		return
	}
	e, err := expspec.Parse(body, ns)
	if err != nil {
		s.httpError(w, err)
		return
	}
	if e.Metadata.Namespace != ns {
		s.httpError(w, &expspec.InvalidError{Errors: []expspec.FieldError{{Field: "metadata.namespace",
			Detail: fmt.Sprintf("%q does not match the namespace %q of the URL", e.Metadata.Namespace, ns)}}})
		return
	}
	now := time.Now().UTC().Truncate(time.Second)
	e.Metadata.UID = uuid.NewString()
	e.Metadata.CreationTimestamp = &now
	if err := s.Create(r.Context(), e); err != nil {
		s.httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusCreated, e)
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	v, err := s.Get(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		s.httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, v)
}

func (s *Service) trials(w http.ResponseWriter, r *http.Request) {
	v, err := s.Get(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		s.httpError(w, err)
		return
	}
	items := v.TrialsView
	if items == nil {
		items = []tuningv1.Trial{}
	}
	platform.WriteJSON(w, http.StatusOK, map[string]any{"items": items})
}

// list answers the namespace's experiments that are not deleted, by name.
func (s *Service) list(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	idPrefix := tuningv1.WorkflowID(ns, "")
	out := tuningv1.ExperimentList{APIVersion: tuningv1.APIVersion, Kind: "ExperimentList", Items: []tuningv1.Experiment{}}
	seen := map[string]bool{}
	var token []byte
	for page := 0; page < 20; page++ {
		resp, err := s.d.Temporal.ListWorkflow(r.Context(), &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: s.d.Namespace, PageSize: 200, NextPageToken: token,
			Query: fmt.Sprintf("WorkflowType = '%s'", tuningv1.WorkflowType),
		})
		if err != nil {
			s.httpError(w, err)
			return
		}
		for _, ex := range resp.Executions {
			id := ex.Execution.WorkflowId
			name, ok := strings.CutPrefix(id, idPrefix)
			if !ok || strings.Contains(name, "/") || seen[id] || ex.Status != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
				continue
			}
			if p, ok := ex.GetMemo().GetFields()[tuningv1.MemoDeleted]; ok {
				var del bool
				if converter.GetDefaultDataConverter().FromPayload(p, &del) == nil && del {
					continue
				}
			}
			seen[id] = true
			v, err := s.Get(r.Context(), ns, name)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				s.httpError(w, err)
				return
			}
			out.Items = append(out.Items, v.Experiment)
		}
		token = resp.NextPageToken
		if len(token) == 0 {
			break
		}
	}
	sort.Slice(out.Items, func(i, j int) bool { return out.Items[i].Metadata.Name < out.Items[j].Metadata.Name })
	platform.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) delete(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if _, err := s.Get(r.Context(), ns, name); err != nil {
		s.httpError(w, err)
		return
	}
	err := s.d.Temporal.SignalWorkflow(r.Context(), tuningv1.WorkflowID(ns, name), "", tuningv1.SignalDelete, nil)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		err = fmt.Errorf("%w: %s/%s", ErrNotFound, ns, name)
	}
	if err != nil {
		s.httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusAccepted, map[string]string{"namespace": ns, "name": name, "action": "delete"})
}
