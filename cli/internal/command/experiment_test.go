package command

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
)

// The experiment verbs send the Katib document to the tuning service's paths; create --watch redraws
// the trial table until the experiment succeeds. The server here is a recording stand-in: the service
// itself is tested end to end in services/tuning/app (TestExperimentEndToEnd).
func TestExperimentVerbs(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	gets := 0
	view := func(done bool) tuningv1.ExperimentView {
		v := tuningv1.ExperimentView{Experiment: tuningv1.Experiment{Metadata: tuningv1.ObjectMeta{Name: "lr", Namespace: "team-a"},
			Spec: tuningv1.ExperimentSpec{Algorithm: &tuningv1.AlgorithmSpec{AlgorithmName: "tpe"}}}}
		v.Status.Conditions = []tuningv1.Condition{{Type: "Created", Status: "True"}, {Type: "Running", Status: "True"}}
		tr := tuningv1.Trial{Name: "lr-0a1b2c3d", ParameterAssignments: []tuningv1.ParameterAssignment{{Name: "lr", Value: "0.01"}},
			Conditions: []tuningv1.Condition{{Type: "Running", Status: "True"}}}
		if done {
			v.Status.Conditions = append(v.Status.Conditions[:1], tuningv1.Condition{Type: "Running", Status: "False"},
				tuningv1.Condition{Type: "Succeeded", Status: "True", Reason: tuningv1.ReasonExperimentMaxTrialsReached, Message: "max trial count has reached"})
			tr.Conditions = append(tr.Conditions, tuningv1.Condition{Type: "Succeeded", Status: "True"})
			tr.Observation.Metrics = []tuningv1.Metric{{Name: "loss", Min: "0.1", Max: "0.3", Latest: "0.1"}}
			v.Status.CurrentOptimalTrial = &tuningv1.OptimalTrial{BestTrialName: tr.Name, ParameterAssignments: tr.ParameterAssignments, Observation: tr.Observation}
		}
		v.TrialsView = []tuningv1.Trial{tr}
		return v
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, r.Method+" "+r.URL.Path)
		switch {
		case r.Method == http.MethodPost:
			if !strings.Contains(string(b), "kind: Experiment") {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(view(false).Experiment)
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/experiments"):
			_ = json.NewEncoder(w).Encode(tuningv1.ExperimentList{Items: []tuningv1.Experiment{view(true).Experiment}})
		case r.Method == http.MethodGet:
			gets++
			_ = json.NewEncoder(w).Encode(view(gets > 1))
		case r.Method == http.MethodDelete:
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
	f := filepath.Join(t.TempDir(), "exp.yaml")
	if err := os.WriteFile(f, []byte("apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nmetadata: {name: lr, namespace: team-a}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run("experiment", "create", "-f", f, "--watch")
	for _, want := range []string{"experiment team-a/lr created", "lr-0a1b2c3d  Running", "lr-0a1b2c3d  Succeeded  lr=0.01",
		"ExperimentMaxTrialsReached: max trial count has reached", "Optimal trial lr-0a1b2c3d: lr=0.01  loss=0.1"} {
		if !strings.Contains(out, want) {
			t.Errorf("create --watch output lacks %q:\n%s", want, out)
		}
	}
	if out := run("experiment", "list", "-n", "team-a"); !strings.Contains(out, "lr    Succeeded  tpe") {
		t.Errorf("list:\n%s", out)
	}
	run("experiment", "delete", "lr", "-n", "team-a")
	mu.Lock()
	defer mu.Unlock()
	want := []string{"POST /apis/tuning/v1/namespaces/team-a/experiments", "GET /apis/tuning/v1/namespaces/team-a/experiments/lr"}
	for _, w := range want {
		found := false
		for _, p := range paths {
			found = found || p == w
		}
		if !found {
			t.Errorf("no request %s in %v", w, paths)
		}
	}
	if paths[len(paths)-1] != "DELETE /apis/tuning/v1/namespaces/team-a/experiments/lr" {
		t.Errorf("last request %s", paths[len(paths)-1])
	}
}
