package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	v1 "github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	"github.com/sluice-ml/sluice/services/metadata/internal/httpapi"
	"github.com/sluice-ml/sluice/services/metadata/internal/ingest"
	"github.com/sluice-ml/sluice/services/metadata/internal/metastore"
)

// profiles is a fixed set of namespaces (the NATS KV store is exercised by libs/auth and the gateway
// tests); it lists them as *auth.Profiles does.
type profiles []auth.Profile

func (p profiles) Role(id auth.Identity, ns string) auth.Role {
	if id.Admin || id.Service {
		return auth.RoleOwner
	}
	for _, pr := range p {
		if pr.Name == ns {
			return pr.RoleOf(id.Subject)
		}
	}
	return auth.RoleNone
}

func (p profiles) List() []auth.Profile { return p }

const (
	mdOwnerTok   = "md-owner-token-000000001"
	mdContribTok = "md-contrib-token-0000002"
	mdViewerTok  = "md-viewer-token-00000003"
	mdOtherTok   = "md-other-token-000000004"
	mdKey        = "0123456789abcdef0123456789abcdef"
)

type mdFixture struct {
	t      *testing.T
	url    string
	svc    string
	tokens map[string]string
	// ids of team-a's records, and of team-b's
	aArtifact, aExecution, aContext, bArtifact, bExecution int64
}

// newMDFixture records the lineage of a run of team-a (output s3://lake/a/model) and a run of team-b that
// reads team-a's model (an artifact keeps the namespace it was first recorded in) and writes its own
// output, then serves the API behind the guard.
func newMDFixture(t *testing.T) *mdFixture {
	store, err := metastore.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "mlmd.db"))
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	record := func(typ, ns, run, task string, data map[string]any) {
		data["run_id"], data["pipeline_name"], data["task_path"], data["task_name"] = run, "pipe", task, task
		if ns != "" {
			data["namespace"] = ns
		}
		ev, err := events.New("/sluice/pipelines", typ, "runs/"+run, data)
		require.NoError(t, err)
		req, ok, err := ingest.Record(ev)
		require.NoError(t, err)
		require.True(t, ok)
		_, err = store.Ingest(t.Context(), req)
		require.NoError(t, err)
	}
	art := func(uri string) map[string]any { return map[string]any{"uri": uri, "schema_title": "system.Model"} }
	record(events.PipelineTaskSucceededV1, "team-a", "run-a", "train", map[string]any{"fingerprint": "fp-a", "output_artifacts": map[string]any{"model": art("s3://lake/a/model")}})
	record(events.PipelineTaskSucceededV1, "team-b", "run-b", "eval", map[string]any{"fingerprint": "fp-b",
		"input_artifacts": map[string]any{"model": art("s3://lake/a/model")}, "output_artifacts": map[string]any{"report": art("s3://lake/b/report")}})

	a, err := auth.NewAuthenticator(t.Context(), auth.Config{Key: mdKey,
		Tokens: strings.Join([]string{mdOwnerTok + "=olivia", mdContribTok + "=carl", mdViewerTok + "=vera", mdOtherTok + "=mallory"}, ";")})
	require.NoError(t, err)
	d := profiles{{Name: "team-a", Owner: "olivia", Contributors: []string{"carl"}, Viewers: []string{"vera"}}, {Name: "team-b", Owner: "mallory"}}
	guard := platform.NewGuard(a, d, platform.Rules, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(platform.NewHandler(platform.HandlerConfig{Registry: platform.NewRegistry(), Log: slog.New(slog.DiscardHandler), Guard: guard},
		routes{httpapi.New(store, slog.New(slog.DiscardHandler))}))
	t.Cleanup(srv.Close)
	svc, err := a.Signer().Sign(auth.Identity{Subject: auth.ServiceSubject("pipelines"), Service: true}, time.Now())
	require.NoError(t, err)
	f := &mdFixture{t: t, url: srv.URL, svc: svc, tokens: map[string]string{"owner": mdOwnerTok, "contributor": mdContribTok, "viewer": mdViewerTok, "other namespace's owner": mdOtherTok}}
	var arts v1.ListArtifactsResponse
	f.must("service identity", "/apis/metadata/v1/artifacts", 200, &arts)
	for _, x := range arts.Artifacts {
		switch x.URI {
		case "s3://lake/a/model":
			f.aArtifact = x.ID
			require.Equal(t, "team-a", *x.CustomProperties[v1.NamespaceProperty].StringValue, "the namespace is set once")
		case "s3://lake/b/report":
			f.bArtifact = x.ID
		}
	}
	var execs v1.ListExecutionsResponse
	f.must("service identity", "/apis/metadata/v1/executions", 200, &execs)
	for _, x := range execs.Executions {
		switch x.Name {
		case "run-a/train":
			f.aExecution = x.ID
		case "run-b/eval":
			f.bExecution = x.ID
		}
	}
	var ctxs v1.ListContextsResponse
	f.must("service identity", "/apis/metadata/v1/contexts?type=system.PipelineRun&name=run-a", 200, &ctxs)
	require.Len(t, ctxs.Contexts, 1)
	f.aContext = ctxs.Contexts[0].ID
	require.NotZero(t, f.aArtifact*f.bArtifact*f.aExecution*f.bExecution)
	return f
}

// routes adapts httpapi.Server to platform.Service.
type routes struct{ s *httpapi.Server }

func (r routes) Name() string                { return "metadata" }
func (r routes) Routes(mux *http.ServeMux)   { r.s.Routes(mux) }
func (r routes) Start(context.Context) error { return nil }
func (r routes) Ready(context.Context) error { return nil }
func (r routes) Close() error                { return nil }

func (f *mdFixture) get(caller, path string) (int, string) {
	f.t.Helper()
	req, err := http.NewRequestWithContext(f.t.Context(), "GET", f.url+path, nil)
	require.NoError(f.t, err)
	switch caller {
	case "no token":
	case "service identity":
		req.Header.Set(auth.IdentityHeader, f.svc)
	default:
		req.Header.Set("Authorization", "Bearer "+f.tokens[caller])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (f *mdFixture) must(caller, path string, want int, out any) {
	f.t.Helper()
	code, body := f.get(caller, path)
	require.Equal(f.t, want, code, "GET %s as %s: %s", path, caller, body)
	if out != nil {
		require.NoError(f.t, json.Unmarshal([]byte(body), out), body)
	}
}

// TestNamespaceMatrix is generated from platform.Rules: every metadata read route × {no token, other
// namespace's owner, viewer, contributor, owner, service identity} on team-a's records. A caller that may
// not read team-a gets, for a record by id or a lineage query, the very answer of an id that does not
// exist; for a list or cache lookup naming team-a, 403.
func TestNamespaceMatrix(t *testing.T) {
	f := newMDFixture(t)
	const missing = 999999
	target := func(p string, id int64) string {
		switch {
		case strings.Contains(p, "/artifacts/{id}"):
			return strings.Replace(p, "{id}", fmt.Sprint(id), 1)
		case strings.Contains(p, "/executions/{id}"):
			return strings.Replace(p, "{id}", fmt.Sprint(id), 1)
		case strings.Contains(p, "/contexts/{id}"):
			return strings.Replace(p, "{id}", fmt.Sprint(id), 1)
		case strings.HasSuffix(p, "/lineage"):
			return p + "?artifact_id=" + fmt.Sprint(id)
		case strings.HasSuffix(p, "/cache"):
			return p + "?fingerprint=fp-a&pipeline_name=pipe&namespace=team-a"
		}
		return p + "?namespace=team-a"
	}
	n := 0
	for _, rule := range platform.Rules {
		method, p, _ := strings.Cut(rule.Pattern, " ")
		if !strings.HasPrefix(p, "/apis/metadata/v1/") || rule.Scope != platform.ScopeResource {
			continue
		}
		require.Equal(t, "GET", method)
		n++
		id := f.aArtifact
		switch {
		case strings.Contains(p, "/executions/"):
			id = f.aExecution
		case strings.Contains(p, "/contexts/"):
			id = f.aContext
		}
		byID := strings.Contains(p, "{id}") || strings.HasSuffix(p, "/lineage")
		for _, c := range []string{"no token", "other namespace's owner", "viewer", "contributor", "owner", "service identity"} {
			code, body := f.get(c, target(p, id))
			switch {
			case c == "no token":
				require.Equal(t, http.StatusUnauthorized, code, "%s as %s: %s", p, c, body)
			case c == "other namespace's owner" && byID:
				mcode, mbody := f.get(c, target(p, missing))
				require.Equal(t, http.StatusNotFound, code, "%s as %s: %s", p, c, body)
				require.Equal(t, mcode, code)
				require.Equal(t, strings.ReplaceAll(mbody, fmt.Sprint(missing), "ID"), strings.ReplaceAll(body, fmt.Sprint(id), "ID"), "%s: the answer must not tell the record exists", p)
			case c == "other namespace's owner":
				require.Equal(t, http.StatusForbidden, code, "%s as %s: %s", p, c, body)
			default:
				require.Equal(t, http.StatusOK, code, "%s as %s: %s", p, c, body)
			}
		}
	}
	require.Equal(t, 10, n, "every metadata read route is in the matrix")
}

// TestLineageIsolation: team-b's owner lists, gets and walks only team-b's records, though team-b's run
// read team-a's model; team-a's viewer sees team-a's run but not team-b's.
func TestLineageIsolation(t *testing.T) {
	f := newMDFixture(t)
	var arts v1.ListArtifactsResponse
	f.must("other namespace's owner", "/apis/metadata/v1/artifacts", 200, &arts)
	require.Len(t, arts.Artifacts, 1)
	require.Equal(t, f.bArtifact, arts.Artifacts[0].ID)
	var execs v1.ListExecutionsResponse
	f.must("other namespace's owner", "/apis/metadata/v1/executions", 200, &execs)
	require.Len(t, execs.Executions, 1)
	require.Equal(t, f.bExecution, execs.Executions[0].ID)
	var ctxs v1.ListContextsResponse
	f.must("other namespace's owner", "/apis/metadata/v1/contexts", 200, &ctxs)
	for _, c := range ctxs.Contexts {
		require.Equal(t, "team-b", *c.CustomProperties[v1.NamespaceProperty].StringValue, c.Name)
	}
	require.Contains(t, fmt.Sprint(ctxs), "team-b/pipe", "a pipeline context outside default is named <namespace>/<pipeline>")

	// team-b's execution read team-a's model: the event is left out for team-b, so is the model
	var evs v1.ListEventsResponse
	f.must("other namespace's owner", fmt.Sprintf("/apis/metadata/v1/executions/%d/events", f.bExecution), 200, &evs)
	require.Len(t, evs.Events, 1)
	require.Equal(t, f.bArtifact, evs.Events[0].ArtifactID)
	var g v1.LineageGraph
	f.must("other namespace's owner", fmt.Sprintf("/apis/metadata/v1/lineage?artifact_id=%d&hops=5", f.bArtifact), 200, &g)
	require.Len(t, g.Artifacts, 1)
	require.Len(t, g.Executions, 1)
	for _, e := range g.Events {
		require.NotEqual(t, f.aArtifact, e.ArtifactID)
	}
	f.must("other namespace's owner", "/apis/metadata/v1/lineage?artifact_uri=s3://lake/a/model", 404, nil)
	f.must("other namespace's owner", "/apis/metadata/v1/cache?fingerprint=fp-a&pipeline_name=pipe&namespace=team-a", 403, nil)
	f.must("other namespace's owner", "/apis/metadata/v1/cache?fingerprint=fp-a&pipeline_name=pipe&namespace=team-b", 404, nil)

	// team-a's viewer: team-a's records, not team-b's
	f.must("viewer", "/apis/metadata/v1/artifacts", 200, &arts)
	require.Len(t, arts.Artifacts, 1)
	require.Equal(t, f.aArtifact, arts.Artifacts[0].ID)
	f.must("viewer", fmt.Sprintf("/apis/metadata/v1/executions/%d", f.bExecution), 404, nil)
	f.must("viewer", "/apis/metadata/v1/cache?fingerprint=fp-a&pipeline_name=pipe&namespace=team-a", 200, nil)
	// admins and services see both
	f.must("service identity", "/apis/metadata/v1/artifacts", 200, &arts)
	require.Len(t, arts.Artifacts, 2)
}
