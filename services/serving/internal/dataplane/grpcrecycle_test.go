package dataplane_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/serving/api/inferencepb"
	"github.com/sluice-ml/sluice/services/serving/api/tfservingpb"
	"github.com/sluice-ml/sluice/services/serving/internal/dataplane"
	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime/onnxtest"
)

// TestGRPCRecycledTensorsUnderConcurrency sends batch-32 MNIST requests (float tensors large
// enough to be decoded into recycled slices) with distinct inputs from several clients at once,
// through TF Serving Predict and KServe v2 ModelInfer, and checks every response against the
// in-process prediction of its own input: a slice recycled while a call still used it would give
// some request another one's values.
func TestGRPCRecycledTensorsUnderConcurrency(t *testing.T) {
	root := t.TempDir()
	writeModel(t, filepath.Join(root, "mnist"), 1, onnxtest.MNISTMLP(1).ONNX)
	m := manager(t, "mnist", filepath.Join(root, "mnist"), modelruntime.NewONNXLoader(), modelrepo.Policy{}, nil)
	s := dataplane.NewServer(dataplane.Options{})
	must(t, s.SetModel("mnist", dataplane.Backend{Manager: m}))
	sv, err := m.Snapshot().Latest()
	must(t, err)
	conn := dialGRPC(t, grpcServer(t, s), grpcToken)
	tf := tfservingpb.NewPredictionServiceClient(conn)
	v2 := inferencepb.NewGRPCInferenceServiceClient(conn)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	const clients, calls, n = 4, 12, 32
	var wg sync.WaitGroup
	errs := make(chan error, clients*calls)
	for c := range clients {
		wg.Go(func() {
			for i := range calls {
				x := onnxtest.RandomBatch(uint64(100*c+i+1), n, 784)
				want, err := sv.Predict(ctx, map[string]modelruntime.Tensor{"input": {DataType: modelruntime.FP32, Shape: []int64{n, 784}, Data: x}})
				if err != nil {
					errs <- err
					return
				}
				var got []float32
				if i%2 == 0 {
					resp, err := tf.Predict(ctx, &tfservingpb.PredictRequest{ModelSpec: &tfservingpb.ModelSpec{Name: "mnist"}, Inputs: map[string]*tfservingpb.TensorProto{"input": {
						Dtype: tfservingpb.DataType_DT_FLOAT, FloatVal: x,
						TensorShape: &tfservingpb.TensorShapeProto{Dim: []*tfservingpb.TensorShapeProto_Dim{{Size: n}, {Size: 784}}}}}})
					if err != nil {
						errs <- err
						return
					}
					got = resp.GetOutputs()["probabilities"].GetFloatVal()
				} else {
					resp, err := v2.ModelInfer(ctx, &inferencepb.ModelInferRequest{ModelName: "mnist", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{
						Name: "input", Datatype: "FP32", Shape: []int64{n, 784}, Contents: &inferencepb.InferTensorContents{Fp32Contents: x}}}})
					if err != nil {
						errs <- err
						return
					}
					got = resp.GetOutputs()[0].GetContents().GetFp32Contents()
				}
				if fmt.Sprint(got) != fmt.Sprint(want["probabilities"].Data) {
					errs <- fmt.Errorf("client %d call %d: the response is not the prediction of this request's input", c, i)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
