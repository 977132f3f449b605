// Package app is the pipelines service's composition root: it wires the run engine (Temporal worker),
// the run-request consumer and the REST API onto the shared platform deps, so the service runs as its
// own binary (cmd/pipelines) or inside `sluice dev`.
package app

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/libs/runtime"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/catalog"
	"github.com/sluice-ml/sluice/services/pipelines/internal/claimcheck"
	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
)

// Name is the service name.
const Name = "pipelines"

// Config holds the pipelines service's own settings.
type Config struct {
	// MaxConcurrentSteps bounds step activities running at once in this process
	// (SLUICE_PIPELINES_MAX_CONCURRENT_STEPS, default 256).
	MaxConcurrentSteps int
	// ConsumerConcurrency is how many run requests are handled at once (SLUICE_PIPELINES_CONSUMERS, default
	// 64: in a burst, 64 concurrent starts reach the Temporal server's own start rate where 8 reach under
	// half of it; services/pipelines/README.md, "Bursts of run requests").
	ConsumerConcurrency int
	// TrainingURL is the training service's base URL, where trainingJob tasks create and watch their jobs
	// (SLUICE_PIPELINES_TRAINING_URL; default http://<SLUICE_HTTP_ADDR> when that is set, else
	// http://127.0.0.1:8080, the API port of `sluice dev`).
	TrainingURL string
	// Kube configures step pods on the kubernetes runtime: SLUICE_KUBE_LAUNCHER_IMAGE (default
	// engine.DefaultLauncherImage), SLUICE_KUBE_S3_ENDPOINT (S3 as pods reach it, default the
	// service's own S3_ENDPOINT), SLUICE_KUBE_S3_SECRET (the Secret with the accesskey and secretkey
	// keys pods read, default engine.DefaultS3Secret) and S3_REGION.
	Kube engine.KubeSteps
}

// ConfigFromEnv reads Config through getenv and validates it.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{MaxConcurrentSteps: 256, ConsumerConcurrency: 64}
	for name, dst := range map[string]*int{
		"SLUICE_PIPELINES_MAX_CONCURRENT_STEPS": &c.MaxConcurrentSteps,
		"SLUICE_PIPELINES_CONSUMERS":            &c.ConsumerConcurrency,
	} {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return c, fmt.Errorf("%s: %q is not a positive integer", name, v)
			}
			*dst = n
		}
	}
	c.Kube = engine.KubeSteps{LauncherImage: getenv("SLUICE_KUBE_LAUNCHER_IMAGE"), S3Endpoint: getenv("SLUICE_KUBE_S3_ENDPOINT"),
		S3Secret: getenv("SLUICE_KUBE_S3_SECRET"), S3Region: getenv("S3_REGION")}
	if e := c.Kube.S3Endpoint; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, fmt.Errorf("SLUICE_KUBE_S3_ENDPOINT: %q is not an http(s)://host:port URL", e)
		}
	}
	if s := c.Kube.S3Secret; s != "" && !dag.ValidObjectName(s) {
		return c, fmt.Errorf("SLUICE_KUBE_S3_SECRET: %q is not a Kubernetes object name", s)
	}
	c.TrainingURL = getenv("SLUICE_PIPELINES_TRAINING_URL")
	if c.TrainingURL == "" {
		c.TrainingURL = engine.DefaultTrainingURL
		if addr := getenv("SLUICE_HTTP_ADDR"); addr != "" {
			c.TrainingURL = "http://" + addr
		}
	}
	if u, err := url.Parse(c.TrainingURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("SLUICE_PIPELINES_TRAINING_URL: %q is not an http(s) URL", c.TrainingURL)
	}
	return c, nil
}

// App is the running pipelines service.
type App struct {
	cfg     Config
	d       *platform.Deps
	acts    *engine.Activities
	catalog *catalog.Catalog
	worker  worker.Worker
	// tc is the Temporal client of pipeline workflows: d.Temporal's connection with the claim-check
	// data converter (large values live in S3, see package claimcheck).
	tc  client.Client
	sub *events.Subscription
	// specs caches compiled run specs (speccache.go).
	specs specCache
}

// Build is the platform.Builder of the pipelines service.
func Build(ctx context.Context, d *platform.Deps) (platform.Service, error) {
	cfg, err := ConfigFromEnv(d.Getenv)
	if err != nil {
		return nil, err
	}
	return New(cfg, d)
}

// New builds the service.
func New(cfg Config, d *platform.Deps) (*App, error) {
	// Under SLUICE_RUNTIME=kubernetes each step attempt is a pod whose launcher moves its artifacts
	// through S3 (see engine.KubeSteps).
	rt, err := platform.NewRuntimeEnv(d.RuntimeKind, d.Getenv)
	if err != nil {
		return nil, err
	}
	tc, err := claimcheck.NewClient(d.Temporal, d.Namespace, d.Artifacts, client.Options{Logger: wf.NewLogger(d.Log)})
	if err != nil {
		return nil, fmt.Errorf("pipelines temporal client: %w", err)
	}
	aead, err := objectsKey(d.Getenv, d.DataDir)
	if err != nil {
		return nil, fmt.Errorf("pipelines secrets key: %w", err)
	}
	a := &App{cfg: cfg, d: d, tc: tc, catalog: catalog.New(d.Artifacts).WithSealer(aead)}
	a.acts = &engine.Activities{
		Store: d.Artifacts, Runtime: rt, Bus: d.Bus, Log: d.Log.With("service", Name),
		WorkDir: filepath.Join(d.DataDir, Name, "work"), Source: "/sluice/" + Name, TrainingURL: cfg.TrainingURL,
		// Calls to the training API carry the pipelines service's signed identity (libs/platform guard).
		HTTP: d.ServiceClient(Name),
		// kfp-kubernetes secrets and config maps (objects.go).
		Objects: objectSource{a.catalog},
		Kube:    cfg.Kube,
	}
	opts := engine.WorkerOptions(wf.WorkerOptions())
	opts.MaxConcurrentActivityExecutionSize = cfg.MaxConcurrentSteps
	a.worker = worker.New(tc, pipelinesv1.TaskQueue, opts)
	engine.Register(a.worker, a.acts)
	return a, nil
}

// Name implements platform.Service.
func (a *App) Name() string { return Name }

// Start starts the Temporal worker and the run-request consumer.
func (a *App) Start(ctx context.Context) error {
	if err := a.worker.Start(); err != nil {
		return fmt.Errorf("pipelines worker: %w", err)
	}
	sub, err := a.d.Bus.Consume(ctx, events.ConsumerConfig{
		Stream: events.StreamPipeline, Durable: "pipelines-run-requests",
		FilterSubjects: []string{events.SubjectFor(events.PipelineRunRequestedV1)},
		Concurrency:    a.cfg.ConsumerConcurrency,
	}, a.handleRunRequested)
	if err != nil {
		a.worker.Stop()
		return err
	}
	a.sub = sub
	return nil
}

// Ready implements platform.Service.
func (a *App) Ready(ctx context.Context) error { return nil }

// Close stops the consumer and the worker.
func (a *App) Close() error {
	if a.sub != nil {
		a.sub.Stop()
	}
	a.worker.Stop()
	a.tc.Close()
	return nil
}

var _ runtime.Runtime = (*runtime.Local)(nil)
