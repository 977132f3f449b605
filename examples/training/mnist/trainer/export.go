package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluice-ml/sluice/examples/training/mnist/mlp"
	"github.com/sluice-ml/sluice/libs/onnxmodel"
)

// ONNX tensor names of the exported model: input [batch, 784] float32
// pixels scaled to [0,1], output [batch, 10] softmax probabilities.
const (
	InputName  = "input"
	OutputName = "probabilities"
)

// Metrics is written as metrics.json next to the exported model (and by
// the evaluator under modelDir/eval).
type Metrics struct {
	Accuracy     float64 `json:"accuracy"`
	TestExamples int     `json:"testExamples"`
	Steps        int64   `json:"steps"`
	Workers      int     `json:"workers,omitempty"`
	BatchSize    int     `json:"batchSize,omitempty"`
}

func writeMetrics(path string, m Metrics) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, append(b, '\n'))
}

// WriteONNX writes params as an ONNX model (Gemm+Relu, Gemm+Softmax).
func WriteONNX(path string, params []float32) error {
	net, err := mlp.NetFor(len(params))
	if err != nil {
		return err
	}
	w1, b1, w2, b2 := net.Layers(params)
	var buf bytes.Buffer
	layers := []onnxmodel.Dense{
		{W: w1, B: b1, Activation: onnxmodel.ActivationReLU},
		{W: w2, B: b2, Activation: onnxmodel.ActivationSoftmax},
	}
	if err := onnxmodel.WriteMLP(&buf, layers, InputName, OutputName); err != nil {
		return fmt.Errorf("trainer: encode ONNX: %w", err)
	}
	return writeAtomic(path, buf.Bytes())
}

// export writes <version>/model.onnx and <version>/metrics.json under
// ExportDir, staging locally and uploading when ExportDir is s3://. It
// returns the URI of the version directory.
func (r *run) export(ctx context.Context, params []float32, m Metrics) (string, error) {
	dest := strings.TrimSuffix(r.cfg.ExportDir, "/") + "/" + r.cfg.ModelVersion
	remote := strings.Contains(r.cfg.ExportDir, "://")
	dir := dest
	if remote {
		if !strings.HasPrefix(r.cfg.ExportDir, "s3://") {
			return "", fmt.Errorf("trainer: exportDir %q: only local paths and s3:// URIs are supported", r.cfg.ExportDir)
		}
		if r.cfg.Uploader == nil {
			return "", fmt.Errorf("trainer: exportDir %q: no S3 uploader configured", r.cfg.ExportDir)
		}
		tmp, err := os.MkdirTemp("", "mnist-export-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	if err := WriteONNX(filepath.Join(dir, "model.onnx"), params); err != nil {
		return "", err
	}
	if err := writeMetrics(filepath.Join(dir, "metrics.json"), m); err != nil {
		return "", err
	}
	if remote {
		if err := r.cfg.Uploader.UploadDir(ctx, dir, dest); err != nil {
			return "", fmt.Errorf("trainer: upload export: %w", err)
		}
	}
	return dest, nil
}
