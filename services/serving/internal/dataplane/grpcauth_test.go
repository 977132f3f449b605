package dataplane_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/serving/api/inferencepb"
	"github.com/sluice-ml/sluice/services/serving/api/tfservingpb"
	"github.com/sluice-ml/sluice/services/serving/internal/dataplane"
)

// Credentials of the data plane tests' guard: an admin token, namespace-scoped tokens of team-a (where
// a deployment would serve the test models) and of team-b, and the identity header's key.
const (
	grpcToken  = "grpc-admin-token-0123456789"
	teamAToken = "grpc-team-a-token-012345"
	teamBToken = "grpc-team-b-token-012345"
	guardKey   = "0123456789abcdef0123456789abcdef"
)

// testGuard is the platform guard as a service binary builds it (platform.Deps.EnableAuth), over the
// real route table, with the profiles decider without a store (roles come from the tokens' grants).
func testGuard(t testing.TB, mode string) *platform.Guard {
	t.Helper()
	a, err := auth.NewAuthenticator(t.Context(), auth.Config{Tokens: grpcToken + "=" + auth.AdminSubject,
		NamespaceTokens: teamAToken + "=team-a;" + teamBToken + "=team-b", Key: guardKey, Mode: mode})
	require.NoError(t, err)
	return platform.NewGuard(a, (*auth.Profiles)(nil), platform.Rules, slog.New(slog.DiscardHandler))
}

// guardAuthorizer authorises the data plane's gRPC calls as the serving app does.
func guardAuthorizer(g *platform.Guard) dataplane.GRPCAuthorizer {
	return func(ctx context.Context, method string) (context.Context, error) {
		return g.AuthorizeGRPC(ctx, dataplane.GRPCRoute(method))
	}
}

// bearer sends "authorization: Bearer <token>" with every call (over plaintext loopback).
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// dialGRPC connects to addr sending tok (none when empty).
func dialGRPC(t testing.TB, addr, tok string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	if tok != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(tok)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func serveGRPC(t testing.TB, g *grpc.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// restOf serves s's REST data plane behind the platform handler and guard g, as the binary does.
func restOf(t testing.TB, s *dataplane.Server, g *platform.Guard) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(platform.NewHandler(platform.HandlerConfig{Registry: platform.NewRegistry(),
		Log: slog.New(slog.DiscardHandler), Guard: g}, benchService{s}))
	t.Cleanup(srv.Close)
	return srv
}

// grpcCodeOf is the gRPC code of a REST status of the guard (200 OK, 401, 403, 404).
var grpcCodeOf = map[int]codes.Code{200: codes.OK, 401: codes.Unauthenticated, 403: codes.PermissionDenied, 404: codes.NotFound}

// TestGRPCAuthMirrorsREST calls each gRPC service of the data plane and its REST equivalent with the
// same credential, in both SLUICE_AUTH_MODEs, and requires the same answer: no credential, an unknown
// token or a forged identity header → UNAUTHENTICATED / 401; in gateway mode a bearer token →
// UNAUTHENTICATED / 401 and the gateway's signed identity → OK; any valid identity → OK / 200, a
// token of another namespace than the deployment's included (the data plane's routes need an identity
// only: model names are global, platform.Rules "/v1/" and "/v2/"), health included (REST /v2/health/*
// is not public).
func TestGRPCAuthMirrorsREST(t *testing.T) {
	s := testServer(t)
	signed := func(t *testing.T, g *platform.Guard, subject string) string {
		h, err := g.Authenticator().Signer().Sign(auth.Identity{Subject: subject}, time.Now())
		require.NoError(t, err)
		return h
	}
	forger, err := auth.NewSigner("another-key-0123456789abcdef-0123456789")
	require.NoError(t, err)
	forged, err := forger.Sign(auth.Identity{Subject: auth.AdminSubject, Admin: true}, time.Now())
	require.NoError(t, err)

	type cred struct{ name, bearer, identity string }
	type call struct {
		name       string
		rest, path string
		body       string
		grpc       func(ctx context.Context, conn *grpc.ClientConn) error
	}
	x := &tfservingpb.TensorProto{Dtype: tfservingpb.DataType_DT_FLOAT, FloatVal: []float32{0.1, 0.2, 0.3, 0.4},
		TensorShape: &tfservingpb.TensorShapeProto{Dim: []*tfservingpb.TensorShapeProto_Dim{{Size: 1}, {Size: 4}}}}
	calls := []call{
		{"Predict", http.MethodPost, "/v1/models/mlp:predict", `{"instances":[[0.1,0.2,0.3,0.4]]}`, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := tfservingpb.NewPredictionServiceClient(c).Predict(ctx, &tfservingpb.PredictRequest{ModelSpec: &tfservingpb.ModelSpec{Name: "mlp"}, Inputs: map[string]*tfservingpb.TensorProto{"x": x}})
			return err
		}},
		{"GetModelStatus", http.MethodGet, "/v1/models/mlp", "", func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := tfservingpb.NewModelServiceClient(c).GetModelStatus(ctx, &tfservingpb.GetModelStatusRequest{ModelSpec: &tfservingpb.ModelSpec{Name: "mlp"}})
			return err
		}},
		{"ModelInfer", http.MethodPost, "/v2/models/addmul/infer", `{"inputs":[{"name":"a","shape":[1,2],"datatype":"FP32","data":[1,2]},{"name":"b","shape":[1,2],"datatype":"FP32","data":[1,1]}]}`, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := inferencepb.NewGRPCInferenceServiceClient(c).ModelInfer(ctx, &inferencepb.ModelInferRequest{ModelName: "addmul",
				Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
					{Name: "a", Datatype: "FP32", Shape: []int64{1, 2}, Contents: &inferencepb.InferTensorContents{Fp32Contents: []float32{1, 2}}},
					{Name: "b", Datatype: "FP32", Shape: []int64{1, 2}, Contents: &inferencepb.InferTensorContents{Fp32Contents: []float32{1, 1}}}}})
			return err
		}},
		{"ServerLive", http.MethodGet, "/v2/health/live", "", func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := inferencepb.NewGRPCInferenceServiceClient(c).ServerLive(ctx, &inferencepb.ServerLiveRequest{})
			return err
		}},
	}
	for _, mode := range []string{auth.ModeDirect, auth.ModeGateway} {
		t.Run(mode, func(t *testing.T) {
			g := testGuard(t, mode)
			rest := restOf(t, s, g)
			addr := serveGRPC(t, s.NewGRPCServer(guardAuthorizer(g)))
			conn := dialGRPC(t, addr, "")
			creds := []cred{
				{name: "none"},
				{name: "unknown token", bearer: "not-a-token-0123456789"},
				{name: "admin token", bearer: grpcToken},
				{name: "deployment namespace token", bearer: teamAToken},
				{name: "other namespace token", bearer: teamBToken},
				{name: "signed identity", identity: signed(t, g, "alice@example.com")},
				{name: "forged identity", identity: forged},
			}
			want := map[string]codes.Code{"none": codes.Unauthenticated, "unknown token": codes.Unauthenticated,
				"admin token": codes.OK, "deployment namespace token": codes.OK, "other namespace token": codes.OK,
				"signed identity": codes.OK, "forged identity": codes.Unauthenticated}
			if mode == auth.ModeGateway {
				want["admin token"], want["deployment namespace token"], want["other namespace token"] = codes.Unauthenticated, codes.Unauthenticated, codes.Unauthenticated
			}
			for _, cr := range creds {
				for _, c := range calls {
					req, err := http.NewRequestWithContext(t.Context(), c.rest, rest.URL+c.path, strings.NewReader(c.body))
					require.NoError(t, err)
					md := metadata.MD{}
					if cr.bearer != "" {
						req.Header.Set("Authorization", "Bearer "+cr.bearer)
						md.Set("authorization", "Bearer "+cr.bearer)
					}
					if cr.identity != "" {
						req.Header.Set(auth.IdentityHeader, cr.identity)
						md.Set(auth.IdentityHeader, cr.identity)
					}
					resp, err := http.DefaultClient.Do(req)
					require.NoError(t, err)
					_ = resp.Body.Close()
					restCode, ok := grpcCodeOf[resp.StatusCode]
					require.True(t, ok, "%s %s with %s: REST %d", c.rest, c.path, cr.name, resp.StatusCode)

					ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(t.Context(), md), 30*time.Second)
					err = c.grpc(ctx, conn)
					cancel()
					require.Equal(t, want[cr.name], status.Code(err), "gRPC %s with %s: %v", c.name, cr.name, err)
					require.Equal(t, restCode, status.Code(err), "gRPC %s and REST %s %s answer %s alike (REST %d)", c.name, c.rest, c.path, cr.name, resp.StatusCode)
				}
			}
		})
	}
}

// TestGRPCRefusesBeforeReading: a call without a valid credential is refused UNAUTHENTICATED before
// its message is read (bytes that are no protobuf message are never decoded: with a token they are
// INTERNAL/INVALID_ARGUMENT from the decoder), and a method the server does not have is answered
// UNAUTHENTICATED without a credential (no probing which methods exist), UNIMPLEMENTED with one.
func TestGRPCRefusesBeforeReading(t *testing.T) {
	s := testServer(t)
	addr := serveGRPC(t, s.NewGRPCServer(guardAuthorizer(testGuard(t, auth.ModeDirect))))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	garbage := rawBytes{0xff, 0xff, 0xff, 0xff, 0xff}
	raw := grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{}))

	anon := dialGRPC(t, addr, "", raw)
	err := anon.Invoke(ctx, "/tensorflow.serving.PredictionService/Predict", garbage, &discarded{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), err)
	require.Contains(t, status.Convert(err).Message(), "Authorization: Bearer")
	err = anon.Invoke(ctx, "/inference.GRPCInferenceService/NoSuchMethod", rawBytes{}, &discarded{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), err)

	authed := dialGRPC(t, addr, grpcToken, raw)
	err = authed.Invoke(ctx, "/tensorflow.serving.PredictionService/Predict", garbage, &discarded{})
	require.NotContains(t, []codes.Code{codes.OK, codes.Unauthenticated, codes.PermissionDenied}, status.Code(err), err)
	err = authed.Invoke(ctx, "/inference.GRPCInferenceService/NoSuchMethod", rawBytes{}, &discarded{})
	require.Equal(t, codes.Unimplemented, status.Code(err), err)
}
