package app_test

import (
	"context"
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
)

// TestGRPCPortAuthenticates: the service's gRPC port authorises calls with the process's guard
// (platform.Deps.EnableAuth, as the binary and `sluice dev` build it): no token or an unknown one is
// UNAUTHENTICATED, a namespace token of any namespace is served (as REST /v2/health/live); a process
// without a guard does not open the port.
func TestGRPCPortAuthenticates(t *testing.T) {
	const tok, teamTok = "serving-grpc-admin-token-01", "serving-grpc-team-b-token-01"
	e := newEnv(t, func(d *platform.Deps) {
		require.NoError(t, d.EnableAuth(t.Context(), auth.Config{Tokens: tok + "=" + auth.AdminSubject, NamespaceTokens: teamTok + "=team-b"}))
	})
	require.NotEmpty(t, e.app.GRPCAddr())
	conn, err := grpc.NewClient(e.app.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	inf := inferencepb.NewGRPCInferenceServiceClient(conn)
	live := func(token string) error {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		r, err := inf.ServerLive(ctx, &inferencepb.ServerLiveRequest{})
		if err == nil && !r.Live {
			t.Errorf("ServerLive with %q: not live", token)
		}
		return err
	}
	require.Equal(t, codes.Unauthenticated, status.Code(live("")))
	require.Equal(t, codes.Unauthenticated, status.Code(live("unknown-token-0123456789")))
	require.NoError(t, live(tok))
	require.NoError(t, live(teamTok))

	bare := newEnv(t)
	require.Empty(t, bare.app.GRPCAddr(), "no guard, no gRPC port")
}
