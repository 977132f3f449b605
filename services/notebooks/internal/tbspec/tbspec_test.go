package tbspec_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/notebooks/internal/tbspec"
)

func TestParseLogsPath(t *testing.T) {
	tests := map[string]struct {
		in   string
		want tbspec.LogsPath
		err  string
	}{
		"s3 with prefix":          {in: "s3://bucket/team/run-1/", want: tbspec.LogsPath{Scheme: "s3", Bucket: "bucket", Path: "team/run-1"}},
		"s3 bucket only":          {in: "s3://bucket", want: tbspec.LogsPath{Scheme: "s3", Bucket: "bucket"}},
		"pvc with path":           {in: "pvc://logs-claim/mnist/logs", want: tbspec.LogsPath{Scheme: "pvc", Claim: "logs-claim", Path: "mnist/logs"}},
		"gs is not served":        {in: "gs://b/p", err: "spec.logspath: \"gs://b/p\": must start with s3:// or pvc://"},
		"empty":                   {in: "", err: "spec.logspath: required"},
		"no bucket":               {in: "s3:///p", err: "missing the bucket name"},
		"escaping the claim":      {in: "pvc://c/../other", err: "must not contain \"..\""},
		"claim not a DNS name":    {in: "pvc://Claim_1/x", err: "must be a DNS-1123 name"},
		"plain path is not a URI": {in: "/data/logs", err: "must start with s3:// or pvc://"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tbspec.ParseLogsPath(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseKubeflowDocument(t *testing.T) {
	doc := []byte(`apiVersion: tensorboard.kubeflow.org/v1alpha1
kind: Tensorboard
metadata:
  name: mnist
spec:
  logspath: pvc://logs-claim/mnist
`)
	tb, err := tbspec.Parse(doc, "kubeflow-user")
	require.NoError(t, err)
	require.Equal(t, "kubeflow-user", tb.Metadata.Namespace)
	require.Equal(t, "pvc://logs-claim/mnist", tb.Spec.LogsPath)
	require.Equal(t, "/vol/kubeflow-user/logs-claim/mnist", mustLogsPath(t, tb.Spec.LogsPath).LocalDir("/vol", tb.Metadata.Namespace))

	_, err = tbspec.Parse([]byte(`{"apiVersion": "tensorboard.kubeflow.org/v1alpha1", "kind": "Notebook", "metadata": {"name": "x"}, "spec": {"logspath": 3}}`), "ns")
	require.True(t, errors.Is(err, tbspec.ErrInvalid))
	require.ErrorContains(t, err, "spec.logspath: must be string")
}

func mustLogsPath(t *testing.T, s string) tbspec.LogsPath {
	t.Helper()
	lp, err := tbspec.ParseLogsPath(s)
	require.NoError(t, err)
	return lp
}
