package command

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
)

// The tensorboard verbs send the Kubeflow document and the token to the notebooks service's paths and
// print its answers. The server here is a recording stand-in: the service itself is tested in
// services/notebooks/app (TestTensorboardS3ScalarsAPI).
func TestTensorboardVerbs(t *testing.T) {
	type call struct{ method, path, auth, body string }
	var mu sync.Mutex
	var calls []call
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, call{r.Method, r.URL.Path, r.Header.Get("Authorization"), string(b)})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.Method {
		case http.MethodPost:
			var tb notebooksv1.Tensorboard
			_ = json.Unmarshal(b, &tb)
			tb.Status.URL = notebooksv1.TensorboardPathPrefix(tb.Metadata.Namespace, tb.Metadata.Name)
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(tb)
		case http.MethodGet:
			_ = json.NewEncoder(w).Encode(notebooksv1.TensorboardList{Items: []notebooksv1.Tensorboard{{
				Metadata: notebooksv1.ObjectMeta{Name: "mnist", Namespace: "team-a"},
				Spec:     notebooksv1.TensorboardSpec{LogsPath: "s3://sluice/logs"},
				Status: notebooksv1.TensorboardStatus{ReadyReplicas: 1, URL: "/tensorboard/team-a/mnist/",
					Conditions: []notebooksv1.TensorboardCondition{{DeploymentState: "Progressing"}, {DeploymentState: "Available"}}},
			}}})
		case http.MethodDelete:
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte(`{}`))
		}
	}))
	t.Cleanup(srv.Close)
	run := func(args ...string) string {
		t.Helper()
		var out, errw bytes.Buffer
		root := NewRoot(&out, &errw)
		root.SetArgs(append([]string{"--server", srv.URL}, args...))
		if err := root.Execute(); err != nil {
			t.Fatalf("sluice %s: %v (%s)", strings.Join(args, " "), err, errw.String())
		}
		return out.String()
	}
	tok := "--token=token-for-team-a-0123456789"
	out := run("tensorboard", "create", "mnist", "--logspath", "s3://sluice/logs", "-n", "team-a", tok)
	if want := "tensorboard team-a/mnist created: " + srv.URL + "/tensorboard/team-a/mnist/\n"; out != want {
		t.Fatalf("create printed %q, want %q", out, want)
	}
	out = run("tb", "list", "-n", "team-a", tok)
	if !strings.Contains(out, "mnist  Available  1/1    s3://sluice/logs  "+srv.URL+"/tensorboard/team-a/mnist/") {
		t.Fatalf("list printed:\n%s", out)
	}
	run("tensorboard", "delete", "mnist", "-n", "team-a", tok)

	if len(calls) != 3 {
		t.Fatalf("calls: %+v", calls)
	}
	base := "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/team-a/tensorboards"
	var doc map[string]any
	if err := json.Unmarshal([]byte(calls[0].body), &doc); err != nil {
		t.Fatal(err)
	}
	if calls[0].method != "POST" || calls[0].path != base || calls[0].auth != "Bearer token-for-team-a-0123456789" ||
		doc["apiVersion"] != "tensorboard.kubeflow.org/v1alpha1" || doc["kind"] != "Tensorboard" ||
		doc["spec"].(map[string]any)["logspath"] != "s3://sluice/logs" {
		t.Fatalf("create sent %+v", calls[0])
	}
	if calls[1].method != "GET" || calls[1].path != base || calls[2].method != "DELETE" || calls[2].path != base+"/mnist" {
		t.Fatalf("list/delete sent %+v", calls[1:])
	}

	var errw bytes.Buffer
	root := NewRoot(io.Discard, &errw)
	root.SetArgs([]string{"--server", srv.URL, "tensorboard", "create", "x", tok})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "--logspath is required") {
		t.Fatalf("create without --logspath: %v", err)
	}
}
