// Package hbfault fails a Temporal worker's activity heartbeats on demand, for tests of activities that
// must survive a lost contact with Temporal: a busy machine makes a RecordActivityTaskHeartbeat RPC take
// longer than the SDK's heartbeat throttle interval, the RPC ends DeadlineExceeded and the SDK cancels
// the activity's context although nobody cancelled the activity.
//
// Dial the worker's client with [Faults.DialOption] (its own client: the test's other clients keep
// working), then [Faults.Fail] the next n heartbeats.
package hbfault

import (
	"context"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Faults fails the next heartbeat RPCs of the clients dialled with its DialOption. The zero value fails
// none.
type Faults struct {
	fail   atomic.Int32 // heartbeats still to fail
	failed atomic.Int32
	sent   atomic.Int32
}

// Fail makes the next n heartbeats fail (replacing any still pending).
func (h *Faults) Fail(n int) { h.fail.Store(int32(n)) }

// Failed is how many heartbeats have been failed so far.
func (h *Faults) Failed() int { return int(h.failed.Load()) }

// Sent is how many heartbeats have gone through to the server (not failed).
func (h *Faults) Sent() int { return int(h.sent.Load()) }

// DialOption adds the interceptor to a client's connection (client.ConnectionOptions.DialOptions).
func (h *Faults) DialOption() grpc.DialOption { return grpc.WithChainUnaryInterceptor(h.Intercept) }

// Intercept is the unary client interceptor that fails heartbeats with codes.DeadlineExceeded.
func (h *Faults) Intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if strings.HasSuffix(method, "/RecordActivityTaskHeartbeat") {
		for n := h.fail.Load(); n > 0; n = h.fail.Load() {
			if h.fail.CompareAndSwap(n, n-1) {
				h.failed.Add(1)
				return status.Error(codes.DeadlineExceeded, "injected: heartbeat slower than the throttle interval")
			}
		}
		h.sent.Add(1)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}
