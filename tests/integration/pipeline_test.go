package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const runRequestedType = "io.sluice.pipeline.run.requested.v1"

// runRequest is the data of io.sluice.pipeline.run.requested.v1 (services/pipelines/api/pipelinesv1.RunRequest),
// written here by hand: the suite speaks the wire contract, not a Sluice client.
type runRequest struct {
	RunName      string         `json:"run_name,omitempty"`
	Spec         string         `json:"spec"`
	Parameters   map[string]any `json:"parameters,omitempty"`
	DisableCache bool           `json:"disable_cache,omitempty"`
}

type artifact struct {
	Name   string `json:"name"`
	URI    string `json:"uri"`
	Digest string `json:"digest"`
}

type taskState struct {
	Path     string `json:"path"`
	Name     string `json:"name"`
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	Outputs  *struct {
		Artifacts map[string]artifact `json:"artifacts"`
	} `json:"outputs"`
}

type runDetail struct {
	RunID string      `json:"run_id"`
	State string      `json:"state"`
	Error string      `json:"error"`
	Tasks []taskState `json:"tasks"`
}

func (r runDetail) task(path string) *taskState {
	for i := range r.Tasks {
		if r.Tasks[i].Path == path {
			return &r.Tasks[i]
		}
	}
	return nil
}

func seedSpec(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "pipelines", "download_and_join.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func seedRequest(t testing.TB, name string) runRequest {
	return runRequest{
		RunName: name, Spec: seedSpec(t), DisableCache: true,
		Parameters: map[string]any{"url1": st.textsURL + "/shakespeare1.txt", "url2": st.textsURL + "/shakespeare2.txt"},
	}
}

// slowSpec has a first step that runs for a while (so a fault can hit it) and writes a unique marker,
// and a second step that copies it.
const slowSpec = `apiVersion: sluice.io/v1
kind: Pipeline
metadata:
  name: integration-slow
spec:
  inputs:
    marker: {type: STRING, default: x}
  tasks:
    slow:
      image: sluice-local/step:dev
      command: [sh, -c, 'sleep 8; mkdir -p "$(dirname "$1")"; echo "$0 $(date +%s%N) $$" > "$1"']
      args: ["{{inputs.marker}}", "{{outputs.data}}"]
      inputs:
        marker: {fromInput: marker}
      outputs:
        artifacts:
          data: {type: system.Dataset}
      retry: {maxRetries: 5, backoff: 1s}
    copy:
      image: sluice-local/step:dev
      command: [sh, -c, 'mkdir -p "$(dirname "$1")"; cat "$0" > "$1"']
      args: ["{{inputs.text}}", "{{outputs.copy}}"]
      inputs:
        text: {fromTask: slow.data}
      outputs:
        artifacts:
          copy: {type: system.Dataset}
      retry: {maxRetries: 5, backoff: 1s}
`

func newID(kind string) string { return "it-" + kind + "-" + randomSuffix() + randomSuffix() }

func connectNATS(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	// Right after a restart NATS may still be recovering its streams: retry until it takes clients.
	var nc *nats.Conn
	waitFor(t, 2*time.Minute, "NATS to accept a client", func() (bool, string) {
		var err error
		// As the event gateway's NATS user: it may publish request types and read the streams.
		nc, err = nats.Connect("nats://"+st.endpoint(t, "nats", "4222/tcp"), nats.Timeout(10*time.Second),
			nats.UserInfo("gateway", natsPasswords["gateway"]))
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// publishRunRequest publishes a CloudEvent in binary mode straight onto the stream: ce-* headers,
// Nats-Msg-Id = CE id (as docs/wire-contracts and deploy/streams.md define it).
func publishRunRequest(t testing.TB, js jetstream.JetStream, id string, req runRequest) {
	t.Helper()
	msg := buildRunRequest(t, id, req)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
}

// buildRunRequest is the NATS message of a run request CloudEvent with id.
func buildRunRequest(t testing.TB, id string, req runRequest) *nats.Msg {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("sluice.pipeline.run.requested.v1")
	msg.Header.Set("ce-specversion", "1.0")
	msg.Header.Set("ce-id", id)
	msg.Header.Set("ce-type", runRequestedType)
	msg.Header.Set("ce-source", "/tests/integration")
	msg.Header.Set("ce-subject", "runs/"+id)
	msg.Header.Set("ce-time", time.Now().UTC().Format(time.RFC3339Nano))
	msg.Header.Set("content-type", "application/json")
	msg.Header.Set(jetstream.MsgIDHeader, id)
	msg.Data = body
	return msg
}

func getRun(t testing.TB, id string) (runDetail, error) {
	var r runDetail
	_, err := getJSON(st.url(t, "pipelines")+"/apis/v1/runs/"+url.PathEscape(id), &r)
	return r, err
}

// waitRun waits until the run is finished and requires it to have succeeded.
func waitRun(t testing.TB, id string, d time.Duration) runDetail {
	t.Helper()
	var r runDetail
	waitFor(t, d, "run "+id+" to finish", func() (bool, string) {
		var err error
		r, err = getRun(t, id)
		if err != nil {
			return false, err.Error()
		}
		return r.State == "SUCCEEDED" || r.State == "FAILED" || r.State == "CANCELED", r.State
	})
	if r.State != "SUCCEEDED" {
		t.Fatalf("run %s: %s: %s (tasks %+v)", id, r.State, r.Error, r.Tasks)
	}
	return r
}

// waitTaskRunning waits until the run's task is running (its step process started).
func waitTaskRunning(t testing.TB, id, task string) {
	t.Helper()
	waitFor(t, 3*time.Minute, "task "+task+" of run "+id+" to run", func() (bool, string) {
		r, err := getRun(t, id)
		if err != nil {
			return false, err.Error()
		}
		if ts := r.task(task); ts != nil {
			return ts.State == "RUNNING", ts.State
		}
		return false, r.State
	})
}

func s3Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(st.endpoint(t, "s3", "9000/tcp"), &minio.Options{Creds: credentials.NewStaticV4(s3Access, s3Secret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// readS3 reads an s3://bucket/key URI and returns its content and "sha256:<hex>".
func readS3(t testing.TB, mc *minio.Client, uri string) ([]byte, string) {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "s3" {
		t.Fatalf("artifact URI %q is not s3://bucket/key", uri)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	obj, err := mc.GetObject(ctx, u.Host, strings.TrimPrefix(u.Path, "/"), minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get %s: %v", uri, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read %s: %v", uri, err)
	}
	sum := sha256.Sum256(b)
	return b, "sha256:" + hex.EncodeToString(sum[:])
}

// checkOutputs requires every output artifact of every task to be in S3 with the digest the run reports.
func checkOutputs(t testing.TB, r runDetail) map[string][]byte {
	t.Helper()
	mc := s3Client(t)
	contents := map[string][]byte{}
	for _, ts := range r.Tasks {
		if ts.Outputs == nil {
			continue
		}
		for name, a := range ts.Outputs.Artifacts {
			b, digest := readS3(t, mc, a.URI)
			if a.Digest != digest {
				t.Errorf("task %s output %s (%s): run reports digest %s, S3 holds %s", ts.Path, name, a.URI, a.Digest, digest)
			}
			contents[ts.Path+"."+name] = b
		}
	}
	return contents
}

type mlmdArtifact struct {
	ID     int64  `json:"id"`
	Type   string `json:"type"`
	URI    string `json:"uri"`
	Custom map[string]struct {
		StringValue string `json:"string_value"`
	} `json:"custom_properties"`
}

type mlmdExecution struct {
	ID    int64  `json:"id"`
	Type  string `json:"type"`
	Name  string `json:"name"`
	State string `json:"last_known_state"`
}

type mlmdEvent struct {
	ArtifactID  int64  `json:"artifact_id"`
	ExecutionID int64  `json:"execution_id"`
	Type        string `json:"type"`
}

// lineageComplete reports whether the metadata service holds the run's lineage exactly once: per
// task one execution <run>/<task> COMPLETE, per output one artifact with its digest and one OUTPUT
// event from that execution, and the upstream lineage of every output reaching its producer.
func lineageComplete(t testing.TB, r runDetail) (bool, string) {
	base := st.url(t, "metadata") + "/apis/metadata/v1"
	for _, ts := range r.Tasks {
		var ex struct {
			Executions []mlmdExecution `json:"executions"`
		}
		if _, err := getJSON(base+"/executions?name="+url.QueryEscape(r.RunID+"/"+ts.Path), &ex); err != nil {
			return false, err.Error()
		}
		if len(ex.Executions) != 1 || ex.Executions[0].State != "COMPLETE" {
			return false, fmt.Sprintf("task %s: executions %+v, want one COMPLETE", ts.Path, ex.Executions)
		}
		if ts.Outputs == nil {
			continue
		}
		for name, a := range ts.Outputs.Artifacts {
			var as struct {
				Artifacts []mlmdArtifact `json:"artifacts"`
			}
			if _, err := getJSON(base+"/artifacts?uri="+url.QueryEscape(a.URI), &as); err != nil {
				return false, err.Error()
			}
			if len(as.Artifacts) != 1 {
				return false, fmt.Sprintf("output %s.%s: %d artifacts with URI %s, want 1", ts.Path, name, len(as.Artifacts), a.URI)
			}
			if d := as.Artifacts[0].Custom["digest"].StringValue; d != a.Digest {
				return false, fmt.Sprintf("output %s.%s: metadata digest %q, run digest %q", ts.Path, name, d, a.Digest)
			}
			var evs struct {
				Events []mlmdEvent `json:"events"`
			}
			if _, err := getJSON(fmt.Sprintf("%s/artifacts/%d/events", base, as.Artifacts[0].ID), &evs); err != nil {
				return false, err.Error()
			}
			outputs := 0
			for _, e := range evs.Events {
				if e.Type == "OUTPUT" {
					outputs++
					if e.ExecutionID != ex.Executions[0].ID {
						return false, fmt.Sprintf("output %s.%s written by execution %d, want %d", ts.Path, name, e.ExecutionID, ex.Executions[0].ID)
					}
				}
			}
			if outputs != 1 {
				return false, fmt.Sprintf("output %s.%s: %d OUTPUT events, want 1", ts.Path, name, outputs)
			}
			var g struct {
				Executions []mlmdExecution `json:"executions"`
			}
			if _, err := getJSON(base+"/lineage?direction=upstream&artifact_uri="+url.QueryEscape(a.URI), &g); err != nil {
				return false, err.Error()
			}
			found := false
			for _, e := range g.Executions {
				found = found || e.Name == r.RunID+"/"+ts.Path
			}
			if !found {
				return false, fmt.Sprintf("lineage of %s does not reach its producer %s/%s", a.URI, r.RunID, ts.Path)
			}
		}
	}
	return true, ""
}

func waitLineage(t testing.TB, r runDetail) {
	t.Helper()
	waitFor(t, 3*time.Minute, "lineage of run "+r.RunID, func() (bool, string) { return lineageComplete(t, r) })
}

// taskSucceededCounts counts io.sluice.pipeline.task.succeeded.v1 events per task path of a run on
// the SLUICE_PIPELINE stream (read with an ephemeral ordered consumer).
func taskSucceededCounts(t testing.TB, js jetstream.JetStream, runID string) map[string]int {
	t.Helper()
	return streamCounts(t, js, "SLUICE_PIPELINE", []string{"sluice.pipeline.task.succeeded.v1"}, func(data []byte) string {
		var ev struct {
			RunID    string `json:"run_id"`
			TaskPath string `json:"task_path"`
		}
		if json.Unmarshal(data, &ev) == nil && ev.RunID == runID {
			return ev.TaskPath
		}
		return ""
	})
}

func waitReady(t testing.TB, alias string) {
	t.Helper()
	waitFor(t, 3*time.Minute, alias+" /readyz", func() (bool, string) {
		_, err := getJSON(st.url(t, alias)+"/readyz", nil)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// a. A CloudEvent published straight to NATS starts the seed pipeline in the pipelines container;
// the outputs are in S3 with matching digests and the metadata container serves their lineage.
func TestSeedPipelineFromNATSEvent(t *testing.T) {
	_, js := connectNATS(t)
	id := newID("seed")
	publishRunRequest(t, js, id, seedRequest(t, "integration seed"))
	r := waitRun(t, id, 5*time.Minute)
	contents := checkOutputs(t, r)
	joined := string(contents["join.joined"])
	for _, f := range []string{"shakespeare1.txt", "shakespeare2.txt"} {
		want, err := os.ReadFile(filepath.Join("..", "..", "examples", "pipelines", "texts", f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(joined, strings.TrimSpace(string(want))) {
			t.Errorf("joined output %q lacks %s", joined, f)
		}
	}
	waitLineage(t, r)
}

// b. The metadata container is down for a whole run: the run succeeds; once metadata is back it
// catches up from its durable consumers and the lineage is complete, nothing lost or duplicated.
func TestMetadataDownDuringRunCatchesUp(t *testing.T) {
	_, js := connectNATS(t)
	st.stop(t, "metadata")
	restarted := false
	defer func() {
		if !restarted {
			st.start(t, "metadata")
		}
	}()
	id := newID("metadata-down")
	publishRunRequest(t, js, id, seedRequest(t, "integration metadata down"))
	r := waitRun(t, id, 5*time.Minute)
	checkOutputs(t, r)
	st.start(t, "metadata")
	restarted = true
	waitReady(t, "metadata")
	waitLineage(t, r)
}

// c. The pipelines container is killed (SIGKILL) while a step runs and started again: the run
// completes and every step's outputs were written once.
func TestPipelinesKilledMidRun(t *testing.T) {
	_, js := connectNATS(t)
	id := newID("pipelines-kill")
	publishRunRequest(t, js, id, runRequest{RunName: "integration kill", Spec: slowSpec, Parameters: map[string]any{"marker": id}, DisableCache: true})
	waitTaskRunning(t, id, "slow")
	st.kill(t, "pipelines")
	st.start(t, "pipelines")
	r := waitRun(t, id, 5*time.Minute)
	contents := checkOutputs(t, r)
	if got, want := string(contents["copy.copy"]), string(contents["slow.data"]); got != want || !strings.HasPrefix(got, id+" ") {
		t.Errorf("copy %q, slow %q: want one marker line starting with %s, copied unchanged", got, want, id)
	}
	for task, n := range taskSucceededCounts(t, js, id) {
		if n != 1 {
			t.Errorf("task %s succeeded %d times, want once", task, n)
		}
	}
	if c := taskSucceededCounts(t, js, id); len(c) != 2 {
		t.Errorf("task.succeeded events per task %v, want slow and copy once each", c)
	}
	waitLineage(t, r)
}

// e. NATS is stopped and started again (JetStream data on its volume): the services reconnect by
// themselves and neither the event published before nor the one published after is lost.
func TestNATSRestartLosesNothing(t *testing.T) {
	nc, js := connectNATS(t)
	before := newID("nats-before")
	publishRunRequest(t, js, before, seedRequest(t, "integration before NATS restart"))
	nc.Close()
	st.stop(t, "nats")
	st.start(t, "nats")
	_, js = connectNATS(t)
	after := newID("nats-after")
	publishRunRequest(t, js, after, seedRequest(t, "integration after NATS restart"))
	for _, id := range []string{before, after} {
		r := waitRun(t, id, 5*time.Minute)
		checkOutputs(t, r)
		waitLineage(t, r)
	}
	for _, svc := range []string{"pipelines", "metadata", "training", "serving", "notebooks"} {
		waitReady(t, svc)
	}
}

// f. The Temporal container is restarted while a step runs: the run completes.
func TestTemporalRestartMidRun(t *testing.T) {
	_, js := connectNATS(t)
	id := newID("temporal-restart")
	publishRunRequest(t, js, id, runRequest{RunName: "integration temporal restart", Spec: slowSpec, Parameters: map[string]any{"marker": id}, DisableCache: true})
	waitTaskRunning(t, id, "slow")
	st.stop(t, "temporal")
	st.start(t, "temporal")
	r := waitRun(t, id, 5*time.Minute)
	checkOutputs(t, r)
	waitLineage(t, r)
}
