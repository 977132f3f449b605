package engine_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine/enginetest"
)

// taskEvents follows the bus and collects the task events of run id (for lineage assertions).
func (e *env) taskEvents(t *testing.T) func(runID, typ, path string) (pipelinesv1.TaskEvent, bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	var mu sync.Mutex
	var got []events.Event
	go func() {
		_ = e.bus.Tail(ctx, "io.sluice.pipeline.task.*", true, func(r events.Received) {
			mu.Lock()
			got = append(got, r.Event)
			mu.Unlock()
		})
	}()
	return func(runID, typ, path string) (pipelinesv1.TaskEvent, bool) {
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			mu.Lock()
			for _, ev := range got {
				var te pipelinesv1.TaskEvent
				if ev.Type() == typ && ev.DataAs(&te) == nil && te.RunID == runID && te.TaskPath == path {
					mu.Unlock()
					return te, true
				}
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
		return pipelinesv1.TaskEvent{}, false
	}
}

// Case kfp/importer: dsl.importer registers an existing object as the task's output artifact (no
// container runs); the consumer reads it at its local path; the task is recorded as a
// system.ImporterExecution whose output is the artifact at the imported URI.
func TestCaseKFPImporter(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	find := e.taskEvents(t)
	obj, err := e.store.Put(t.Context(), "some/existing/object.txt", strings.NewReader("imported bytes\n"), 15)
	require.NoError(t, err)
	spec := strings.ReplaceAll(caseSpec(t, "kfp", "importer"), "s3://sluice/some/existing/object.txt", obj.URI)
	id, run := e.start(t, spec, nil)
	_, err = e.wait(t, run)
	require.NoError(t, err, "%v", e.state(t, id))
	st := e.state(t, id)
	imp := st["importer"].Outputs.Artifacts["artifact"]
	require.Equal(t, obj.URI, imp.URI)
	require.Equal(t, obj.Digest, imp.Digest)
	require.Equal(t, "system.Dataset", imp.SchemaTitle)
	require.Equal(t, "imported bytes\n", e.read(t, st["show"].LogURI))

	ev, ok := find(id, events.PipelineTaskSucceededV1, "importer")
	require.True(t, ok, "task.succeeded of the importer")
	require.Equal(t, pipelinesv1.ExecutionTypeImporter, ev.ExecutionType)
	require.Equal(t, obj.URI, ev.Outputs["artifact"].URI)
	require.NotNil(t, ev.Reimport)
	require.False(t, *ev.Reimport)
	in, ok := find(id, events.PipelineTaskSucceededV1, "show")
	require.True(t, ok)
	require.Equal(t, obj.URI, in.Inputs["data"].URI, "the consumer's input is the imported artifact")
	enginetest.RecordHistory(t, e.tc, id, "kfp-importer")
}

// An importer whose URI comes from a pipeline parameter (the SDK's artifactUri.runtimeParameter), with
// metadata built from another parameter (the SDK's metadata inputs) and reimport; a directory is
// imported as a directory artifact; the consumer sees the metadata in {{$}} and the
// .metadata placeholder.
func TestKFPImporterParameterisedURI(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	_, err := e.store.Put(t.Context(), "imports/dir/a.txt", strings.NewReader("A"), 1)
	require.NoError(t, err)
	_, err = e.store.Put(t.Context(), "imports/dir/sub/b.txt", strings.NewReader("B"), 1)
	require.NoError(t, err)
	const spec = `
components:
  comp-importer:
    executorLabel: exec-importer
    inputDefinitions:
      parameters:
        uri: {parameterType: STRING}
        metadata: {parameterType: STRING}
    outputDefinitions:
      artifacts:
        artifact: {artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}}
  comp-show:
    executorLabel: exec-show
    inputDefinitions:
      artifacts:
        data: {artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}}
deploymentSpec:
  executors:
    exec-importer:
      importer:
        artifactUri: {runtimeParameter: uri}
        metadata:
          source: "{{$.inputs.parameters['metadata']}}"
          note: "from {{$.inputs.parameters['metadata']}}"
        reimport: true
        typeSchema: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}
    exec-show:
      container:
        image: alpine
        command: [sh, -c, 'cat "$0/a.txt" "$0/sub/b.txt"; echo; echo "$1"', "{{$.inputs.artifacts['data'].path}}", "{{$.inputs.artifacts['data'].metadata}}"]
pipelineInfo:
  name: importer-param
root:
  dag:
    tasks:
      importer:
        componentRef: {name: comp-importer}
        inputs:
          parameters:
            uri: {componentInputParameter: dataset_uri}
            metadata: {componentInputParameter: source}
        taskInfo: {name: importer}
      show:
        componentRef: {name: comp-show}
        dependentTasks: [importer]
        inputs:
          artifacts:
            data:
              taskOutputArtifact: {producerTask: importer, outputArtifactKey: artifact}
        taskInfo: {name: show}
  inputDefinitions:
    parameters:
      dataset_uri: {parameterType: STRING}
      source: {parameterType: STRING, defaultValue: census}
schemaVersion: 2.1.0
`
	uri := e.store.URI("imports/dir")
	id, run := e.start(t, spec, map[string]any{"dataset_uri": uri})
	_, err = e.wait(t, run)
	require.NoError(t, err, "%v", e.state(t, id))
	st := e.state(t, id)
	imp := st["importer"].Outputs.Artifacts["artifact"]
	require.Equal(t, uri+"/", imp.URI, "a directory artifact")
	require.Equal(t, map[string]any{"source": "census", "note": "from census"}, imp.Metadata)
	require.Equal(t, "AB\n"+`{"note":"from census","source":"census"}`+"\n", e.read(t, st["show"].LogURI))

	// Nothing at the URI: the importer fails naming it; another bucket is refused.
	for param, msg := range map[string]string{
		e.store.URI("imports/missing"):        "nothing to import at",
		"s3://other-bucket/imports/dir/a.txt": `is in bucket "other-bucket"`,
		"gs://bucket/x.txt":                   "only s3://",
	} {
		id, run := e.start(t, spec, map[string]any{"dataset_uri": param})
		_, err = e.wait(t, run)
		require.Error(t, err)
		st := e.state(t, id)
		require.Equal(t, pipelinesv1.TaskFailed, st["importer"].State)
		require.Contains(t, st["importer"].Error, msg)
		require.Equal(t, pipelinesv1.TaskOmitted, st["show"].State)
	}
}
