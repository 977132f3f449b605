package dataplane

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ml/sluice/services/serving/api/inferencepb"
	"github.com/sluice-ml/sluice/services/serving/api/tfservingpb"
)

// GRPCAuthorizer authorises one gRPC call of the data plane before its request message is read:
// fullMethod is "/package.Service/Method"; it returns the context to serve the call with, or a
// status error to answer (platform.Guard.AuthorizeGRPC over [GRPCRoute] is the one a service uses).
type GRPCAuthorizer func(ctx context.Context, fullMethod string) (context.Context, error)

// GRPCRoute returns the REST route pattern (as Routes registers it, and as libs/platform's route
// table names it) whose authorization a gRPC method of the data plane shares: "/v1/" for TF
// Serving's tensorflow.serving services (REST /v1/models/...), "/v2/" for KServe v2's
// inference.GRPCInferenceService (REST /v2/..., health included); "" for any other method.
func GRPCRoute(fullMethod string) string {
	switch {
	case strings.HasPrefix(fullMethod, "/"+tfservingpb.PredictionService_ServiceDesc.ServiceName+"/"),
		strings.HasPrefix(fullMethod, "/"+tfservingpb.ModelService_ServiceDesc.ServiceName+"/"):
		return "/v1/"
	case strings.HasPrefix(fullMethod, "/"+inferencepb.GRPCInferenceService_ServiceDesc.ServiceName+"/"):
		return "/v2/"
	}
	return ""
}

// NewGRPCServer returns a gRPC server carrying the data plane (see RegisterGRPC) on which every
// call is first authorised by authorize (before its request is read, as the HTTP guard runs before
// a body is read; nil authorises nothing: tests and benchmarks only), then its request message is
// charged to the in-flight byte budget (Options.MaxInflightBytes) with its size on the wire before
// it is unmarshalled: a message that does not fit is refused at once with RESOURCE_EXHAUSTED,
// without building its Go value. Messages are capped at Options.MaxBodyBytes (gRPC refuses larger
// ones with RESOURCE_EXHAUSTED before reading them). A method the server does not have is answered
// UNAUTHENTICATED without a valid credential, else UNIMPLEMENTED. opts are appended.
//
// gRPC itself holds a message's wire bytes (at most MaxBodyBytes per stream) while it reads them;
// the budget sees them as soon as they are read and releases them when the handler returns. Large
// float tensors of a request are decoded into recycled slices (see GRPCCodec) that are reused once
// the method returns: an interceptor in opts must not keep a request's tensors past the call.
func (s *Server) NewGRPCServer(authorize GRPCAuthorizer, opts ...grpc.ServerOption) *grpc.Server {
	base := append(GRPCTransportOptions(),
		grpc.MaxRecvMsgSize(int(min(s.opts.MaxBodyBytes, math.MaxInt32))),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.ForceServerCodecV2(GRPCCodec()),
	)
	if authorize != nil {
		base = append(base, grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
			m, _ := grpc.MethodFromServerStream(stream)
			if _, err := authorize(stream.Context(), m); status.Code(err) == codes.Unauthenticated {
				return err
			}
			return status.Errorf(codes.Unimplemented, "unknown method %s", m)
		}))
	}
	g := grpc.NewServer(append(base, opts...)...)
	s.RegisterGRPC(g, authorize)
	return g
}

// Transport settings of the data plane's gRPC server (GRPCTransportOptions).
const (
	// GRPCWindowBytes is the HTTP/2 flow-control window the server grants each stream and each
	// connection: a whole tensor request of up to 1 MiB (a batch of 256 MNIST images as float_val
	// is 800 KiB) arrives without waiting for a WINDOW_UPDATE round trip. A fixed window turns
	// gRPC's BDP estimation off, which would otherwise send a PING with every request that
	// carries data and could grow the windows to 16 MiB per connection; larger messages still
	// stream, 1 MiB per round trip.
	GRPCWindowBytes = 1 << 20
	// GRPCBufferBytes is the server's socket read and write buffer per connection (gRPC's
	// default is 32 KiB): a ~100 KiB request is read in a few syscalls instead of one per 16 KiB
	// frame's worth of buffer.
	GRPCBufferBytes = 128 << 10
)

// GRPCTransportOptions are the transport settings NewGRPCServer uses, exported so a benchmark's
// baseline server can use the same: GRPCWindowBytes for stream and connection windows, and
// GRPCBufferBytes read and write buffers.
func GRPCTransportOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InitialWindowSize(GRPCWindowBytes),
		grpc.InitialConnWindowSize(GRPCWindowBytes),
		grpc.ReadBufferSize(GRPCBufferBytes),
		grpc.WriteBufferSize(GRPCBufferBytes),
	}
}

// RegisterGRPC registers the gRPC data plane on g: TF Serving's tensorflow.serving.PredictionService
// (Predict, GetModelMetadata) and ModelService (GetModelStatus), and KServe v2's
// inference.GRPCInferenceService. Errors carry the same canonical codes and messages as REST. Each
// call is authorised by authorize (when not nil) before its request is read.
//
// g must use the budget codec (a server from NewGRPCServer): each method decodes its request
// through it, and a server with the default codec answers every call INTERNAL.
func (s *Server) RegisterGRPC(g grpc.ServiceRegistrar, authorize GRPCAuthorizer) {
	s.registerCharged(g, &tfservingpb.PredictionService_ServiceDesc, tfPredictionService{s: s}, authorize)
	s.registerCharged(g, &tfservingpb.ModelService_ServiceDesc, tfModelService{s: s}, authorize)
	s.registerCharged(g, &inferencepb.GRPCInferenceService_ServiceDesc, v2Service{s: s}, authorize)
}

// registerCharged registers desc's unary methods behind authorize and a decoder that charges the
// request's wire size to a lease before unmarshalling; the lease travels in the context to the
// method (which adds what decoding its tensors costs) and is released when the method returns.
func (s *Server) registerCharged(g grpc.ServiceRegistrar, desc *grpc.ServiceDesc, impl any, authorize GRPCAuthorizer) {
	if len(desc.Streams) > 0 {
		panic("dataplane: " + desc.ServiceName + " has streaming methods, which registerCharged neither charges nor authorises")
	}
	d := *desc
	d.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		h := m.Handler
		full := "/" + desc.ServiceName + "/" + m.MethodName
		d.Methods[i] = grpc.MethodDesc{MethodName: m.MethodName, Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			if authorize != nil {
				var err error
				if ctx, err = authorize(ctx, full); err != nil {
					return nil, err
				}
			}
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

// GRPCCodec is the codec of NewGRPCServer: gRPC's proto codec (the same wire bytes), except that
// gRPC's own codec takes a pooled buffer of the next size class (256 B, 4 KiB, 16 KiB, 32 KiB or
// 1 MiB) for every message and zeroes all of it — a 1 MiB clear for a 100 KiB tensor — while this
// one marshals into a recycled buffer of the next power of two without zeroing it (the marshaller
// writes every byte of the message) and unmarshals a request from its received frames copied into
// a recycled buffer; TF Serving's PredictRequest and PredictResponse and KServe v2's
// ModelInferRequest have their float tensors copied in one move rather than one value at a time
// (appendTensorMessage, decodeTensorRequest), with the same wire bytes and decoded values. A
// request decoded through registerCharged is charged its wire size before it is unmarshalled, and
// its large float tensors are decoded into slices recycled when the call's handler returns. A
// client may use it too (grpc.ForceCodecV2): it is a plain proto codec.
func GRPCCodec() encoding.CodecV2 { return budgetCodec{proto: encoding.GetCodecV2(protoName)} }

const protoName = "proto"

type budgetCodec struct{ proto encoding.CodecV2 }

func (c budgetCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return c.proto.Marshal(v)
	}
	size := proto.Size(m)
	if mem.IsBelowBufferPoolingThreshold(size) || size > maxPooledMessage {
		b, err := marshalAppend(make([]byte, 0, size), m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	buf := messagePool.Get(size)
	b, err := marshalAppend((*buf)[:0], m)
	if err != nil {
		messagePool.Put(buf)
		return nil, err
	}
	if len(b) != size || &b[0] != &(*buf)[0] {
		// The message changed between Size and Marshal: keep a copy (b may share buf's memory).
		b = append([]byte(nil), b...)
		messagePool.Put(buf)
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return mem.BufferSlice{mem.NewBuffer(buf, messagePool)}, nil
}

// marshalAppend appends m to b, just measured by proto.Size: TF Serving's Predict messages by
// appendTensorMessage (float_val in one move), any other by proto.
func marshalAppend(b []byte, m proto.Message) ([]byte, error) {
	if out, handled, err := appendTensorMessage(b, m); handled {
		return out, err
	}
	return proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, m) // the size was just computed
}

// maxPooledMessage is the largest marshalled message whose buffer is recycled (size class
// maxPooledClass).
const (
	maxPooledClass   = 22
	maxPooledMessage = 1 << maxPooledClass // 4 MiB
)

// messagePool recycles marshal buffers by power-of-two capacity, without zeroing them.
var messagePool = &sizeClassPool{}

// sizeClassPool is a mem.BufferPool of buffers with power-of-two capacities up to
// maxPooledMessage; Get returns a buffer of length size whose contents are unspecified (callers
// overwrite all of it).
type sizeClassPool struct {
	classes [maxPooledClass + 1]sync.Pool // class i holds buffers of capacity 1<<i
}

func (p *sizeClassPool) Get(size int) *[]byte {
	c := bits.Len(uint(size - 1)) // smallest i with 1<<i >= size
	if c < len(p.classes) {
		if b, ok := p.classes[c].Get().(*[]byte); ok {
			*b = (*b)[:size]
			return b
		}
		b := make([]byte, size, 1<<c)
		return &b
	}
	b := make([]byte, size)
	return &b
}

func (p *sizeClassPool) Put(b *[]byte) {
	c := cap(*b)
	if c == 0 || c&(c-1) != 0 || bits.Len(uint(c))-1 >= len(p.classes) {
		return // not one of ours
	}
	p.classes[bits.Len(uint(c))-1].Put(b)
}

func (c budgetCodec) Unmarshal(data mem.BufferSlice, v any) error {
	var l *lease
	if w, ok := v.(*wireMessage); ok {
		if err := w.lease.grow(int64(data.Len())); err != nil {
			w.refused = err
			return err
		}
		v, l = w.msg, w.lease
	}
	m, ok := v.(proto.Message)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	if len(data) == 1 {
		return unmarshal(data[0].ReadOnlyData(), m, l)
	}
	buf := getBody(data.Len())[:data.Len()]
	data.CopyTo(buf)
	err := unmarshal(buf, m, l) // decoders copy what they keep
	putBody(buf)
	return err
}

// unmarshal decodes b into m: a tensor request by decodeTensorRequest (its float fields in
// slices recycled through l when l is not nil, returned by l.release), anything else, or anything
// that walk leaves to protobuf, by proto.Unmarshal.
func unmarshal(b []byte, m proto.Message, l *lease) error {
	d := floatDecoder{pool: l != nil}
	handled, err := decodeTensorRequest(b, m, &d)
	if handled && err == nil {
		if l != nil {
			l.floats = append(l.floats, d.pooled...)
		}
		return nil
	}
	for _, p := range d.pooled {
		putFloats(p)
	}
	if handled {
		proto.Reset(m)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%T: %w", m, err)
	}
	return nil
}

func (budgetCodec) Name() string { return protoName }
