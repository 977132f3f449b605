package platform

import (
	"context"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-ml/sluice/libs/auth"
)

// GRPCCredentials reads the credentials of an incoming gRPC call from its metadata: the bearer token of
// "authorization: Bearer <token>" and the gateway's signed identity of "x-sluice-identity"
// ([auth.IdentityHeader]); the first value of each counts, as HTTP's Header.Get.
func GRPCCredentials(ctx context.Context) Credentials {
	md, _ := metadata.FromIncomingContext(ctx)
	var c Credentials
	if v := md.Get(auth.IdentityHeader); len(v) > 0 {
		c.IdentityHeader = v[0]
	}
	if v := md.Get("authorization"); len(v) > 0 {
		if scheme, tok, ok := strings.Cut(v[0], " "); ok && strings.EqualFold(scheme, "Bearer") {
			c.Bearer = strings.TrimSpace(tok)
		}
	}
	return c
}

// AuthorizeGRPC authorises an incoming gRPC call as a request of the REST route pattern that does the
// same ([Guard.DecideCall] with [GRPCCredentials]; gRPC routes carry no path wildcards): allowed, it
// returns ctx carrying the caller's identity and the decider, as the HTTP guard gives handlers;
// refused, a status error whose code is HTTP's answer: Unauthenticated (401), PermissionDenied (403)
// or NotFound (404), with the guard's message.
func (g *Guard) AuthorizeGRPC(ctx context.Context, pattern string) (context.Context, error) {
	d := g.DecideCall(ctx, pattern, GRPCCredentials(ctx), nil)
	switch d.Code {
	case 0:
	case http.StatusUnauthorized:
		return ctx, status.Error(codes.Unauthenticated, d.Err.Error())
	case http.StatusNotFound:
		return ctx, status.Error(codes.NotFound, d.Err.Error())
	default:
		return ctx, status.Error(codes.PermissionDenied, d.Err.Error())
	}
	if d.Rule.Scope == ScopePublic {
		return ctx, nil
	}
	return auth.WithIdentity(auth.WithDecider(ctx, g.decider), d.Identity), nil
}

// UnaryServerInterceptor authorises every unary call with [Guard.AuthorizeGRPC] as the REST route
// routeOf returns for its full method name ("/package.Service/Method"; "" = no route: refused).
// gRPC runs interceptors once the request message is decoded; a server that must refuse before it
// reads the message calls AuthorizeGRPC from its method handlers instead (services/serving does).
func (g *Guard) UnaryServerInterceptor(routeOf func(fullMethod string) string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := g.AuthorizeGRPC(ctx, routeOf(info.FullMethod))
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is [Guard.UnaryServerInterceptor] for streaming calls: the stream is
// authorised before its handler runs (before any message is read).
func (g *Guard) StreamServerInterceptor(routeOf func(fullMethod string) string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := g.AuthorizeGRPC(ss.Context(), routeOf(info.FullMethod))
		if err != nil {
			return err
		}
		return handler(srv, &authorizedStream{ServerStream: ss, ctx: ctx})
	}
}

type authorizedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authorizedStream) Context() context.Context { return s.ctx }
