package workflow

import (
	"context"
	"testing"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"
)

func TestCancelCauses(t *testing.T) {
	for _, c := range []struct {
		name             string
		cause            error
		requested, other bool
	}{
		{"workflow requested", temporal.NewCanceledError(), true, false},
		{"heartbeat timed out", serviceerror.NewDeadlineExceeded("slow"), false, true},
		{"attempt gone", serviceerror.NewNotFound("gone"), false, true},
		{"worker shut down", context.Canceled, false, false},
		{"past StartToClose", context.DeadlineExceeded, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			if CancelRequested(ctx) || LostContact(ctx) {
				t.Fatal("a live context is neither")
			}
			cancel(c.cause)
			if got := CancelRequested(ctx); got != c.requested {
				t.Errorf("CancelRequested = %v, want %v", got, c.requested)
			}
			if got := LostContact(ctx); got != c.other {
				t.Errorf("LostContact = %v, want %v", got, c.other)
			}
		})
	}
}
