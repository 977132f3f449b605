// Package app is the serving service's composition root: the data plane (TF Serving REST under
// /v1/models/ and KServe v2 under /v2/), the control plane REST API under
// /apis/serving/v1/namespaces/{ns}/deployments, the Temporal worker running the deployment
// workflows and the durable consumer of sluice.serving.deployment.requested.v1. It runs as its own
// binary (cmd/serving) or inside `sluice dev`.
package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

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
}

// ConfigFromEnv reads Config through getenv and validates it; errors name the variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{PollInterval: 2 * time.Second, HeartbeatTimeout: control.DefaultHeartbeatTimeout,
		LoadTimeout: control.DefaultLoadTimeout, TaskQueue: servingv1.TaskQueue, Consumers: 4}
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
	server := dataplane.NewServer(dataplane.Options{Name: "sluice-serving", Log: log})
	reg := control.NewRegistry(server, d.Artifacts, modelruntime.NewONNXLoader(), cfg.PollInterval, log)
	a := &App{cfg: cfg, d: d, server: server, reg: reg}
	a.worker = worker.New(d.Temporal, cfg.TaskQueue, wf.WorkerOptions())
	a.worker.RegisterWorkflowWithOptions(control.DeploymentWorkflow, workflow.RegisterOptions{Name: servingv1.WorkflowType})
	a.worker.RegisterActivity(&control.Activities{Registry: reg, Bus: d.Bus, Log: log, Source: "/sluice/" + Name})
	return a, nil
}

// Name implements platform.Service.
func (a *App) Name() string { return Name }

// Server returns the data plane (for in-process callers and benchmarks).
func (a *App) Server() *dataplane.Server { return a.server }

// Start starts the worker and the deployment-request consumer, then asks every running deployment
// workflow to re-apply its state to this (possibly restarted) process.
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
	if err := a.reconcileAll(ctx); err != nil {
		a.d.Log.WarnContext(ctx, "reconcile deployments", "err", err)
	}
	return nil
}

// reconcileAll signals every running deployment workflow on this task queue to re-apply its state.
func (a *App) reconcileAll(ctx context.Context) error {
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
			if e.Status != enums.WORKFLOW_EXECUTION_STATUS_RUNNING || !strings.HasPrefix(e.Execution.WorkflowId, "deployment/") {
				continue
			}
			if err := a.d.Temporal.SignalWorkflow(ctx, e.Execution.WorkflowId, "", servingv1.SignalReconcile, nil); err != nil {
				a.d.Log.WarnContext(ctx, "signal reconcile", "workflow_id", e.Execution.WorkflowId, "err", err)
			}
		}
		token = resp.NextPageToken
		if len(token) == 0 {
			return nil
		}
	}
}

// Ready implements platform.Service.
func (a *App) Ready(ctx context.Context) error { return nil }

// Close stops the consumer, the worker and every loaded model.
func (a *App) Close() error {
	if a.sub != nil {
		a.sub.Stop()
	}
	a.worker.Stop()
	a.reg.Close()
	return nil
}
