package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	v1 "github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	"github.com/sluice-ml/sluice/services/metadata/internal/httpapi"
	"github.com/sluice-ml/sluice/services/metadata/internal/metastore"
)

func newServer(t *testing.T) *httptest.Server {
	store, err := metastore.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "mlmd.db"))
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	mux := http.NewServeMux()
	httpapi.New(store, slog.New(slog.DiscardHandler)).Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, u string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, rd)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil {
		require.NoError(t, json.Unmarshal(raw, out), string(raw))
	}
	return resp.StatusCode
}

func step(name, runID string, ins []int64, outURI string) v1.PutExecutionRequest {
	req := v1.PutExecutionRequest{
		Execution: v1.Execution{Type: "system.ContainerExecution", ExternalID: runID + "/" + name, Name: runID + "/" + name, LastKnownState: v1.ExecutionComplete,
			CustomProperties: map[string]v1.Value{v1.CacheFingerprintProperty: v1.String("fp-" + name)}},
		Contexts: []v1.Context{{Type: "system.Pipeline", Name: "quickstart"}, {Type: "system.PipelineRun", Name: runID}},
	}
	for i, id := range ins {
		req.ArtifactEventPairs = append(req.ArtifactEventPairs, v1.ArtifactAndEvent{Event: &v1.Event{ArtifactID: id, Type: v1.EventInput,
			Path: &v1.EventPath{Steps: []v1.Step{v1.KeyStep("data"), v1.IndexStep(int64(i))}}}})
	}
	req.ArtifactEventPairs = append(req.ArtifactEventPairs, v1.ArtifactAndEvent{
		Artifact: &v1.Artifact{Type: "system.Dataset", ExternalID: outURI, URI: outURI, State: v1.ArtifactLive},
		Event:    &v1.Event{Type: v1.EventOutput, Path: &v1.EventPath{Steps: []v1.Step{v1.KeyStep("out")}}},
	})
	return req
}

func TestQuickstartLineageOverREST(t *testing.T) {
	srv := newServer(t)
	base := srv.URL + v1.PathPrefix
	var d1, d2, joined v1.PutExecutionResponse
	require.Equal(t, 200, do(t, "POST", base+"/executions", step("download-a", "run-1", nil, "s3://b/run-1/a"), &d1))
	require.Equal(t, 200, do(t, "POST", base+"/executions", step("download-b", "run-1", nil, "s3://b/run-1/b"), &d2))
	require.Equal(t, 200, do(t, "POST", base+"/executions", step("join", "run-1", []int64{d1.ArtifactIDs[0], d2.ArtifactIDs[0]}, "s3://b/run-1/joined"), &joined))
	var again v1.PutExecutionResponse
	require.Equal(t, 200, do(t, "POST", base+"/executions", step("join", "run-1", []int64{d1.ArtifactIDs[0], d2.ArtifactIDs[0]}, "s3://b/run-1/joined"), &again))
	assert.Equal(t, joined, again, "put-execution is idempotent")

	var g v1.LineageGraph
	q := url.Values{"artifact_uri": {"s3://b/run-1/joined"}, "direction": {"upstream"}, "hops": {"5"}}
	require.Equal(t, 200, do(t, "GET", base+"/lineage?"+q.Encode(), nil, &g))
	var execs, ctxs []string
	for _, e := range g.Executions {
		execs = append(execs, e.Name)
	}
	for _, c := range g.Contexts {
		ctxs = append(ctxs, c.Type+"/"+c.Name)
	}
	assert.Equal(t, []string{"run-1/download-a", "run-1/download-b", "run-1/join"}, execs)
	assert.Len(t, g.Artifacts, 3)
	assert.Len(t, g.Events, 5)
	assert.Equal(t, []string{"system.Pipeline/quickstart", "system.PipelineRun/run-1"}, ctxs)
	assert.NotEmpty(t, g.Types)

	var evs v1.ListEventsResponse
	require.Equal(t, 200, do(t, "GET", base+"/executions/"+itoa(joined.ExecutionID)+"/events", nil, &evs))
	require.Len(t, evs.Events, 3)
	assert.Equal(t, d1.ArtifactIDs[0], evs.Events[0].ArtifactID)
	assert.Equal(t, d2.ArtifactIDs[0], evs.Events[1].ArtifactID)

	var arts v1.ListArtifactsResponse
	require.Equal(t, 200, do(t, "GET", base+"/artifacts?uri="+url.QueryEscape("s3://b/run-1/a"), nil, &arts))
	require.Len(t, arts.Artifacts, 1)
	assert.Equal(t, d1.ArtifactIDs[0], arts.Artifacts[0].ID)

	var page v1.ListExecutionsResponse
	q = url.Values{"filter": {"custom_properties.cache_fingerprint.string_value = 'fp-join'"}, "context_id": {itoa(joined.ContextIDs[1])}}
	require.Equal(t, 200, do(t, "GET", base+"/executions?"+q.Encode(), nil, &page))
	require.Len(t, page.Executions, 1)
	assert.Equal(t, joined.ExecutionID, page.Executions[0].ID)

	require.Equal(t, 200, do(t, "GET", base+"/executions?page_size=2", nil, &page))
	require.Len(t, page.Executions, 2)
	require.NotEmpty(t, page.NextPageToken)
	token := page.NextPageToken
	page = v1.ListExecutionsResponse{}
	require.Equal(t, 200, do(t, "GET", base+"/executions?page_size=2&page_token="+token, nil, &page))
	require.Len(t, page.Executions, 1)
	assert.Empty(t, page.NextPageToken)

	var hit v1.Execution
	require.Equal(t, 200, do(t, "GET", base+"/cache?fingerprint=fp-join&pipeline_name=quickstart", nil, &hit))
	assert.Equal(t, joined.ExecutionID, hit.ID)

	var a v1.Artifact
	require.Equal(t, 200, do(t, "GET", base+"/artifacts/"+itoa(joined.ArtifactIDs[2]), nil, &a))
	assert.Equal(t, "s3://b/run-1/joined", a.URI)
	var c v1.Context
	require.Equal(t, 200, do(t, "GET", base+"/contexts/"+itoa(joined.ContextIDs[0]), nil, &c))
	assert.Equal(t, "quickstart", c.Name)
	var types v1.ListTypesResponse
	require.Equal(t, 200, do(t, "GET", base+"/types?kind=context", nil, &types))
	assert.Len(t, types.Types, 2)
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestErrorsNameTheField(t *testing.T) {
	srv := newServer(t)
	base := srv.URL + v1.PathPrefix
	cases := map[string]struct {
		method, path string
		body         any
		code         int
		want         string
	}{
		"bad event type": {"POST", "/executions", v1.PutExecutionRequest{
			Execution:          v1.Execution{Type: "x"},
			ArtifactEventPairs: []v1.ArtifactAndEvent{{Artifact: &v1.Artifact{Type: "d"}, Event: &v1.Event{Type: "READ"}}},
		}, 400, "artifact_event_pairs[0].event.type"},
		"unknown json field":   {"POST", "/executions", map[string]any{"execution": map[string]any{"type": "x"}, "contxts": []any{}}, 400, "body: put execution: unknown field \"contxts\""},
		"unknown nested field": {"POST", "/executions", map[string]any{"execution": map[string]any{"type": "x", "bogus_field": 1}}, 400, "execution.bogus_field"},
		"body too large":       {"POST", "/types", map[string]any{"types": []any{map[string]any{"kind": "ARTIFACT", "name": strings.Repeat("x", httpapi.MaxBodyBytes)}}}, 413, "8388608 bytes"},
		"bad state":            {"POST", "/executions", v1.PutExecutionRequest{Execution: v1.Execution{Type: "x", LastKnownState: "DONE"}}, 400, "execution.last_known_state"},
		"missing node":         {"GET", "/artifacts/77", nil, 404, "no artifact with id 77"},
		"bad id":               {"GET", "/executions/abc", nil, 400, "id: must be a positive integer"},
		"bad filter":           {"GET", "/artifacts?filter=accuracy%3E1", nil, 400, "filter[0]"},
		"bad direction":        {"GET", "/lineage?artifact_id=1&direction=sideways", nil, 400, "direction"},
		"bad hops":             {"GET", "/lineage?artifact_id=1&hops=x", nil, 400, "hops"},
		"no start":             {"GET", "/lineage", nil, 400, "artifact_id"},
		"unknown start":        {"GET", "/lineage?artifact_id=5", nil, 404, "no starting node"},
		"cache miss":           {"GET", "/cache?fingerprint=zz", nil, 404, "cache fingerprint"},
		"cache no key":         {"GET", "/cache", nil, 400, "fingerprint"},
		"bad page token":       {"GET", "/contexts?page_token=zz", nil, 400, "page_token"},
		"duplicate name":       {"POST", "/types", v1.PutTypesRequest{Types: []v1.Type{{Kind: "BLOB", Name: "x"}}}, 400, "types[0].kind"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var e v1.Error
			assert.Equal(t, c.code, do(t, c.method, base+c.path, c.body, &e))
			assert.Contains(t, e.Error, c.want)
		})
	}
}

func TestParsePredicate(t *testing.T) {
	p, err := httpapi.ParsePredicate("f", "custom_properties.`a.b`.int_value>=3")
	require.NoError(t, err)
	assert.True(t, p.Custom)
	assert.Equal(t, "a.b", p.Name)
	assert.Equal(t, int64(3), *p.Value.IntValue)
	p, err = httpapi.ParsePredicate("f", `properties.acc.double_value != 0.5`)
	require.NoError(t, err)
	assert.Equal(t, 0.5, *p.Value.DoubleValue)
	_, err = httpapi.ParsePredicate("f", `properties.acc.int_value = x`)
	assert.ErrorContains(t, err, "f: \"x\" is not an integer")
}
