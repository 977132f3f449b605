package command

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	metadataapp "github.com/sluice-ml/sluice/services/metadata/app"
)

// metadataServer hosts the real metadata service (SQLite in a temp dir) and records a small
// pipeline through its REST API: two downloads each writing a dataset, a join reading both.
func metadataServer(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	svc, err := metadataapp.Build(ctx, &platform.Deps{DataDir: t.TempDir(), Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	mux := http.NewServeMux()
	svc.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	key := func(k string) *metadatav1.EventPath {
		return &metadatav1.EventPath{Steps: []metadatav1.Step{metadatav1.KeyStep(k)}}
	}
	ctxs := []metadatav1.Context{{Type: "system.Pipeline", Name: "quickstart"}, {Type: "system.PipelineRun", Name: "r1"}}
	post := func(req metadatav1.PutExecutionRequest) metadatav1.PutExecutionResponse {
		var out metadatav1.PutExecutionResponse
		if err := (&Options{Server: srv.URL}).client().do(ctx, http.MethodPost, metadatav1.PathPrefix+"/executions", nil, req, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	var parts []int64
	for _, n := range []string{"a", "b"} {
		res := post(metadatav1.PutExecutionRequest{
			Execution: metadatav1.Execution{Type: "system.ContainerExecution", Name: "r1/download-" + n, ExternalID: "r1/download-" + n, LastKnownState: metadatav1.ExecutionComplete},
			ArtifactEventPairs: []metadatav1.ArtifactAndEvent{{
				Artifact: &metadatav1.Artifact{Type: "system.Dataset", URI: "s3://sluice/r1/download-" + n + "/data", ExternalID: "s3://sluice/r1/download-" + n + "/data", State: metadatav1.ArtifactLive,
					CustomProperties: map[string]metadatav1.Value{"digest": metadatav1.String("sha256:0123456789abcdef0123")}},
				Event: &metadatav1.Event{Type: metadatav1.EventOutput, Path: key("data")},
			}},
			Contexts: ctxs,
		})
		parts = append(parts, res.ArtifactIDs[0])
	}
	post(metadatav1.PutExecutionRequest{
		Execution: metadatav1.Execution{Type: "system.ContainerExecution", Name: "r1/join", ExternalID: "r1/join", LastKnownState: metadatav1.ExecutionComplete},
		ArtifactEventPairs: []metadatav1.ArtifactAndEvent{
			{Event: &metadatav1.Event{ArtifactID: parts[0], Type: metadatav1.EventInput, Path: key("left")}},
			{Event: &metadatav1.Event{ArtifactID: parts[1], Type: metadatav1.EventInput, Path: key("right")}},
			{Artifact: &metadatav1.Artifact{Type: "system.Dataset", URI: "s3://sluice/r1/join/joined", ExternalID: "s3://sluice/r1/join/joined", State: metadatav1.ArtifactLive},
				Event: &metadatav1.Event{Type: metadatav1.EventOutput, Path: key("joined")}},
		},
		Contexts: ctxs,
	})
	return srv.URL
}

func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errw bytes.Buffer
	code := Execute(args, &out, &errw)
	return out.String() + errw.String(), code
}

func TestLineageCommand(t *testing.T) {
	url := metadataServer(t)
	out, code := run(t, "--server", url, "lineage", "s3://sluice/r1/join/joined", "--up")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{
		"artifact 3  system.Dataset  s3://sluice/r1/join/joined  LIVE",
		"← execution 3  system.ContainerExecution  r1/join  COMPLETE  (output joined)",
		"← artifact 1  system.Dataset  s3://sluice/r1/download-a/data  LIVE  sha256:0123456789ab…  (input left)",
		"← execution 1  system.ContainerExecution  r1/download-a  COMPLETE  (output data)",
		"← execution 2  system.ContainerExecution  r1/download-b  COMPLETE  (output data)",
		"system.Pipeline  quickstart",
		"system.PipelineRun  r1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tree lacks %q:\n%s", want, out)
		}
	}
	t.Log("\n" + out)
	if strings.Contains(out, "downstream:") {
		t.Errorf("--up printed downstream:\n%s", out)
	}

	out, code = run(t, "--server", url, "lineage", "1", "--down", "--format", "dot")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{"digraph lineage {", "a1 -> e3 [label=\"left\"];", "e3 -> a3 [label=\"joined\"];"} {
		if !strings.Contains(out, want) {
			t.Errorf("dot lacks %q:\n%s", want, out)
		}
	}

	out, code = run(t, "--server", url, "lineage", "s3://sluice/r1/join/joined", "--format", "json", "--hops", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var g metadatav1.LineageGraph
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(g.Executions) != 1 || len(g.Artifacts) != 3 {
		t.Errorf("2 hops: got %d executions, %d artifacts", len(g.Executions), len(g.Artifacts))
	}

	if out, code = run(t, "--server", url, "lineage", "s3://nope"); code != 1 || !strings.Contains(out, "no artifact s3://nope") {
		t.Errorf("unknown artifact: exit %d: %s", code, out)
	}
	if out, code = run(t, "--server", url, "lineage", "1", "--format", "svg"); code != 2 || !strings.Contains(out, "--format") {
		t.Errorf("bad format: exit %d: %s", code, out)
	}
}

func TestArtifactsAndExecutionsList(t *testing.T) {
	url := metadataServer(t)
	out, code := run(t, "--server", url, "artifacts", "list", "--uri", "s3://sluice/r1/download-b/data")
	if code != 0 || !strings.Contains(out, "s3://sluice/r1/download-b/data") || strings.Contains(out, "download-a") {
		t.Errorf("artifacts list --uri: exit %d:\n%s", code, out)
	}
	out, code = run(t, "--server", url, "artifacts", "list", "--type", "system.Dataset", "--limit", "2")
	if code != 0 || strings.Count(out, "system.Dataset") != 2 {
		t.Errorf("artifacts list --limit 2: exit %d:\n%s", code, out)
	}
	out, code = run(t, "--server", url, "executions", "list", "--state", "complete", "--format", "json")
	var page metadatav1.ListExecutionsResponse
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Executions) != 3 {
		t.Errorf("executions list: exit %d:\n%s", code, out)
	}
	out, code = run(t, "--server", url, "executions", "list", "--state", "bogus")
	if code != 2 || !strings.Contains(out, "state") {
		t.Errorf("bad state: exit %d: %s", code, out)
	}
}
