// Package httpapi serves the metadata REST API (/apis/metadata/v1) over an mlmd.Repo.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/platform"
	v1 "github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
)

// MaxBodyBytes bounds request bodies.
const MaxBodyBytes = 8 << 20

// Server holds the handlers.
type Server struct {
	repo mlmd.Repo
	log  *slog.Logger
}

// New returns the API over repo; log receives internal errors.
func New(repo mlmd.Repo, log *slog.Logger) *Server { return &Server{repo: repo, log: log} }

// Routes registers every route under /apis/metadata/v1 on mux.
//
//	GET  /apis/metadata/v1/artifacts              list (type, name, uri, external_id, context_id, state, filter, page_size, page_token)
//	GET  /apis/metadata/v1/artifacts/{id}
//	GET  /apis/metadata/v1/artifacts/{id}/events  events in recorded order
//	GET  /apis/metadata/v1/executions             list (type, name, external_id, context_id, state, filter, ...)
//	POST /apis/metadata/v1/executions             atomic put-execution (metadatav1.PutExecutionRequest)
//	GET  /apis/metadata/v1/executions/{id}
//	GET  /apis/metadata/v1/executions/{id}/events
//	GET  /apis/metadata/v1/contexts               list (type, name, external_id, context_id = parent, filter, ...)
//	GET  /apis/metadata/v1/contexts/{id}
//	GET  /apis/metadata/v1/types?kind=ARTIFACT|EXECUTION|CONTEXT
//	POST /apis/metadata/v1/types                  metadatav1.PutTypesRequest
//	GET  /apis/metadata/v1/lineage                artifact_id, artifact_uri, execution_id (repeatable), direction, hops
//	GET  /apis/metadata/v1/cache                  fingerprint, pipeline_name, namespace → newest COMPLETE execution or 404
//
// Namespaces: every node belongs to the namespace in its custom property "namespace" ("default" when
// absent). Lists take ?namespace= (403 when the caller may not read it) and otherwise hold the nodes of
// every namespace the caller may read; a get, events or lineage query of a node the caller may not read
// is answered as for a node that does not exist; a lineage graph holds only readable nodes.
func (s *Server) Routes(mux *http.ServeMux) {
	p := v1.PathPrefix
	mux.HandleFunc("GET "+p+"/artifacts", s.listArtifacts)
	mux.HandleFunc("GET "+p+"/artifacts/{id}", s.getArtifact)
	mux.HandleFunc("GET "+p+"/artifacts/{id}/events", s.artifactEvents)
	mux.HandleFunc("GET "+p+"/executions", s.listExecutions)
	mux.HandleFunc("POST "+p+"/executions", s.putExecution)
	mux.HandleFunc("GET "+p+"/executions/{id}", s.getExecution)
	mux.HandleFunc("GET "+p+"/executions/{id}/events", s.executionEvents)
	mux.HandleFunc("GET "+p+"/contexts", s.listContexts)
	mux.HandleFunc("GET "+p+"/contexts/{id}", s.getContext)
	mux.HandleFunc("GET "+p+"/types", s.listTypes)
	mux.HandleFunc("POST "+p+"/types", s.putTypes)
	mux.HandleFunc("GET "+p+"/lineage", s.lineage)
	mux.HandleFunc("GET "+p+"/cache", s.cache)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// fail translates an error into its status code, once, for every handler.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	msg := err.Error()
	switch {
	case errors.Is(err, mlmd.ErrInvalidArgument):
		code = http.StatusBadRequest
	case errors.Is(err, mlmd.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, mlmd.ErrAlreadyExists):
		code = http.StatusConflict
	case errors.Is(err, platform.ErrForbidden):
		code = http.StatusForbidden
	default:
		s.log.ErrorContext(r.Context(), "metadata api", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error"
	}
	writeJSON(w, code, v1.Error{Error: strings.TrimPrefix(msg, "mlmd: ")})
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, mlmd.Invalid("id", "must be a positive integer, got %q", r.PathValue("id"))
	}
	return id, nil
}

func queryInt64s(r *http.Request, name string) ([]int64, error) {
	var out []int64
	for _, raw := range r.URL.Query()[name] {
		for _, part := range strings.Split(raw, ",") {
			if part == "" {
				continue
			}
			id, err := strconv.ParseInt(part, 10, 64)
			if err != nil || id <= 0 {
				return nil, mlmd.Invalid(name, "must be a positive integer, got %q", part)
			}
			out = append(out, id)
		}
	}
	return out, nil
}

// decode reads the body strictly (platform.DecodeJSON): an unknown field is a 400 naming its path, a body
// over MaxBodyBytes a 413 naming the limit (written here; the error is then errAnswered).
func decode(w http.ResponseWriter, r *http.Request, op string, v any) error {
	if err := platform.DecodeJSON(w, r, MaxBodyBytes, v); err != nil {
		if errors.Is(err, platform.ErrBodyTooLarge) {
			platform.WriteDecodeError(w, op, err)
			return errAnswered
		}
		return mlmd.Invalid("body", "%s: %v", op, err)
	}
	return nil
}

// errAnswered: the response was written already.
var errAnswered = errors.New("answered")

// filterPattern parses one MLMD-style predicate, e.g. properties.accuracy.double_value > 0.95
// or custom_properties.`my.key`.string_value = "x".
var filterPattern = regexp.MustCompile("^(properties|custom_properties)\\.(`[^`]+`|[^.\\s`]+)\\.(int_value|double_value|string_value|bool_value)\\s*(!=|<=|>=|=|<|>)\\s*(.*)$")

// ParsePredicate parses a filter query parameter into a property predicate.
func ParsePredicate(field, s string) (mlmd.PropertyPredicate, error) {
	m := filterPattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return mlmd.PropertyPredicate{}, mlmd.Invalid(field, "want properties|custom_properties.<name>.<int|double|string|bool>_value <op> <value>, got %q", s)
	}
	p := mlmd.PropertyPredicate{Custom: m[1] == "custom_properties", Name: strings.Trim(m[2], "`"), Op: mlmd.Op(m[4])}
	lit := strings.TrimSpace(m[5])
	switch m[3] {
	case "int_value":
		n, err := strconv.ParseInt(lit, 10, 64)
		if err != nil {
			return p, mlmd.Invalid(field, "%q is not an integer", lit)
		}
		p.Value = v1.Int(n)
	case "double_value":
		f, err := strconv.ParseFloat(lit, 64)
		if err != nil {
			return p, mlmd.Invalid(field, "%q is not a number", lit)
		}
		p.Value = v1.Double(f)
	case "bool_value":
		b, err := strconv.ParseBool(lit)
		if err != nil {
			return p, mlmd.Invalid(field, "%q is not true or false", lit)
		}
		p.Value = v1.Bool(b)
	default:
		if len(lit) >= 2 && (lit[0] == '"' || lit[0] == '\'') && lit[len(lit)-1] == lit[0] {
			lit = lit[1 : len(lit)-1]
		}
		p.Value = v1.String(lit)
	}
	return p, nil
}

// nodeNamespace is the namespace a node's custom properties record.
func nodeNamespace(p map[string]mlmd.Value) string {
	if v, ok := p[v1.NamespaceProperty]; ok && v.StringValue != nil && *v.StringValue != "" {
		return *v.StringValue
	}
	return v1.DefaultNamespace
}

// restrict limits f to ?namespace= (which the caller must be allowed to read) or else to the namespaces
// the caller may read.
func restrict(r *http.Request, f *mlmd.Filter) error {
	if ns := r.URL.Query().Get("namespace"); ns != "" {
		if err := auth.ValidNamespace(ns); err != nil {
			return mlmd.Invalid("namespace", "%v", err)
		}
		if err := platform.AuthorizeIn(r, ns); err != nil {
			return err
		}
		f.InNamespaces, f.Namespaces = true, []string{ns}
		return nil
	}
	if rd := auth.ReadableNamespaces(r.Context()); !rd.All {
		f.InNamespaces, f.Namespaces = true, rd.Namespaces
	}
	return nil
}

func listRequest(r *http.Request) (mlmd.ListRequest, error) {
	q := r.URL.Query()
	req := mlmd.ListRequest{PageToken: q.Get("page_token"), Filter: mlmd.Filter{
		TypeName: q.Get("type"), Name: q.Get("name"), URI: q.Get("uri"), ExternalID: q.Get("external_id"),
	}}
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return req, mlmd.Invalid("page_size", "must be an integer, got %q", v)
		}
		req.PageSize = n
	}
	ids, err := queryInt64s(r, "context_id")
	if err != nil {
		return req, err
	}
	if len(ids) > 1 {
		return req, mlmd.Invalid("context_id", "at most one context_id")
	}
	if len(ids) == 1 {
		req.Filter.ContextID = ids[0]
	}
	for _, st := range q["state"] {
		req.Filter.States = append(req.Filter.States, strings.Split(st, ",")...)
	}
	for i, f := range q["filter"] {
		p, err := ParsePredicate(fmt.Sprintf("filter[%d]", i), f)
		if err != nil {
			return req, err
		}
		req.Filter.Properties = append(req.Filter.Properties, p)
	}
	return req, restrict(r, &req.Filter)
}

func (s *Server) listArtifacts(w http.ResponseWriter, r *http.Request) {
	req, err := listRequest(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page, err := s.repo.ListArtifacts(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v1.ListArtifactsResponse{Artifacts: nonNil(page.Items), NextPageToken: page.NextPageToken})
}

func (s *Server) listExecutions(w http.ResponseWriter, r *http.Request) {
	req, err := listRequest(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page, err := s.repo.ListExecutions(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v1.ListExecutionsResponse{Executions: nonNil(page.Items), NextPageToken: page.NextPageToken})
}

func (s *Server) listContexts(w http.ResponseWriter, r *http.Request) {
	req, err := listRequest(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page, err := s.repo.ListContexts(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v1.ListContextsResponse{Contexts: nonNil(page.Items), NextPageToken: page.NextPageToken})
}

func nonNil[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

// findOne returns node id of one kind once the caller of r is authorised for r's route in its
// namespace; a node the caller may not read is answered as one that does not exist.
func findOne[T any](r *http.Request, kind string, id int64, get func(ids []int64) ([]T, error), props func(T) map[string]mlmd.Value) (T, error) {
	var zero T
	notFound := fmt.Errorf("%w: no %s with id %d", mlmd.ErrNotFound, kind, id)
	xs, err := get([]int64{id})
	if err != nil {
		return zero, err
	}
	if len(xs) == 0 {
		return zero, notFound
	}
	if err := platform.Authorize(r, nodeNamespace(props(xs[0])), notFound); err != nil {
		return zero, err
	}
	return xs[0], nil
}

// getOne serves GET .../{id} for one node kind.
func getOne[T any](s *Server, w http.ResponseWriter, r *http.Request, kind string, get func(ids []int64) ([]T, error), props func(T) map[string]mlmd.Value) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	x, err := findOne(r, kind, id, get, props)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, x)
}

func artifactProps(a mlmd.Artifact) map[string]mlmd.Value   { return a.CustomProperties }
func executionProps(e mlmd.Execution) map[string]mlmd.Value { return e.CustomProperties }
func contextProps(c mlmd.Context) map[string]mlmd.Value     { return c.CustomProperties }

func (s *Server) getArtifact(w http.ResponseWriter, r *http.Request) {
	getOne(s, w, r, "artifact", func(ids []int64) ([]mlmd.Artifact, error) { return s.repo.GetArtifactsByID(r.Context(), ids) }, artifactProps)
}

func (s *Server) getExecution(w http.ResponseWriter, r *http.Request) {
	getOne(s, w, r, "execution", func(ids []int64) ([]mlmd.Execution, error) { return s.repo.GetExecutionsByID(r.Context(), ids) }, executionProps)
}

func (s *Server) getContext(w http.ResponseWriter, r *http.Request) {
	getOne(s, w, r, "context", func(ids []int64) ([]mlmd.Context, error) { return s.repo.GetContextsByID(r.Context(), ids) }, contextProps)
}

// artifactEvents lists the events of an artifact the caller may read, leaving out those of executions
// it may not.
func (s *Server) artifactEvents(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		_, err = findOne(r, "artifact", id, func(ids []int64) ([]mlmd.Artifact, error) { return s.repo.GetArtifactsByID(r.Context(), ids) }, artifactProps)
	}
	var evs []mlmd.Event
	if err == nil {
		evs, err = s.repo.GetEventsByArtifactIDs(r.Context(), []int64{id})
	}
	if err == nil {
		evs, err = s.readableEvents(r, evs, true)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v1.ListEventsResponse{Events: nonNil(evs)})
}

// executionEvents lists the events of an execution the caller may read, leaving out those of artifacts
// it may not.
func (s *Server) executionEvents(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		_, err = findOne(r, "execution", id, func(ids []int64) ([]mlmd.Execution, error) { return s.repo.GetExecutionsByID(r.Context(), ids) }, executionProps)
	}
	var evs []mlmd.Event
	if err == nil {
		evs, err = s.repo.GetEventsByExecutionIDs(r.Context(), []int64{id})
	}
	if err == nil {
		evs, err = s.readableEvents(r, evs, false)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v1.ListEventsResponse{Events: nonNil(evs)})
}

// readableEvents keeps the events whose other end (the execution when byArtifact, else the artifact)
// the caller may read.
func (s *Server) readableEvents(r *http.Request, evs []mlmd.Event, byArtifact bool) ([]mlmd.Event, error) {
	rd := auth.ReadableNamespaces(r.Context())
	if rd.All || len(evs) == 0 {
		return evs, nil
	}
	ok := map[int64]bool{}
	var ids []int64
	for _, e := range evs {
		if byArtifact {
			ids = append(ids, e.ExecutionID)
		} else {
			ids = append(ids, e.ArtifactID)
		}
	}
	if byArtifact {
		xs, err := s.repo.GetExecutionsByID(r.Context(), ids)
		if err != nil {
			return nil, err
		}
		for _, x := range xs {
			ok[x.ID] = rd.Has(nodeNamespace(x.CustomProperties))
		}
	} else {
		xs, err := s.repo.GetArtifactsByID(r.Context(), ids)
		if err != nil {
			return nil, err
		}
		for _, x := range xs {
			ok[x.ID] = rd.Has(nodeNamespace(x.CustomProperties))
		}
	}
	out := evs[:0]
	for _, e := range evs {
		if (byArtifact && ok[e.ExecutionID]) || (!byArtifact && ok[e.ArtifactID]) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *Server) putExecution(w http.ResponseWriter, r *http.Request) {
	var req v1.PutExecutionRequest
	if err := decode(w, r, "put execution", &req); err != nil {
		if err != errAnswered {
			s.fail(w, r, err)
		}
		return
	}
	res, err := s.repo.PutExecution(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) listTypes(w http.ResponseWriter, r *http.Request) {
	kind := v1.TypeKind(strings.ToUpper(r.URL.Query().Get("kind")))
	var all []mlmd.Type
	kinds := []v1.TypeKind{v1.ArtifactKind, v1.ExecutionKind, v1.ContextKind}
	if kind != "" {
		kinds = []v1.TypeKind{kind}
	}
	for _, k := range kinds {
		ts, err := s.repo.GetTypes(r.Context(), k)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		all = append(all, ts...)
	}
	writeJSON(w, http.StatusOK, v1.ListTypesResponse{Types: nonNil(all)})
}

func (s *Server) putTypes(w http.ResponseWriter, r *http.Request) {
	var req v1.PutTypesRequest
	if err := decode(w, r, "put types", &req); err != nil {
		if err != errAnswered {
			s.fail(w, r, err)
		}
		return
	}
	ids, err := s.repo.PutTypes(r.Context(), req.Types)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v1.PutTypesResponse{TypeIDs: nonNil(ids)})
}

// DefaultLineageHops is the hop limit when the request gives none.
const DefaultLineageHops = 5

func (s *Server) lineage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var lq mlmd.LineageQuery
	var err error
	if lq.ArtifactIDs, err = queryInt64s(r, "artifact_id"); err != nil {
		s.fail(w, r, err)
		return
	}
	if lq.ExecutionIDs, err = queryInt64s(r, "execution_id"); err != nil {
		s.fail(w, r, err)
		return
	}
	lq.ArtifactURIs = q["artifact_uri"]
	rd := auth.ReadableNamespaces(r.Context())
	if ns := q.Get("namespace"); ns != "" { // walk one namespace's records only
		if err := auth.ValidNamespace(ns); err != nil {
			s.fail(w, r, mlmd.Invalid("namespace", "%v", err))
			return
		}
		if err := platform.AuthorizeIn(r, ns); err != nil {
			s.fail(w, r, err)
			return
		}
		rd = auth.Readable{Namespaces: []string{ns}}
	}
	if !rd.All {
		if err := s.readableStarts(r, rd, &lq); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if lq.Direction, err = mlmd.ParseDirection(q.Get("direction")); err != nil {
		s.fail(w, r, err)
		return
	}
	lq.MaxHops = DefaultLineageHops
	if h := q.Get("hops"); h != "" {
		if lq.MaxHops, err = strconv.Atoi(h); err != nil {
			s.fail(w, r, mlmd.Invalid("hops", "must be an integer, got %q", h))
			return
		}
	}
	g, err := s.repo.GetLineageSubgraph(r.Context(), lq)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !rd.All {
		g = readableGraph(g, rd)
	}
	writeJSON(w, http.StatusOK, g)
}

// readableStarts drops the starting nodes of lq the caller may not read (artifact URIs become the ids of
// the readable artifacts at them); with none left the answer is that of starting nodes that do not exist.
func (s *Server) readableStarts(r *http.Request, rd auth.Readable, lq *mlmd.LineageQuery) error {
	n := len(lq.ArtifactIDs) + len(lq.ArtifactURIs) + len(lq.ExecutionIDs)
	if n == 0 || n > mlmd.MaxStartingNodes {
		return nil // the repository names the problem
	}
	var arts []int64
	if len(lq.ArtifactIDs) > 0 {
		xs, err := s.repo.GetArtifactsByID(r.Context(), lq.ArtifactIDs)
		if err != nil {
			return err
		}
		for _, x := range xs {
			if rd.Has(nodeNamespace(x.CustomProperties)) {
				arts = append(arts, x.ID)
			}
		}
	}
	for _, uri := range lq.ArtifactURIs {
		f := mlmd.Filter{URI: uri, InNamespaces: true, Namespaces: rd.Namespaces}
		page, err := s.repo.ListArtifacts(r.Context(), mlmd.ListRequest{Filter: f, PageSize: mlmd.MaxStartingNodes})
		if err != nil {
			return err
		}
		for _, x := range page.Items {
			arts = append(arts, x.ID)
		}
	}
	var execs []int64
	if len(lq.ExecutionIDs) > 0 {
		xs, err := s.repo.GetExecutionsByID(r.Context(), lq.ExecutionIDs)
		if err != nil {
			return err
		}
		for _, x := range xs {
			if rd.Has(nodeNamespace(x.CustomProperties)) {
				execs = append(execs, x.ID)
			}
		}
	}
	if len(arts)+len(execs) == 0 {
		return fmt.Errorf("%w: no starting node exists", mlmd.ErrNotFound)
	}
	if len(arts)+len(execs) > mlmd.MaxStartingNodes {
		arts = arts[:mlmd.MaxStartingNodes-len(execs)]
	}
	lq.ArtifactIDs, lq.ArtifactURIs, lq.ExecutionIDs = arts, nil, execs
	return nil
}

// readableGraph keeps the nodes of g the caller may read, and the edges and links between them.
func readableGraph(g mlmd.LineageGraph, rd auth.Readable) mlmd.LineageGraph {
	arts, execs, ctxs := map[int64]bool{}, map[int64]bool{}, map[int64]bool{}
	out := mlmd.LineageGraph{Types: g.Types, Artifacts: []mlmd.Artifact{}, Executions: []mlmd.Execution{}, Contexts: []mlmd.Context{},
		Events: []mlmd.Event{}, Attributions: []mlmd.Attribution{}, Associations: []mlmd.Association{}, ParentContexts: []mlmd.ParentContext{}}
	for _, a := range g.Artifacts {
		if rd.Has(nodeNamespace(a.CustomProperties)) {
			arts[a.ID] = true
			out.Artifacts = append(out.Artifacts, a)
		}
	}
	for _, e := range g.Executions {
		if rd.Has(nodeNamespace(e.CustomProperties)) {
			execs[e.ID] = true
			out.Executions = append(out.Executions, e)
		}
	}
	for _, c := range g.Contexts {
		if rd.Has(nodeNamespace(c.CustomProperties)) {
			ctxs[c.ID] = true
			out.Contexts = append(out.Contexts, c)
		}
	}
	for _, e := range g.Events {
		if arts[e.ArtifactID] && execs[e.ExecutionID] {
			out.Events = append(out.Events, e)
		}
	}
	for _, a := range g.Attributions {
		if arts[a.ArtifactID] && ctxs[a.ContextID] {
			out.Attributions = append(out.Attributions, a)
		}
	}
	for _, a := range g.Associations {
		if execs[a.ExecutionID] && ctxs[a.ContextID] {
			out.Associations = append(out.Associations, a)
		}
	}
	for _, p := range g.ParentContexts {
		if ctxs[p.ChildID] && ctxs[p.ParentID] {
			out.ParentContexts = append(out.ParentContexts, p)
		}
	}
	return out
}

func (s *Server) cache(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cq := mlmd.CacheQuery{Fingerprint: q.Get("fingerprint"), PipelineName: q.Get("pipeline_name"), Namespace: q.Get("namespace")}
	if cq.Namespace == "" {
		cq.Namespace = v1.DefaultNamespace
	}
	var err error
	if err = auth.ValidNamespace(cq.Namespace); err != nil {
		err = mlmd.Invalid("namespace", "%v", err)
	} else {
		err = platform.AuthorizeIn(r, cq.Namespace)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if cq.PipelineName != "" && cq.Namespace != v1.DefaultNamespace {
		cq.PipelineName = cq.Namespace + "/" + cq.PipelineName // the pipeline context's name outside "default"
	}
	e, err := s.repo.GetExecutionByFingerprint(r.Context(), cq)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}
