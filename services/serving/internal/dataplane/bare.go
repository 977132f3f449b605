package dataplane

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"strconv"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-ml/sluice/services/serving/api/tfservingpb"
	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
)

// BareHandler is the serving benchmark's baseline, not a product path: a minimal, hand-written
// TF Serving :predict server for one servable with a single FP32 input and a single FP32 output of
// shape [batch, k]. It reads the body into a pooled buffer, decodes the row-format tensor with the
// same numeric scanner as the product into a recycled tensor (so the baseline is never slower at
// decoding), calls Predict and appends the predictions with strconv into a pooled buffer. It has no routing, model lookup,
// traffic split, in-flight budget, validation beyond the decoder, or error shapes: anything it
// cannot decode is a bare 400. The product's latency over this handler is what Server itself adds.
func BareHandler(sv *modelrepo.Servable) http.Handler {
	in, out := sv.Model.Inputs(), sv.Model.Outputs()
	pool := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := pool.Get().(*bytes.Buffer)
		defer pool.Put(buf)
		buf.Reset()
		if r.ContentLength > 0 {
			buf.Grow(int(r.ContentLength) + 1)
		}
		if _, err := buf.ReadFrom(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, ok := fastTFPredict(buf.Bytes(), in)
		if !ok || len(out) != 1 {
			http.Error(w, "bare: not a numeric row-format body for this model", http.StatusBadRequest)
			return
		}
		defer req.recycle() // as the product does, after the response is written
		res, err := sv.Predict(r.Context(), req.inputs)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		y := res[out[0].Name]
		data, ok := y.Data.([]float32)
		if !ok || len(y.Shape) != 2 {
			http.Error(w, "bare: output is not a [batch, k] FP32 tensor", http.StatusInternalServerError)
			return
		}
		k := int(y.Shape[1])
		buf.Reset()
		b := append(buf.AvailableBuffer(), `{"predictions":[`...)
		for row := range int(y.Shape[0]) {
			if row > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			for i, v := range data[row*k : (row+1)*k] {
				if i > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendFloat(b, float64(v), 'g', -1, 32)
			}
			b = append(b, ']')
		}
		b = append(b, "]}"...)
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(b)))
		_, _ = w.Write(b)
	})
}

// RegisterBareGRPC registers on g the serving benchmark's gRPC baseline, not a product path: a
// minimal tensorflow.serving.PredictionService/Predict for one servable with a single FP32 input and
// a single FP32 output, float_val in and float_val out. It decodes the request as the product
// does (g must use GRPCCodec: the tensor walk into recycled float slices) and calls Predict; it has
// no authorisation, model lookup, budget, signature or dtype checks, or error shapes (a request it
// cannot read is INVALID_ARGUMENT). The product's gRPC latency over this handler is what Server
// itself adds.
func RegisterBareGRPC(g grpc.ServiceRegistrar, sv *modelrepo.Servable) {
	in, out := sv.Model.Inputs(), sv.Model.Outputs()
	unlimited := &budget{max: math.MaxInt64}
	predict := func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		l := &lease{b: unlimited}
		defer l.release()
		req := &tfservingpb.PredictRequest{}
		if err := dec(&wireMessage{msg: req, lease: l}); err != nil {
			return nil, err
		}
		x := req.GetInputs()[in[0].Name]
		shape := make([]int64, len(x.GetTensorShape().GetDim()))
		for i, d := range x.GetTensorShape().GetDim() {
			shape[i] = d.GetSize()
		}
		res, err := sv.Predict(ctx, map[string]modelruntime.Tensor{in[0].Name: {DataType: modelruntime.FP32, Shape: shape, Data: x.GetFloatVal()}})
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		l.unalias(res)
		y := res[out[0].Name]
		tp := &tfservingpb.TensorProto{Dtype: tfservingpb.DataType_DT_FLOAT, FloatVal: y.Data.([]float32), TensorShape: &tfservingpb.TensorShapeProto{}}
		for _, d := range y.Shape {
			tp.TensorShape.Dim = append(tp.TensorShape.Dim, &tfservingpb.TensorShapeProto_Dim{Size: d})
		}
		return &tfservingpb.PredictResponse{Outputs: map[string]*tfservingpb.TensorProto{out[0].Name: tp}}, nil
	}
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: tfservingpb.PredictionService_ServiceDesc.ServiceName,
		Methods:     []grpc.MethodDesc{{MethodName: "Predict", Handler: predict}},
		Metadata:    tfservingpb.PredictionService_ServiceDesc.Metadata,
	}, nil)
}
