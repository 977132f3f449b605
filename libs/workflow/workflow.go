// Package workflow holds Sluice's Temporal wiring: client dial, worker construction, activity option
// presets and the error types that mark activity failures as non-retryable.
//
// Workflow code in the services imports go.temporal.io/sdk/workflow directly; this package is for the
// composition roots and for option presets, so every service sets timeouts and retries the same way.
package workflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	sdkworkflow "go.temporal.io/sdk/workflow"
)

// Error types carried by temporal.ApplicationError.Type(); every one is non-retryable.
const (
	// ErrTypeInvalidSpec: the input can never succeed (bad spec, unknown reference).
	ErrTypeInvalidSpec = "sluice.InvalidSpec"
	// ErrTypeMissingOutput: a step finished without producing a declared output.
	ErrTypeMissingOutput = "sluice.MissingOutput"
	// ErrTypeStepFailed: a step's process exited non-zero (retried by the task's own retry policy, not by Temporal).
	ErrTypeStepFailed = "sluice.StepFailed"
	// ErrTypeNotFound: a referenced object does not exist.
	ErrTypeNotFound = "sluice.NotFound"
	// ErrTypePermanent: any other failure that retrying will not fix.
	ErrTypePermanent = "sluice.Permanent"
)

// NonRetryableErrorTypes lists the types above, for RetryPolicy.NonRetryableErrorTypes.
var NonRetryableErrorTypes = []string{ErrTypeInvalidSpec, ErrTypeMissingOutput, ErrTypeStepFailed, ErrTypeNotFound, ErrTypePermanent}

// Config says where Temporal is.
type Config struct {
	// HostPort is the frontend address, e.g. "127.0.0.1:7233" (env TEMPORAL_ADDRESS).
	HostPort string
	// Namespace is the Temporal namespace, e.g. "sluice" (env TEMPORAL_NAMESPACE).
	Namespace string
	// Identity names this client in the Temporal UI (default: host/pid chosen by the SDK).
	Identity string
}

// Validate returns every problem, each naming its field.
func (c Config) Validate() error {
	var errs []error
	if c.HostPort == "" {
		errs = append(errs, errors.New("TEMPORAL_ADDRESS: required"))
	}
	if c.Namespace == "" {
		errs = append(errs, errors.New("TEMPORAL_NAMESPACE: required"))
	}
	return errors.Join(errs...)
}

// Dial connects a Temporal client (heavyweight: one per process) and checks the server answers.
func Dial(ctx context.Context, cfg Config, log *slog.Logger) (client.Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := client.Options{HostPort: cfg.HostPort, Namespace: cfg.Namespace, Identity: cfg.Identity}
	if log != nil {
		opts.Logger = NewLogger(log)
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("workflow: dial temporal %s: %w", cfg.HostPort, err)
	}
	return c, nil
}

// NewLogger adapts slog to Temporal's logger. Temporal's chatty info lines are logged at debug.
func NewLogger(log *slog.Logger) tlog.Logger {
	return tlog.NewStructuredLogger(log)
}

// WorkerOptions returns worker options with Sluice's defaults: graceful stop that lets activities finish
// their heartbeat, concurrency suited to a small machine, and the fast paths that are safe for workers that
// run a service's workflows and activities on one task queue.
//
// Eager activities: when the server allows it (system.enableActivityEagerExecution, on in the dev stack
// and in deploy/temporal/dynamicconfig.yaml), a workflow task that schedules activities on this worker's
// own queue gets up to 3 of them back in its completion response and runs them here without a matching
// round trip. The SDK only asks for it when a slot is free and the activity's queue is the workflow's,
// so it cannot starve the worker or run an activity where it is not registered.
//
// Pollers: each poller is one long-poll on the server. 4 workflow-task pollers keep a sticky-queue and a
// normal-queue poll open for each of two concurrently completing runs; 8 activity-task pollers pick up
// the activities that do not go eager (beyond 3 per workflow task: fan-outs, retries) without waiting
// for a poller to come back. Both are far below the 256 concurrent activities, so polling never limits
// a burst; more pollers would only add idle long-polls on a 2-core machine.
func WorkerOptions() worker.Options {
	return worker.Options{
		WorkerStopTimeout:                  10 * time.Second,
		MaxConcurrentActivityExecutionSize: 256,
		MaxConcurrentWorkflowTaskPollers:   4,
		MaxConcurrentActivityTaskPollers:   8,
		// Explicit although it is the SDK default: eager activities are part of Sluice's latency budget.
		DisableEagerActivities: false,
	}
}

// NewWorker builds a worker on taskQueue with [WorkerOptions].
func NewWorker(c client.Client, taskQueue string) worker.Worker {
	return worker.New(c, taskQueue, WorkerOptions())
}

// ShortActivity is for quick bookkeeping activities (publish an event, write a record): 30 s per attempt,
// retried with backoff up to 10 attempts.
func ShortActivity() sdkworkflow.ActivityOptions {
	return sdkworkflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        200 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        10 * time.Second,
			MaximumAttempts:        10,
			NonRetryableErrorTypes: NonRetryableErrorTypes,
		},
	}
}

// LongActivity is for work that runs a process (a pipeline step, a replica watcher): it must heartbeat
// at least every heartbeat interval, may run up to maxRun, and is retried by Temporal only for
// infrastructure failures (worker lost, heartbeat timeout) — business retries belong to the caller.
func LongActivity(heartbeat, maxRun time.Duration) sdkworkflow.ActivityOptions {
	return sdkworkflow.ActivityOptions{
		StartToCloseTimeout: maxRun,
		HeartbeatTimeout:    heartbeat,
		WaitForCancellation: true,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: NonRetryableErrorTypes,
		},
	}
}

// NonRetryable wraps err as a non-retryable application error of the given type (one of the ErrType
// constants), keeping err as the cause.
func NonRetryable(errType string, err error, details ...any) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), errType, err, details...)
}

// ErrorType returns the application error type of err ("" when err is not an application error).
func ErrorType(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Type()
	}
	return ""
}
