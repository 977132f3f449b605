package command

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	pipelinesapp "github.com/sluice-ml/sluice/services/pipelines/app"
)

// Case pipelines/cli-param-json-coercion: `-p v=VALUE` for a STRING input sends exactly VALUE (not its
// JSON reading); typed inputs are converted by their declared type.
func TestCasePipelineRunParamsFollowDeclaredTypes(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req pipelinesv1.RunRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, req.Parameters)
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(pipelinesapp.RunCreated{RunID: "r", Pipeline: "p"})
	}))
	t.Cleanup(srv.Close)
	file := "../../../services/pipelines/testdata/cases/pipelines/cli-param-json-coercion/pipeline.yaml"
	for _, v := range []string{"123", "true", `"quoted"`, "null", "", "a=b=c", "[1, 2]"} {
		var out, errw bytes.Buffer
		root := NewRoot(&out, &errw)
		root.SetArgs([]string{"--server", srv.URL, "pipeline", "run", file, "-p", "v=" + v})
		if err := root.Execute(); err != nil {
			t.Fatalf("-p v=%s: %v (%s)", v, err, errw.String())
		}
		mu.Lock()
		last := got[len(got)-1]["v"]
		mu.Unlock()
		if last != v {
			t.Errorf("-p v=%s sent %#v, want the exact string %q", v, last, v)
		}
	}
}

func TestTypedParameters(t *testing.T) {
	src := []byte(`apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: typed}
spec:
  inputs:
    s: {type: STRING}
    i: {type: NUMBER_INTEGER}
    d: {type: NUMBER_DOUBLE}
    b: {type: BOOLEAN}
    l: {type: LIST}
    m: {type: STRUCT}
  tasks:
    t: {image: alpine, command: [sh, -c, 'true']}
`)
	got, err := pipelinesapp.TypedParameters(src, map[string]string{"s": "007", "i": "7", "d": "0.5", "b": "true", "l": `[1,"a"]`, "m": `{"k":1}`})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"b":true,"d":0.5,"i":7,"l":[1,"a"],"m":{"k":1},"s":"007"}`
	if b, _ := json.Marshal(got); string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	if _, err := pipelinesapp.TypedParameters(src, map[string]string{"i": "seven"}); err == nil || !bytes.Contains([]byte(err.Error()), []byte("parameter i (NUMBER_INTEGER)")) {
		t.Fatalf("want an error naming the parameter and its type, got %v", err)
	}
}

func TestRecurringRunVerbsUseTheKFPShapedAPI(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls = append(calls, r.Method+" "+r.URL.Path)
		mu.Unlock()
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		_ = json.NewEncoder(w).Encode(pipelinesapp.RecurringRun{ID: "recurring-1", Status: pipelinesapp.RecurringDisabled})
	}))
	t.Cleanup(srv.Close)
	for _, args := range [][]string{{"disable", "recurring-1"}, {"enable", "recurring-1"}, {"delete", "recurring-1"}} {
		var out, errw bytes.Buffer
		root := NewRoot(&out, &errw)
		root.SetArgs(append([]string{"--server", srv.URL, "recurring-run"}, args...))
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	want := []string{"POST /apis/v1/recurringruns/recurring-1:disable", "POST /apis/v1/recurringruns/recurring-1:enable", "DELETE /apis/v1/recurringruns/recurring-1"}
	if fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Fatalf("calls %v, want %v", calls, want)
	}
}

// TestNamespaceFlags: -n/--namespace reaches the API as KFP v2 does (namespace query parameter on lists,
// the namespace field of run, recurring run and pipeline bodies), as the training and notebook verbs' -n.
func TestNamespaceFlags(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body struct {
			Namespace string `json:"namespace"`
			Run       struct {
				Namespace string `json:"namespace"`
			} `json:"run"`
		}
		_ = json.Unmarshal(b, &body)
		mu.Lock()
		calls = append(calls, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+body.Namespace+body.Run.Namespace))
		mu.Unlock()
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/apis/v1/runs":
			_ = json.NewEncoder(w).Encode(pipelinesapp.RunCreated{RunID: "r1", Namespace: body.Namespace})
		case r.URL.Path == "/apis/metadata/v1/lineage":
			_, _ = io.WriteString(w, `{"artifacts":[{"id":1,"uri":"s3://b/k"}]}`)
		default:
			_, _ = io.WriteString(w, `{}`)
		}
	}))
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(file, []byte("apiVersion: sluice.io/v1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  tasks:\n    t: {image: alpine, command: [sh, -c, 'true']}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"pipeline", "run", file, "-n", "team-a"},
		{"pipeline", "upload", file, "--namespace", "team-a"},
		{"pipeline", "list", "-n", "team-a"},
		{"run", "list", "-n", "team-a"},
		{"recurring-run", "create", file, "--cron", "@every 1h", "-n", "team-a"},
		{"recurring-run", "list", "-n", "team-a"},
		{"artifacts", "list", "-n", "team-a"},
		{"executions", "list", "-n", "team-a"},
		{"lineage", "1", "-n", "team-a", "--format", "json"},
	} {
		var out, errw bytes.Buffer
		root := NewRoot(&out, &errw)
		root.SetArgs(append([]string{"--server", srv.URL}, args...))
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v (%s)", args, err, errw.String())
		}
	}
	want := []string{
		"POST /apis/v1/runs team-a",
		"POST /apis/v1/pipelines team-a",
		"GET /apis/v1/pipelines?namespace=team-a",
		"GET /apis/v1/runs?namespace=team-a",
		"POST /apis/v1/recurringruns team-a",
		"GET /apis/v1/recurringruns?namespace=team-a",
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != len(want)+3 || fmt.Sprint(calls[:len(want)]) != fmt.Sprint(want) {
		t.Fatalf("calls %q, want %q", calls, want)
	}
	for _, c := range calls[len(want):] {
		if !strings.Contains(c, "namespace=team-a") {
			t.Errorf("%s: no namespace=team-a", c)
		}
	}
}

// `run cancel` of a run that already ended says so (the API answers a cancel of an ended run idempotently, as
// KFP does) and does not claim to be cancelling; a running run is cancelled through the API.
func TestRunCancelSaysWhenTheRunAlreadyEnded(t *testing.T) {
	var mu sync.Mutex
	state := pipelinesv1.RunSucceeded
	var cancels int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodPost {
			cancels++
			w.WriteHeader(http.StatusOK)
			return
		}
		var d pipelinesapp.RunDetail
		d.RunID, d.State = "r1", state
		_ = json.NewEncoder(w).Encode(d)
	}))
	t.Cleanup(srv.Close)
	run := func() string {
		var out, errw bytes.Buffer
		root := NewRoot(&out, &errw)
		root.SetArgs([]string{"--server", srv.URL, "run", "cancel", "r1"})
		if err := root.Execute(); err != nil {
			t.Fatalf("run cancel: %v (%s)", err, errw.String())
		}
		return out.String()
	}
	if got := run(); got != "run r1 already ended (SUCCEEDED); nothing to cancel\n" || cancels != 0 {
		t.Fatalf("ended run: printed %q, %d cancel calls", got, cancels)
	}
	mu.Lock()
	state = pipelinesv1.RunRunning
	mu.Unlock()
	if got := run(); got != "run r1 cancelling\n" || cancels != 1 {
		t.Fatalf("running run: printed %q, %d cancel calls", got, cancels)
	}
}

// `sluice pipeline run FILE -a name=uri` sends the pipeline's input artifacts by URI (input_artifacts);
// a flag without name=uri is a usage error.
func TestPipelineRunSendsInputArtifacts(t *testing.T) {
	var got pipelinesv1.RunRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
		_ = json.NewEncoder(w).Encode(pipelinesapp.RunCreated{RunID: "r", Pipeline: "p"})
	}))
	t.Cleanup(srv.Close)
	file := "../../../services/pipelines/testdata/cases/kfp/root-input-artifact/pipeline.yaml"
	var out, errw bytes.Buffer
	root := NewRoot(&out, &errw)
	root.SetArgs([]string{"--server", srv.URL, "pipeline", "run", file, "-a", "data=s3://sluice/in/data.txt"})
	if err := root.Execute(); err != nil {
		t.Fatalf("%v (%s)", err, errw.String())
	}
	if got.InputArtifacts["data"] != "s3://sluice/in/data.txt" || len(got.InputArtifacts) != 1 {
		t.Fatalf("input_artifacts sent: %v", got.InputArtifacts)
	}
	root = NewRoot(&out, &errw)
	root.SetArgs([]string{"--server", srv.URL, "pipeline", "run", file, "-a", "data"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "want name=s3://bucket/key") {
		t.Fatalf("-a data: %v", err)
	}
}
