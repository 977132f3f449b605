package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	"github.com/sluice-ml/sluice/services/metadata/app"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
)

// TestStartIngestsEventsIntoTheAPI hosts the service as `sluice dev` does (Build, Routes,
// Start) on a real NATS and SQLite, publishes a task event and reads its lineage over HTTP.
func TestStartIngestsEventsIntoTheAPI(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	require.NoError(t, err)
	go ns.Start()
	require.True(t, ns.ReadyForConnections(10*time.Second))
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	ctx := context.Background()
	bus, err := events.Connect(ctx, ns.ClientURL(), "metadata-app-test", nil)
	require.NoError(t, err)
	t.Cleanup(bus.Close)
	require.NoError(t, bus.EnsureStreams(ctx))

	svc, err := app.Build(ctx, &platform.Deps{Bus: bus, DataDir: t.TempDir(), Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	mux := http.NewServeMux()
	svc.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	require.NoError(t, svc.Start(ctx))
	require.NoError(t, svc.Ready(ctx))

	out := pipelinesv1.Artifact{Name: "data", URI: "s3://sluice/p/r1/download/data", Digest: "sha256:aa", SchemaTitle: "system.Dataset"}
	ev, err := events.New("/sluice/pipelines", events.PipelineTaskSucceededV1, "runs/r1/tasks/download",
		pipelinesv1.TaskEvent{RunID: "r1", PipelineName: "p", TaskPath: "download", TaskName: "download", Outputs: map[string]pipelinesv1.Artifact{"data": out}})
	require.NoError(t, err)
	require.NoError(t, bus.Publish(ctx, ev))

	var g metadatav1.LineageGraph
	require.Eventually(t, func() bool {
		resp, err := http.Get(srv.URL + metadatav1.PathPrefix + "/lineage?direction=upstream&artifact_uri=" + url.QueryEscape(out.URI))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&g) == nil && len(g.Executions) == 1
	}, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, "r1/download", g.Executions[0].Name)
	require.Equal(t, metadatav1.ExecutionComplete, g.Executions[0].LastKnownState)
	require.Len(t, g.Artifacts, 1)
	require.Equal(t, "sha256:aa", *g.Artifacts[0].CustomProperties["digest"].StringValue)
}

// TestIngestBatchConfig: METADATA_INGEST_BATCH is read from the environment and a value that is
// not an integer from 1 to 10000 is refused at start, naming the variable.
func TestIngestBatchConfig(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "METADATA_INGEST_BATCH" {
				return v
			}
			return ""
		}
	}
	require.Equal(t, 64, app.ConfigFromEnv(env("64")).IngestBatch)
	require.Equal(t, 0, app.ConfigFromEnv(env("")).IngestBatch)
	for _, bad := range []string{"0", "-3", "ten", "10001"} {
		_, err := app.Build(context.Background(), &platform.Deps{DataDir: t.TempDir(), Getenv: env(bad)})
		require.ErrorContains(t, err, "METADATA_INGEST_BATCH: must be an integer from 1 to 10000", bad)
	}
	svc, err := app.Build(context.Background(), &platform.Deps{DataDir: t.TempDir(), Getenv: env("1")})
	require.NoError(t, err)
	require.NoError(t, svc.Close())
}

// TestIngestConcurrencyConfig: METADATA_INGEST_CONCURRENCY is read from the environment and a
// value that is not an integer from 1 to 64 is refused at start, naming the variable.
func TestIngestConcurrencyConfig(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "METADATA_INGEST_CONCURRENCY" {
				return v
			}
			return ""
		}
	}
	require.Equal(t, 8, app.ConfigFromEnv(env("8")).IngestConcurrency)
	require.Equal(t, 0, app.ConfigFromEnv(env("")).IngestConcurrency)
	for _, bad := range []string{"0", "-1", "four", "65"} {
		_, err := app.Build(context.Background(), &platform.Deps{DataDir: t.TempDir(), Getenv: env(bad)})
		require.ErrorContains(t, err, "METADATA_INGEST_CONCURRENCY: must be an integer from 1 to 64", bad)
	}
	svc, err := app.Build(context.Background(), &platform.Deps{DataDir: t.TempDir(), Getenv: env("1")})
	require.NoError(t, err)
	require.NoError(t, svc.Close())
}
