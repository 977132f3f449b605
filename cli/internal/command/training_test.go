package command

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// The jobs verbs name a job as NAME, KIND/NAME or with --kind, sending
// ?kind= (the kind is part of a job's identity); `jobs get --watch` prints
// the replicas' final states once the job has finished (the PS its
// cleanPodPolicy stops shows Terminated, not Running). The server is a
// recording stand-in: the service is tested in services/training/app
// (TestTFJobAndPyTorchJobShareAName).
func TestJobsVerbsKindAndFinalWatchTable(t *testing.T) {
	var mu sync.Mutex
	var queries []string
	gets := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		queries = append(queries, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodGet {
			_, _ = w.Write([]byte(`{}`))
			return
		}
		gets++
		ps := trainingv1.ReplicaRunning
		if gets > 2 {
			ps = trainingv1.ReplicaTerminated
		}
		v := trainingv1.JobView{Kind: "PyTorchJob", Namespace: "default", Name: "twin", State: trainingv1.JobSucceeded,
			Replicas: []trainingv1.ReplicaView{{Name: "twin-ps-0", Type: trainingv1.ReplicaTypePS, State: ps, Attempt: 1},
				{Name: "twin-worker-0", Type: trainingv1.ReplicaTypeWorker, State: trainingv1.ReplicaSucceeded, Attempt: 1}}}
		_ = json.NewEncoder(w).Encode(v)
	}))
	t.Cleanup(srv.Close)
	run := func(args ...string) (string, error) {
		var out, errw bytes.Buffer
		root := NewRoot(&out, &errw)
		root.SetArgs(append([]string{"--server", srv.URL}, args...))
		err := root.Execute()
		return out.String(), err
	}
	out, err := run("jobs", "get", "pytorchjob/twin", "--watch")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "Running") || !strings.Contains(out, "Terminated") {
		t.Fatalf("final watch table shows a stopped replica as Running:\n%s", out)
	}
	if _, err := run("jobs", "delete", "twin", "--kind", "tfjob"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("jobs", "logs", "TFJob/twin", "-r", "worker-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("jobs", "get", "mpijob/twin"); err == nil {
		t.Fatal("an unknown kind is refused")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"GET /apis/training/v1/namespaces/default/jobs/twin?kind=PyTorchJob",
		"DELETE /apis/training/v1/namespaces/default/jobs/twin?kind=TFJob",
		"GET /apis/training/v1/namespaces/default/jobs/twin/logs?kind=TFJob&replica=worker-0"}
	for _, w := range want {
		found := false
		for _, q := range queries {
			found = found || q == w
		}
		if !found {
			t.Errorf("no request %q in %v", w, queries)
		}
	}
}
