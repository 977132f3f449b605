// Package app is the composition root of the tuning service: Katib's kubeflow.org/v1beta1 Experiments,
// one Temporal workflow each (internal/experiments), trials run as training jobs requested from the
// training service by event (io.sluice.training.job.requested.v1, followed through its job events;
// internal/jobevents), REST under /apis/tuning/v1. `sluice dev` and cmd/tuning both host it through
// [Build].
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"go.temporal.io/sdk/worker"
	sdkworkflow "go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/training/api/trainingclient"
	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
	"github.com/sluice-ml/sluice/services/tuning/internal/experiments"
	"github.com/sluice-ml/sluice/services/tuning/internal/jobevents"
)

// Name is the service name.
const Name = "tuning"

// Config of the tuning service.
type Config struct {
	// TrainingURL is the training service's base URL, where trials read their jobs (once the watch of
	// their events starts, and every 30 s) and their logs (SLUICE_TUNING_TRAINING_URL; default http://<SLUICE_HTTP_ADDR> when that is set, else
	// http://127.0.0.1:8080, the API port of `sluice dev`).
	TrainingURL string
	// TaskQueue of the experiment workflows (tuningv1.TaskQueue; tests use their own).
	TaskQueue string
	// TrialsPerRun bounds the trials of one workflow run before it continues as new
	// (SLUICE_TUNING_TRIALS_PER_RUN, default 50).
	TrialsPerRun int
	// PollInterval between status reads of a trial's job (default 1 s).
	PollInterval time.Duration
}

// ConfigFromEnv reads Config through getenv and validates it.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{TaskQueue: tuningv1.TaskQueue, TrialsPerRun: experiments.DefaultTrialsPerRun, PollInterval: time.Second}
	c.TrainingURL = getenv("SLUICE_TUNING_TRAINING_URL")
	if c.TrainingURL == "" {
		c.TrainingURL = "http://127.0.0.1:8080"
		if addr := getenv("SLUICE_HTTP_ADDR"); addr != "" {
			c.TrainingURL = "http://" + addr
		}
	}
	if u, err := url.Parse(c.TrainingURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("SLUICE_TUNING_TRAINING_URL: %q is not an http(s) URL", c.TrainingURL)
	}
	if v := getenv("SLUICE_TUNING_TRIALS_PER_RUN"); v != "" {
		var n int
		if _, err := fmt.Sscan(v, &n); err != nil || n < 1 {
			return c, fmt.Errorf("SLUICE_TUNING_TRIALS_PER_RUN: %q is not a positive integer", v)
		}
		c.TrialsPerRun = n
	}
	return c, nil
}

// Service is the tuning service.
type Service struct {
	cfg Config
	d   *platform.Deps
	log *slog.Logger

	mu      sync.Mutex
	started bool
	worker  worker.Worker
	jobs    *jobevents.Watcher
}

// Build is the platform.Builder of the tuning service.
func Build(_ context.Context, d *platform.Deps) (platform.Service, error) {
	getenv := d.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cfg, err := ConfigFromEnv(getenv)
	if err != nil {
		return nil, fmt.Errorf("tuning: %w", err)
	}
	return New(cfg, d), nil
}

// New builds the service from a validated Config.
func New(cfg Config, d *platform.Deps) *Service {
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, d: d, log: log.With("service", Name)}
}

// Name returns "tuning".
func (s *Service) Name() string { return Name }

// Start follows the training service's job events and starts the Temporal worker of the experiment
// workflows.
func (s *Service) Start(ctx context.Context) error {
	if s.d.Bus == nil {
		return errors.New("tuning: trials need the event bus (NATS)")
	}
	jobs, err := jobevents.Start(context.WithoutCancel(ctx), s.d.Bus)
	if err != nil {
		return fmt.Errorf("tuning: %w", err)
	}
	w := workflow.NewWorker(s.d.Temporal, s.cfg.TaskQueue)
	w.RegisterWorkflowWithOptions(experiments.Run, sdkworkflow.RegisterOptions{Name: tuningv1.WorkflowType})
	// Calls to the training API carry the tuning service's signed identity (libs/platform guard).
	hc := s.d.ServiceClient(Name)
	hc.Timeout = 2 * time.Minute
	acts := &experiments.Activities{Training: &trainingclient.Client{BaseURL: s.cfg.TrainingURL, HTTP: hc}, Bus: s.d.Bus, Jobs: jobs}
	if s.d.Artifacts != nil {
		acts.S3 = s.d.Artifacts.Client()
	}
	w.RegisterActivity(acts)
	if err := w.Start(); err != nil {
		jobs.Stop()
		return fmt.Errorf("tuning: start worker: %w", err)
	}
	s.mu.Lock()
	s.worker, s.jobs, s.started = w, jobs, true
	s.mu.Unlock()
	return nil
}

// Ready is nil once Start has run.
func (s *Service) Ready(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return errors.New("not started")
	}
	return nil
}

// Close stops the worker; experiments go on when a worker runs again.
func (s *Service) Close() error {
	s.mu.Lock()
	w, jobs := s.worker, s.jobs
	s.worker, s.jobs, s.started = nil, nil, false
	s.mu.Unlock()
	if w != nil {
		w.Stop()
	}
	jobs.Stop()
	return nil
}
