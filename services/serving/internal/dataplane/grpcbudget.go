package dataplane

import (
	"context"
	"fmt"
	"math"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"

	"github.com/sluice-ml/sluice/services/serving/api/inferencepb"
	"github.com/sluice-ml/sluice/services/serving/api/tfservingpb"
)

// NewGRPCServer returns a gRPC server carrying the data plane (see RegisterGRPC) on which every
// request message is charged to the in-flight byte budget (Options.MaxInflightBytes) with its size
// on the wire before it is unmarshalled: a message that does not fit is refused at once with
// RESOURCE_EXHAUSTED, without building its Go value. Messages are capped at Options.MaxBodyBytes
// (gRPC refuses larger ones with RESOURCE_EXHAUSTED before reading them). opts are appended.
//
// gRPC itself holds a message's wire bytes (at most MaxBodyBytes per stream) while it reads them;
// the budget sees them as soon as they are read and releases them when the handler returns.
func (s *Server) NewGRPCServer(opts ...grpc.ServerOption) *grpc.Server {
	base := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(min(s.opts.MaxBodyBytes, math.MaxInt32))),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.ForceServerCodecV2(budgetCodec{proto: encoding.GetCodecV2(proto.Name)}),
	}
	g := grpc.NewServer(append(base, opts...)...)
	s.RegisterGRPC(g)
	return g
}

// RegisterGRPC registers the gRPC data plane on g: TF Serving's tensorflow.serving.PredictionService
// (Predict, GetModelMetadata) and ModelService (GetModelStatus), and KServe v2's
// inference.GRPCInferenceService. Errors carry the same canonical codes and messages as REST.
//
// g must use the budget codec (a server from NewGRPCServer): each method decodes its request
// through it, and a server with the default codec answers every call INTERNAL.
func (s *Server) RegisterGRPC(g grpc.ServiceRegistrar) {
	s.registerCharged(g, &tfservingpb.PredictionService_ServiceDesc, tfPredictionService{s: s})
	s.registerCharged(g, &tfservingpb.ModelService_ServiceDesc, tfModelService{s: s})
	s.registerCharged(g, &inferencepb.GRPCInferenceService_ServiceDesc, v2Service{s: s})
}

// registerCharged registers desc's unary methods behind a decoder that charges the request's wire
// size to a lease before unmarshalling; the lease travels in the context to the method (which adds
// what decoding its tensors costs) and is released when the method returns.
func (s *Server) registerCharged(g grpc.ServiceRegistrar, desc *grpc.ServiceDesc, impl any) {
	d := *desc
	d.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		h := m.Handler
		d.Methods[i] = grpc.MethodDesc{MethodName: m.MethodName, Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			l := &lease{b: &s.budget}
			defer l.release()
			charged := func(v any) error {
				w := &wireMessage{msg: v, lease: l}
				err := dec(w)
				if w.refused != nil {
					return grpcErr(w.refused)
				}
				return err
			}
			return h(srv, context.WithValue(ctx, leaseKey{}, l), charged, ic)
		}}
	}
	g.RegisterService(&d, impl)
}

type leaseKey struct{}

// requestLease returns the lease of a gRPC request (charged with its wire size), or a new empty
// one on b when the call did not come through registerCharged.
func requestLease(ctx context.Context, b *budget) *lease {
	if l, ok := ctx.Value(leaseKey{}).(*lease); ok {
		return l
	}
	return &lease{b: b}
}

// wireMessage carries a request value through the codec with the lease its wire bytes are charged
// to; refused is set when they do not fit.
type wireMessage struct {
	msg     any
	lease   *lease
	refused error
}

// budgetCodec is gRPC's proto codec, except that a *wireMessage is charged its wire size before
// its value is unmarshalled.
type budgetCodec struct{ proto encoding.CodecV2 }

func (c budgetCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c budgetCodec) Unmarshal(data mem.BufferSlice, v any) error {
	w, ok := v.(*wireMessage)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	if err := w.lease.grow(int64(data.Len())); err != nil {
		w.refused = err
		return err
	}
	if err := c.proto.Unmarshal(data, w.msg); err != nil {
		return fmt.Errorf("%T: %w", w.msg, err)
	}
	return nil
}

func (budgetCodec) Name() string { return proto.Name }
