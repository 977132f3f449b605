package dataplane_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ml/sluice/services/serving/api/tfservingpb"
	"github.com/sluice-ml/sluice/services/serving/internal/dataplane"
)

// TestGRPCCodecMarshalMatchesProto checks that the data plane's codec writes exactly the bytes of
// proto.Marshal for messages below gRPC's pooling threshold, in recycled buffers (each marshalled
// after a larger message released a buffer of the same size class, whose stale bytes must not
// leak) and above the largest pooled size, and that it reads them back.
func TestGRPCCodecMarshalMatchesProto(t *testing.T) {
	c := dataplane.GRPCCodec()
	msg := func(n int, v float32) *tfservingpb.PredictRequest {
		x := make([]float32, n)
		for i := range x {
			x[i] = v + float32(i)
		}
		return &tfservingpb.PredictRequest{ModelSpec: &tfservingpb.ModelSpec{Name: "mnist"}, Inputs: map[string]*tfservingpb.TensorProto{"input": {
			Dtype: tfservingpb.DataType_DT_FLOAT, FloatVal: x,
			TensorShape: &tfservingpb.TensorShapeProto{Dim: []*tfservingpb.TensorShapeProto_Dim{{Size: 1}, {Size: int64(n)}}}}}}
	}
	for _, n := range []int{0, 10, 300, 1000, 25088, 25000, 25088 * 2, 1 << 20, 1<<20 + 7} {
		for _, v := range []float32{1, 2} { // the second round reuses the first round's buffer
			m := msg(n, v)
			want, err := proto.Marshal(m)
			require.NoError(t, err)
			data, err := c.Marshal(m)
			require.NoError(t, err)
			got := data.Materialize()
			require.True(t, bytes.Equal(want, got), "n=%d: %d bytes, want %d", n, len(got), len(want))
			var back tfservingpb.PredictRequest
			require.NoError(t, c.Unmarshal(data, &back))
			require.True(t, proto.Equal(m, &back), "n=%d: round trip", n)
			data.Free()
		}
	}
}
