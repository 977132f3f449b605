package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/catalog"
	"github.com/sluice-ml/sluice/services/pipelines/internal/claimcheck"
	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
	"github.com/sluice-ml/sluice/services/pipelines/internal/spec"
)

// Routes registers the REST API under /apis/v1 (KFP-style resource names).
func (a *App) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /apis/v1/pipelines", a.uploadPipeline)
	mux.HandleFunc("GET /apis/v1/pipelines", a.listPipelines)
	mux.HandleFunc("GET /apis/v1/pipelines/{id}", a.getPipeline)
	mux.HandleFunc("POST /apis/v1/pipelines/{id}/versions", a.uploadVersion)
	mux.HandleFunc("GET /apis/v1/pipelines/{id}/versions", a.listVersions)
	mux.HandleFunc("GET /apis/v1/pipelines/{id}/versions/{vid}", a.getVersion)
	mux.HandleFunc("GET /apis/v1/pipelines/{id}/graph", a.pipelineGraph)
	mux.HandleFunc("POST /apis/v1/runs", a.createRun)
	mux.HandleFunc("GET /apis/v1/runs", a.listRuns)
	mux.HandleFunc("GET /apis/v1/runs/{id}", a.getRun)
	mux.HandleFunc("POST /apis/v1/runs/{id}/cancel", a.cancelRun)
	mux.HandleFunc("POST /apis/v1/runs/{id}/retry", a.retryRun)
	mux.HandleFunc("GET /apis/v1/runs/{id}/logs", a.runLogs)
	mux.HandleFunc("GET /apis/v1/runs/{id}/graph", a.runGraph)
	mux.HandleFunc("POST /apis/v1/experiments", a.createExperiment)
	mux.HandleFunc("GET /apis/v1/experiments", a.listExperiments)
	mux.HandleFunc("GET /apis/v1/experiments/{id}", a.getExperiment)
	mux.HandleFunc("POST /apis/v1/recurringruns", a.createRecurringRun)
	mux.HandleFunc("GET /apis/v1/recurringruns", a.listRecurringRuns)
	mux.HandleFunc("DELETE /apis/v1/recurringruns/{id}", a.deleteRecurringRun)
	mux.HandleFunc("GET /apis/v1/recurringruns/{id}", a.getRecurringRun)
	mux.HandleFunc("POST /apis/v1/recurringruns/{idverb}", a.recurringRunVerb)
	mux.HandleFunc("POST /apis/v1/recurringruns/{idverb}/{verb}", a.recurringRunVerb)
	a.objectRoutes(mux)
	a.artifactRoutes(mux)
}

// httpError maps an error to a status code once, here.
func httpError(w http.ResponseWriter, err error) {
	var ie *invalidError
	var nf *serviceerror.NotFound
	var ce *conflictError
	var ia *serviceerror.InvalidArgument
	switch {
	case errors.As(err, &ia): // e.g. a malformed page_token: the client's input, never a 500
		platform.WriteJSON(w, http.StatusBadRequest, map[string]any{"error": ia.Error()})
	case errors.As(err, &ce):
		platform.WriteError(w, http.StatusConflict, err)
	case errors.Is(err, platform.ErrForbidden):
		platform.WriteError(w, http.StatusForbidden, err)
	case errors.Is(err, platform.ErrBodyTooLarge):
		platform.WriteError(w, http.StatusRequestEntityTooLarge, err)
	case errors.As(err, &ie):
		platform.WriteJSON(w, http.StatusBadRequest, map[string]any{"error": ie.Error(), "errors": ie.problems})
	case errors.Is(err, catalog.ErrNotFound), errors.As(err, &nf), errors.Is(err, artifacts.ErrNotFound), errors.Is(err, errNoRecurringRun), errors.Is(err, errRunNotFound):
		platform.WriteError(w, http.StatusNotFound, err)
	case errors.Is(err, catalog.ErrExists):
		platform.WriteError(w, http.StatusConflict, err)
	default:
		platform.WriteError(w, http.StatusInternalServerError, err)
	}
}

// maxBodyBytes bounds a request body: a spec plus parameters of up to pipelinesv1.MaxParamBytes each.
const maxBodyBytes = 64 << 20

func decode(r *http.Request, v any) error {
	b, err := platform.ReadBody(nil, r, maxBodyBytes)
	if errors.Is(err, platform.ErrBodyTooLarge) {
		return err // 413 naming the limit
	}
	if err != nil {
		return &invalidError{problems: []string{"body: " + err.Error()}}
	}
	if err := platform.StrictJSON(b, v); err != nil {
		return &invalidError{problems: []string{"body: " + err.Error()}}
	}
	return nil
}

// UploadRequest is the body of POST /apis/v1/pipelines and .../versions. A raw YAML body (Content-Type
// application/yaml or text/yaml) is accepted too, with ?name= for the name.
type UploadRequest struct {
	Name        string `json:"display_name"`
	Description string `json:"description,omitempty"`
	// Namespace is the new pipeline's namespace (KFP v2 Pipeline.namespace; ?namespace= works too); ""
	// makes a shared pipeline, which only an admin may create. Ignored for a version, which is in its
	// pipeline's namespace.
	Namespace string `json:"namespace,omitempty"`
	Spec      string `json:"spec"`
}

func (a *App) readUpload(r *http.Request) (UploadRequest, string, error) {
	var up UploadRequest
	ct := r.Header.Get("Content-Type")
	if strings.Contains(ct, "yaml") || strings.HasPrefix(ct, "text/") {
		b, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		if err != nil {
			return up, "", err
		}
		up = UploadRequest{Name: r.URL.Query().Get("name"), Spec: string(b)}
	} else if err := decode(r, &up); err != nil {
		return up, "", err
	}
	if up.Namespace == "" {
		ns, err := namespaceParam(r)
		if err != nil {
			return up, "", err
		}
		up.Namespace = ns
	} else if err := auth.ValidNamespace(up.Namespace); err != nil {
		return up, "", &invalidError{problems: []string{"namespace: " + err.Error()}}
	}
	p, err := a.parse(up.Spec)
	if err != nil {
		return up, "", err
	}
	if up.Name == "" {
		up.Name = p.Name
	}
	if up.Description == "" {
		up.Description = p.Description
	}
	return up, string(p.Format), nil
}

func (a *App) uploadPipeline(w http.ResponseWriter, r *http.Request) {
	up, format, err := a.readUpload(r)
	if err != nil {
		httpError(w, err)
		return
	}
	if up.Namespace == "" && !sharedWriter(r.Context()) {
		httpError(w, fmt.Errorf("%w: create pipeline: a pipeline without a namespace is shared with every namespace: only an admin may create one (give a namespace)", platform.ErrForbidden))
		return
	}
	if up.Namespace != "" {
		if err := platform.AuthorizeIn(r, up.Namespace); err != nil {
			httpError(w, err)
			return
		}
	}
	p, v, err := a.catalog.CreatePipeline(r.Context(), up.Namespace, up.Name, up.Description, format, up.Spec)
	if err != nil {
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusCreated, map[string]any{"pipeline": p, "pipeline_version": v})
}

func (a *App) uploadVersion(w http.ResponseWriter, r *http.Request) {
	up, format, err := a.readUpload(r)
	if err != nil {
		httpError(w, err)
		return
	}
	if _, err := a.pipeline(r, r.PathValue("id")); err != nil {
		httpError(w, err)
		return
	}
	v, err := a.catalog.CreateVersion(r.Context(), r.PathValue("id"), up.Name, format, up.Spec)
	if err != nil {
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusCreated, v)
}

// pipeline returns pipeline id once the caller of r is authorised for r's route on it.
func (a *App) pipeline(r *http.Request, id string) (catalog.Pipeline, error) {
	notFound := fmt.Errorf("pipeline %q: %w", id, catalog.ErrNotFound)
	p, err := a.catalog.Pipeline(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) {
		return p, notFound
	}
	if err != nil {
		return p, err
	}
	return p, authorizePipeline(r, p, notFound)
}

// listPipelines lists the pipelines of ?namespace= (KFP v2), or without it every pipeline the caller may
// read: the shared ones and those of its namespaces.
func (a *App) listPipelines(w http.ResponseWriter, r *http.Request) {
	ns, err := listNamespace(r)
	if err != nil {
		httpError(w, err)
		return
	}
	all, err := a.catalog.Pipelines(r.Context())
	if err != nil {
		httpError(w, err)
		return
	}
	ps := []catalog.Pipeline{}
	for _, p := range all {
		if (ns == "" && readable(r.Context(), p.Namespace)) || (ns != "" && p.Namespace == ns) {
			ps = append(ps, p)
		}
	}
	platform.WriteJSON(w, http.StatusOK, map[string]any{"pipelines": ps, "total_size": len(ps)})
}

func (a *App) getPipeline(w http.ResponseWriter, r *http.Request) {
	p, err := a.pipeline(r, r.PathValue("id"))
	if err != nil {
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, p)
}

func (a *App) listVersions(w http.ResponseWriter, r *http.Request) {
	if _, err := a.pipeline(r, r.PathValue("id")); err != nil {
		httpError(w, err)
		return
	}
	vs, err := a.catalog.Versions(r.Context(), r.PathValue("id"))
	if err != nil {
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, map[string]any{"pipeline_versions": vs, "total_size": len(vs)})
}

func (a *App) getVersion(w http.ResponseWriter, r *http.Request) {
	if _, err := a.pipeline(r, r.PathValue("id")); err != nil {
		httpError(w, err)
		return
	}
	v, err := a.catalog.Version(r.Context(), r.PathValue("id"), r.PathValue("vid"))
	if err != nil {
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, v)
}

// RunCreated is the answer of POST /apis/v1/runs.
type RunCreated struct {
	RunID      string `json:"run_id"`
	RunName    string `json:"run_name"`
	Pipeline   string `json:"pipeline_name"`
	Namespace  string `json:"namespace"`
	Experiment string `json:"experiment_id"`
	TemporalID string `json:"workflow_id"`
	// Warnings say what the run will not do as written (e.g. the local runtime ignores images).
	Warnings []string `json:"warnings,omitempty"`
}

func (a *App) createRun(w http.ResponseWriter, r *http.Request) {
	var req pipelinesv1.RunRequest
	if err := decode(r, &req); err != nil {
		httpError(w, err)
		return
	}
	if req.Namespace == "" {
		ns, err := namespaceParam(r)
		if err != nil {
			httpError(w, err)
			return
		}
		req.Namespace = ns
	}
	runID := r.URL.Query().Get("run_id")
	if runID == "" {
		runID = uuid.Must(uuid.NewV7()).String()
	}
	in, p, err := a.prepare(r.Context(), req, runID)
	if err != nil {
		httpError(w, err)
		return
	}
	if _, err := a.start(r.Context(), in, p); err != nil && !errors.Is(err, engine.ErrRunExists) {
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, RunCreated{RunID: in.RunID, RunName: in.RunName, Pipeline: p.Name, Namespace: in.Namespace,
		Experiment: in.ExperimentID, TemporalID: in.RunID, Warnings: a.warnings(p)})
}

// parse parses and compiles a spec and checks it against this service's runtime (spec.CheckRuntime:
// platform settings and container resources the runtime does not apply are refused, never ignored).
// Every problem is an *invalidError (HTTP 400).
func (a *App) parse(src string) (*dag.Pipeline, error) {
	p, err := spec.Parse([]byte(src))
	if err != nil {
		return nil, invalid(err)
	}
	if err := spec.CheckRuntime(p, a.acts.Runtime.Name()); err != nil {
		return nil, invalid(err)
	}
	return p, nil
}

// warnings lists what a run of p will not do as written under this service's runtime.
func (a *App) warnings(p *dag.Pipeline) []string {
	if name := a.acts.Runtime.Name(); name != "" && name != "local" {
		return nil
	}
	images := map[string]bool{}
	for _, c := range p.Components {
		if c.Executor != nil && c.Executor.Image != "" {
			images[c.Executor.Image] = true
		}
	}
	if len(images) == 0 {
		return nil
	}
	names := make([]string, 0, len(images))
	for im := range images {
		names = append(names, im)
	}
	sort.Strings(names)
	return []string{fmt.Sprintf("the local runtime runs each step's command on this host and ignores its image (%s); run with --runtime docker (SLUICE_RUNTIME=docker) to run steps in their images", strings.Join(names, ", "))}
}

// RunSummary is one row of GET /apis/v1/runs.
type RunSummary struct {
	RunID      string     `json:"run_id"`
	RunName    string     `json:"run_name,omitempty"`
	Pipeline   string     `json:"pipeline_name,omitempty"`
	Experiment string     `json:"experiment_id,omitempty"`
	Namespace  string     `json:"namespace"`
	State      string     `json:"state"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

func runStateOf(s enums.WorkflowExecutionStatus) string {
	switch s {
	case enums.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return pipelinesv1.RunRunning
	case enums.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return pipelinesv1.RunSucceeded
	case enums.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return pipelinesv1.RunCancelled
	default:
		return pipelinesv1.RunFailed
	}
}

func (a *App) listRuns(w http.ResponseWriter, r *http.Request) {
	pageSize := 50
	if v := r.URL.Query().Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			httpError(w, &invalidError{problems: []string{"page_size: must be 1..1000"}})
			return
		}
		pageSize = n
	}
	// The page token is opaque to clients: base64url of JSON {t: Temporal's token, o: offset into that
	// Temporal page}. Filters are applied before paging: pages of Temporal's list are read until page_size
	// matching runs are found, and the token resumes right after the last one returned.
	var cur runPageToken
	if v := r.URL.Query().Get("page_token"); v != "" {
		t, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || json.Unmarshal(t, &cur) != nil || cur.Offset < 0 {
			httpError(w, &invalidError{problems: []string{"page_token: not a token from a previous page"}})
			return
		}
	}
	exp := r.URL.Query().Get("experiment_id")
	ns, err := listNamespace(r)
	if err != nil {
		httpError(w, err)
		return
	}
	runs := []RunSummary{}
	next := ""
	for {
		resp, err := a.tc.ListWorkflow(r.Context(), &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: a.d.Namespace, PageSize: int32(pageSize), NextPageToken: cur.Temporal,
			Query: fmt.Sprintf("WorkflowType = '%s'", pipelinesv1.WorkflowType),
		})
		if err != nil {
			httpError(w, err)
			return
		}
		if cur.Offset > len(resp.Executions) {
			httpError(w, &invalidError{problems: []string{"page_token: not a token from a previous page"}})
			return
		}
		full := false
		for i := cur.Offset; i < len(resp.Executions); i++ {
			if len(runs) == pageSize {
				next = runPageToken{Temporal: cur.Temporal, Offset: i}.encode()
				full = true
				break
			}
			e := resp.Executions[i]
			s := RunSummary{RunID: e.Execution.WorkflowId, State: runStateOf(e.Status), CreatedAt: e.StartTime.AsTime()}
			if e.CloseTime != nil {
				t := e.CloseTime.AsTime()
				s.FinishedAt = &t
			}
			if e.Memo != nil {
				s.RunName = memoString(e.Memo, "run_name")
				s.Pipeline = memoString(e.Memo, "pipeline_name")
				s.Experiment = memoString(e.Memo, "experiment_id")
				s.Namespace = memoString(e.Memo, "namespace")
			}
			s.Namespace = orDefault(s.Namespace)
			if (exp != "" && s.Experiment != exp) || (ns != "" && s.Namespace != ns) || !readable(r.Context(), s.Namespace) {
				continue
			}
			runs = append(runs, s)
		}
		if full || len(resp.NextPageToken) == 0 {
			break
		}
		cur = runPageToken{Temporal: resp.NextPageToken}
		if len(runs) == pageSize {
			next = cur.encode()
			break
		}
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].CreatedAt.After(runs[j].CreatedAt) })
	platform.WriteJSON(w, http.StatusOK, map[string]any{"runs": runs, "next_page_token": next})
}

// runPageToken is the position after the last run a list page returned.
type runPageToken struct {
	Temporal []byte `json:"t,omitempty"`
	Offset   int    `json:"o,omitempty"`
}

func (t runPageToken) encode() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func memoString(m *commonpb.Memo, key string) string {
	p, ok := m.Fields[key]
	if !ok {
		return ""
	}
	var s string
	_ = converter.GetDefaultDataConverter().FromPayload(p, &s)
	return s
}

// RunDetail is GET /apis/v1/runs/{id}: the live state plus the Temporal status and UI path.
type RunDetail struct {
	pipelinesv1.RunState
	Namespace      string `json:"namespace"`
	WorkflowStatus string `json:"workflow_status"`
}

func (a *App) getRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	desc, ns, err := a.authorizeRun(r, id)
	if err != nil {
		httpError(w, err)
		return
	}
	st, err := engine.State(r.Context(), a.tc, id)
	if err != nil {
		httpError(w, err)
		return
	}
	status := desc.WorkflowExecutionInfo.Status
	if st.State == pipelinesv1.RunRunning && status != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		st.State = runStateOf(status) // e.g. terminated
	}
	platform.WriteJSON(w, http.StatusOK, RunDetail{RunState: st, Namespace: ns, WorkflowStatus: status.String()})
}

func (a *App) cancelRun(w http.ResponseWriter, r *http.Request) {
	desc, _, err := a.authorizeRun(r, r.PathValue("id"))
	if err != nil {
		httpError(w, err)
		return
	}
	if st := desc.WorkflowExecutionInfo.Status; st != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		// Like KFP's TerminateRun, cancelling a run that already ended is not an error: nothing changes
		// and the answer says the state it ended in.
		platform.WriteJSON(w, http.StatusOK, map[string]string{"run_id": r.PathValue("id"), "state": runStateOf(st)})
		return
	}
	if err := a.tc.CancelWorkflow(r.Context(), r.PathValue("id"), ""); err != nil {
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusAccepted, map[string]string{"run_id": r.PathValue("id"), "state": "CANCELING"})
}

// retryRun starts a new run of a failed or cancelled run that reuses the outputs of every task that
// succeeded, so only the failed part runs again (KFP retry / Metaflow resume).
func (a *App) retryRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, _, err := a.authorizeRun(r, id); err != nil {
		httpError(w, err)
		return
	}
	in, err := a.runInput(r.Context(), id)
	if err != nil {
		httpError(w, err)
		return
	}
	st, err := engine.State(r.Context(), a.tc, id)
	if err != nil {
		httpError(w, err)
		return
	}
	if st.State == pipelinesv1.RunRunning || st.State == pipelinesv1.RunSucceeded {
		httpError(w, &invalidError{problems: []string{fmt.Sprintf("run %s is %s: only failed or cancelled runs can be retried", id, st.State)}})
		return
	}
	in.Reuse = map[string]pipelinesv1.TaskOutputs{}
	for _, t := range st.Tasks {
		if (t.State == pipelinesv1.TaskSucceeded || t.State == pipelinesv1.TaskCached) && t.Outputs != nil {
			in.Reuse[t.Path] = *t.Outputs
		}
	}
	in.RunID = uuid.Must(uuid.NewV7()).String()
	in.RunName = strings.TrimSuffix(in.RunName, " (retry)") + " (retry)"
	p, err := spec.Parse([]byte(in.Spec))
	if err != nil {
		httpError(w, invalid(err))
		return
	}
	if _, err := a.start(r.Context(), in, p); err != nil {
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, RunCreated{RunID: in.RunID, RunName: in.RunName, Pipeline: p.Name, TemporalID: in.RunID})
}

// runInput reads a run's input from the first event of its workflow history.
func (a *App) runInput(ctx context.Context, id string) (pipelinesv1.RunInput, error) {
	var in pipelinesv1.RunInput
	it := a.tc.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return in, fmt.Errorf("run %s: %w", id, catalog.ErrNotFound)
	}
	ev, err := it.Next()
	if err != nil {
		return in, err
	}
	attrs := ev.GetWorkflowExecutionStartedEventAttributes()
	if attrs == nil || attrs.Input == nil || len(attrs.Input.Payloads) == 0 {
		return in, fmt.Errorf("run %s: no input in history", id)
	}
	return in, claimcheck.DataConverter(a.d.Artifacts).FromPayload(attrs.Input.Payloads[0], &in)
}

// runLogs streams a task's step log (?task=<path>; default: every task's log, one after another).
func (a *App) runLogs(w http.ResponseWriter, r *http.Request) {
	if _, _, err := a.authorizeRun(r, r.PathValue("id")); err != nil {
		httpError(w, err)
		return
	}
	st, err := engine.State(r.Context(), a.tc, r.PathValue("id"))
	if err != nil {
		httpError(w, err)
		return
	}
	want := r.URL.Query().Get("task")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	found := false
	for _, t := range st.Tasks {
		if t.LogURI == "" || (want != "" && t.Path != want) {
			continue
		}
		found = true
		_, key, err := artifacts.ParseURI(t.LogURI)
		if err != nil {
			continue
		}
		rc, _, err := a.d.Artifacts.Get(r.Context(), key)
		if err != nil {
			fmt.Fprintf(w, "== %s: log unavailable: %v\n", t.Path, err)
			continue
		}
		if want == "" {
			fmt.Fprintf(w, "== %s (%s)\n", t.Path, t.State)
		}
		_, _ = io.Copy(w, rc)
		rc.Close()
	}
	if !found && want != "" {
		fmt.Fprintf(w, "no log for task %q\n", want)
	}
}

// ExperimentRequest is the body of POST /apis/v1/experiments.
type ExperimentRequest struct {
	Name        string `json:"display_name"`
	Description string `json:"description,omitempty"`
	// Namespace is the experiment's namespace (KFP v2 Experiment.namespace; ?namespace= works too;
	// default "default"); its runs belong to it.
	Namespace string `json:"namespace,omitempty"`
}

func (a *App) createExperiment(w http.ResponseWriter, r *http.Request) {
	var req ExperimentRequest
	if err := decode(r, &req); err != nil {
		httpError(w, err)
		return
	}
	if strings.TrimSpace(req.Name) == "" {
		httpError(w, &invalidError{problems: []string{"display_name: required"}})
		return
	}
	if req.Namespace == "" {
		ns, err := namespaceParam(r)
		if err != nil {
			httpError(w, err)
			return
		}
		req.Namespace = orDefault(ns)
	} else if err := auth.ValidNamespace(req.Namespace); err != nil {
		httpError(w, &invalidError{problems: []string{"namespace: " + err.Error()}})
		return
	}
	if err := platform.AuthorizeIn(r, req.Namespace); err != nil {
		httpError(w, err)
		return
	}
	e, err := a.catalog.CreateExperiment(r.Context(), req.Namespace, req.Name, req.Description)
	if err != nil {
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusCreated, e)
}

// listExperiments lists the experiments of ?namespace= (KFP v2), or without it those of every namespace
// the caller may read.
func (a *App) listExperiments(w http.ResponseWriter, r *http.Request) {
	ns, err := listNamespace(r)
	if err != nil {
		httpError(w, err)
		return
	}
	all, err := a.catalog.Experiments(r.Context(), ns)
	if err != nil {
		httpError(w, err)
		return
	}
	es := []catalog.Experiment{}
	for _, e := range all {
		if readable(r.Context(), e.Namespace) {
			es = append(es, e)
		}
	}
	platform.WriteJSON(w, http.StatusOK, map[string]any{"experiments": es, "total_size": len(es)})
}

func (a *App) getExperiment(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	notFound := fmt.Errorf("experiment %q: %w", id, catalog.ErrNotFound)
	e, err := a.catalog.Experiment(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) {
		err = notFound
	}
	if err == nil {
		err = platform.Authorize(r, e.Namespace, notFound)
	}
	if err != nil {
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, e)
}

// RecurringRunRequest is the body of POST /apis/v1/recurringruns: a cron schedule of a run request,
// backed by a Temporal Schedule (visible in the Temporal UI).
type RecurringRunRequest struct {
	Name string `json:"display_name"`
	// Namespace is the recurring run's namespace (KFP v2 RecurringRun.namespace), the same as its runs'
	// (run.namespace, or the namespace of run.experiment_id).
	Namespace string                 `json:"namespace,omitempty"`
	Cron      string                 `json:"cron"`
	Run       pipelinesv1.RunRequest `json:"run"`
	// Paused creates the schedule paused.
	Paused bool `json:"paused,omitempty"`
}

func (a *App) createRecurringRun(w http.ResponseWriter, r *http.Request) {
	var req RecurringRunRequest
	if err := decode(r, &req); err != nil {
		httpError(w, err)
		return
	}
	var problems []string
	if strings.TrimSpace(req.Name) == "" {
		problems = append(problems, "display_name: required")
	}
	cronExpr, err := temporalCron(req.Cron)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		httpError(w, &invalidError{problems: problems})
		return
	}
	if req.Namespace != "" && req.Run.Namespace != "" && req.Namespace != req.Run.Namespace {
		httpError(w, &invalidError{problems: []string{fmt.Sprintf("namespace: %q differs from run.namespace %q", req.Namespace, req.Run.Namespace)}})
		return
	}
	if req.Run.Namespace == "" {
		req.Run.Namespace = req.Namespace
	}
	if req.Run.Namespace == "" {
		ns, err := namespaceParam(r)
		if err != nil {
			httpError(w, err)
			return
		}
		req.Run.Namespace = ns
	}
	id := "recurring-" + uuid.Must(uuid.NewV7()).String()
	in, _, err := a.prepare(r.Context(), req.Run, id)
	if err != nil {
		httpError(w, err)
		return
	}
	in.RunID = "" // each scheduled run takes its workflow ID as run ID
	_, err = a.tc.ScheduleClient().Create(r.Context(), client.ScheduleOptions{
		ID:     id,
		Spec:   client.ScheduleSpec{CronExpressions: []string{cronExpr}},
		Paused: req.Paused,
		Memo:   map[string]any{"display_name": req.Name, "cron": strings.TrimSpace(req.Cron), "pipeline_name": in.PipelineName, "namespace": in.Namespace},
		Action: &client.ScheduleWorkflowAction{
			ID: id + "-run", Workflow: pipelinesv1.WorkflowType, Args: []any{in}, TaskQueue: pipelinesv1.TaskQueue,
			Memo: map[string]any{"run_name": in.RunName, "experiment_id": in.ExperimentID, "pipeline_name": in.PipelineName, "namespace": in.Namespace},
		},
	})
	if err != nil {
		var ie *serviceerror.InvalidArgument
		if errors.As(err, &ie) {
			httpError(w, &invalidError{problems: []string{"cron: " + ie.Error()}})
			return
		}
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusCreated, map[string]string{"recurring_run_id": id, "display_name": req.Name, "cron": req.Cron, "namespace": in.Namespace})
}

func (a *App) listRecurringRuns(w http.ResponseWriter, r *http.Request) {
	ns, err := listNamespace(r)
	if err != nil {
		httpError(w, err)
		return
	}
	it, err := a.tc.ScheduleClient().List(r.Context(), client.ScheduleListOptions{PageSize: 100})
	if err != nil {
		httpError(w, err)
		return
	}
	out := []RecurringRun{}
	for it.HasNext() {
		s, err := it.Next()
		if err != nil {
			httpError(w, err)
			return
		}
		if !strings.HasPrefix(s.ID, "recurring-") {
			continue
		}
		// The list comes from visibility, which lags; the schedule itself says whether it is paused and
		// when it runs next.
		rr, err := a.describeRecurringRun(r, s.ID)
		if errors.Is(err, errNoRecurringRun) {
			continue
		}
		if err != nil {
			httpError(w, err)
			return
		}
		if (ns != "" && rr.Namespace != ns) || !readable(r.Context(), rr.Namespace) {
			continue
		}
		out = append(out, rr)
	}
	platform.WriteJSON(w, http.StatusOK, map[string]any{"recurring_runs": out})
}

func (a *App) deleteRecurringRun(w http.ResponseWriter, r *http.Request) {
	if _, err := a.recurringRun(r, r.PathValue("id")); err != nil {
		httpError(w, err)
		return
	}
	if err := a.tc.ScheduleClient().GetHandle(r.Context(), r.PathValue("id")).Delete(r.Context()); err != nil {
		httpError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
