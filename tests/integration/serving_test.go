package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// g (serving part). The serving container loads an ONNX model that the test put into S3 (TF Serving
// layout <base>/<version>/model.onnx) and answers TF Serving :predict. testdata/model.onnx computes
// y = x·[[2,0],[0,3]] + [1,-1] (written with libs/onnxmodel), so [[1,2]] predicts [[3,5]].
// The training part of item g (TFJob replicas as containers) belongs to the training service's suite.
func TestServingLoadsModelFromS3AndPredicts(t *testing.T) {
	model, err := os.ReadFile("testdata/model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	name := "it-" + randomSuffix()
	base := "models/" + name
	mc := s3Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := mc.PutObject(ctx, s3Bucket, base+"/1/model.onnx", bytes.NewReader(model), int64(len(model)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put model: %v", err)
	}
	isvc := fmt.Sprintf(`apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: %s
  namespace: integration
spec:
  predictor:
    model:
      modelFormat: {name: onnx}
      protocolVersion: v1
      storageUri: s3://%s/%s
`, name, s3Bucket, base)
	serving := st.url(t, "serving")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, serving+"/apis/serving/v1/namespaces/integration/deployments", strings.NewReader(isvc))
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := authorized(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("deploy: %s: %s", resp.Status, body)
	}
	waitFor(t, 3*time.Minute, "model "+name+" version 1 AVAILABLE", func() (bool, string) {
		var status struct {
			Versions []struct {
				Version string `json:"version"`
				State   string `json:"state"`
			} `json:"model_version_status"`
		}
		if _, err := getJSON(serving+"/v1/models/"+name, &status); err != nil {
			return false, err.Error()
		}
		for _, v := range status.Versions {
			if v.Version == "1" && v.State == "AVAILABLE" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", status.Versions)
	})
	preq, _ := http.NewRequestWithContext(ctx, http.MethodPost, serving+"/v1/models/"+name+":predict", strings.NewReader(`{"instances": [[1, 2], [0, 0]]}`))
	preq.Header.Set("Content-Type", "application/json")
	presp, err := authorized(preq)
	if err != nil {
		t.Fatal(err)
	}
	defer presp.Body.Close()
	pbody, _ := io.ReadAll(presp.Body)
	if presp.StatusCode != http.StatusOK {
		t.Fatalf(":predict: %s: %s", presp.Status, pbody)
	}
	var out struct {
		Predictions [][]float64 `json:"predictions"`
	}
	if err := json.Unmarshal(pbody, &out); err != nil {
		t.Fatalf(":predict body %s: %v", pbody, err)
	}
	want := [][]float64{{3, 5}, {1, -1}}
	if fmt.Sprint(out.Predictions) != fmt.Sprint(want) {
		t.Fatalf(":predict = %v, want %v", out.Predictions, want)
	}
}
