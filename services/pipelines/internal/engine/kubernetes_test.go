package engine_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"

	"github.com/sluice-ml/sluice/libs/runtime/docker"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/catalog"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine/enginetest"
	"github.com/sluice-ml/sluice/services/pipelines/internal/spec"
)

// catalogObjects is the pipelines service's secret and config map store (catalog objects in S3) as the
// engine reads it.
type catalogObjects struct{ c *catalog.Catalog }

func (o catalogObjects) Object(ctx context.Context, ns, kind, name string) (map[string][]byte, bool, error) {
	obj, err := o.c.Object(ctx, ns, kind, name)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, false, nil
	}
	return obj.Data, err == nil, err
}

// dockerObjectsEnv is an engine on the Docker runtime with the real secret store; it returns the store.
func dockerObjectsEnv(t *testing.T) (*env, *catalog.Catalog) {
	buildStepImage(t)
	e := newEnv(t)
	rt, err := docker.New(docker.Config{})
	require.NoError(t, err)
	e.acts.Runtime = rt
	e.acts.WorkDir = filepath.Join(t.TempDir(), "work")
	c := catalog.New(e.store)
	e.acts.Objects = catalogObjects{c}
	e.startWorker(t)
	return e, c
}

// pvcSecretsSpec is what kfp-kubernetes compiles for CreatePVC + mount_pvc(pvc_name=pvc.outputs['name'])
// + use_secret_as_env/_as_volume + use_config_map_as_volume + DeletePVC (shape of the SDK's snapshot
// create_mount_delete_dynamic_pvc.yaml): the producer writes the secret into the new volume, the
// consumer (another container) reads it there, then the PVC is deleted.
const pvcSecretsSpec = `
components:
  comp-createpvc:
    executorLabel: exec-createpvc
    inputDefinitions:
      parameters:
        access_modes: {parameterType: LIST}
        annotations: {isOptional: true, parameterType: STRUCT}
        pvc_name: {isOptional: true, parameterType: STRING}
        pvc_name_suffix: {isOptional: true, parameterType: STRING}
        size: {parameterType: STRING}
        storage_class_name: {defaultValue: '', isOptional: true, parameterType: STRING}
        volume_name: {isOptional: true, parameterType: STRING}
    outputDefinitions:
      parameters:
        name: {parameterType: STRING}
  comp-deletepvc:
    executorLabel: exec-deletepvc
    inputDefinitions:
      parameters:
        pvc_name: {parameterType: STRING}
  comp-producer:
    executorLabel: exec-producer
    outputDefinitions:
      parameters:
        Output: {parameterType: STRING}
  comp-consumer:
    executorLabel: exec-consumer
    outputDefinitions:
      parameters:
        Output: {parameterType: STRING}
deploymentSpec:
  executors:
    exec-createpvc:
      container:
        image: argostub/createpvc
    exec-deletepvc:
      container:
        image: argostub/deletepvc
    exec-producer:
      container:
        image: ` + stepImage + `
        command: [sh, -c, 'printf %s "$DB_PASSWORD" > /data/file && m=$(busybox stat -c %a /etc/secret/password) && if (echo x > /etc/secret/new) 2>/dev/null; then w=writable; else w=readonly; fi && printf "%s %s %s unset=%s" "$m" "$w" "$(busybox cat /etc/settings/mode)" "${OPTIONAL_VAR-yes}" > "$0"', "{{$.outputs.parameters['Output'].output_file}}"]
    exec-consumer:
      container:
        image: ` + stepImage + `
        command: [sh, -c, 'if [ "$(busybox cat /in/file)" = "$DB_PASSWORD" ]; then printf match > "$0"; else printf mismatch > "$0"; fi', "{{$.outputs.parameters['Output'].output_file}}"]
pipelineInfo:
  name: pvc-secrets
root:
  dag:
    tasks:
      createpvc:
        cachingOptions: {enableCache: true}
        componentRef: {name: comp-createpvc}
        inputs:
          parameters:
            access_modes: {runtimeValue: {constant: [ReadWriteOnce]}}
            pvc_name_suffix: {runtimeValue: {constant: -my-pvc}}
            size: {runtimeValue: {constant: 5Mi}}
            storage_class_name: {runtimeValue: {constant: standard}}
        taskInfo: {name: createpvc}
      producer:
        cachingOptions: {enableCache: true}
        componentRef: {name: comp-producer}
        dependentTasks: [createpvc]
        taskInfo: {name: producer}
      consumer:
        cachingOptions: {enableCache: true}
        componentRef: {name: comp-consumer}
        dependentTasks: [createpvc, producer]
        taskInfo: {name: consumer}
      deletepvc:
        cachingOptions: {enableCache: true}
        componentRef: {name: comp-deletepvc}
        dependentTasks: [consumer, createpvc]
        inputs:
          parameters:
            pvc_name:
              taskOutputParameter: {outputParameterKey: name, producerTask: createpvc}
        taskInfo: {name: deletepvc}
schemaVersion: 2.1.0
sdkVersion: kfp-2.7.0
---
platforms:
  kubernetes:
    deploymentSpec:
      executors:
        exec-producer:
          pvcMount:
          - mountPath: /data
            taskOutputParameter: {outputParameterKey: name, producerTask: createpvc}
          secretAsEnv:
          - secretName: db
            keyToEnv: [{secretKey: password, envVar: DB_PASSWORD}]
          - secretNameParameter: {runtimeValue: {constant: not-there}}
            keyToEnv: [{secretKey: x, envVar: OPTIONAL_VAR}]
            optional: true
          secretAsVolume:
          - {secretName: db, mountPath: /etc/secret, optional: false}
          configMapAsVolume:
          - configMapNameParameter: {runtimeValue: {constant: settings}}
            mountPath: /etc/settings
        exec-consumer:
          pvcMount:
          - mountPath: /in
            pvcNameParameter:
              taskOutputParameter: {outputParameterKey: name, producerTask: createpvc}
          secretAsEnv:
          - secretNameParameter: {runtimeValue: {constant: db}}
            keyToEnv: [{secretKey: password, envVar: DB_PASSWORD}]
`

// Issue #13 item 6: a KFP IR pipeline using secrets, a config map and a PVC created by CreatePVC,
// written by one task, read by another (other containers), then deleted by DeletePVC, runs end to end on
// Docker. The secret's value never enters the run's workflow history.
func TestDockerRuntimeCreatesMountsDeletesPVC(t *testing.T) {
	e, c := dockerObjectsEnv(t)
	const secret = "s3cr3t-value-7f1c"
	_, err := c.CreateObject(t.Context(), catalog.Object{Kind: catalog.KindSecret, Namespace: "default", Name: "db", Data: map[string][]byte{"password": []byte(secret)}})
	if errors.Is(err, catalog.ErrExists) {
		err = nil // the stack's store outlives one test run; the value is the same
	}
	require.NoError(t, err)
	_, err = c.CreateObject(t.Context(), catalog.Object{Kind: catalog.KindConfigMap, Namespace: "default", Name: "settings", Data: map[string][]byte{"mode": []byte("fast")}})
	if errors.Is(err, catalog.ErrExists) {
		err = nil
	}
	require.NoError(t, err)

	// Upload and run creation accept it for the docker runtime and refuse it for the local one.
	p, err := spec.Parse([]byte(pvcSecretsSpec))
	require.NoError(t, err)
	require.NoError(t, spec.CheckRuntime(p, "docker"))
	require.ErrorContains(t, spec.CheckRuntime(p, "local"), "task producer: kfp-kubernetes secretAsEnv is not supported by the local runtime")

	id, run := e.start(t, pvcSecretsSpec, nil)
	res, err := e.wait(t, run)
	st := e.state(t, id)
	name, _ := st["createpvc"].Outputs.Parameters["name"].(string)
	if name != "" {
		t.Cleanup(func() { _ = exec.Command("docker", "volume", "rm", "-f", name).Run() })
	}
	require.NoError(t, err, "%+v", st)
	require.Equal(t, pipelinesv1.RunSucceeded, res.State)
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-my-pvc$`, name, "KFP's driver: a UUID followed by pvc_name_suffix")
	require.Equal(t, "400 readonly fast unset=yes", res.Tasks["producer"].Parameters["Output"])
	require.Equal(t, "match", res.Tasks["consumer"].Parameters["Output"])
	require.Equal(t, pipelinesv1.TaskSucceeded, st["deletepvc"].State)
	out, err := exec.Command("docker", "volume", "inspect", name).CombinedOutput()
	require.Error(t, err, "DeletePVC removed the volume: %s", out)

	var history strings.Builder
	it := e.tc.GetWorkflowHistory(t.Context(), id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		history.WriteString(ev.String()) // payloads as escaped text, not base64
	}
	require.Contains(t, history.String(), "DB_PASSWORD", "the history's payloads are readable here")
	require.NotContains(t, history.String(), secret, "a secret value in the workflow history")
	enginetest.RecordHistory(t, e.tc, id, "kfp-kubernetes-pvc-secrets")
}

// A secret that does not exist fails the task when it starts, naming the secret, the namespace and the
// command that creates it (KFP: the pod never starts); the run is not left waiting.
func TestDockerRuntimeMissingSecretFailsTheTask(t *testing.T) {
	e, _ := dockerObjectsEnv(t)
	spec := strings.Replace(`
components:
  comp-a:
    executorLabel: exec-a
deploymentSpec:
  executors:
    exec-a:
      container:
        image: IMAGE
        command: [sh, -c, 'true']
pipelineInfo:
  name: missing-secret
root:
  dag:
    tasks:
      a:
        componentRef: {name: comp-a}
        taskInfo: {name: a}
schemaVersion: 2.1.0
---
platforms:
  kubernetes:
    deploymentSpec:
      executors:
        exec-a:
          secretAsVolume:
          - {secretName: never-created, mountPath: /etc/s}
`, "IMAGE", stepImage, 1)
	id, run := e.start(t, spec, nil)
	_, err := e.wait(t, run)
	require.Error(t, err)
	a := e.state(t, id)["a"]
	require.Equal(t, pipelinesv1.TaskFailed, a.State)
	require.Contains(t, a.Error, `secret "never-created" (used as a volume at /etc/s) not found in namespace "default"`)
	require.Contains(t, a.Error, "sluice secret create never-created -n default")
}

// Case kfp/pvc-stub-executor: the case's CreatePVC task (image argostub/createpvc, no command) runs on
// Docker as KFP's driver intercepts it: no container, a named volume <uuid>-my-pvc, output "name".
func TestCasePVCStubExecutorRunsOnDocker(t *testing.T) {
	e, _ := dockerObjectsEnv(t)
	src, err := os.ReadFile("../../testdata/cases/kfp/pvc-stub-executor/pipeline.yaml")
	require.NoError(t, err)
	id, run := e.start(t, string(src), nil)
	res, err := e.wait(t, run)
	require.NoError(t, err, "%+v", e.state(t, id))
	name, _ := res.Tasks["createpvc"].Parameters["name"].(string)
	t.Cleanup(func() { _ = exec.Command("docker", "volume", "rm", "-f", name).Run() })
	require.True(t, strings.HasSuffix(name, "-my-pvc"), name)
	out, err := exec.Command("docker", "volume", "inspect", "--format", `{{index .Labels "sluice.io/pvc-size"}} {{index .Labels "sluice.io/run-id"}}`, name).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "5Mi "+id, strings.TrimSpace(string(out)))

	// PVCs are namespaced: a run of another namespace cannot mount the volume (Docker's are not).
	other := strings.NewReplacer("IMAGE", stepImage, "VOL", name).Replace(`
components:
  comp-a:
    executorLabel: exec-a
deploymentSpec:
  executors:
    exec-a:
      container:
        image: IMAGE
        command: [sh, -c, 'busybox ls /data']
pipelineInfo:
  name: other-namespace
root:
  dag:
    tasks:
      a:
        componentRef: {name: comp-a}
        taskInfo: {name: a}
schemaVersion: 2.1.0
---
platforms:
  kubernetes:
    deploymentSpec:
      executors:
        exec-a:
          pvcMount:
          - {constant: VOL, mountPath: /data}
`)
	oid := uuid.NewString()
	orun, err := engine.Start(t.Context(), e.tc, pipelinesv1.RunInput{RunID: oid, RunName: t.Name(), Namespace: "team-x", Spec: other})
	require.NoError(t, err)
	_, err = e.wait(t, orun)
	require.Error(t, err)
	require.Contains(t, e.state(t, oid)["a"].Error, `pvcMount at /data: PVC `+name+` belongs to namespace "default", not to this run's namespace "team-x"`)
}
