package engine_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/runtime/docker"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine/enginetest"
)

// importWorkspaceSpec is KFP IR as the SDK (2.14+) compiles
//
//	@dsl.pipeline(pipeline_config=dsl.PipelineConfig(workspace=dsl.WorkspaceConfig(size="1Gi")))
//	def p(uri: str):
//	    imp = dsl.importer(artifact_uri=uri, artifact_class=dsl.Dataset, download_to_workspace=True)
//	    show(data=imp.output)
//
// where show reads the file at its input's path and writes what it read, the path and the URI to its
// output parameter. IMAGE and BB (the shell prefix for the image's tools) are filled per runtime.
const importWorkspaceSpec = `
components:
  comp-importer:
    executorLabel: exec-importer
    inputDefinitions:
      parameters:
        uri: {parameterType: STRING}
    outputDefinitions:
      artifacts:
        artifact: {artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}}
  comp-show:
    executorLabel: exec-show
    inputDefinitions:
      artifacts:
        data: {artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}}
    outputDefinitions:
      parameters:
        Output: {parameterType: STRING}
deploymentSpec:
  executors:
    exec-importer:
      importer:
        artifactUri: {runtimeParameter: uri}
        downloadToWorkspace: true
        metadata: {origin: census}
        typeSchema: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}
    exec-show:
      container:
        image: IMAGE
        command: [sh, -c, 'BBcat "$0" > "$3"; printf " %s %s %s" "$0" "$1" "$2" >> "$3"', "{{$.inputs.artifacts['data'].path}}", "{{$.inputs.artifacts['data'].uri}}", "{{$.workspace_path}}", "{{$.outputs.parameters['Output'].output_file}}"]
pipelineInfo:
  name: importer-workspace
root:
  dag:
    tasks:
      importer:
        componentRef: {name: comp-importer}
        inputs:
          parameters:
            uri: {componentInputParameter: uri}
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
      uri: {parameterType: STRING}
schemaVersion: 2.1.0
---
platforms:
  kubernetes:
    pipelineConfig:
      workspace:
        size: 1Gi
`

// runImportWorkspace runs importWorkspaceSpec on e's runtime and checks what every runtime shares: the
// consumer read the imported bytes at <workspace>/.artifacts/s3/<bucket>/<key>, its .uri is the
// imported URI, and lineage records the import as KFP's importer (system.ImporterExecution, the URI
// and metadata, without the run-time _kfp_workspace flag). It returns the run id and the consumer's
// output "<content> <path> <uri> <workspace>".
func runImportWorkspace(t *testing.T, e *env, image, bb string) (string, []string) {
	t.Helper()
	find := e.taskEvents(t)
	obj, err := e.store.Put(t.Context(), "imports/ws/data.csv", strings.NewReader("a,b\n1,2"), 7)
	require.NoError(t, err)
	spec := strings.NewReplacer("IMAGE", image, "BB", bb).Replace(importWorkspaceSpec)
	id, run := e.start(t, spec, map[string]any{"uri": obj.URI})
	res, err := e.wait(t, run)
	require.NoError(t, err, "%+v", e.state(t, id))
	out, _ := res.Tasks["show"].Parameters["Output"].(string)
	content, rest, ok := strings.Cut(out, " ")
	require.True(t, ok, "output %q", out)
	require.Equal(t, "a,b\n1,2", content, "the consumer read the imported bytes")
	fields := strings.Fields(rest)
	require.Len(t, fields, 3, "output %q", out)
	path, uri, ws := fields[0], fields[1], fields[2]
	require.Equal(t, obj.URI, uri, ".uri stays the imported URI")
	_, key, ok := strings.Cut(strings.TrimPrefix(obj.URI, "s3://"), "/")
	require.True(t, ok)
	require.Equal(t, ws+"/.artifacts/s3/"+e.store.Bucket()+"/"+key, path, "as KFP's LocalWorkspacePathForURI")

	st := e.state(t, id)
	imp := st["importer"].Outputs.Artifacts["artifact"]
	require.Equal(t, obj.URI, imp.URI)
	require.Equal(t, obj.Digest, imp.Digest)
	ev, ok := find(id, events.PipelineTaskSucceededV1, "importer")
	require.True(t, ok, "task.succeeded of the importer")
	require.Equal(t, pipelinesv1.ExecutionTypeImporter, ev.ExecutionType)
	require.Equal(t, obj.URI, ev.Outputs["artifact"].URI)
	require.Equal(t, map[string]any{"origin": "census"}, ev.Outputs["artifact"].Metadata, "the run-time flag is not lineage")
	in, ok := find(id, events.PipelineTaskSucceededV1, "show")
	require.True(t, ok)
	require.Equal(t, obj.URI, in.Inputs["data"].URI, "the consumer's input is the imported artifact")
	require.Equal(t, map[string]any{"origin": "census"}, in.Inputs["data"].Metadata)
	return id, fields
}

// An importer with downloadToWorkspace under the local runtime: the artifact is downloaded into the
// run's workspace directory and its consumer reads it there (no download of its own).
func TestKFPImporterDownloadToWorkspaceLocal(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	id, fields := runImportWorkspace(t, e, "alpine", "")
	ws, err := filepath.Abs(filepath.Join(e.acts.WorkDir, id, "workspace"))
	require.NoError(t, err)
	require.Equal(t, ws, fields[2])
	_, err = os.Stat(ws)
	require.ErrorIs(t, err, os.ErrNotExist, "the workspace is removed with the run")
	enginetest.RecordHistory(t, e.tc, id, "kfp-importer-download-to-workspace")
}

// Under the Docker runtime the importer copies the artifact into the run's workspace volume, which the
// consumer's container sees at /kfp-workspace.
func TestKFPImporterDownloadToWorkspaceDocker(t *testing.T) {
	buildStepImage(t)
	e := newEnv(t)
	rt, err := docker.New(docker.Config{})
	require.NoError(t, err)
	e.acts.Runtime = rt
	e.acts.WorkDir = filepath.Join(t.TempDir(), "work")
	e.startWorker(t)
	id, fields := runImportWorkspace(t, e, stepImage, "busybox ")
	require.Equal(t, "/kfp-workspace", fields[2])
	h := sha256.Sum256([]byte(id))
	vol := "sluice-ws-" + hex.EncodeToString(h[:6])
	out, err := exec.Command("docker", "volume", "inspect", vol).CombinedOutput()
	require.Error(t, err, "volume %s is removed with the run: %s", vol, out)
}

// A directory imported with downloadToWorkspace is a directory in the workspace; the consumer's
// executor input ({{$}}) marks the artifact with _kfp_workspace as KFP's driver does.
func TestKFPImporterDownloadToWorkspaceDirectory(t *testing.T) {
	e := newEnv(t)
	e.startWorker(t)
	for k, v := range map[string]string{"imports/wsdir/a.txt": "A", "imports/wsdir/sub/b.txt": "B"} {
		_, err := e.store.Put(t.Context(), k, strings.NewReader(v), int64(len(v)))
		require.NoError(t, err)
	}
	spec := strings.NewReplacer(
		`'BBcat "$0" > "$3"; printf " %s %s %s" "$0" "$1" "$2" >> "$3"', "{{$.inputs.artifacts['data'].path}}", "{{$.inputs.artifacts['data'].uri}}", "{{$.workspace_path}}"`,
		`'cat "$0/a.txt" "$0/sub/b.txt" > "$3"; printf " %s %s" "$0" "$2" >> "$3"; case "$1" in *_kfp_workspace??true*) printf " flagged" >> "$3";; esac', "{{$.inputs.artifacts['data'].path}}", "{{$}}", "{{$.workspace_path}}"`,
		"IMAGE", "alpine").Replace(importWorkspaceSpec)
	uri := e.store.URI("imports/wsdir") + "/"
	id, run := e.start(t, spec, map[string]any{"uri": uri})
	res, err := e.wait(t, run)
	require.NoError(t, err, "%+v", e.state(t, id))
	ws, err := filepath.Abs(filepath.Join(e.acts.WorkDir, id, "workspace"))
	require.NoError(t, err)
	_, key, _ := strings.Cut(strings.TrimPrefix(uri, "s3://"), "/")
	want := "AB " + ws + "/.artifacts/s3/" + e.store.Bucket() + "/" + strings.TrimSuffix(key, "/") + " " + ws + " flagged"
	require.Equal(t, want, res.Tasks["show"].Parameters["Output"])
	require.Equal(t, uri, e.state(t, id)["importer"].Outputs.Artifacts["artifact"].URI)
}
