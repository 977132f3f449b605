// Package app is the serving service's composition root: the data plane (TF Serving REST under
// /v1/models/ and KServe v2 under /v2/), the control plane REST API under
// /apis/serving/v1/namespaces/{ns}/deployments, the Temporal worker running the deployment
// workflows and the durable consumer of sluice.serving.deployment.requested.v1. It runs as its own
// binary (cmd/serving) or inside `sluice dev`.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/grpc"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/serving/api/servingv1"
	"github.com/sluice-ml/sluice/services/serving/internal/control"
	"github.com/sluice-ml/sluice/services/serving/internal/dataplane"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
)

// Name is the service name.
const Name = "serving"

// Config holds the serving service's own settings.
type Config struct {
	// PollInterval is how often each model base path is polled for new versions
	// (SLUICE_SERVING_POLL_INTERVAL, default 2s; TF Serving's --file_system_poll_wait_seconds).
	PollInterval time.Duration
	// HeartbeatTimeout of the workflow's long activities (SLUICE_SERVING_HEARTBEAT_TIMEOUT, default 10s);
	// it bounds how long a restarted service waits before its watches are retried.
	HeartbeatTimeout time.Duration
	// LoadTimeout bounds the wait for a first version under a base path (SLUICE_SERVING_LOAD_TIMEOUT, default 5m).
	LoadTimeout time.Duration
	// TaskQueue is the Temporal task queue (SLUICE_SERVING_TASK_QUEUE, default servingv1.TaskQueue).
	TaskQueue string
	// Consumers is how many deployment requests are handled at once (SLUICE_SERVING_CONSUMERS, default 4).
	Consumers int
	// MaxInflightBytes caps the request bytes held by requests in flight on the data plane
	// (SLUICE_SERVING_MAX_INFLIGHT_BYTES, default 256 MiB); past it requests get 429 / RESOURCE_EXHAUSTED.
	MaxInflightBytes int64
	// GRPCAddr is where the gRPC data plane listens (SLUICE_SERVING_GRPC_ADDR, default
	// 127.0.0.1:8500 as TF Serving's --port; "off" disables it).
	GRPCAddr string
}

// ConfigFromEnv reads Config through getenv and validates it; errors name the variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{PollInterval: 2 * time.Second, HeartbeatTimeout: control.DefaultHeartbeatTimeout,
		LoadTimeout: control.DefaultLoadTimeout, TaskQueue: servingv1.TaskQueue, Consumers: 4,
		MaxInflightBytes: 256 << 20, GRPCAddr: "127.0.0.1:8500"}
	for name, dst := range map[string]*time.Duration{
		"SLUICE_SERVING_POLL_INTERVAL":     &c.PollInterval,
		"SLUICE_SERVING_HEARTBEAT_TIMEOUT": &c.HeartbeatTimeout,
		"SLUICE_SERVING_LOAD_TIMEOUT":      &c.LoadTimeout,
	} {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return c, fmt.Errorf("%s: %q is not a positive duration like 2s", name, v)
			}
			*dst = d
		}
	}
	if v := getenv("SLUICE_SERVING_TASK_QUEUE"); v != "" {
		c.TaskQueue = v
	}
	if v := getenv("SLUICE_SERVING_CONSUMERS"); v != "" {
		var n int
		if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n < 1 {
			return c, fmt.Errorf("SLUICE_SERVING_CONSUMERS: %q is not a positive integer", v)
		}
		c.Consumers = n
	}
	if v := getenv("SLUICE_SERVING_MAX_INFLIGHT_BYTES"); v != "" {
		var n int64
		if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n < 1 {
			return c, fmt.Errorf("SLUICE_SERVING_MAX_INFLIGHT_BYTES: %q is not a positive number of bytes", v)
		}
		c.MaxInflightBytes = n
	}
	if v := getenv("SLUICE_SERVING_GRPC_ADDR"); v != "" {
		c.GRPCAddr = v
	}
	return c, nil
}

// App is the running serving service.
type App struct {
	cfg    Config
	d      *platform.Deps
	server *dataplane.Server
	reg    *control.Registry
	worker worker.Worker
	sub    *events.Subscription

	grpc     *grpc.Server
	grpcAddr string

	// restored is closed once the deployments recorded in Temporal are loaded again (Start).
	restored  chan struct{}
	stopStart context.CancelFunc
}

// Build is the platform.Builder of the serving service.
func Build(ctx context.Context, d *platform.Deps) (platform.Service, error) {
	cfg, err := ConfigFromEnv(d.Getenv)
	if err != nil {
		return nil, err
	}
	return New(cfg, d)
}

// New builds the service.
func New(cfg Config, d *platform.Deps) (*App, error) {
	log := d.Log.With("service", Name)
	server := dataplane.NewServer(dataplane.Options{Name: "sluice-serving", Log: log, MaxInflightBytes: cfg.MaxInflightBytes, StartUnready: true})
	reg := control.NewRegistry(server, d.Artifacts, modelruntime.NewONNXLoader(), cfg.PollInterval, log)
	a := &App{cfg: cfg, d: d, server: server, reg: reg, restored: make(chan struct{})}
	a.worker = worker.New(d.Temporal, cfg.TaskQueue, wf.WorkerOptions())
	a.worker.RegisterWorkflowWithOptions(control.DeploymentWorkflow, workflow.RegisterOptions{Name: servingv1.WorkflowType})
	a.worker.RegisterActivity(&control.Activities{Registry: reg, Bus: d.Bus, Log: log, Source: "/sluice/" + Name})
	return a, nil
}

// Name implements platform.Service.
func (a *App) Name() string { return Name }

// Server returns the data plane (for in-process callers and benchmarks).
func (a *App) Server() *dataplane.Server { return a.server }

// Start starts the worker and the deployment-request consumer, then restores the deployments
// recorded by the running deployment workflows: each workflow's status (its traffic split and
// revisions) is read and applied to this (possibly restarted) process, loading the models, after
// which the service reports ready. The workflows are also signalled to reconcile, so their
// watches resume here.
func (a *App) Start(ctx context.Context) error {
	if err := a.worker.Start(); err != nil {
		return fmt.Errorf("serving worker: %w", err)
	}
	sub, err := a.d.Bus.Consume(ctx, events.ConsumerConfig{
		Stream: events.StreamServing, Durable: "serving-deployment-requests",
		FilterSubjects: []string{events.SubjectFor(events.ServingDeploymentRequestedV1)},
		Concurrency:    a.cfg.Consumers,
	}, a.HandleDeploymentRequested)
	if err != nil {
		a.worker.Stop()
		return err
	}
	a.sub = sub
	a.startGRPC(ctx)
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.stopStart = cancel
	go func() {
		defer close(a.restored)
		if err := a.restore(rctx); err != nil && rctx.Err() == nil {
			a.d.Log.WarnContext(rctx, "restore deployments", "err", err)
		}
		a.server.SetReady(true)
	}()
	return nil
}

// startGRPC serves the gRPC data plane on cfg.GRPCAddr, every call authorised by the process's
// guard exactly as the REST data plane route it shares (dataplane.GRPCRoute: any valid identity,
// from "authorization: Bearer <token>" or, behind a gateway, the signed "x-sluice-identity"
// metadata; UNAUTHENTICATED otherwise). Without a guard (platform.Deps.EnableAuth was not called)
// it is not started. A port that cannot be bound is logged and leaves REST serving (the process
// keeps its control plane and REST data plane).
func (a *App) startGRPC(ctx context.Context) {
	if a.cfg.GRPCAddr == "" || a.cfg.GRPCAddr == "off" {
		return
	}
	guard := a.d.Guard()
	if guard == nil {
		a.d.Log.ErrorContext(ctx, "gRPC data plane not started: the process has no guard to authenticate calls (platform.Deps.EnableAuth)", "addr", a.cfg.GRPCAddr)
		return
	}
	lis, err := net.Listen("tcp", a.cfg.GRPCAddr)
	if err != nil {
		a.d.Log.ErrorContext(ctx, "gRPC data plane not started", "addr", a.cfg.GRPCAddr, "err", err)
		return
	}
	a.grpc = a.server.NewGRPCServer(func(ctx context.Context, method string) (context.Context, error) {
		return guard.AuthorizeGRPC(ctx, dataplane.GRPCRoute(method))
	})
	a.grpcAddr = lis.Addr().String()
	go func() { _ = a.grpc.Serve(lis) }()
	a.d.Log.InfoContext(ctx, "gRPC data plane listening", "addr", a.grpcAddr)
}

// GRPCAddr is the address the gRPC data plane listens on ("" when it is not serving).
func (a *App) GRPCAddr() string { return a.grpcAddr }

// restore applies the state of every running deployment workflow on this task queue to the
// registry, then signals the workflow to reconcile.
func (a *App) restore(ctx context.Context) error {
	var token []byte
	for {
		resp, err := a.d.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: a.d.Namespace, PageSize: 500, NextPageToken: token,
			Query: fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND TaskQueue = '%s'", servingv1.WorkflowType, a.cfg.TaskQueue),
		})
		if err != nil {
			return err
		}
		for _, e := range resp.Executions {
			id := e.Execution.WorkflowId
			if e.Status != enums.WORKFLOW_EXECUTION_STATUS_RUNNING || !strings.HasPrefix(id, "deployment/") {
				continue
			}
			a.restoreOne(ctx, id)
			if err := a.d.Temporal.SignalWorkflow(ctx, id, "", servingv1.SignalReconcile, nil); err != nil {
				a.d.Log.WarnContext(ctx, "signal reconcile", "workflow_id", id, "err", err)
			}
		}
		token = resp.NextPageToken
		if len(token) == 0 {
			return nil
		}
	}
}

// restoreOne loads one deployment's recorded traffic split. The status query is retried: right
// after a restart it may wait for the previous worker's sticky queue to time out. Bounded in time
// (a workflow that never answers is left to its reconcile signal).
func (a *App) restoreOne(ctx context.Context, workflowID string) {
	ctx, cancel := context.WithTimeout(ctx, max(a.cfg.LoadTimeout, 2*time.Minute))
	defer cancel()
	var v servingv1.DeploymentView
	for {
		qctx, qcancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := a.d.Temporal.QueryWorkflow(qctx, workflowID, "", servingv1.QueryStatus)
		if err == nil {
			err = res.Get(&v)
		}
		qcancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			a.d.Log.WarnContext(ctx, "read deployment status", "workflow_id", workflowID, "err", err)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	if v.Deleted {
		return
	}
	if err := a.reg.Apply(ctx, control.DesiredFor(v, v.Status.Components.Predictor.Traffic)); err != nil {
		a.d.Log.WarnContext(ctx, "restore deployment", "workflow_id", workflowID, "err", err)
		return
	}
	a.d.Log.InfoContext(ctx, "restored deployment", "workflow_id", workflowID, "model", v.Spec.ModelName)
}

// Ready implements platform.Service: not ready until the recorded deployments are loaded again.
func (a *App) Ready(ctx context.Context) error {
	select {
	case <-a.restored:
		return nil
	default:
		return errors.New("serving: loading the models of the recorded deployments")
	}
}

// Restored is closed once Start has loaded the recorded deployments (the service is ready).
func (a *App) Restored() <-chan struct{} { return a.restored }

// Close stops the consumer, the worker and every loaded model.
func (a *App) Close() error {
	if a.stopStart != nil {
		a.stopStart()
		<-a.restored
	}
	if a.sub != nil {
		a.sub.Stop()
	}
	if a.grpc != nil {
		done := make(chan struct{})
		go func() { a.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			a.grpc.Stop()
		}
	}
	a.worker.Stop()
	a.reg.Close()
	return nil
}
