package app_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/runtime/docker"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/internal/testimage"
)

func requireDocker(t *testing.T) *docker.Runtime {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	ok := docker.Available(ctx)
	cancel()
	if !ok {
		if os.Getenv("CI") == "true" {
			t.Fatal("docker daemon unreachable under CI=true")
		}
		t.Skip("docker daemon unreachable (set CI=true to fail instead)")
	}
	rt, err := docker.New(docker.Config{GracePeriod: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	return rt
}

// Under the Docker runtime a replica's S3_ENDPOINT is one its container
// reaches (the service's store listens on 127.0.0.1, a container's
// loopback is its own: the service relays from the Docker host's bridge
// address): the MNIST trainer in its container exports its model to
// s3:// and the job records it.
func TestDockerReplicaWritesS3(t *testing.T) {
	rt := requireDocker(t)
	img := testimage.MNIST(t, rt)
	e := newEnvOn(t, t.TempDir(), "training-test-"+uuid.NewString()[:8], "docker")
	export := fmt.Sprintf("s3://%s/models/%s/mnist-s3", e.deps.Artifacts.Bucket(), e.ns)
	doc := fmt.Sprintf(`apiVersion: kubeflow.org/v1
kind: TFJob
metadata: {name: mnist-s3}
spec:
  tfReplicaSpecs:
    Worker:
      template:
        spec:
          containers:
            - name: tensorflow
              image: %s
              command: [mnist-trainer]
              env:
                - {name: exportDir, value: %q}
                - {name: TRAIN_STEPS, value: "20"}
`, img, export)
	require.Equal(t, http.StatusCreated, e.do(http.MethodPost, e.jobs(), doc, nil))
	v := e.waitStateWithin("mnist-s3", trainingv1.JobSucceeded, 5*time.Minute)
	var logs string
	e.do(http.MethodGet, e.jobs()+"/mnist-s3/logs?replica=worker-0", "", &logs)
	objs, err := e.store.List(t.Context(), "models/"+e.ns+"/mnist-s3")
	require.NoError(t, err)
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	require.Contains(t, keys, "models/"+e.ns+"/mnist-s3/1/model.onnx", "worker log:\n%s", logs)
	require.True(t, strings.HasPrefix(v.ModelURI, export) || v.ModelURI == "", v.ModelURI)
}
