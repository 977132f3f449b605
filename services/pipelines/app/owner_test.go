package app_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
)

// startedOwner waits until workflow id exists and returns its SluiceOwner search attribute (ok false
// when the workflow carries none).
func startedOwner(t *testing.T, c client.Client, id string) (owner string, ok bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		var err error
		owner, ok, err = wf.KeywordOf(t.Context(), c, id, wf.SAOwner)
		var nf *serviceerror.NotFound
		if err != nil {
			require.ErrorAs(t, err, &nf, "describe %s", id)
		}
		return err == nil
	}, 60*time.Second, 100*time.Millisecond, "workflow %s never started", id)
	return owner, ok
}

// TestRunRequestedEventOwner: a run requested by an event published through the authenticated event
// gateway is owned (SluiceOwner) by the publisher the gateway authenticated, whatever authcontext the
// caller put in the event; a request published on the bus without authcontext starts a run with no owner.
func TestRunRequestedEventOwner(t *testing.T) {
	f := newNSFixture(t)
	gw := httptest.NewServer(platform.NewHandler(platform.HandlerConfig{Registry: platform.NewRegistry(), Guard: f.deps.Guard()},
		platform.EventsGateway{Bus: f.deps.Bus}))
	t.Cleanup(gw.Close)

	ev, err := events.New("/test", events.PipelineRunRequestedV1, "", pipelinesv1.RunRequest{Spec: tiny, Namespace: f.a})
	require.NoError(t, err)
	ev.SetExtension("authtype", "user")
	ev.SetExtension("authid", "mallory") // forged: the gateway replaces it with who it authenticated
	body, err := json.Marshal(ev)
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(t.Context(), "POST", gw.URL+events.PublishPath, strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("Authorization", "Bearer "+f.tokens["contributor"])
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	owner, ok := startedOwner(t, f.deps.Temporal, ev.ID())
	require.True(t, ok, "the run requested through the gateway has an owner")
	require.Equal(t, "carl", owner, "the owner is the publisher the gateway authenticated")

	// No authcontext (published on the bus directly, as a service without one would): no owner.
	bare, err := events.New("/test", events.PipelineRunRequestedV1, "", pipelinesv1.RunRequest{Spec: tiny, Namespace: f.a})
	require.NoError(t, err)
	require.NoError(t, f.deps.Bus.Publish(t.Context(), bare))
	owner, ok = startedOwner(t, f.deps.Temporal, bare.ID())
	require.False(t, ok, "a run requested without authcontext has no owner, got %q", owner)
}
