package command

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	commonpb "go.temporal.io/api/common/v1"
	enums "go.temporal.io/api/enums/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/events"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	pipelinesapp "github.com/sluice-ml/sluice/services/pipelines/app"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// uiPipeline is download-and-join with steps that need no network: download1 fails its first attempt
// (so its retry shows as a second step bar after a backoff timer), and a loop runs in a child workflow.
const uiPipeline = `apiVersion: sluice.io/v1
kind: Pipeline
metadata: {name: download-and-join}
spec:
  inputs:
    marker: {type: STRING}
  tasks:
    download1:
      image: alpine:3.20
      command: [sh, -c, 'if [ ! -e "$0" ]; then : > "$0"; exit 3; fi; mkdir -p "$(dirname "$1")" && echo one > "$1"']
      args: ["{{inputs.marker}}", "{{outputs.data}}"]
      inputs: {marker: {fromInput: marker}}
      outputs: {artifacts: {data: {type: system.Dataset}}}
      retry: {maxRetries: 2, backoff: 1s}
    download2:
      image: alpine:3.20
      command: [sh, -c, 'mkdir -p "$(dirname "$0")" && echo two > "$0"']
      args: ["{{outputs.data}}"]
      outputs: {artifacts: {data: {type: system.Dataset}}}
    join:
      image: alpine:3.20
      command: [sh, -c, 'cat "$0" "$1"']
      args: ["{{inputs.a}}", "{{inputs.b}}"]
      inputs: {a: {fromTask: download1.data}, b: {fromTask: download2.data}}
    square:
      forEach: {items: [1, 2, 3], as: n, type: NUMBER_INTEGER}
      image: alpine:3.20
      command: [sh, -c, 'echo $(( $0 * $0 ))']
      args: ["{{inputs.n}}"]
      dependsOn: [join]
`

const uiTFJob = `apiVersion: kubeflow.org/v1
kind: TFJob
metadata: {name: mnist-train, namespace: default}
spec:
  tfReplicaSpecs:
    Worker:
      replicas: 2
      restartPolicy: Never
      template:
        spec:
          containers:
            - name: tensorflow
              image: busybox
              command: [/bin/sh, -c, 'echo "$TF_CONFIG"']  # the harness's getenv gives replicas no host PATH
`

// TestRunAndJobReadableInTemporalUI (issue 20) starts a pipeline run and a TFJob on `sluice dev`'s stack
// and checks, through the Temporal API, what the Temporal Web UI shows of them: each workflow's summary,
// details and search attributes, a summary on every activity, timer and child workflow, and list queries
// by pipeline name and job kind; `run get` and `jobs get` print the workflows' UI links. With chromium it
// opens the run in the Temporal UI and takes a screenshot of its timeline (written to docs/images when
// SLUICE_UPDATE_SCREENSHOTS=1).
func TestRunAndJobReadableInTemporalUI(t *testing.T) {
	st := devstacktest.Stack(t)
	t.Setenv("SLUICE_TEMPORAL_UI_URL", st.TemporalUIURL)
	base, token := startDevPlatform(t)
	ctx := t.Context()
	o := &Options{Server: base, Token: token, Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}
	tc, err := wf.Dial(ctx, wf.Config{HostPort: st.TemporalAddress, Namespace: st.Namespace}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)

	// The run.
	marker := filepath.Join(t.TempDir(), "download1-failed-once")
	var created pipelinesapp.RunCreated
	if err := o.client().do(ctx, http.MethodPost, "/apis/v1/runs", nil, map[string]any{"spec": uiPipeline, "run_name": "temporal-ui",
		"parameters": map[string]any{"marker": marker}}, &created); err != nil {
		t.Fatal(err)
	}
	// The job.
	if err := o.client().do(ctx, http.MethodPost, "/apis/training/v1/namespaces/default/jobs", http.Header{"Content-Type": {"application/yaml"}},
		strings.NewReader(uiTFJob), nil); err != nil {
		t.Fatal(err)
	}
	waitUntilUI(t, "run succeeded", 3*time.Minute, func() (bool, error) {
		d, err := o.getRun(ctx, created.RunID)
		if d.State == "FAILED" {
			return false, fmt.Errorf("run failed: %s", d.Error)
		}
		return err == nil && d.State == "SUCCEEDED", err
	})
	jobID := trainingv1.WorkflowID("TFJob", "default", "mnist-train")
	waitUntilUI(t, "job succeeded", 3*time.Minute, func() (bool, error) {
		v, err := o.getJob(ctx, "TFJob", "default", "mnist-train")
		if err == nil && v.State == trainingv1.JobFailed {
			var log bytes.Buffer
			_ = o.client().do(ctx, http.MethodGet, "/apis/training/v1/namespaces/default/jobs/mnist-train/logs?replica=mnist-train-worker-0", nil, nil, &log)
			return false, fmt.Errorf("run failed: job failed: %+v; worker-0 log:\n%s", v.Replicas, log.String())
		}
		if err == nil && v.State != trainingv1.JobSucceeded {
			err = fmt.Errorf("state %q, replicas %+v", v.State, v.Replicas)
		}
		return err == nil, err
	})

	// Run workflow: summary, details, search attributes.
	desc := describeWorkflowUI(t, tc, created.RunID)
	if got, want := desc.summary, `download-and-join · run "temporal-ui"`; !strings.HasPrefix(got, want) {
		t.Errorf("run summary %q, want prefix %q", got, want)
	}
	if !strings.Contains(desc.details, "**Parameter marker:**") || !strings.Contains(desc.details, "/ui/runs/"+created.RunID) {
		t.Errorf("run details lack the parameter or the dashboard link:\n%s", desc.details)
	}
	for k, want := range map[string]string{"SluiceKind": "PipelineRun", "SluicePipeline": "download-and-join", "SluiceRunName": "temporal-ui",
		"SluiceNamespace": "default", "SluicePhase": "SUCCEEDED"} {
		if got := desc.attrs[k]; got != want {
			t.Errorf("run search attribute %s = %q, want %q", k, got, want)
		}
	}
	if created.Experiment != "" && desc.attrs["SluiceExperiment"] != created.Experiment {
		t.Errorf("SluiceExperiment = %q, want %q", desc.attrs["SluiceExperiment"], created.Experiment)
	}
	// Every activity, timer and child workflow of the run has a summary; the step bars name their task and attempt.
	sums := eventSummariesUI(t, tc, created.RunID)
	for _, want := range []string{"step download1 (attempt 1)", "step download1 (attempt 2)", "backoff 1s before attempt 2 of step download1",
		"step download2 (attempt 1)", "step join (attempt 1)", "loop square batch 1/1", "event " + events.PipelineRunStartedV1} {
		if !slices.ContainsFunc(sums, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("no activity, timer or child workflow summarised %q; summaries: %q", want, sums)
		}
	}
	child := eventSummariesUI(t, tc, created.RunID+"/square/batch-0")
	if !slices.ContainsFunc(child, func(s string) bool {
		return strings.HasPrefix(s, "step square/0 (attempt 1)") || strings.HasPrefix(s, "steps square/0")
	}) {
		t.Errorf("the loop batch's steps are not summarised: %q", child)
	}

	// Job workflow.
	jd := describeWorkflowUI(t, tc, jobID)
	if jd.summary != "TFJob default/mnist-train" {
		t.Errorf("job summary %q", jd.summary)
	}
	if !strings.Contains(jd.details, "Replicas Worker") {
		t.Errorf("job details lack the replicas:\n%s", jd.details)
	}
	for k, want := range map[string]string{"SluiceKind": "TFJob", "SluiceJobName": "mnist-train", "SluiceNamespace": "default", "SluicePhase": "Succeeded"} {
		if got := jd.attrs[k]; got != want {
			t.Errorf("job search attribute %s = %q, want %q", k, got, want)
		}
	}
	js := eventSummariesUI(t, tc, jobID)
	for _, want := range []string{"replica mnist-train-worker-0 start (attempt 1)", "replica mnist-train-worker-1 start (attempt 1)", "event " + events.TrainingJobCreatedV1} {
		if !slices.Contains(js, want) {
			t.Errorf("no job activity summarised %q; summaries: %q", want, js)
		}
	}

	// List queries the README documents.
	for q, want := range map[string]string{
		`SluicePipeline = "download-and-join" AND SluiceKind = "PipelineRun"`:                created.RunID,
		`SluicePipeline = "download-and-join" AND ExecutionStatus = "Completed"`:             created.RunID,
		`SluiceKind = "TFJob" AND SluiceNamespace = "default" AND SluicePhase = "Succeeded"`: jobID,
	} {
		waitUntilUI(t, "list "+q, time.Minute, func() (bool, error) {
			resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: st.Namespace, Query: q})
			if err != nil {
				return false, err
			}
			return slices.ContainsFunc(resp.GetExecutions(), func(e *workflowpb.WorkflowExecutionInfo) bool { return e.GetExecution().GetWorkflowId() == want }), nil
		})
	}

	// The CLI prints the UI links.
	var out bytes.Buffer
	root := NewRoot(&out, &out)
	root.SetArgs([]string{"--server", base, "--api-token", token, "run", "get", created.RunID})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	runLink := wf.UIWorkflowURL(st.TemporalUIURL, st.Namespace, created.RunID)
	if !strings.Contains(out.String(), "Temporal UI: "+runLink) {
		t.Errorf("run get does not print %s:\n%s", runLink, out.String())
	}
	out.Reset()
	root = NewRoot(&out, &out)
	root.SetArgs([]string{"--server", base, "--api-token", token, "jobs", "get", "tfjob/mnist-train"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if link := wf.UIWorkflowURL(st.TemporalUIURL, st.Namespace, jobID); !strings.Contains(out.String(), "Temporal UI: "+link) {
		t.Errorf("jobs get does not print %s:\n%s", link, out.String())
	}

	// The run's timeline in the Temporal UI.
	b := newBrowser(t)
	b.do("open the run in the Temporal UI", chromedp.Navigate(runLink))
	b.waitFor("run page", `document.body.textContent.includes('download-and-join · run')`, 2*time.Minute)
	b.waitFor("timeline with step summaries", `document.body.textContent.includes('step join (attempt 1)') && document.body.textContent.includes('step download1 (attempt 2)')`, time.Minute)
	// The timeline sits below the input and result panes: scroll it to the top of the view.
	_ = eval[bool](b, `(() => { const h = Array.from(document.querySelectorAll('h2, h3')).find(e => e.textContent.includes('Event History'));
		if (h) { h.scrollIntoView({block: 'start'}); } return !!h; })()`)
	b.shot("temporal-ui-run")
	if os.Getenv("SLUICE_UPDATE_SCREENSHOTS") == "1" {
		png, err := os.ReadFile(filepath.Join(b.out, "temporal-ui-run.png"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "..", "docs", "images", "temporal-ui-run.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type describedUI struct {
	summary, details string
	attrs            map[string]string
}

// describeWorkflowUI reads a workflow's user metadata and Keyword search attributes (lists joined with ",").
func describeWorkflowUI(t *testing.T, tc client.Client, id string) describedUI {
	t.Helper()
	resp, err := tc.DescribeWorkflowExecution(t.Context(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	md := resp.GetExecutionConfig().GetUserMetadata()
	d := describedUI{summary: payloadStringUI(t, md.GetSummary()), details: payloadStringUI(t, md.GetDetails()), attrs: map[string]string{}}
	for k, p := range resp.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields() {
		var s string
		if converter.GetDefaultDataConverter().FromPayload(p, &s) != nil {
			var l []string
			_ = converter.GetDefaultDataConverter().FromPayload(p, &l)
			s = strings.Join(l, ",")
		}
		d.attrs[k] = s
	}
	return d
}

// eventSummariesUI returns the summary of every activity, timer and child workflow in a workflow's history,
// failing the test for one without.
func eventSummariesUI(t *testing.T, tc client.Client, id string) []string {
	t.Helper()
	var out []string
	it := tc.GetWorkflowHistory(t.Context(), id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		switch ev.GetEventType() {
		case enums.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, enums.EVENT_TYPE_TIMER_STARTED, enums.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
			s := payloadStringUI(t, userMetadataUI(ev).GetSummary())
			if s == "" {
				t.Errorf("%s: event %d (%s) has no summary", id, ev.GetEventId(), ev.GetEventType())
			}
			out = append(out, s)
		}
	}
	return out
}

func userMetadataUI(ev interface{ GetUserMetadata() *sdkpb.UserMetadata }) *sdkpb.UserMetadata {
	return ev.GetUserMetadata()
}

func payloadStringUI(t *testing.T, p *commonpb.Payload) string {
	t.Helper()
	if p == nil {
		return ""
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		t.Fatalf("user metadata payload: %v", err)
	}
	return s
}

// waitUntilUI polls cond every 200 ms until it is true, failing the test after d or on an error that
// cond marks final by returning it with ok=false from a state that cannot change (a failed run).
func waitUntilUI(t *testing.T, what string, d time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		if err != nil && strings.HasPrefix(err.Error(), "run failed") {
			t.Fatalf("%s: %v", what, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s (last error %v)", what, d, last)
		}
		select {
		case <-t.Context().Done():
			t.Fatal(context.Cause(t.Context()))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
