package events_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/events"
)

type roles map[string]map[string]auth.Role // subject → namespace → role

func (r roles) Role(id auth.Identity, ns string) auth.Role {
	if id.Admin || id.Service {
		return auth.RoleOwner
	}
	return r[id.Subject][ns]
}

// gateway serves the bus's publish/tail routes with the identity the platform guard would have put in the
// request (here chosen by the X-Test-As header: a subject, or "service").
func gateway(t *testing.T, b *events.Bus) *httptest.Server {
	mux := http.NewServeMux()
	b.Routes(mux)
	dec := roles{"alice": {"team-a": auth.RoleContributor}, "victor": {"victim-ns": auth.RoleViewer}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		as := r.Header.Get("X-Test-As")
		id := auth.Identity{Subject: as}
		if as == "service" {
			id = auth.Identity{Subject: auth.ServiceSubject("training"), Service: true}
		}
		mux.ServeHTTP(w, r.WithContext(auth.WithIdentity(auth.WithDecider(r.Context(), dec), id)))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func publish(t *testing.T, srv *httptest.Server, as string, hdr map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", srv.URL+events.PublishPath, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Test-As", as)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	s, _ := m["error"].(string)
	return resp.StatusCode, s
}

func ce(id, source, typ string) map[string]string {
	return map[string]string{"ce-specversion": "1.0", "ce-id": id, "ce-source": source, "ce-type": typ, "content-type": "application/json"}
}

// tailLines reads the tail as as until want lines containing needle arrived or the deadline passed.
func tailLines(t *testing.T, srv *httptest.Server, as, query, needle string, want int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+events.TailPath+"?all=true&"+query, nil)
	req.Header.Set("X-Test-As", as)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var got []string
	sc := bufio.NewScanner(resp.Body)
	for len(got) < want && sc.Scan() {
		if strings.Contains(sc.Text(), needle) {
			got = append(got, sc.Text())
		}
	}
	return got
}

// security/forged-internal-types: internal types are refused from outside callers (a forged
// model.exported never reaches lineage); request types only into namespaces the caller may write.
func TestPublishAcceptsRequestTypesOnlyIntoWritableNamespaces(t *testing.T) {
	t.Parallel()
	b := newBus(t, startNATS(t))
	srv := gateway(t, b)
	forged := `{"job":"kubeflow/forged-job","kind":"TFJob","uri":"s3://sluice/models/forged/","digest":"sha256:0000"}`
	for _, typ := range []string{events.TrainingModelExportedV1, events.DeadLetterV1, events.PipelineTaskSucceededV1, events.TrainingJobSucceededV1} {
		code, msg := publish(t, srv, "alice", ce("forged-1", "/sluice/training", typ), forged)
		require.Equal(t, http.StatusForbidden, code, typ)
		require.Contains(t, msg, "internal")
	}
	tfjob := func(ns string) string {
		return `{"apiVersion":"kubeflow.org/v1","kind":"TFJob","metadata":{"name":"j","namespace":"` + ns + `"}}`
	}
	code, msg := publish(t, srv, "alice", ce("req-victim", "/cli", events.TrainingJobRequestedV1), tfjob("victim-ns"))
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, msg, "victim-ns")
	// The same document in YAML (the services take either) is authorised in the namespace it names too.
	yamlHdr := ce("req-victim-yaml", "/cli", events.TrainingJobRequestedV1)
	yamlHdr["content-type"] = "application/yaml"
	code, msg = publish(t, srv, "alice", yamlHdr, "apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata:\n  name: j\n  namespace: victim-ns\n")
	require.Equal(t, http.StatusForbidden, code, "a YAML request is authorised in its metadata.namespace")
	require.Contains(t, msg, "victim-ns")
	code, _ = publish(t, srv, "alice", ce("req-a", "/cli", events.TrainingJobRequestedV1), tfjob("team-a"))
	require.Equal(t, http.StatusAccepted, code)
	// The service identity may publish internal types (services normally use NATS directly).
	code, _ = publish(t, srv, "service", ce("exported-1", "/sluice/training", events.TrainingModelExportedV1), `{"job":"team-a/j"}`)
	require.Equal(t, http.StatusAccepted, code)

	lines := tailLines(t, srv, "alice", "type="+events.TrainingJobRequestedV1, `"req-a"`, 1)
	require.Len(t, lines, 1)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &m))
	require.Equal(t, "alice", m["authid"], "the publisher is recorded (CloudEvents authcontext)")
	require.Equal(t, "user", m["authtype"])
	// victor (viewer of victim-ns only) sees no team-a event in the tail.
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+events.TailPath+"?all=true", nil)
	req.Header.Set("X-Test-As", "victor")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		require.NotContains(t, sc.Text(), "req-a", "a team-a event leaked to a caller without team-a")
	}
	resp.Body.Close()
}

// security/same-id-other-source: identity is source + id (CloudEvents 1.0), so two events with one id
// from two sources are both stored; the same source twice is a duplicate.
func TestSameIDOtherSourceIsADistinctEvent(t *testing.T) {
	t.Parallel()
	b := newBus(t, startNATS(t))
	srv := gateway(t, b)
	body := `{"run_name":"a1"}`
	for _, src := range []string{"/tenant/a", "/tenant/b", "/tenant/b"} {
		code, msg := publish(t, srv, "service", ce("shared-id-1", src, events.PipelineRunRequestedV1), body)
		require.Equal(t, http.StatusAccepted, code, msg)
	}
	lines := tailLines(t, srv, "service", "type="+events.PipelineRunRequestedV1, `"shared-id-1"`, 2)
	require.Len(t, lines, 2)
	s, err := b.JetStream().Stream(t.Context(), events.StreamPipeline)
	require.NoError(t, err)
	info, err := s.Info(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, 2, info.State.Msgs, "two distinct events, the repeat from /tenant/b dropped")
}

// security/tail-binary-data: an event with non-JSON data comes out of the tail as valid JSON with
// data_base64 (CloudEvents JSON format).
func TestTailWritesBinaryDataAsBase64(t *testing.T) {
	t.Parallel()
	b := newBus(t, startNATS(t))
	srv := gateway(t, b)
	code, msg := publish(t, srv, "service", map[string]string{"content-type": "application/cloudevents+json"},
		`{"specversion":"1.0","id":"tail-bin-1","source":"/test/a2","type":"io.sluice.pipeline.test.probe.v1","datacontenttype":"application/octet-stream","data_base64":"\u002B/8="}`)
	require.Equal(t, http.StatusAccepted, code, msg)
	code, msg = publish(t, srv, "service", map[string]string{"content-type": "application/cloudevents+json"},
		`{"specversion":"1.0","id":"tail-text-1","source":"/test/a2","type":"io.sluice.pipeline.test.probe.v1","datacontenttype":"text/plain","data":"héllo"}`)
	require.Equal(t, http.StatusAccepted, code, msg)
	lines := tailLines(t, srv, "service", "type=io.sluice.pipeline.test.*", `"/test/a2"`, 2)
	require.Len(t, lines, 2)
	for _, l := range lines {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "tail line is not JSON: %q", l)
		switch m["id"] {
		case "tail-bin-1":
			require.Equal(t, "+/8=", m["data_base64"])
			require.NotContains(t, m, "data")
		case "tail-text-1":
			require.Equal(t, "héllo", m["data"])
		}
	}
}

// The publisher of a request event is its authcontext: the gateway's authenticated caller replaces a
// forged authid, and a publish endpoint without a gateway in front (no identity) drops it, so an authid
// on the bus always names someone a gateway authenticated.
func TestPublisherIsWhoTheGatewayAuthenticated(t *testing.T) {
	t.Parallel()
	b := newBus(t, startNATS(t))
	srv := gateway(t, b)
	forged := func(id string) map[string]string {
		h := ce(id, "/cli", events.TrainingJobRequestedV1)
		h["ce-authtype"], h["ce-authid"] = "service_account", "mallory"
		return h
	}
	tfjob := `{"apiVersion":"kubeflow.org/v1","kind":"TFJob","metadata":{"name":"j","namespace":"team-a"}}`
	code, _ := publish(t, srv, "alice", forged("pub-alice"), tfjob)
	require.Equal(t, http.StatusAccepted, code)

	mux := http.NewServeMux()
	b.Routes(mux)
	bare := httptest.NewServer(mux)
	t.Cleanup(bare.Close)
	code, _ = publish(t, bare, "", forged("pub-nobody"), tfjob)
	require.Equal(t, http.StatusAccepted, code)

	for id, want := range map[string]string{"pub-alice": "alice", "pub-nobody": ""} {
		lines := tailLines(t, srv, "alice", "type="+events.TrainingJobRequestedV1, `"`+id+`"`, 1)
		require.Len(t, lines, 1, id)
		var ev events.Event
		require.NoError(t, json.Unmarshal([]byte(lines[0]), &ev), lines[0])
		got, ok := events.Publisher(ev)
		require.Equal(t, want != "", ok, "%s: %s", id, lines[0])
		require.Equal(t, want, got.Subject, id)
		require.False(t, got.Service, "%s: the forged authtype is gone", id)
		owner, _ := auth.PublisherFrom(events.WithPublisher(t.Context(), ev))
		require.Equal(t, want, owner.Subject, id)
	}
}

func TestWithPublisherIsNotAnAuthenticatedCaller(t *testing.T) {
	ev, err := events.New("/test", events.NotebookRequestedV1, "", nil)
	require.NoError(t, err)
	events.SetAuthContext(&ev, auth.Identity{Subject: auth.ServiceSubject("tuning"), Service: true})
	ctx := events.WithPublisher(t.Context(), ev)
	p, ok := auth.PublisherFrom(ctx)
	require.True(t, ok)
	require.Equal(t, auth.Identity{Subject: "system:service:tuning", Service: true}, p)
	_, ok = auth.FromContext(ctx)
	require.False(t, ok, "the publisher is not the caller of ctx")
	require.True(t, auth.Allowed(ctx, "kubeflow", auth.RoleOwner), "Allowed ignores the publisher (no gateway in ctx)")
	bare, err := events.New("/test", events.NotebookRequestedV1, "", nil)
	require.NoError(t, err)
	_, ok = auth.PublisherFrom(events.WithPublisher(t.Context(), bare))
	require.False(t, ok)
}

func TestNamespaceReadsJSONAndYAMLData(t *testing.T) {
	for _, c := range []struct{ ct, data, ext, want string }{
		{"application/json", `{"metadata":{"namespace":"a"}}`, "x", "a"},
		{"application/yaml", "metadata:\n  namespace: a\n", "x", "a"},
		{"text/yaml; charset=utf-8", "namespace: b\n", "", "b"},
		{"application/yaml", "kind: TFJob\n", "x", "x"},
		{"text/plain", "metadata:\n  namespace: a\n", "", events.DefaultNamespace},
	} {
		ev, err := events.New("/test", events.TrainingJobRequestedV1, "", nil)
		require.NoError(t, err)
		require.NoError(t, ev.SetData(c.ct, []byte(c.data)))
		if c.ext != "" {
			ev.SetExtension("namespace", c.ext)
		}
		require.Equal(t, c.want, events.Namespace(ev), "%s %q", c.ct, c.data)
	}
}
