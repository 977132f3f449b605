package platform_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/platform"
)

// TestDecideCallMatchesDecide: for every route of the table (but browser ones, whose extra credential
// carriers gRPC has not) and every kind of caller, a call decided with DecideCall on the same
// credentials and path values gets the answer of the HTTP request, and AuthorizeGRPC turns it into
// the matching gRPC code.
func TestDecideCallMatchesDecide(t *testing.T) {
	t.Parallel()
	g, signer := newTestGuard(t)
	svc, err := signer.Sign(auth.Identity{Subject: auth.ServiceSubject("pipelines"), Service: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	callers := map[string]platform.Credentials{
		"none": {}, "unknown token": {Bearer: "unknown-token-000000000"}, "forged header": {IdentityHeader: "eyJhbGciOiJub25lIn0.e30."},
		"other namespace's owner": {Bearer: otherTok}, "viewer": {Bearer: viewerTok}, "contributor": {Bearer: contributorTok},
		"owner": {Bearer: ownerTok}, "admin": {Bearer: adminTok}, "service identity": {IdentityHeader: svc},
	}
	codeOf := map[int]codes.Code{0: codes.OK, 401: codes.Unauthenticated, 403: codes.PermissionDenied, 404: codes.NotFound}
	for _, rule := range platform.Rules {
		if rule.Browser {
			continue
		}
		for name, c := range callers {
			method, path := samplePath(rule.Pattern, "team-a")
			r := httptest.NewRequest(method, path, nil)
			if c.Bearer != "" {
				r.Header.Set("Authorization", "Bearer "+c.Bearer)
			}
			if c.IdentityHeader != "" {
				r.Header.Set(auth.IdentityHeader, c.IdentityHeader)
			}
			want := g.Decide(r, rule.Pattern)
			got := g.DecideCall(context.Background(), rule.Pattern, c, platform.PathValues(rule.Pattern, r.URL))
			if got.Code != want.Code || got.Identity.Subject != want.Identity.Subject {
				t.Errorf("%s as %s: call %d %v, request %d %v", rule.Pattern, name, got.Code, got.Err, want.Code, want.Err)
			}
			if rule.Scope == platform.ScopePath {
				continue // AuthorizeGRPC has no path values
			}
			md := metadata.MD{}
			if c.Bearer != "" {
				md.Set("authorization", "Bearer "+c.Bearer)
			}
			if c.IdentityHeader != "" {
				md.Set("x-sluice-identity", c.IdentityHeader)
			}
			ctx, err := g.AuthorizeGRPC(metadata.NewIncomingContext(context.Background(), md), rule.Pattern)
			if status.Code(err) != codeOf[want.Code] {
				t.Errorf("%s as %s: AuthorizeGRPC %v, want %s", rule.Pattern, name, err, codeOf[want.Code])
			}
			if id, ok := auth.FromContext(ctx); err == nil && rule.Scope != platform.ScopePublic && (!ok || id.Subject != want.Identity.Subject) {
				t.Errorf("%s as %s: the handler's context carries %v, want %s", rule.Pattern, name, id, want.Identity.Subject)
			}
		}
	}
	if d := g.DecideCall(context.Background(), "", platform.Credentials{Bearer: adminTok}, nil); d.Code != http.StatusForbidden {
		t.Errorf("a call without a route: %d, want 403", d.Code)
	}
}

// TestGRPCInterceptors serves gRPC's health service behind the guard's interceptors: Check is
// authorised as an any-identity route, Watch (a stream) as an admin route, List has no route.
func TestGRPCInterceptors(t *testing.T) {
	t.Parallel()
	g, _ := newTestGuard(t)
	routeOf := func(m string) string {
		switch m {
		case healthpb.Health_Check_FullMethodName:
			return "GET /apis/auth/v1/whoami"
		case healthpb.Health_Watch_FullMethodName:
			return "GET /metrics"
		}
		return ""
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(g.UnaryServerInterceptor(routeOf)), grpc.StreamInterceptor(g.StreamServerInterceptor(routeOf)))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	as := func(tok string) (context.Context, context.CancelFunc) {
		ctx := context.Background()
		if tok != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
		}
		return context.WithTimeout(ctx, 30*time.Second)
	}
	watch := func(tok string) error {
		ctx, cancel := as(tok)
		defer cancel()
		st, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		_, err = st.Recv()
		return err
	}
	check := func(tok string) error {
		ctx, cancel := as(tok)
		defer cancel()
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	list := func(tok string) error {
		ctx, cancel := as(tok)
		defer cancel()
		_, err := hc.List(ctx, &healthpb.HealthListRequest{})
		return err
	}
	for _, c := range []struct {
		name string
		call func(string) error
		tok  string
		want codes.Code
	}{
		{"check without token", check, "", codes.Unauthenticated},
		{"check with unknown token", check, "unknown-token-000000000", codes.Unauthenticated},
		{"check as viewer", check, viewerTok, codes.OK},
		{"watch without token", watch, "", codes.Unauthenticated},
		{"watch as viewer", watch, viewerTok, codes.PermissionDenied},
		{"watch as admin", watch, adminTok, codes.OK},
		{"list (no route) as admin", list, adminTok, codes.PermissionDenied},
	} {
		if err := c.call(c.tok); status.Code(err) != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
}

// BenchmarkAuthorizeGRPC measures what authorising one gRPC call adds (metadata read, static bearer
// token, route-table lookup; an any-identity route such as the serving data plane's).
func BenchmarkAuthorizeGRPC(b *testing.B) {
	g, _ := newTestGuard(b)
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+viewerTok))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.AuthorizeGRPC(ctx, "/v2/"); err != nil {
			b.Fatal(err)
		}
	}
}
