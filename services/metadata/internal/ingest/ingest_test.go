package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/events"
	v1 "github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	"github.com/sluice-ml/sluice/services/metadata/internal/ingest"
	"github.com/sluice-ml/sluice/services/metadata/internal/metastore"
	"github.com/sluice-ml/sluice/services/metadata/internal/metastore/metastoretest"
	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// startNATS runs a real in-process JetStream server with a file store in a temp dir.
func startNATS(t testing.TB) *events.Bus {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true}
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second))
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	b, err := events.Connect(context.Background(), s.ClientURL(), "metadata-test", nil)
	require.NoError(t, err)
	t.Cleanup(b.Close)
	require.NoError(t, b.EnsureStreams(context.Background()))
	return b
}

func newEvent(t testing.TB, typ, subject string, data any) events.Event {
	t.Helper()
	ev, err := events.New("/sluice/test", typ, subject, data)
	require.NoError(t, err)
	return ev
}

// publishTwice stores ev twice in its stream (two messages with the same CE id; the second
// bypasses the stream's duplicate window with another message id), so the consumer is
// delivered every event twice.
func publishTwice(t testing.TB, bus *events.Bus, ev events.Event) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, bus.Publish(ctx, ev))
	msg, err := events.Encode(ctx, &ev, events.SubjectFor(ev.Type()))
	require.NoError(t, err)
	_, err = bus.JetStream().PublishMsg(ctx, msg, jetstream.WithMsgID(ev.ID()+"#again"))
	require.NoError(t, err)
}

// drain waits until every durable of prefix has acknowledged everything in its stream.
func drain(t testing.TB, bus *events.Bus, prefix string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, cfg := range ingest.Consumers(prefix) {
		for {
			info, err := bus.JetStream().Consumer(context.Background(), cfg.Stream, cfg.Durable)
			require.NoError(t, err)
			ci, err := info.Info(context.Background())
			require.NoError(t, err)
			if ci.NumPending == 0 && ci.NumAckPending == 0 && ci.NumRedelivered == 0 {
				break
			}
			require.True(t, time.Now().Before(deadline), "consumer %s not drained: %+v", cfg.Durable, ci)
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func startConsumers(t testing.TB, bus *events.Bus, s *metastore.Store, prefix string) {
	t.Helper()
	subs, err := ingest.New(s, nil).Start(context.Background(), bus, prefix)
	require.NoError(t, err)
	t.Cleanup(func() {
		for _, sub := range subs {
			sub.Stop()
		}
	})
}

type counts struct {
	Artifacts, Executions, Contexts, Events, Attributions, Sources int
	States                                                         map[string]string
}

// snapshot counts every record through the repository API, plus the association/attribution
// rows and execution states, so two snapshots are equal only if nothing changed.
func snapshot(t testing.TB, s *metastore.Store) counts {
	t.Helper()
	ctx := context.Background()
	arts, err := s.ListArtifacts(ctx, mlmd.ListRequest{PageSize: mlmd.MaxPageSize})
	require.NoError(t, err)
	execs, err := s.ListExecutions(ctx, mlmd.ListRequest{PageSize: mlmd.MaxPageSize})
	require.NoError(t, err)
	ctxs, err := s.ListContexts(ctx, mlmd.ListRequest{PageSize: mlmd.MaxPageSize})
	require.NoError(t, err)
	c := counts{Artifacts: len(arts.Items), Executions: len(execs.Items), Contexts: len(ctxs.Items), States: map[string]string{}}
	var ids []int64
	for _, e := range execs.Items {
		ids = append(ids, e.ID)
		c.States[e.Name] = string(e.LastKnownState)
	}
	evs, err := s.GetEventsByExecutionIDs(ctx, ids)
	require.NoError(t, err)
	c.Events = len(evs)
	for _, cx := range ctxs.Items {
		in, err := s.ListArtifacts(ctx, mlmd.ListRequest{PageSize: mlmd.MaxPageSize, Filter: mlmd.Filter{ContextID: cx.ID}})
		require.NoError(t, err)
		c.Attributions += len(in.Items)
	}
	n, err := s.IngestedCount(ctx)
	require.NoError(t, err)
	c.Sources = int(n)
	return c
}

// quickstart returns the events of one run of a quickstart-like pipeline: two download tasks
// each writing a dataset, a join task reading both (its "parts" list input) and writing the
// joined dataset; then a training job exporting a model and a deployment serving it.
func quickstart(t testing.TB) []events.Event {
	const run, pipe = "0199aaaa-run-1", "quickstart"
	now := time.Now().UTC()
	ds := func(task, out string) pipelinesv1.Artifact {
		return pipelinesv1.Artifact{Name: out, URI: "s3://sluice/" + pipe + "/" + run + "/" + task + "/" + out,
			Digest: "sha256:" + strings.Repeat(task[len(task)-1:], 8), Size: 42, SchemaTitle: "system.Dataset"}
	}
	task := func(typ, path string, in map[string]pipelinesv1.Artifact, out map[string]pipelinesv1.Artifact, params map[string]any) events.Event {
		ev := pipelinesv1.TaskEvent{RunID: run, PipelineName: pipe, TaskPath: path, TaskName: path, Image: "alpine:3", State: "x",
			Attempt: 1, Fingerprint: "fp-" + path, InputParams: params, Inputs: in, Outputs: out, Time: now}
		return newEvent(t, typ, "runs/"+run+"/tasks/"+path, ev)
	}
	a, b := ds("download-a", "data"), ds("download-b", "data")
	joined := ds("join", "joined")
	urlA := map[string]any{"url": "https://example.com/a.csv"}
	urlB := map[string]any{"url": "https://example.com/b.csv"}
	runEv := func(typ, state string) events.Event {
		return newEvent(t, typ, "runs/"+run, pipelinesv1.RunEvent{RunID: run, RunName: "qs", PipelineName: pipe, ExperimentID: "Default", State: state, Time: now})
	}
	return []events.Event{
		runEv(events.PipelineRunStartedV1, pipelinesv1.RunRunning),
		task(events.PipelineTaskStartedV1, "download-a", nil, nil, urlA),
		task(events.PipelineTaskStartedV1, "download-b", nil, nil, urlB),
		task(events.PipelineTaskSucceededV1, "download-a", nil, map[string]pipelinesv1.Artifact{"data": a}, urlA),
		task(events.PipelineTaskSucceededV1, "download-b", nil, map[string]pipelinesv1.Artifact{"data": b}, urlB),
		task(events.PipelineTaskStartedV1, "join", map[string]pipelinesv1.Artifact{"parts[0]": a, "parts[1]": b}, nil, nil),
		task(events.PipelineTaskSucceededV1, "join", map[string]pipelinesv1.Artifact{"parts[0]": a, "parts[1]": b},
			map[string]pipelinesv1.Artifact{"joined": joined}, nil),
		runEv(events.PipelineRunSucceededV1, pipelinesv1.RunSucceeded),
		newEvent(t, events.TrainingJobCreatedV1, "jobs/team/mnist", trainingv1.JobEvent{Kind: "TFJob", Namespace: "team", Name: "mnist", Condition: "Created", Time: now}),
		newEvent(t, events.TrainingJobRunningV1, "jobs/team/mnist", trainingv1.JobEvent{Kind: "TFJob", Namespace: "team", Name: "mnist", Condition: "Running", Time: now}),
		newEvent(t, events.TrainingJobSucceededV1, "jobs/team/mnist", trainingv1.JobEvent{Kind: "TFJob", Namespace: "team", Name: "mnist", Condition: "Succeeded", Time: now}),
		newEvent(t, events.TrainingModelExportedV1, "jobs/team/mnist", trainingv1.ModelExported{Job: "team/mnist", Kind: "TFJob",
			URI: "s3://sluice/models/mnist/1", ModelURI: "s3://sluice/models/mnist/1/model.onnx", Digest: "sha256:feed",
			Metrics: map[string]any{"accuracy": 0.97, "loss": 0.08, "epochs": 3.0}, Time: now}),
		newEvent(t, events.ServingModelDeployedV1, "deployments/team/mnist", v1.ModelDeploymentEvent{Namespace: "team", Name: "mnist",
			Model: "mnist", ModelFormat: "onnx", StorageURI: "s3://sluice/models/mnist/1/", Time: now}),
	}
}

func TestQuickstartIngestIsIdempotentAndAnswersLineage(t *testing.T) {
	metastoretest.Each(t, func(t *testing.T, s *metastore.Store) {
		bus := startNATS(t)
		startConsumers(t, bus, s, "metadata")
		evs := quickstart(t)
		for _, ev := range evs {
			publishTwice(t, bus, ev)
		}
		drain(t, bus, "metadata")
		var stored uint64
		for _, name := range []string{events.StreamPipeline, events.StreamTraining, events.StreamServing} {
			st, err := bus.JetStream().Stream(context.Background(), name)
			require.NoError(t, err)
			stored += st.CachedInfo().State.Msgs
		}
		require.Equal(t, uint64(2*len(evs)), stored, "every event is in its stream twice")
		got := snapshot(t, s)
		assert.Equal(t, len(evs), got.Sources, "every CE id is recorded once")
		assert.Equal(t, map[string]string{
			"0199aaaa-run-1":            "COMPLETE",
			"0199aaaa-run-1/download-a": "COMPLETE",
			"0199aaaa-run-1/download-b": "COMPLETE",
			"0199aaaa-run-1/join":       "COMPLETE",
			"team/mnist":                "COMPLETE",
		}, got.States)
		// 3 datasets + 1 model; contexts: pipeline, run, experiment, training job, deployment.
		assert.Equal(t, 4, got.Artifacts)
		assert.Equal(t, 5, got.Contexts)
		// download-a/b: 1 output each; join: 2 inputs + 1 output; training: 1 output.
		assert.Equal(t, 6, got.Events)

		// A fresh durable replays both streams from the start: nothing changes.
		startConsumers(t, bus, s, "replay")
		drain(t, bus, "replay")
		assert.Equal(t, got, snapshot(t, s))

		ctx := context.Background()
		joinedURI := "s3://sluice/quickstart/0199aaaa-run-1/join/joined"
		g, err := s.GetLineageSubgraph(ctx, mlmd.LineageQuery{ArtifactURIs: []string{joinedURI}, Direction: mlmd.Upstream, MaxHops: 10})
		require.NoError(t, err)
		var execNames []string
		for _, e := range g.Executions {
			execNames = append(execNames, e.Name)
			if strings.HasSuffix(e.Name, "/download-a") {
				assert.JSONEq(t, `{"url":"https://example.com/a.csv"}`, string(e.CustomProperties["inputs"].StructValue), "the download's input parameters")
				assert.Equal(t, "fp-download-a", *e.CustomProperties[v1.CacheFingerprintProperty].StringValue)
				assert.Equal(t, "alpine:3", *e.CustomProperties["image"].StringValue)
			}
		}
		slices.Sort(execNames)
		assert.Equal(t, []string{"0199aaaa-run-1/download-a", "0199aaaa-run-1/download-b", "0199aaaa-run-1/join"}, execNames)
		var uris []string
		for _, a := range g.Artifacts {
			uris = append(uris, a.URI)
			assert.Equal(t, "system.Dataset", a.Type)
			assert.Equal(t, v1.ArtifactLive, a.State)
			assert.NotEmpty(t, a.CustomProperties["digest"].StringValue)
		}
		slices.Sort(uris)
		assert.Equal(t, []string{"s3://sluice/quickstart/0199aaaa-run-1/download-a/data", "s3://sluice/quickstart/0199aaaa-run-1/download-b/data", joinedURI}, uris)
		var ctxNames []string
		for _, c := range g.Contexts {
			ctxNames = append(ctxNames, c.Type+":"+c.Name)
		}
		assert.Subset(t, ctxNames, []string{"system.Pipeline:quickstart", "system.PipelineRun:0199aaaa-run-1"})
		// The join read the two datasets as list input parts, in order.
		var joinInputs []string
		for _, e := range g.Events {
			if e.Type == v1.EventInput {
				b, _ := json.Marshal(e.Path)
				joinInputs = append(joinInputs, string(b))
			}
		}
		assert.Equal(t, []string{`{"steps":[{"key":"parts"},{"index":0}]}`, `{"steps":[{"key":"parts"},{"index":1}]}`}, joinInputs)
		assert.Len(t, g.Events, 5)

		// The exported model: produced by the training run, served by the deployment.
		g, err = s.GetLineageSubgraph(ctx, mlmd.LineageQuery{ArtifactURIs: []string{"s3://sluice/models/mnist/1"}, Direction: mlmd.Bidirectional, MaxHops: 5})
		require.NoError(t, err)
		require.Len(t, g.Artifacts, 1)
		m := g.Artifacts[0]
		assert.Equal(t, "system.Model", m.Type)
		assert.InDelta(t, 0.97, *m.CustomProperties["accuracy"].DoubleValue, 1e-9)
		assert.Equal(t, "sha256:feed", *m.CustomProperties["digest"].StringValue)
		require.Len(t, g.Executions, 1)
		assert.Equal(t, "sluice.TrainingRun", g.Executions[0].Type)
		ctxNames = nil
		for _, c := range g.Contexts {
			ctxNames = append(ctxNames, c.Type+":"+c.Name)
		}
		slices.Sort(ctxNames)
		assert.Equal(t, []string{"sluice.ModelDeployment:team/mnist", "sluice.TrainingJob:team/mnist"}, ctxNames)
		accurate, err := s.ListArtifacts(ctx, mlmd.ListRequest{Filter: mlmd.Filter{Properties: []mlmd.PropertyPredicate{{Custom: true, Name: "accuracy", Op: mlmd.OpGt, Value: v1.Double(0.95)}}}})
		require.NoError(t, err)
		require.Len(t, accurate.Items, 1)
		assert.Equal(t, m.ID, accurate.Items[0].ID)
	})
}

func TestOutOfOrderEventsConverge(t *testing.T) {
	metastoretest.Each(t, func(t *testing.T, s *metastore.Store) {
		bus := startNATS(t)
		evs := quickstart(t)
		// join succeeded (with outputs) before join started, before the downloads, and the
		// run's succeeded event before its started event.
		order := []int{6, 5, 7, 0, 4, 3, 2, 1}
		for _, i := range order {
			require.NoError(t, bus.Publish(context.Background(), evs[i]))
		}
		startConsumers(t, bus, s, "metadata")
		drain(t, bus, "metadata")
		got := snapshot(t, s)
		assert.Equal(t, "COMPLETE", got.States["0199aaaa-run-1/join"], "a late started event does not undo succeeded")
		assert.Equal(t, "COMPLETE", got.States["0199aaaa-run-1"])
		assert.Equal(t, 3, got.Artifacts)
		assert.Equal(t, 5, got.Events)

		// The same events in stream order into a fresh store give the same records.
		inOrder := metastoretest.SQLite(t)
		c := ingest.New(inOrder, nil)
		for _, ev := range evs[:8] {
			require.NoError(t, c.Handle(context.Background(), ev))
		}
		want := snapshot(t, inOrder)
		assert.Equal(t, want, got)
	})
}

func TestPoisonEventsAreDeadLettered(t *testing.T) {
	s := metastoretest.SQLite(t)
	bus := startNATS(t)
	var mu sync.Mutex
	var letters []events.DeadLetter
	sub, err := bus.Conn().Subscribe(events.DeadLetterPrefix+">", func(m *nats.Msg) {
		ev, err := events.Decode(context.Background(), m.Header, m.Data)
		if err != nil {
			return
		}
		var dl events.DeadLetter
		if json.Unmarshal(ev.Data(), &dl) == nil {
			mu.Lock()
			letters = append(letters, dl)
			mu.Unlock()
		}
	})
	require.NoError(t, err)
	defer sub.Unsubscribe()
	startConsumers(t, bus, s, "metadata")

	garbage := newEvent(t, events.PipelineTaskSucceededV1, "runs/x/tasks/y", nil)
	require.NoError(t, garbage.SetData("text/plain", []byte("{not json")))
	array := newEvent(t, events.PipelineRunSucceededV1, "runs/x", []int{1, 2})
	noRun := newEvent(t, events.PipelineTaskStartedV1, "runs/x/tasks/y", pipelinesv1.TaskEvent{PipelineName: "p", TaskPath: "y"})
	badURI := newEvent(t, events.PipelineTaskSucceededV1, "runs/x/tasks/y", pipelinesv1.TaskEvent{RunID: "x", PipelineName: "p", TaskPath: "y",
		Outputs: map[string]pipelinesv1.Artifact{"model": {Name: "model"}}})
	noJob := newEvent(t, events.TrainingModelExportedV1, "jobs/x", trainingv1.ModelExported{Job: "nonamespace", URI: "s3://b/m"})
	good := quickstart(t)[0]
	for _, ev := range []events.Event{garbage, array, noRun, badURI, noJob, good} {
		require.NoError(t, bus.Publish(context.Background(), ev))
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(letters) == 5
	}, 20*time.Second, 20*time.Millisecond)
	drain(t, bus, "metadata")
	reasons := map[string]string{}
	mu.Lock()
	for _, dl := range letters {
		require.NotNil(t, dl.Event)
		reasons[dl.Event.ID()] = dl.Reason
		assert.Equal(t, "metadata-"+map[string]string{events.StreamPipeline: "pipeline", events.StreamTraining: "training"}[dl.Stream], dl.Consumer)
	}
	mu.Unlock()
	assert.Contains(t, reasons[garbage.ID()], "data: not a JSON io.sluice.pipeline.task.succeeded.v1 payload")
	assert.Contains(t, reasons[array.ID()], "data: not a JSON io.sluice.pipeline.run.succeeded.v1 payload")
	assert.Contains(t, reasons[noRun.ID()], "data.run_id: must be set")
	assert.Contains(t, reasons[badURI.ID()], "data.output_artifacts.model.uri: must be set")
	assert.Contains(t, reasons[noJob.ID()], "data.job: must be <namespace>/<name>")
	got := snapshot(t, s)
	assert.Equal(t, 1, got.Sources, "only the good event is recorded")
	assert.Equal(t, map[string]string{"0199aaaa-run-1": "RUNNING"}, got.States)
}

func TestRecordIgnoresUnmappedTypes(t *testing.T) {
	ev := newEvent(t, events.PipelineRunRequestedV1, "runs/x", map[string]any{"spec": "x"})
	_, ok, err := ingest.Record(ev)
	require.NoError(t, err)
	assert.False(t, ok)
	for _, cfg := range ingest.Consumers("metadata") {
		assert.Less(t, len(cfg.Durable), 32)
		assert.NotContains(t, cfg.FilterSubjects, events.SubjectFor(events.PipelineRunRequestedV1))
		assert.NotEmpty(t, cfg.FilterSubjects, fmt.Sprint(cfg.Stream))
	}
}

// An importer task's events (execution_type system.ImporterExecution, as the pipelines engine publishes
// them) are recorded as a system.ImporterExecution with its reimport setting, whose OUTPUT is the
// imported artifact at its URI, with the artifact's metadata as custom properties.
func TestRecordImporterExecution(t *testing.T) {
	ev := newEvent(t, events.PipelineTaskSucceededV1, "runs/r1/tasks/importer", map[string]any{
		"run_id": "r1", "pipeline_name": "p", "task_path": "importer", "task_name": "importer", "state": "SUCCEEDED",
		"execution_type": "system.ImporterExecution", "reimport": true,
		"output_artifacts": map[string]any{"artifact": map[string]any{"name": "artifact", "uri": "s3://b/data.csv", "digest": "sha256:x",
			"schema_title": "system.Dataset", "metadata": map[string]any{"rows": 3.0, "source": "census"}}},
	})
	req, ok, err := ingest.Record(ev)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "system.ImporterExecution", req.Execution.Type)
	require.Equal(t, v1.Bool(true), req.Execution.CustomProperties["reimport"])
	require.Len(t, req.Artifacts, 1)
	a := req.Artifacts[0]
	require.Equal(t, "s3://b/data.csv", a.Artifact.URI)
	require.Equal(t, "system.Dataset", a.Artifact.Type)
	require.Equal(t, v1.EventOutput, a.Event.Type)
	require.Equal(t, v1.Double(3), a.Artifact.CustomProperties["rows"])
	require.Equal(t, v1.String("census"), a.Artifact.CustomProperties["source"])

	// A container task stays a system.ContainerExecution.
	ev = newEvent(t, events.PipelineTaskSucceededV1, "runs/r1/tasks/train", map[string]any{
		"run_id": "r1", "pipeline_name": "p", "task_path": "train", "state": "SUCCEEDED"})
	req, _, err = ingest.Record(ev)
	require.NoError(t, err)
	require.Equal(t, "system.ContainerExecution", req.Execution.Type)
}

// Case kfp-backend/artifact-metadata-dropped (lineage part): the metadata a step's executor output
// gave an artifact (a Dataset's own fields, a Metrics artifact's logged metrics) becomes the
// artifact's custom properties, as KFP's launcher records it; numbers are double_value so they can be
// filtered. A Metrics artifact that only logged metrics has no object, so no digest or size.
func TestArtifactMetadataBecomesCustomProperties(t *testing.T) {
	metastoretest.Each(t, func(t *testing.T, s *metastore.Store) {
		bus := startNATS(t)
		startConsumers(t, bus, s, "metadata")
		const run = "0199bbbb-run-md"
		d := pipelinesv1.Artifact{Name: "d", URI: "s3://sluice/probe/" + run + "/produce/d", Digest: "sha256:abcd", Size: 5,
			SchemaTitle: "system.Dataset", Metadata: map[string]any{"rows": 3.0, "source": "probe"}}
		m := pipelinesv1.Artifact{Name: "metrics", URI: "s3://sluice/probe/" + run + "/produce/metrics",
			SchemaTitle: "system.Metrics", Metadata: map[string]any{"accuracy": 0.92, "display_name": "eval metrics"}}
		ev := pipelinesv1.TaskEvent{RunID: run, PipelineName: "probe", TaskPath: "produce", TaskName: "produce", State: "SUCCEEDED",
			Attempt: 1, Outputs: map[string]pipelinesv1.Artifact{"d": d, "metrics": m}, Time: time.Now().UTC()}
		require.NoError(t, bus.Publish(context.Background(), newEvent(t, events.PipelineTaskSucceededV1, "runs/"+run+"/tasks/produce", ev)))
		drain(t, bus, "metadata")
		arts, err := s.ListArtifacts(context.Background(), mlmd.ListRequest{PageSize: mlmd.MaxPageSize})
		require.NoError(t, err)
		got := map[string]mlmd.Artifact{}
		for _, a := range arts.Items {
			got[a.Type] = a
		}
		ds, mt := got["system.Dataset"], got["system.Metrics"]
		require.NotNil(t, ds.CustomProperties["rows"].DoubleValue, "%v", ds.CustomProperties)
		assert.InDelta(t, 3, *ds.CustomProperties["rows"].DoubleValue, 1e-9)
		assert.Equal(t, "probe", *ds.CustomProperties["source"].StringValue)
		assert.Equal(t, "sha256:abcd", *ds.CustomProperties["digest"].StringValue)
		assert.Equal(t, "d", *ds.CustomProperties["display_name"].StringValue)
		require.NotNil(t, mt.CustomProperties["accuracy"].DoubleValue, "%v", mt.CustomProperties)
		assert.InDelta(t, 0.92, *mt.CustomProperties["accuracy"].DoubleValue, 1e-9)
		assert.Equal(t, "eval metrics", *mt.CustomProperties["display_name"].StringValue, "the executor's display_name is kept")
		assert.NotContains(t, mt.CustomProperties, "digest")
	})
}
