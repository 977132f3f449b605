package app

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
)

// The kubernetes runtime's step settings come from the environment; bad values are refused naming the
// variable.
func TestConfigFromEnvKube(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := ConfigFromEnv(env(map[string]string{"SLUICE_KUBE_LAUNCHER_IMAGE": "reg/launcher:1", "SLUICE_KUBE_S3_ENDPOINT": "http://minio.kubeflow:9000",
		"SLUICE_KUBE_S3_SECRET": "mlpipeline-minio-artifact", "S3_REGION": "us-east-1"}))
	require.NoError(t, err)
	require.Equal(t, engine.KubeSteps{LauncherImage: "reg/launcher:1", S3Endpoint: "http://minio.kubeflow:9000", S3Secret: "mlpipeline-minio-artifact", S3Region: "us-east-1"}, c.Kube)
	_, err = ConfigFromEnv(env(map[string]string{"SLUICE_KUBE_S3_ENDPOINT": "minio:9000"}))
	require.ErrorContains(t, err, "SLUICE_KUBE_S3_ENDPOINT")
	_, err = ConfigFromEnv(env(map[string]string{"SLUICE_KUBE_S3_SECRET": "Bad_Name"}))
	require.ErrorContains(t, err, "SLUICE_KUBE_S3_SECRET")
}
