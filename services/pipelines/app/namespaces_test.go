package app_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/app"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine/enginetest"
)

// nsFixture is the pipelines service behind the gateway's guard, with namespace profiles in NATS KV:
// team A owned by olivia (carl contributor, vera viewer), team B owned by mallory.
type nsFixture struct {
	t          *testing.T
	deps       *platform.Deps
	url        string
	a, b       string
	svcHeader  string
	tokens     map[string]string // caller → bearer token
	pipelineID string
	versionID  string
	expID      string
	runID      string
	sharedID   string
}

const (
	nsOwnerTok   = "ns-owner-token-000000001"
	nsContribTok = "ns-contrib-token-0000002"
	nsViewerTok  = "ns-viewer-token-00000003"
	nsOtherTok   = "ns-other-token-000000004"
	nsAdminTok   = "ns-admin-token-000000005"
)

func newNSFixture(t *testing.T) *nsFixture {
	t.Helper()
	st := devstacktest.Stack(t)
	cfg := st.PlatformConfig(t.TempDir(), "127.0.0.1:0", "local", "warn")
	require.NoError(t, cfg.Validate())
	log := slog.New(slog.DiscardHandler)
	deps, err := platform.Connect(t.Context(), cfg, "pipelines-ns-test", log, func(string) string { return "" })
	require.NoError(t, err)
	t.Cleanup(deps.Close)
	require.NoError(t, deps.EnableAuth(t.Context(), auth.Config{Key: "0123456789abcdef0123456789abcdef",
		Tokens: strings.Join([]string{nsOwnerTok + "=olivia", nsContribTok + "=carl", nsViewerTok + "=vera", nsOtherTok + "=mallory", nsAdminTok + "=" + auth.AdminSubject}, ";")}))
	svc, err := app.Build(t.Context(), deps)
	require.NoError(t, err)
	require.NoError(t, svc.Start(context.WithoutCancel(t.Context())))
	t.Cleanup(func() { _ = svc.Close() })
	srv := httptest.NewServer(platform.NewHandler(platform.HandlerConfig{Registry: platform.NewRegistry(), Log: log, Guard: deps.Guard()}, svc))
	t.Cleanup(srv.Close)

	sfx := uuid.NewString()[:8]
	f := &nsFixture{t: t, deps: deps, url: srv.URL, a: "team-a-" + sfx, b: "team-b-" + sfx, tokens: map[string]string{
		"owner": nsOwnerTok, "contributor": nsContribTok, "viewer": nsViewerTok, "other namespace's owner": nsOtherTok, "admin": nsAdminTok}}
	p := deps.Profiles()
	_, err = p.Create(t.Context(), f.a, "olivia", time.Now())
	require.NoError(t, err)
	_, err = p.SetMember(t.Context(), f.a, "carl", auth.RoleContributor)
	require.NoError(t, err)
	_, err = p.SetMember(t.Context(), f.a, "vera", auth.RoleViewer)
	require.NoError(t, err)
	_, err = p.Create(t.Context(), f.b, "mallory", time.Now())
	require.NoError(t, err)
	f.svcHeader, err = deps.Guard().Authenticator().Signer().Sign(auth.Identity{Subject: auth.ServiceSubject("training"), Service: true}, time.Now())
	require.NoError(t, err)

	// team A's resources, created by its owner
	var pc struct {
		Pipeline struct {
			ID string `json:"pipeline_id"`
		} `json:"pipeline"`
		Version struct {
			ID string `json:"pipeline_version_id"`
		} `json:"pipeline_version"`
	}
	f.must("owner", "POST", "/apis/v1/pipelines", map[string]any{"display_name": "tiny-a", "namespace": f.a, "spec": tiny}, 201, &pc)
	f.pipelineID, f.versionID = pc.Pipeline.ID, pc.Version.ID
	var e struct {
		ID        string `json:"experiment_id"`
		Namespace string `json:"namespace"`
	}
	f.must("owner", "POST", "/apis/v1/experiments", map[string]any{"display_name": "exp-a", "namespace": f.a}, 201, &e)
	require.Equal(t, f.a, e.Namespace)
	f.expID = e.ID
	var rc app.RunCreated
	f.must("owner", "POST", "/apis/v1/runs", map[string]any{"pipeline_id": f.pipelineID, "experiment_id": f.expID}, 200, &rc)
	require.Equal(t, f.a, rc.Namespace, "a run belongs to its experiment's namespace")
	f.runID = rc.RunID
	var shared struct {
		Pipeline struct {
			ID        string `json:"pipeline_id"`
			Namespace string `json:"namespace"`
		} `json:"pipeline"`
	}
	f.must("admin", "POST", "/apis/v1/pipelines", map[string]any{"display_name": "shared-" + sfx, "spec": tiny}, 201, &shared)
	require.Equal(t, "", shared.Pipeline.Namespace)
	f.sharedID = shared.Pipeline.ID
	return f
}

// do calls the API as caller ("no token", "service identity", or a key of tokens).
func (f *nsFixture) do(caller, method, path string, body any) (int, string) {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(f.t, err)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(f.t.Context(), method, f.url+path, rd)
	require.NoError(f.t, err)
	req.Header.Set("Content-Type", "application/json")
	switch caller {
	case "no token":
	case "service identity":
		req.Header.Set(auth.IdentityHeader, f.svcHeader)
	default:
		req.Header.Set("Authorization", "Bearer "+f.tokens[caller])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (f *nsFixture) must(caller, method, path string, body any, want int, out any) {
	f.t.Helper()
	code, b := f.do(caller, method, path, body)
	require.Equal(f.t, want, code, "%s %s as %s: %s", method, path, caller, b)
	if out != nil {
		require.NoError(f.t, json.Unmarshal([]byte(b), out), b)
	}
}

func (f *nsFixture) recurringRun() string {
	var rr struct {
		ID string `json:"recurring_run_id"`
	}
	f.must("owner", "POST", "/apis/v1/recurringruns", map[string]any{"display_name": "rr", "cron": "@every 1h", "paused": true,
		"run": map[string]any{"pipeline_id": f.pipelineID, "experiment_id": f.expID}}, 201, &rr)
	return rr.ID
}

// TestNamespaceMatrix is generated from platform.Rules: every pipelines route × {no token, other
// namespace's owner, viewer, contributor, owner, service identity} against team A's real resources.
// A caller that may not read team A gets 404 on a resource by id with the body of an id that does not
// exist, 403 on a list or create naming team A; a viewer 403 on what needs a contributor.
func TestNamespaceMatrix(t *testing.T) {
	f := newNSFixture(t)
	rrID := f.recurringRun()
	type target struct {
		path    string
		id      string // the resource's id in path
		missing string // the same route for an id that does not exist ("" for lists and creates)
		body    any
	}
	const nope = "0190aaaa-0000-7000-8000-000000000000"
	targetOf := func(rule platform.Rule) target {
		method, p, _ := strings.Cut(rule.Pattern, " ")
		switch {
		case strings.HasPrefix(p, "/apis/v1/namespaces/"): // secrets and config maps (objects.go)
			kind := strings.TrimSuffix(strings.Split(p, "/")[5], "s")
			body := func() map[string]any {
				b := map[string]any{"metadata": map[string]any{"name": "o-" + uuid.NewString()[:8]}, "data": map[string]any{"k": "dg=="}}
				if kind == "configmap" {
					b["data"] = map[string]any{"k": "v"}
				}
				return b
			}
			p = strings.Replace(p, "{ns}", f.a, 1)
			if !strings.Contains(p, "{name}") {
				if method == "POST" {
					return target{path: p, body: body()}
				}
				return target{path: p}
			}
			b := body()
			f.must("owner", "POST", strings.TrimSuffix(p, "/{name}"), b, 201, nil)
			return target{path: strings.Replace(p, "{name}", b["metadata"].(map[string]any)["name"].(string), 1)}
		case p == "/apis/v1/pipelines" && method == "POST":
			return target{path: p, body: map[string]any{"display_name": "p-" + uuid.NewString()[:8], "namespace": f.a, "spec": tiny}}
		case p == "/apis/v1/runs" && method == "POST":
			return target{path: p, body: map[string]any{"spec": tiny, "namespace": f.a}}
		case p == "/apis/v1/experiments" && method == "POST":
			return target{path: p, body: map[string]any{"display_name": "e-" + uuid.NewString()[:8], "namespace": f.a}}
		case p == "/apis/v1/recurringruns" && method == "POST":
			return target{path: p, body: map[string]any{"display_name": "r", "cron": "@every 1h", "paused": true, "run": map[string]any{"spec": tiny, "namespace": f.a}}}
		case !strings.Contains(p, "{"):
			return target{path: p + "?namespace=" + f.a}
		case strings.HasPrefix(p, "/apis/v1/pipelines/"):
			body := any(nil)
			if method == "POST" {
				body = map[string]any{"display_name": "v", "spec": tiny}
			}
			r := strings.NewReplacer("{id}", f.pipelineID, "{vid}", f.versionID)
			m := strings.NewReplacer("{id}", nope, "{vid}", f.versionID)
			return target{path: r.Replace(p), id: f.pipelineID, missing: m.Replace(p), body: body}
		case strings.HasPrefix(p, "/apis/v1/runs/"):
			return target{path: strings.Replace(p, "{id}", f.runID, 1), id: f.runID, missing: strings.Replace(p, "{id}", nope, 1)}
		case strings.HasPrefix(p, "/apis/v1/experiments/"):
			return target{path: strings.Replace(p, "{id}", f.expID, 1), id: f.expID, missing: strings.Replace(p, "{id}", nope, 1)}
		case strings.HasPrefix(p, "/apis/v1/recurringruns/"):
			id := rrID
			if method == "DELETE" {
				id = f.recurringRun() // each allowed delete takes one
			}
			r := strings.NewReplacer("{idverb}/{verb}", id+"/disable", "{idverb}", id+":disable", "{id}", id)
			m := strings.NewReplacer("{idverb}/{verb}", "recurring-nope/disable", "{idverb}", "recurring-nope:disable", "{id}", "recurring-nope")
			return target{path: r.Replace(p), id: id, missing: m.Replace(p)}
		}
		t.Fatalf("no target for %s", rule.Pattern)
		return target{}
	}
	callers := []struct {
		name string
		role auth.Role
	}{{"no token", auth.RoleNone}, {"other namespace's owner", auth.RoleNone}, {"viewer", auth.RoleViewer},
		{"contributor", auth.RoleContributor}, {"owner", auth.RoleOwner}, {"service identity", auth.RoleOwner}}
	n := 0
	for _, rule := range platform.Rules {
		method, p, _ := strings.Cut(rule.Pattern, " ")
		if !strings.HasPrefix(p, "/apis/v1/") {
			continue
		}
		n++
		inPath := strings.HasPrefix(p, "/apis/v1/namespaces/{ns}/")
		if inPath {
			require.Equal(t, platform.ScopePath, rule.Scope, rule.Pattern)
		} else {
			require.Equal(t, platform.ScopeResource, rule.Scope, rule.Pattern)
		}
		for _, c := range callers {
			tg := targetOf(rule)
			code, body := f.do(c.name, method, tg.path, tg.body)
			switch {
			case c.name == "no token":
				require.Equal(t, http.StatusUnauthorized, code, "%s as %s: %s", tg.path, c.name, body)
			case inPath && c.role < rule.Role: // the guard refuses from the path's namespace
				require.Equal(t, http.StatusForbidden, code, "%s %s as %s: %s", method, tg.path, c.name, body)
			case c.role == auth.RoleNone && tg.missing != "":
				mcode, mbody := f.do(c.name, method, tg.missing, tg.body)
				require.Equal(t, http.StatusNotFound, code, "%s %s as %s: %s", method, tg.path, c.name, body)
				require.Equal(t, mcode, code, "same status as a missing resource")
				norm := strings.NewReplacer(tg.id, "ID", nope, "ID", "recurring-nope", "ID")
				got, want := norm.Replace(body), norm.Replace(mbody)
				require.Equal(t, want, got, "%s %s as %s: the answer must not tell the resource exists", method, tg.path, c.name)
			case c.role < rule.Role:
				require.Equal(t, http.StatusForbidden, code, "%s %s as %s (%s): %s", method, tg.path, c.name, c.role, body)
			default:
				require.NotContains(t, []int{401, 403, 404}, code, "%s %s as %s: %s", method, tg.path, c.name, body)
				require.Less(t, code, 500, "%s %s as %s: %s", method, tg.path, c.name, body)
			}
		}
	}
	require.GreaterOrEqual(t, n, 23, "every pipelines route is in the matrix")
}

// TestNamespaceIsolation: team A's runs, experiments, pipelines and recurring runs are invisible to team
// B's owner (left out of lists; a get answers as for an id that does not exist), shared pipelines are
// visible to all and changed by admins only, a viewer cannot create or delete, a contributor can, and a
// run cannot be put into another namespace's experiment or run another namespace's pipeline.
func TestNamespaceIsolation(t *testing.T) {
	f := newNSFixture(t)
	rrID := f.recurringRun()
	for _, path := range []string{"/apis/v1/runs", "/apis/v1/experiments", "/apis/v1/pipelines", "/apis/v1/recurringruns"} {
		code, body := f.do("other namespace's owner", "GET", path, nil)
		require.Equal(t, 200, code, body)
		for _, id := range []string{f.runID, f.expID, f.pipelineID, rrID, f.a} {
			require.NotContains(t, body, id, "%s lists team A's resources to team B", path)
		}
		code, body = f.do("viewer", "GET", path, nil)
		require.Equal(t, 200, code, body)
		require.Contains(t, body, f.a, "%s: a viewer of team A sees team A's", path)
	}
	code, body := f.do("other namespace's owner", "GET", "/apis/v1/pipelines", nil)
	require.Equal(t, 200, code)
	require.Contains(t, body, f.sharedID, "a shared pipeline is listed to every namespace")
	f.must("other namespace's owner", "GET", "/apis/v1/pipelines/"+f.sharedID, nil, 200, nil)
	f.must("contributor", "POST", "/apis/v1/pipelines/"+f.sharedID+"/versions", map[string]any{"display_name": "v", "spec": tiny}, 403, nil)
	f.must("contributor", "POST", "/apis/v1/pipelines", map[string]any{"display_name": "no-ns", "spec": tiny}, 403, nil)

	// B cannot reach A's experiment or pipeline from a run of its own
	for _, req := range []map[string]any{
		{"spec": tiny, "experiment_id": f.expID},
		{"spec": tiny, "namespace": f.b, "experiment_id": f.expID},
		{"pipeline_id": f.pipelineID, "namespace": f.b},
		{"pipeline_name": "tiny-a", "namespace": f.b},
	} {
		code, body := f.do("other namespace's owner", "POST", "/apis/v1/runs", req)
		require.Equal(t, http.StatusBadRequest, code, "%v: %s", req, body)
	}
	// a run creates its training jobs in its own namespace only
	trainIn := func(ns string) string {
		return `
apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: train-elsewhere}
spec:
  tasks:
    train:
      trainingJob:
        apiVersion: kubeflow.org/v1
        kind: TFJob
        metadata: {name: mnist, namespace: ` + ns + `}
        spec:
          tfReplicaSpecs:
            Chief:
              restartPolicy: Never
              template: {spec: {containers: [{name: tensorflow, image: busybox, command: [sh, -c, 'exit 0']}]}}
`
	}
	code, body = f.do("other namespace's owner", "POST", "/apis/v1/runs", map[string]any{"spec": trainIn(f.a), "namespace": f.b})
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "trainingJob.metadata.namespace")
	// a run of B in B, with B's default experiment; a shared pipeline runs anywhere
	var rc app.RunCreated
	f.must("other namespace's owner", "POST", "/apis/v1/runs", map[string]any{"pipeline_id": f.sharedID, "namespace": f.b}, 200, &rc)
	require.Equal(t, f.b, rc.Namespace)
	require.Equal(t, "default-"+f.b, rc.Experiment)
	f.must("viewer", "GET", "/apis/v1/runs/"+rc.RunID, nil, 404, nil)
	var listed struct {
		Runs []app.RunSummary `json:"runs"`
	}
	f.must("other namespace's owner", "GET", "/apis/v1/runs?namespace="+f.b, nil, 200, &listed)
	require.Len(t, listed.Runs, 1)
	require.Equal(t, rc.RunID, listed.Runs[0].RunID)
	f.must("other namespace's owner", "GET", "/apis/v1/runs?namespace="+f.a, nil, 403, nil)

	// a recurring run of B starts runs in B, readable by id by B only
	var rrb struct {
		ID        string `json:"recurring_run_id"`
		Namespace string `json:"namespace"`
	}
	f.must("other namespace's owner", "POST", "/apis/v1/recurringruns", map[string]any{"display_name": "every-second", "cron": "* * * * * *",
		"namespace": f.b, "run": map[string]any{"pipeline_id": f.sharedID}}, 201, &rrb)
	require.Equal(t, f.b, rrb.Namespace)
	var scheduled string
	require.Eventually(t, func() bool {
		var l struct {
			Runs []app.RunSummary `json:"runs"`
		}
		f.must("other namespace's owner", "GET", "/apis/v1/runs?namespace="+f.b, nil, 200, &l)
		for _, r := range l.Runs {
			if strings.HasPrefix(r.RunID, rrb.ID) {
				scheduled = r.RunID
				return true
			}
		}
		return false
	}, 60*time.Second, 200*time.Millisecond)
	f.must("other namespace's owner", "DELETE", "/apis/v1/recurringruns/"+rrb.ID, nil, 204, nil)
	var sd app.RunDetail
	f.must("other namespace's owner", "GET", "/apis/v1/runs/"+url.PathEscape(scheduled), nil, 200, &sd)
	require.Equal(t, f.b, sd.Namespace)
	f.must("viewer", "GET", "/apis/v1/runs/"+url.PathEscape(scheduled), nil, 404, nil)

	// viewer: read only; contributor: create and delete
	f.must("viewer", "GET", "/apis/v1/runs/"+f.runID, nil, 200, nil)
	f.must("viewer", "POST", "/apis/v1/runs", map[string]any{"spec": tiny, "experiment_id": f.expID}, 403, nil)
	f.must("viewer", "POST", "/apis/v1/experiments", map[string]any{"display_name": "v-exp", "namespace": f.a}, 403, nil)
	f.must("viewer", "DELETE", "/apis/v1/recurringruns/"+rrID, nil, 403, nil)
	f.must("contributor", "POST", "/apis/v1/runs", map[string]any{"spec": tiny, "experiment_id": f.expID}, 200, nil)
	f.must("contributor", "DELETE", "/apis/v1/recurringruns/"+rrID, nil, 204, nil)
	f.must("contributor", "GET", "/apis/v1/recurringruns/"+rrID, nil, 404, nil)

	// events: B's run published its task and run events with B's namespace (the tail endpoint and the
	// metadata service authorise by it); a run.requested event of B naming A's experiment is rejected.
	var mu sync.Mutex
	var seen []string
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		_ = f.deps.Bus.Tail(ctx, "io.sluice.pipeline.*", true, func(r events.Received) {
			if r.Err == nil {
				mu.Lock()
				seen = append(seen, r.Event.Type()+" "+string(r.Event.Data()))
				mu.Unlock()
			}
		})
	}()
	ev, err := events.New("/test", events.PipelineRunRequestedV1, "", pipelinesv1.RunRequest{Spec: tiny, Namespace: f.b, ExperimentID: f.expID})
	require.NoError(t, err)
	require.NoError(t, f.deps.Bus.Publish(t.Context(), ev))
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		var task, run, rejected bool
		for _, s := range seen {
			mine := strings.Contains(s, rc.RunID) && strings.Contains(s, `"namespace":"`+f.b+`"`)
			task = task || strings.HasPrefix(s, events.PipelineTaskSucceededV1) && mine
			run = run || strings.HasPrefix(s, events.PipelineRunSucceededV1) && mine
			rejected = rejected || strings.HasPrefix(s, events.PipelineRunRejectedV1) && strings.Contains(s, ev.ID()) && strings.Contains(s, "experiment_id")
		}
		return task && run && rejected
	}, 60*time.Second, 100*time.Millisecond)
	enginetest.RecordHistory(t, f.deps.Temporal, rc.RunID, "namespaced-run")
}
