package servingv1_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/serving/api/servingv1"
)

func TestParseInferenceService(t *testing.T) {
	d, err := servingv1.Parse([]byte(`apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: mnist
  namespace: models
  annotations: {serving.sluice.io/model-version-policy: "latest:2", serving.sluice.io/version-labels: "stable=1,canary=2"}
spec:
  predictor:
    minReplicas: 0
    maxReplicas: 3
    scaleMetric: concurrency
    canaryTrafficPercent: 10
    model:
      modelFormat: {name: onnx}
      protocolVersion: v2
      storageUri: s3://models/mnist
`), "")
	require.NoError(t, err)
	require.Equal(t, "models/mnist", d.Key())
	require.Equal(t, "mnist", d.ModelName)
	require.Equal(t, 10, *d.CanaryTrafficPercent)
	require.Equal(t, servingv1.VersionPolicy{Latest: 2}, d.VersionPolicy)
	require.Equal(t, map[string]int64{"stable": 1, "canary": 2}, d.VersionLabels)
}

func TestParseSeedTFServingDeployment(t *testing.T) {
	d, err := servingv1.Parse([]byte(`apiVersion: extensions/v1beta1
kind: Deployment
metadata: {name: mnist-service-local, namespace: kubeflow}
spec:
  template:
    spec:
      containers:
      - args: [--port=9000, --rest_api_port=8500, --model_name=mnist, --model_base_path=/mnt/export]
        command: [/usr/bin/tensorflow_model_server]
`), "kubeflow")
	require.NoError(t, err)
	require.Equal(t, "mnist", d.ModelName)
	require.Equal(t, "/mnt/export", d.StorageURI)
	require.Equal(t, "kubeflow/mnist-service-local", d.Key())
	require.Equal(t, servingv1.FormTFServing, d.Form)
}

func TestParseErrorsNameFields(t *testing.T) {
	for doc, want := range map[string][]string{
		`{"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService","metadata":{"name":"M"},"spec":{"predictor":{"minReplicas":2,"maxReplicas":1,"canaryTrafficPercent":-1,"model":{"modelFormat":{"name":"pmml"},"protocolVersion":"v3"}}}}`: {
			`metadata.name: "M" is not a DNS label`, "spec.predictor.maxReplicas: must be >= minReplicas (2) unless 0, got 1",
			"spec.predictor.canaryTrafficPercent: must be within 0..100, got -1", `spec.predictor.model.modelFormat.name: "pmml" is not supported`,
			`spec.predictor.model.protocolVersion: must be v1 or v2, got "v3"`, "spec.predictor.model.storageUri: required"},
		`{"args":["--model_base_path=s3://b/p","--model_version_policy=newest","--bogus=1"]}`: {
			"args: --model_name is required", "args[1]: --model_version_policy:", "args[2]: unknown flag --bogus"},
		`kind: Pod`: {`kind: want InferenceService`},
		`{not yaml`: {"document:"},
	} {
		_, err := servingv1.Parse([]byte(doc), "")
		require.Error(t, err, doc)
		require.True(t, errors.Is(err, servingv1.ErrInvalid))
		for _, w := range want {
			require.True(t, strings.Contains(err.Error(), w), "%s\nwant %q in %v", doc, w, err)
		}
	}
	// maxReplicas 0 means unbounded.
	_, err := servingv1.Parse([]byte(`{"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService","metadata":{"name":"m"},"spec":{"predictor":{"minReplicas":2,"maxReplicas":0,"model":{"modelFormat":{"name":"onnx"},"storageUri":"s3://b/p"}}}}`), "ns")
	require.NoError(t, err)
}
