package dataplane_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/serving/api/tfservingpb"
	"github.com/sluice-ml/sluice/services/serving/internal/dataplane"
	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime/onnxtest"
)

// BenchmarkMNIST compares, for the MNIST-shaped MLP (784→128→10) at batch 1 and 32, in one run:
//   - runtime: the in-process Predict call (the floor);
//   - rest-bare: dataplane.BareHandler, a minimal hand-written net/http handler around the same call
//     (pooled body buffer, the product's own numeric scanner, output appended with strconv) — what a
//     single-model server costs without routing, budget, validation, auth or metrics; never slower
//     than the product at decoding;
//   - rest: the product's TF Serving REST path (:predict, row format) as the binary serves it:
//     platform handler (metrics) and guard (static bearer token) in front of the data plane;
//   - grpc-bare: dataplane.RegisterBareGRPC, a minimal gRPC Predict handler around the same call
//     (float_val in and out, no checks), with the product's codec (its tensor walk into recycled
//     float slices) and transport settings;
//   - grpc: the product's TF Serving gRPC Predict.
//
// HTTP and gRPC use real loopback connections in this process. The five are measured interleaved:
// each iteration sends one request down every path, in an order shuffled every time (so no path
// always follows the same one, e.g. gRPC right after REST's connection goroutines), and a change in
// the machine's load reaches all of them alike. Iterations are grouped in rounds of
// benchRound; each path's median latency is taken per round, and the benchmark reports the median
// over rounds: <path>-p50-us, and grpc-added-us / rest-added-us, the median over rounds of the
// product's round median minus the runtime's (the latency the data plane adds to inference).
func BenchmarkMNIST(b *testing.B) {
	root := b.TempDir()
	writeModel(b, filepath.Join(root, "mnist"), 1, onnxtest.MNISTMLP(1).ONNX)
	m := manager(b, "mnist", filepath.Join(root, "mnist"), modelruntime.NewONNXLoader(), modelrepo.Policy{}, nil)
	s := dataplane.NewServer(dataplane.Options{})
	must(b, s.SetModel("mnist", dataplane.Backend{Manager: m}))
	sv, err := m.Snapshot().Latest()
	must(b, err)

	bare := httptest.NewServer(dataplane.BareHandler(sv))
	defer bare.Close()
	rest := httptest.NewServer(productHandler(b, s))
	defer rest.Close()
	product := grpcServerB(b, s.NewGRPCServer(guardAuthorizer(benchGuard(b))))
	bareGS := grpc.NewServer(append(dataplane.GRPCTransportOptions(), grpc.ForceServerCodecV2(dataplane.GRPCCodec()))...) // the product's transport settings and codec: fair
	dataplane.RegisterBareGRPC(bareGS, sv)
	bareG := grpcServerB(b, bareGS)
	dial := func(addr string) tfservingpb.PredictionServiceClient { // both send the token (bare ignores it)
		return tfservingpb.NewPredictionServiceClient(dialGRPC(b, addr, benchToken, benchClientOptions()...))
	}
	productC, bareC := dial(product), dial(bareG)

	for _, n := range []int{1, 32} {
		x := onnxtest.RandomBatch(1, n, 784)
		in := map[string]modelruntime.Tensor{"input": {DataType: modelruntime.FP32, Shape: []int64{int64(n), 784}, Data: x}}
		body := rowBody(x, n, 784)
		req := &tfservingpb.PredictRequest{ModelSpec: &tfservingpb.ModelSpec{Name: "mnist"}, Inputs: map[string]*tfservingpb.TensorProto{"input": {
			Dtype: tfservingpb.DataType_DT_FLOAT, FloatVal: x,
			TensorShape: &tfservingpb.TensorShapeProto{Dim: []*tfservingpb.TensorShapeProto_Dim{{Size: int64(n)}, {Size: 784}}}}}}
		hc := restClient(len(body))
		b.Cleanup(hc.CloseIdleConnections)
		paths := []benchPath{
			{"runtime", func() error { _, err := sv.Predict(context.Background(), in); return err }},
			{"rest-bare", func() error { return post(hc, bare.URL+"/predict", body) }},
			{"rest", func() error { return post(hc, rest.URL+"/v1/models/mnist:predict", body) }},
			{"grpc-bare", func() error { _, err := bareC.Predict(context.Background(), req); return err }},
			{"grpc", func() error { _, err := productC.Predict(context.Background(), req); return err }},
		}
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			r := interleaved(b, paths)
			for _, p := range paths {
				b.ReportMetric(r.p50[p.name], p.name+"-p50-us")
			}
			b.ReportMetric(r.added("grpc", "runtime"), "grpc-added-us")
			b.ReportMetric(r.added("rest", "runtime"), "rest-added-us")
			b.ReportMetric(float64(len(r.rounds)), "rounds")
			b.ReportMetric(0, "ns/op") // one iteration is a request down every path: not a figure of its own
		})
	}
}

// benchRound is the number of interleaved iterations whose medians make one round.
const benchRound = 20

type benchPath struct {
	name string
	call func() error
}

// roundResult holds, per path, the median latency of every round (µs) and the median of those.
type roundResult struct {
	rounds []map[string]float64
	p50    map[string]float64
}

// added is the median over rounds of path's round median minus base's, in µs.
func (r roundResult) added(path, base string) float64 {
	var d []float64
	for _, round := range r.rounds {
		d = append(d, round[path]-round[base])
	}
	return median(d)
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	x = slices.Clone(x)
	slices.Sort(x)
	if len(x)%2 == 1 {
		return x[len(x)/2]
	}
	return (x[len(x)/2-1] + x[len(x)/2]) / 2
}

// interleaved calls every path once per iteration, in a shuffled order, after a warm-up of
// benchRound untimed iterations, and returns the per-round medians (an iteration count that is not
// a multiple of benchRound leaves its last, partial round out unless it is the only one).
func interleaved(b *testing.B, paths []benchPath) roundResult {
	for range benchRound {
		for _, p := range paths {
			if err := p.call(); err != nil {
				b.Fatalf("%s: %v", p.name, err)
			}
		}
	}
	lat := make([][]float64, len(paths))
	var res roundResult
	closeRound := func() {
		round := map[string]float64{}
		for i, p := range paths {
			round[p.name] = median(lat[i])
			lat[i] = lat[i][:0]
		}
		res.rounds = append(res.rounds, round)
	}
	it := 0
	order := rand.New(rand.NewPCG(1, 1))
	for b.Loop() {
		for _, i := range order.Perm(len(paths)) {
			start := time.Now()
			if err := paths[i].call(); err != nil {
				b.Fatalf("%s: %v", paths[i].name, err)
			}
			lat[i] = append(lat[i], float64(time.Since(start).Nanoseconds())/1e3)
		}
		if it++; it%benchRound == 0 {
			closeRound()
		}
	}
	if len(res.rounds) == 0 && len(lat[0]) > 0 {
		closeRound()
	}
	res.p50 = map[string]float64{}
	for _, p := range paths {
		var m []float64
		for _, round := range res.rounds {
			m = append(m, round[p.name])
		}
		res.p50[p.name] = median(m)
	}
	return res
}

const benchToken = "bench-token-0123456789abcdef"

// productHandler serves s as the serving binary does: behind the platform handler (metrics,
// nosniff) with the guard authenticating a static bearer token.
func productHandler(b *testing.B, s *dataplane.Server) http.Handler {
	return platform.NewHandler(platform.HandlerConfig{Registry: platform.NewRegistry(), Log: slog.New(slog.DiscardHandler), Guard: benchGuard(b)}, benchService{s})
}

// benchGuard is the guard of the product's REST and gRPC servers: benchToken is an admin token.
func benchGuard(b *testing.B) *platform.Guard {
	a, err := auth.NewAuthenticator(b.Context(), auth.Config{Tokens: benchToken + "=system:admin"})
	must(b, err)
	return platform.NewGuard(a, (*auth.Profiles)(nil), platform.Rules, nil)
}

type benchService struct{ s *dataplane.Server }

func (benchService) Name() string                { return "serving" }
func (x benchService) Routes(mux *http.ServeMux) { x.s.Routes(mux) }
func (benchService) Start(context.Context) error { return nil }
func (benchService) Ready(context.Context) error { return nil }
func (benchService) Close() error                { return nil }

// benchClientOptions are the gRPC client's settings, those of a Go client tuned for ~100 KiB
// tensor requests, the same for the product and the bare server: a 128 KiB write buffer, so a
// batch-32 request leaves in one write rather than one per 32 KiB (gRPC's default), the same read
// buffer, 1 MiB windows like the server's (fixed, so no BDP pings), and the data plane's codec,
// which is gRPC's proto codec without zeroing a pooled 1 MiB buffer for every 100 KiB request
// it marshals (see dataplane.GRPCCodec).
func benchClientOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithWriteBufferSize(dataplane.GRPCBufferBytes),
		grpc.WithReadBufferSize(dataplane.GRPCBufferBytes),
		grpc.WithInitialWindowSize(dataplane.GRPCWindowBytes),
		grpc.WithInitialConnWindowSize(dataplane.GRPCWindowBytes),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(dataplane.GRPCCodec())),
	}
}

func grpcServerB(b *testing.B, g *grpc.Server) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	go func() { _ = g.Serve(lis) }()
	b.Cleanup(g.Stop)
	return lis.Addr().String()
}

func rowBody(x []float32, n, width int) []byte {
	var rows bytes.Buffer
	rows.WriteString(`{"instances":[`)
	for r := range n {
		if r > 0 {
			rows.WriteByte(',')
		}
		rows.WriteByte('[')
		for i, v := range x[r*width : (r+1)*width] {
			if i > 0 {
				rows.WriteByte(',')
			}
			rows.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
		}
		rows.WriteByte(']')
	}
	rows.WriteString(`]}`)
	return rows.Bytes()
}

// restClient is the REST benchmark's HTTP client (one keep-alive connection per server), as
// serving-loadgen sets it up: its write buffer holds a whole request of up to bodyLen bytes, so
// headers and body leave in one write (with the default 4 KiB buffer a batch-32 body goes out as a
// 4 KiB write followed by 32 KiB writes).
func restClient(bodyLen int) *http.Client {
	return &http.Client{Transport: &http.Transport{WriteBufferSize: bodyLen + 4<<10, DisableCompression: true}}
}

// post sends body to url as serving-loadgen does and reads the whole response.
func post(c *http.Client, url string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+benchToken)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// BenchmarkGRPCUnmarshal decodes a batch-32 MNIST PredictRequest (100 KiB, received as 16 KiB
// frames) with gRPC's proto codec and with the data plane's codec (GRPCCodec).
func BenchmarkGRPCUnmarshal(b *testing.B) {
	x := onnxtest.RandomBatch(1, 32, 784)
	wire, err := proto.Marshal(&tfservingpb.PredictRequest{ModelSpec: &tfservingpb.ModelSpec{Name: "mnist"}, Inputs: map[string]*tfservingpb.TensorProto{"input": {
		Dtype: tfservingpb.DataType_DT_FLOAT, FloatVal: x,
		TensorShape: &tfservingpb.TensorShapeProto{Dim: []*tfservingpb.TensorShapeProto_Dim{{Size: 32}, {Size: 784}}}}}})
	must(b, err)
	var frames mem.BufferSlice
	for off := 0; off < len(wire); off += 16 << 10 {
		frames = append(frames, mem.SliceBuffer(wire[off:min(off+16<<10, len(wire))]))
	}
	for name, c := range map[string]encoding.CodecV2{"grpc-proto": encoding.GetCodecV2("proto"), "dataplane": dataplane.GRPCCodec()} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var req tfservingpb.PredictRequest
				if err := c.Unmarshal(frames, &req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGRPCMarshal encodes the same batch-32 MNIST PredictRequest (as a Go client does) with
// gRPC's proto codec and with the data plane's codec (GRPCCodec).
func BenchmarkGRPCMarshal(b *testing.B) {
	x := onnxtest.RandomBatch(1, 32, 784)
	req := &tfservingpb.PredictRequest{ModelSpec: &tfservingpb.ModelSpec{Name: "mnist"}, Inputs: map[string]*tfservingpb.TensorProto{"input": {
		Dtype: tfservingpb.DataType_DT_FLOAT, FloatVal: x,
		TensorShape: &tfservingpb.TensorShapeProto{Dim: []*tfservingpb.TensorShapeProto_Dim{{Size: 32}, {Size: 784}}}}}}
	for name, c := range map[string]encoding.CodecV2{"grpc-proto": encoding.GetCodecV2("proto"), "dataplane": dataplane.GRPCCodec()} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				data, err := c.Marshal(req)
				if err != nil {
					b.Fatal(err)
				}
				data.Free()
			}
		})
	}
}
