package trainingclient_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/training/api/trainingclient"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// Calls to /jobs/{name} carry ?kind= (kind-qualified ids); answers other than 2xx are *Error with the
// service's "error" message.
func TestKindQualifiedCallsAndErrors(t *testing.T) {
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Method+" "+r.URL.RequestURI())
		switch {
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid TFJob \"a\": spec.tfReplicaSpecs.Worker.replicas: must be >= 0"}`))
		case r.URL.Path == "/apis/training/v1/namespaces/ns/jobs/gone":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"training: job not found"}`))
		case r.URL.Path == "/apis/training/v1/namespaces/ns/jobs/a/logs":
			_, _ = w.Write([]byte("loss=1\n"))
		default:
			_ = json.NewEncoder(w).Encode(trainingv1.JobView{Kind: "PyTorchJob", Namespace: "ns", Name: "a", State: trainingv1.JobRunning})
		}
	}))
	defer srv.Close()
	c := &trainingclient.Client{BaseURL: srv.URL + "/"}
	ctx := t.Context()

	err := c.Create(ctx, "ns", "a", []byte(`{}`))
	require.True(t, trainingclient.IsInvalid(err), "%v", err)
	require.ErrorContains(t, err, "spec.tfReplicaSpecs.Worker.replicas: must be >= 0")
	v, err := c.Get(ctx, trainingv1.KindPyTorchJob, "ns", "a")
	require.NoError(t, err)
	require.Equal(t, trainingv1.JobRunning, v.State)
	require.True(t, trainingclient.IsNotFound(c.Delete(ctx, trainingv1.KindTFJob, "ns", "gone")))
	log, err := c.Logs(ctx, trainingv1.KindTFJob, "ns", "a", "worker-0")
	require.NoError(t, err)
	require.Equal(t, "loss=1\n", string(log))
	_, err = c.Get(ctx, "", "ns", "a")
	require.NoError(t, err)
	require.Equal(t, []string{
		"POST /apis/training/v1/namespaces/ns/jobs",
		"GET /apis/training/v1/namespaces/ns/jobs/a?kind=PyTorchJob",
		"DELETE /apis/training/v1/namespaces/ns/jobs/gone?kind=TFJob",
		"GET /apis/training/v1/namespaces/ns/jobs/a/logs?kind=TFJob&replica=worker-0",
		"GET /apis/training/v1/namespaces/ns/jobs/a",
	}, seen)
}
