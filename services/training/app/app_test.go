package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/app"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Run(m)) }

type env struct {
	t     testing.TB
	srv   *httptest.Server
	deps  *platform.Deps
	app   *app.App
	ns    string
	queue string
	mu    sync.Mutex
	evs   []events.Event
	store *artifacts.Store
}

func newEnv(t *testing.T) *env { return newBenchEnv(t) }

func newBenchEnv(t testing.TB) *env {
	t.Helper()
	return newEnvAt(t, t.TempDir(), "training-test-"+uuid.NewString()[:8])
}

// newEnvAt runs the service with data dir dataDir on task queue queue.
func newEnvAt(t testing.TB, dataDir, queue string) *env {
	t.Helper()
	return newEnvOn(t, dataDir, queue, "local")
}

// newEnvOn is newEnvAt on the runtime named kind (local, docker).
func newEnvOn(t testing.TB, dataDir, queue, kind string) *env {
	t.Helper()
	st := devstacktest.Stack(t)
	ctx := t.Context()
	bus, err := events.Connect(ctx, st.NATSURL, "training-app-test", nil)
	require.NoError(t, err)
	t.Cleanup(bus.Close)
	require.NoError(t, bus.EnsureStreams(ctx))
	tc, err := wf.Dial(ctx, wf.Config{HostPort: st.TemporalAddress, Namespace: st.Namespace}, nil)
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	store, err := artifacts.New(artifacts.Config{Endpoint: st.S3Endpoint, AccessKey: st.S3AccessKey, SecretKey: st.S3SecretKey, Bucket: st.S3Bucket, Region: st.S3Region})
	require.NoError(t, err)
	deps := &platform.Deps{Log: slog.New(slog.DiscardHandler), Bus: bus, Temporal: tc, Namespace: st.Namespace, Artifacts: store,
		DataDir: dataDir, RuntimeKind: kind, Getenv: func(k string) string {
			if k == "PATH" {
				return os.Getenv("PATH")
			}
			return ""
		}}
	cfg, err := app.ConfigFromEnv(deps.Getenv)
	require.NoError(t, err)
	cfg.HeartbeatTimeout = 2 * time.Second
	cfg.RestartBackoff = trainingv1.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}
	// Own task queue (replica logs and work dirs live in this env's
	// DataDir); the default durable is shared so no test replays another's
	// requests. The tests run one at a time: one consumer at once.
	cfg.TaskQueue = queue
	a, err := app.New(cfg, deps)
	require.NoError(t, err)
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() { _ = a.Close() })
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, deps: deps, app: a, ns: "t" + uuid.NewString()[:8], store: store, queue: queue}
	sub, err := bus.Conn().Subscribe("sluice.training.>", func(m *nats.Msg) {
		ev, err := events.Decode(context.Background(), m.Header, m.Data)
		if err != nil {
			return
		}
		e.mu.Lock()
		e.evs = append(e.evs, ev)
		e.mu.Unlock()
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return e
}

func (e *env) do(method, path, body string, out any) int {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, strings.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if s, ok := out.(*string); ok {
			*s = string(b)
		} else if resp.StatusCode/100 == 2 || resp.StatusCode == 400 {
			require.NoError(e.t, json.Unmarshal(b, out), string(b))
		}
	}
	return resp.StatusCode
}

func (e *env) get(name string, out any) int {
	return e.do(http.MethodGet, e.jobs()+"/"+name, "", out)
}

func (e *env) jobs() string { return "/apis/training/v1/namespaces/" + e.ns + "/jobs" }

func (e *env) waitState(name string, want trainingv1.JobConditionType) trainingv1.JobView {
	e.t.Helper()
	return e.waitStateWithin(name, want, 30*time.Second)
}

func (e *env) waitStateWithin(name string, want trainingv1.JobConditionType, within time.Duration) trainingv1.JobView {
	e.t.Helper()
	var v trainingv1.JobView
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if e.do(http.MethodGet, e.jobs()+"/"+name, "", &v) == 200 && v.State == want {
			return v
		}
		time.Sleep(25 * time.Millisecond)
	}
	e.t.Fatalf("job %s never reached %s: %+v", name, want, v)
	return v
}

func (e *env) waitEvent(typ, subject string) events.Event {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		for _, ev := range e.evs {
			if ev.Type() == typ && (subject == "" || ev.Subject() == subject) {
				e.mu.Unlock()
				return ev
			}
		}
		e.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("no %s event for %s", typ, subject)
	return events.Event{}
}

func job(name, ns, script string, extra string) string {
	meta := "name: " + name
	if ns != "" {
		meta += ", namespace: " + ns
	}
	return fmt.Sprintf(`apiVersion: kubeflow.org/v1
kind: TFJob
metadata: {%s}
spec:
  tfReplicaSpecs:
    Worker:
      template:
        spec:
          containers:
            - name: tensorflow
              image: busybox
              command: [sh, -c, %q]
%s`, meta, script, extra)
}

func TestRESTLifecycle(t *testing.T) {
	e := newEnv(t)

	var bad struct {
		Error  string `json:"error"`
		Errors []struct{ Field, Detail string }
	}
	doc := strings.Replace(job("bad", "", "true", ""), "name: tensorflow", "name: tf", 1)
	doc = strings.Replace(doc, "image: busybox", "", 1)
	require.Equal(t, 400, e.do(http.MethodPost, e.jobs(), doc, &bad))
	require.Len(t, bad.Errors, 2, bad.Error)
	require.Equal(t, "spec.tfReplicaSpecs.Worker.template.spec.containers[0].image", bad.Errors[0].Field)
	require.Equal(t, 404, e.do(http.MethodGet, e.jobs()+"/bad", "", nil), "nothing created for an invalid job")
	require.Equal(t, 400, e.do(http.MethodPost, e.jobs(), job("other", "elsewhere", "true", ""), &bad))
	require.Equal(t, "metadata.namespace", bad.Errors[0].Field)

	var created app.JobCreated
	require.Equal(t, 201, e.do(http.MethodPost, e.jobs(), job("hello", "", `echo "hello from $S3_BUCKET"; while [ ! -f go ]; do sleep 0.02; done`, ""), &created))
	require.Equal(t, e.ns, created.Namespace)
	require.Equal(t, 409, e.do(http.MethodPost, e.jobs(), job("hello", "", "true", ""), nil))
	e.waitState("hello", trainingv1.JobRunning)

	var live string
	require.Equal(t, 200, e.do(http.MethodGet, e.jobs()+"/hello/logs?replica=worker-0", "", &live))
	require.Equal(t, "hello from "+e.store.Bucket()+"\n", live, "a running replica's log is served from the local file")

	require.Equal(t, 202, e.do(http.MethodPost, e.jobs()+"/hello/suspend", "", nil))
	e.waitState("hello", trainingv1.JobSuspended)
	require.Equal(t, 202, e.do(http.MethodPost, e.jobs()+"/hello/resume", "", nil))
	v := e.waitState("hello", trainingv1.JobRunning)
	require.Equal(t, 2, v.Replicas[0].Attempt)
	workDir := e.deps.DataDir + "/training/work/" + e.ns + "/tfjob/hello/" + string(v.Job.Meta().UID) + "/worker-0"
	require.NoError(t, os.WriteFile(workDir+"/go", nil, 0o644))
	e.waitState("hello", trainingv1.JobSucceeded)

	var logs string
	require.Equal(t, 200, e.do(http.MethodGet, e.jobs()+"/hello/logs?replica=worker-0&attempt=1", "", &logs))
	require.Equal(t, "hello from "+e.store.Bucket()+"\n", logs)
	require.Equal(t, 400, e.do(http.MethodGet, e.jobs()+"/hello/logs?replica=ps-3", "", nil))

	var list app.JobList
	require.Eventually(t, func() bool {
		return e.do(http.MethodGet, e.jobs(), "", &list) == 200 && len(list.Jobs) == 1
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, "hello", list.Jobs[0].Name)

	require.Equal(t, 200, e.do(http.MethodDelete, e.jobs()+"/hello", "", nil))
	require.Equal(t, 404, e.do(http.MethodGet, e.jobs()+"/hello", "", nil))
	e.waitEvent(events.TrainingJobDeletedV1, "jobs/"+e.ns+"/tfjob/hello")
	require.Equal(t, 201, e.do(http.MethodPost, e.jobs(), job("hello", "", "true", ""), nil), "a deleted job's name can be reused")
	e.waitState("hello", trainingv1.JobSucceeded)
}

func TestRequestedEventIsIdempotent(t *testing.T) {
	e := newEnv(t)
	doc := job("evjob", e.ns, "true", "")
	ev := cloudevents.NewEvent()
	ev.SetID(uuid.NewString())
	ev.SetSource("/test")
	ev.SetType(events.TrainingJobRequestedV1)
	require.NoError(t, ev.SetData("application/yaml", []byte(doc)))
	require.NoError(t, e.deps.Bus.Publish(t.Context(), ev))
	e.waitState("evjob", trainingv1.JobSucceeded)
	desc, err := e.deps.Temporal.DescribeWorkflowExecution(t.Context(), trainingv1.WorkflowID(trainingv1.KindTFJob, e.ns, "evjob"), "")
	require.NoError(t, err)
	firstRun := desc.WorkflowExecutionInfo.Execution.RunId

	// A redelivery (or a re-publish past the stream's duplicate window)
	// reaches the consumer again: nothing new is created.
	dup := ev.Clone()
	require.NoError(t, e.deps.Bus.PublishOn(t.Context(), events.SubjectFor(events.TrainingJobRequestedV1), dup))
	require.NoError(t, e.app.HandleJobRequested(t.Context(), dup))
	desc, err = e.deps.Temporal.DescribeWorkflowExecution(t.Context(), trainingv1.WorkflowID(trainingv1.KindTFJob, e.ns, "evjob"), "")
	require.NoError(t, err)
	require.Equal(t, firstRun, desc.WorkflowExecutionInfo.Execution.RunId)

	// Another request for the same name is rejected.
	other := ev.Clone()
	other.SetID(uuid.NewString())
	err = e.app.HandleJobRequested(t.Context(), other)
	require.True(t, events.IsPermanent(err), "%v", err)
	rej := e.waitEvent(events.TrainingJobRejectedV1, "jobs/"+e.ns+"/tfjob/evjob")
	require.Contains(t, string(rej.Data()), "already exists")

	// An invalid document is rejected naming the field.
	bad := cloudevents.NewEvent()
	bad.SetID(uuid.NewString())
	bad.SetSource("/test")
	bad.SetType(events.TrainingJobRequestedV1)
	require.NoError(t, bad.SetData("application/json", map[string]any{"apiVersion": "kubeflow.org/v1", "kind": "TFJob",
		"metadata": map[string]any{"name": "neg", "namespace": e.ns},
		"spec": map[string]any{"tfReplicaSpecs": map[string]any{"Worker": map[string]any{"replicas": -1,
			"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "tensorflow", "image": "x"}}}}}}}}))
	require.NoError(t, e.deps.Bus.Publish(t.Context(), bad))
	rej = e.waitEvent(events.TrainingJobRejectedV1, "requests/"+bad.ID())
	require.Contains(t, string(rej.Data()), "spec.tfReplicaSpecs.Worker.replicas: must be \\u003e= 0")
}

func TestModelExportedOnSuccess(t *testing.T) {
	e := newEnv(t)
	prefix := "training-test/" + e.ns + "/export"
	model, err := e.store.Put(t.Context(), prefix+"/1/model.onnx", bytes.NewReader([]byte("onnx-bytes")), 10)
	require.NoError(t, err)
	metrics := []byte(`{"accuracy":0.93,"steps":600}`)
	_, err = e.store.Put(t.Context(), prefix+"/1/metrics.json", bytes.NewReader(metrics), int64(len(metrics)))
	require.NoError(t, err)
	extra := fmt.Sprintf("              env: [{name: exportDir, value: %q}]\n", e.store.URI(prefix))
	require.Equal(t, 201, e.do(http.MethodPost, e.jobs(), job("export", "", "true", extra), nil))
	ev := e.waitEvent(events.TrainingModelExportedV1, "jobs/"+e.ns+"/tfjob/export")
	var me trainingv1.ModelExported
	require.NoError(t, ev.DataAs(&me))
	require.Equal(t, e.ns+"/export", me.Job)
	require.Equal(t, e.store.URI(prefix+"/1"), me.URI)
	require.Equal(t, model.Digest, me.Digest)
	require.InDelta(t, 0.93, me.Metrics["accuracy"], 1e-9)
	require.Eventually(t, func() bool {
		var v trainingv1.JobView
		return e.do(http.MethodGet, e.jobs()+"/export", "", &v) == 200 && v.ModelURI == me.URI
	}, 10*time.Second, 50*time.Millisecond)
}

// A job-deletion request event deletes a running job as DELETE does (replicas stopped, job.deleted,
// GET 404); a repeated deletion of the gone job is a no-op; the job request replayed after the deletion
// creates nothing (its id already created a job); a malformed deletion request is dead-lettered.
func TestDeletionRequestedEvent(t *testing.T) {
	e := newEnv(t)
	req := cloudevents.NewEvent()
	req.SetID(uuid.NewString())
	req.SetSource("/test")
	req.SetType(events.TrainingJobRequestedV1)
	require.NoError(t, req.SetData("application/yaml", []byte(job("deljob", e.ns, "sleep 600", ""))))
	require.NoError(t, e.deps.Bus.Publish(t.Context(), req))
	e.waitState("deljob", trainingv1.JobRunning)

	del, err := events.New("/test", events.TrainingJobDeletionRequestedV1, "jobs/"+e.ns+"/tfjob/deljob",
		trainingv1.JobDeletionRequest{Kind: "tfjob", Namespace: e.ns, Name: "deljob"})
	require.NoError(t, err)
	require.NoError(t, e.deps.Bus.Publish(t.Context(), del))
	e.waitEvent(events.TrainingJobDeletedV1, "jobs/"+e.ns+"/tfjob/deljob")
	require.Eventually(t, func() bool { return e.do(http.MethodGet, e.jobs()+"/deljob", "", nil) == 404 }, 30*time.Second, 20*time.Millisecond)

	require.NoError(t, e.app.HandleRequest(t.Context(), del), "deleting a gone job is a no-op")
	require.NoError(t, e.app.HandleRequest(t.Context(), req), "the request that created the deleted job is a duplicate")
	require.Equal(t, 404, e.do(http.MethodGet, e.jobs()+"/deljob", "", nil), "no second job from a replayed request")

	bad, err := events.New("/test", events.TrainingJobDeletionRequestedV1, "", trainingv1.JobDeletionRequest{Kind: "MPIJob", Name: "x"})
	require.NoError(t, err)
	err = e.app.HandleRequest(t.Context(), bad)
	require.True(t, events.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "namespace: is required")
	require.ErrorContains(t, err, `kind: "MPIJob" is not a job kind`)
}

// TestRequestedEventOwner: a job requested by an event carrying the authcontext the event gateway sets
// (events.SetAuthContext) is owned (SluiceOwner) by its publisher; one without authcontext by nobody.
func TestRequestedEventOwner(t *testing.T) {
	e := newEnv(t)
	owner := func(name string) (string, bool) {
		t.Helper()
		var v string
		var ok bool
		require.Eventually(t, func() bool {
			var err error
			v, ok, err = wf.KeywordOf(t.Context(), e.deps.Temporal, trainingv1.WorkflowID(trainingv1.KindTFJob, e.ns, name), wf.SAOwner)
			return err == nil
		}, 60*time.Second, 100*time.Millisecond, "job %s never started", name)
		return v, ok
	}
	publish := func(name string, id *auth.Identity) {
		t.Helper()
		ev := cloudevents.NewEvent()
		ev.SetID(uuid.NewString())
		ev.SetSource("/test")
		ev.SetType(events.TrainingJobRequestedV1)
		require.NoError(t, ev.SetData("application/yaml", []byte(job(name, e.ns, "true", ""))))
		if id != nil {
			events.SetAuthContext(&ev, *id)
		}
		require.NoError(t, e.deps.Bus.Publish(t.Context(), ev))
	}
	publish("owned", &auth.Identity{Subject: "carl"})
	publish("unowned", nil)
	got, ok := owner("owned")
	require.True(t, ok)
	require.Equal(t, "carl", got)
	got, ok = owner("unowned")
	require.False(t, ok, "no authcontext, no owner; got %q", got)
}

// TestRequestedEventNamespace: a requested job is created in the namespace the event gateway authorised
// its publisher in (events.Namespace): a document naming none lands in the event's namespace extension,
// and one naming another namespace than events.Namespace is rejected.
func TestRequestedEventNamespace(t *testing.T) {
	e := newEnv(t)
	ev := cloudevents.NewEvent()
	ev.SetID(uuid.NewString())
	ev.SetSource("/test")
	ev.SetType(events.TrainingJobRequestedV1)
	require.NoError(t, ev.SetData("application/yaml", []byte(job("extns", "", "true", ""))))
	ev.SetExtension("namespace", e.ns)
	require.NoError(t, e.deps.Bus.Publish(t.Context(), ev))
	e.waitState("extns", trainingv1.JobSucceeded)

	bad := cloudevents.NewEvent()
	bad.SetID(uuid.NewString())
	bad.SetSource("/test")
	bad.SetType(events.TrainingJobRequestedV1)
	// text/plain: events.Namespace cannot read the document, so the request was authorised in "default".
	require.NoError(t, bad.SetData("text/plain", []byte(job("elsewhere", e.ns, "true", ""))))
	err := e.app.HandleJobRequested(t.Context(), bad)
	require.True(t, events.IsPermanent(err), "%v", err)
	require.ErrorContains(t, err, "metadata.namespace")
}
