// Package app is the training service's composition root: the job
// lifecycle worker (Temporal), the job-request consumer and the REST API
// under /apis/training/v1, on the shared platform deps, so the service runs
// as its own binary (cmd/training) or inside `sluice dev`.
package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"

	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/docker"
	"github.com/sluice-ml/sluice/libs/runtime/kube"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/internal/lifecycle"
)

// Name is the service name.
const Name = "training"

// Config holds the training service's own settings.
type Config struct {
	// BinDir is put first on every local replica's PATH, so a job's
	// command (e.g. mnist-trainer) is found there
	// (SLUICE_TRAINING_BIN_DIR; default: the directory of the running
	// executable, i.e. <repo>/bin for bin/sluice and bin/training).
	BinDir string
	// HeartbeatTimeout is how long a replica watcher lost with its worker
	// goes unnoticed (SLUICE_TRAINING_HEARTBEAT_TIMEOUT, default 10s).
	HeartbeatTimeout time.Duration
	// RestartBackoff is the CrashLoopBackOff of restarted replicas
	// (SLUICE_TRAINING_RESTART_BACKOFF initial delay, default 10s, and
	// SLUICE_TRAINING_RESTART_BACKOFF_MAX, default 5m).
	RestartBackoff trainingv1.Backoff
	// HistoryLimit is the workflow history length past which a job's run
	// continues as new, handing running replicas to the next run
	// (SLUICE_TRAINING_HISTORY_LIMIT, default 0: 2,000 events or
	// Temporal's suggestion; at least 50).
	HistoryLimit int
	// Consumers is how many job requests are handled at once
	// (SLUICE_TRAINING_CONSUMERS, default 4).
	Consumers int
	// TaskQueue is the Temporal task queue (default trainingv1.TaskQueue)
	// and Durable the job-request consumer (default
	// "training-job-requests"); tests give each instance its own.
	TaskQueue string
	Durable   string
}

// ConfigFromEnv reads Config through getenv and validates it.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{HeartbeatTimeout: lifecycle.DefaultHeartbeatTimeout, Consumers: 4, TaskQueue: trainingv1.TaskQueue, Durable: "training-job-requests"}
	c.BinDir = getenv("SLUICE_TRAINING_BIN_DIR")
	if c.BinDir == "" {
		if exe, err := os.Executable(); err == nil {
			c.BinDir = filepath.Dir(exe)
		}
	}
	if v := getenv("SLUICE_TRAINING_HEARTBEAT_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			return c, fmt.Errorf("SLUICE_TRAINING_HEARTBEAT_TIMEOUT: %q is not a duration of at least 1s", v)
		}
		c.HeartbeatTimeout = d
	}
	c.RestartBackoff = trainingv1.Backoff{Initial: trainingv1.DefaultBackoffInitial, Max: trainingv1.DefaultBackoffMax}
	for _, b := range []struct {
		name string
		to   *time.Duration
	}{{"SLUICE_TRAINING_RESTART_BACKOFF", &c.RestartBackoff.Initial}, {"SLUICE_TRAINING_RESTART_BACKOFF_MAX", &c.RestartBackoff.Max}} {
		if v := getenv(b.name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return c, fmt.Errorf("%s: %q is not a positive duration", b.name, v)
			}
			*b.to = d
		}
	}
	if c.RestartBackoff.Max < c.RestartBackoff.Initial {
		return c, fmt.Errorf("SLUICE_TRAINING_RESTART_BACKOFF_MAX: %v is less than the initial backoff %v", c.RestartBackoff.Max, c.RestartBackoff.Initial)
	}
	if v := getenv("SLUICE_TRAINING_HISTORY_LIMIT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 50 {
			return c, fmt.Errorf("SLUICE_TRAINING_HISTORY_LIMIT: %q is not an integer of at least 50", v)
		}
		c.HistoryLimit = n
	}
	if v := getenv("SLUICE_TRAINING_CONSUMERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return c, fmt.Errorf("SLUICE_TRAINING_CONSUMERS: %q is not a positive integer", v)
		}
		c.Consumers = n
	}
	return c, nil
}

// App is the running training service.
type App struct {
	cfg     Config
	d       *platform.Deps
	acts    *lifecycle.Activities
	worker  worker.Worker
	sub     *events.Subscription
	dataDir string
	owner   string
	// closeRelay ends the S3 relay for containers (Docker runtime).
	closeRelay func()
}

// OwnerEnv is set in every replica's environment to a digest of the
// service's data directory, so a restarted service finds the replica
// processes (and their descendants) that an earlier instance left behind
// when it crashed, and ends them.
const OwnerEnv = "SLUICE_TRAINING_OWNER"

// OwnerLabel carries the same digest on replica containers (Docker).
const OwnerLabel = "sluice.io/training-owner"

// OwnerOf is the owner digest of a service whose data dir (platform DataDir
// joined with "training") is dataDir.
func OwnerOf(dataDir string) string {
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	sum := sha256.Sum256([]byte(dataDir))
	return hex.EncodeToString(sum[:12])
}

// Build is the platform.Builder of the training service.
func Build(ctx context.Context, d *platform.Deps) (platform.Service, error) {
	cfg, err := ConfigFromEnv(d.Getenv)
	if err != nil {
		return nil, err
	}
	return New(cfg, d)
}

// New builds the service.
func New(cfg Config, d *platform.Deps) (*App, error) {
	rt, err := platform.NewRuntimeEnv(d.RuntimeKind, d.Getenv)
	if err != nil {
		return nil, err
	}
	if cfg.TaskQueue == "" {
		cfg.TaskQueue = trainingv1.TaskQueue
	}
	if cfg.Durable == "" {
		cfg.Durable = "training-job-requests"
	}
	dataDir := filepath.Join(d.DataDir, Name)
	a := &App{cfg: cfg, d: d, dataDir: dataDir}
	env := s3Env(d)
	a.owner = OwnerOf(dataDir)
	env[OwnerEnv] = a.owner
	a.acts = &lifecycle.Activities{
		Runtime: rt, Store: d.Artifacts, Bus: d.Bus, Temporal: d.Temporal, Log: d.Log.With("service", Name),
		Source: "/sluice/" + Name, DataDir: dataDir, Env: env, PathPrefix: cfg.BinDir, HostPath: d.Getenv("PATH"),
		Labels: map[string]string{OwnerLabel: a.owner},
	}
	a.worker = worker.New(d.Temporal, cfg.TaskQueue, lifecycle.WorkerOptions(wf.WorkerOptions()))
	lifecycle.Register(a.worker, a.acts)
	return a, nil
}

// s3Env is the artifact store's location and credentials as the S3_*
// variables every replica receives (trainers export to s3:// with them).
func s3Env(d *platform.Deps) map[string]string {
	env := map[string]string{}
	if d.Artifacts == nil {
		return env
	}
	c := d.Artifacts.Client()
	env["S3_ENDPOINT"] = c.EndpointURL().String()
	env["S3_BUCKET"] = d.Artifacts.Bucket()
	region := d.Getenv("S3_REGION")
	if region == "" {
		region = "us-east-1"
	}
	env["S3_REGION"] = region
	if creds, err := c.GetCreds(); err == nil {
		env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"] = creds.AccessKeyID, creds.SecretAccessKey
	}
	return env
}

// Name implements platform.Service.
func (a *App) Name() string { return Name }

// Start ends the replica processes an earlier instance of the service left
// running (it crashed, so their watchers are lost: Temporal retries them and
// the jobs recreate the replicas they still need), then starts the Temporal
// worker and the job-request consumer.
func (a *App) Start(ctx context.Context) error {
	if a.acts.Runtime.Name() == runtime.NameLocal {
		n, err := runtime.KillMarked(OwnerEnv, a.owner)
		if err != nil {
			a.d.Log.WarnContext(ctx, "end orphaned replicas", "service", Name, "err", err)
		} else if n > 0 {
			a.d.Log.InfoContext(ctx, "ended orphaned replica processes of an earlier instance", "service", Name, "process_groups", n)
		}
	}
	if rt, ok := a.acts.Runtime.(*docker.Runtime); ok {
		if n, err := removeOwnedContainers(ctx, rt, a.owner); err != nil {
			a.d.Log.WarnContext(ctx, "remove orphaned replica containers", "service", Name, "err", err)
		} else if n > 0 {
			a.d.Log.InfoContext(ctx, "removed orphaned replica containers of an earlier instance", "service", Name, "containers", n)
		}
	}
	if rt, ok := a.acts.Runtime.(*docker.Runtime); ok && a.acts.Env["S3_ENDPOINT"] != "" {
		// A container's loopback is its own: replicas get an S3 endpoint
		// they can reach (see containerEndpoint).
		ep, closeRelay, err := containerEndpoint(ctx, rt, a.acts.Env["S3_ENDPOINT"], a.d.Getenv(ContainerS3EndpointEnv))
		if err != nil {
			a.d.Log.WarnContext(ctx, "replica containers may not reach S3", "service", Name, "err", err)
		}
		a.acts.Env["S3_ENDPOINT"], a.closeRelay = ep, closeRelay
	}
	if _, ok := a.acts.Runtime.(*kube.Runtime); ok {
		// Pods reach the artifact store at an address of the cluster's.
		if ep := a.d.Getenv(ContainerS3EndpointEnv); ep != "" {
			a.acts.Env["S3_ENDPOINT"] = ep
		}
	}
	if err := a.worker.Start(); err != nil {
		return fmt.Errorf("training worker: %w", err)
	}
	sub, err := a.d.Bus.Consume(ctx, events.ConsumerConfig{
		Stream: events.StreamTraining, Durable: a.cfg.Durable,
		FilterSubjects: []string{events.SubjectFor(events.TrainingJobRequestedV1), events.SubjectFor(events.TrainingJobDeletionRequestedV1)},
		Concurrency:    a.cfg.Consumers,
		// A deletion waits (up to 30 s) for the job's replicas to stop.
		AckWait: 2 * time.Minute,
	}, a.HandleRequest)
	if err != nil {
		a.worker.Stop()
		return err
	}
	a.sub = sub
	return nil
}

// removeOwnedContainers force-removes every container labelled with this
// service's owner digest (run before the worker starts, so none is ours).
func removeOwnedContainers(ctx context.Context, rt *docker.Runtime, owner string) (int, error) {
	list, err := rt.Client().ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", OwnerLabel+"="+owner))})
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, c := range list {
		if err := rt.Client().ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
			errs = append(errs, err)
		}
	}
	return len(list) - len(errs), errors.Join(errs...)
}

// Ready implements platform.Service.
func (a *App) Ready(ctx context.Context) error { return nil }

// Close stops the consumer and the worker (replicas of this process die with it).
func (a *App) Close() error {
	if a.sub != nil {
		a.sub.Stop()
	}
	a.worker.Stop()
	if a.closeRelay != nil {
		a.closeRelay()
	}
	return nil
}
