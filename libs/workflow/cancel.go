package workflow

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// An activity's context is cancelled for more reasons than the workflow asking: the SDK also cancels it
// when a heartbeat RPC fails, even transiently (one slower than the heartbeat throttle interval on a busy
// machine ends serviceerror.DeadlineExceeded), when the server no longer knows the attempt (NotFound: it
// timed out, or its run closed), and when the activity is paused or reset. Work that a cancellation
// stops (a step's process, a trial's job) must stop only when the cancellation was requested; the
// helpers below tell the causes apart, in one place for every service.

// CancelRequested reports an activity context ended because the workflow requested the activity's
// cancellation (the heartbeat answered "cancel requested": a temporal.CanceledError cause).
func CancelRequested(ctx context.Context) bool {
	return ctx.Err() != nil && temporal.IsCanceledError(context.Cause(ctx))
}

// LostContact reports an activity context the SDK cancelled because a heartbeat failed: not by the
// workflow's request, nor past its StartToClose deadline, nor with its worker's shutdown (a plain
// context.Canceled). The work it was following may still be wanted.
func LostContact(ctx context.Context) bool {
	if ctx.Err() == nil {
		return false
	}
	cause := context.Cause(ctx)
	return !temporal.IsCanceledError(cause) && !errors.Is(cause, context.DeadlineExceeded) && !errors.Is(cause, context.Canceled)
}

// RunStatus is the status of the activity's workflow run as Temporal reports it through c, asked after
// its heartbeat failed (UNSPECIFIED when c is nil or Temporal does not answer within 10 s).
func RunStatus(ctx context.Context, c client.Client) enums.WorkflowExecutionStatus {
	if c == nil || !activity.IsActivity(ctx) {
		return enums.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED
	}
	info := activity.GetInfo(ctx)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	d, err := c.DescribeWorkflowExecution(dctx, info.WorkflowExecution.ID, info.WorkflowExecution.RunID)
	if err != nil {
		return enums.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED
	}
	return d.GetWorkflowExecutionInfo().GetStatus()
}

type steadyKey struct{}

// Steady returns a context for an activity's work that outlives a lost contact with Temporal: it ends
// with ctx when the workflow requested the cancellation, the StartToClose deadline passed or the worker
// shuts down, but when the SDK cancelled ctx because a heartbeat failed (see [LostContact]) it goes on
// while the attempt is still alive. It then heartbeats the attempt itself every interval (its details
// from details, nil for none), through the worker's client, and ends when a heartbeat answers that
// cancellation was requested (cause a temporal.CanceledError, so [CancelRequested] holds) or that the
// server no longer knows the attempt (NotFound: it timed out and was retried, or its run closed; the
// cause is that error). A heartbeat that fails otherwise is tried again at the next interval; the
// server's heartbeat timeout bounds how long.
//
// Activity code passes the returned context to everything it does (heartbeats included) and calls
// stop when done. Outside an activity, or when ctx is already one Steady returned, it returns ctx.
func Steady(ctx context.Context, interval time.Duration, details func() any, log *slog.Logger) (context.Context, func()) {
	if !activity.IsActivity(ctx) || ctx.Value(steadyKey{}) != nil {
		return ctx, func() {}
	}
	if log == nil {
		log = slog.Default()
	}
	base := context.WithValue(context.WithoutCancel(ctx), steadyKey{}, true)
	var cancelDeadline context.CancelFunc = func() {}
	if dl, ok := ctx.Deadline(); ok {
		base, cancelDeadline = context.WithDeadline(base, dl)
	}
	sctx, cancel := context.WithCancelCause(base)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		if !LostContact(ctx) {
			cancel(context.Cause(ctx))
			return
		}
		info := activity.GetInfo(ctx)
		log.Warn("activity lost contact with Temporal (heartbeat failed); its work goes on while the attempt lives",
			"activity", info.ActivityType.Name, "attempt", info.Attempt, "workflow", info.WorkflowExecution.ID, "cause", context.Cause(ctx))
		c := activity.GetClient(ctx)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			var d []any
			if details != nil {
				d = append(d, details())
			}
			hctx, hcancel := context.WithTimeout(base, max(interval, time.Second))
			err := c.RecordActivityHeartbeat(hctx, info.TaskToken, d...)
			hcancel()
			var nf *serviceerror.NotFound
			switch {
			case temporal.IsCanceledError(err):
				cancel(err)
				return
			case errors.As(err, &nf):
				log.Warn("activity attempt is gone (timed out, or its run closed); its work stops",
					"activity", info.ActivityType.Name, "attempt", info.Attempt, "workflow", info.WorkflowExecution.ID, "err", err)
				cancel(err)
				return
			}
			select {
			case <-done:
				return
			case <-sctx.Done(): // deadline
				return
			case <-activity.GetWorkerStopChannel(ctx):
				cancel(context.Canceled)
				return
			case <-tick.C:
			}
		}
	}()
	return sctx, func() {
		close(done)
		<-finished
		cancel(nil)
		cancelDeadline()
	}
}
