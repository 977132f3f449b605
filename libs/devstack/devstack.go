// Package devstack runs Sluice's infrastructure embedded on loopback for
// `sluice dev` and tests: NATS with JetStream, a Temporal server with its Web
// UI, and an S3-compatible object store, all persisted under one data
// directory so a restart keeps streams, workflows and objects.
//
// Binaries that call Start must call RunChild first in main (or use
// devstacktest.Run in TestMain): the S3 gateway runs in a re-executed child of
// the same binary.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/platform"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// Stack is a running dev stack. Its exported fields are set by Start and must
// not be modified.
type Stack struct {
	// DataDir is the absolute data directory.
	DataDir string
	// NATSURL is the NATS client URL of the services, with their credentials, e.g.
	// "nats://sluice-service:<password>@127.0.0.1:4222" (see natsauth.go).
	NATSURL string
	// NATSGatewayURL is the NATS client URL of the event gateway: it may publish request types only.
	NATSGatewayURL string
	// TemporalAddress is the Temporal frontend gRPC "host:port".
	TemporalAddress string
	// TemporalUIURL is the Temporal Web UI base URL, e.g. "http://127.0.0.1:8233".
	TemporalUIURL string
	// Namespace is the Temporal namespace for Sluice ("sluice").
	Namespace string
	// S3Endpoint is the S3 base URL, e.g. "http://127.0.0.1:9000";
	// S3Addr is its "host:port" (what minio-go's New takes).
	S3Endpoint, S3Addr string
	// S3AccessKey, S3SecretKey and S3Region sign S3 requests (SigV4).
	S3AccessKey, S3SecretKey, S3Region string
	// S3Bucket is the artifacts bucket, created at start ("sluice").
	S3Bucket string

	log      *slog.Logger
	nats     *natsserver.Server
	temporal *temporalServer
	ui       *temporalUI
	s3       *S3Server
	lock     *dirLock

	closeOnce sync.Once
	closeErr  error
}

// Start validates cfg, then starts NATS, Temporal (+ UI) and S3 concurrently
// under cfg.DataDir and returns once every component answers: NATS accepts
// clients with JetStream on, the Temporal frontend serves the sluice
// namespace, the UI answers /healthz, and the S3 bucket exists. ctx bounds
// start-up only; call Close to stop the stack. On error everything already
// started is stopped.
//
// The data directory is locked while the stack runs: a second Start on it
// fails with ErrDataDirInUse. Errors from an invalid cfg name the field.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("devstack: invalid config: %w", err)
	}
	cfg, err := cfg.resolved()
	if err != nil {
		return nil, fmt.Errorf("devstack: invalid config: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("devstack: create data dir: %w", err)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	log := cfg.Logger
	s := &Stack{
		DataDir:   cfg.DataDir,
		Namespace: Namespace,
		S3Bucket:  Bucket,
		log:       log,
		lock:      lock,
	}

	var wg sync.WaitGroup
	var natsErr, temporalErr, s3Err error
	wg.Go(func() {
		s.nats, natsErr = startNATS(cfg.DataDir, cfg.NATSPort, log)
	})
	wg.Go(func() {
		temporalErr = s.startTemporal(ctx, cfg)
	})
	wg.Go(func() {
		s3Err = s.startS3(ctx, cfg)
	})
	wg.Wait()
	if err := errors.Join(natsErr, temporalErr, s3Err); err != nil {
		return nil, errors.Join(fmt.Errorf("devstack: start: %w", err), s.Close())
	}
	s.NATSURL, s.NATSGatewayURL = natsClientURLs(s.nats.ClientURL()) // natsauth.go
	log.InfoContext(ctx, "devstack ready",
		"data_dir", s.DataDir, "nats_url", s.NATSURL, "temporal_address", s.TemporalAddress,
		"temporal_ui_url", s.TemporalUIURL, "s3_endpoint", s.S3Endpoint,
		"startup", time.Since(began).Round(time.Millisecond))
	return s, nil
}

func (s *Stack) startTemporal(ctx context.Context, cfg Config) error {
	port, err := portOrFree(cfg.TemporalPort)
	if err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	s.temporal, err = startTemporal(ctx, cfg.DataDir, port, s.log)
	if err != nil {
		return err
	}
	s.TemporalAddress = s.temporal.address
	uiPort, err := portOrFree(cfg.TemporalUIPort)
	if err != nil {
		return fmt.Errorf("temporal ui: %w", err)
	}
	s.ui, err = startTemporalUI(ctx, uiPort, s.TemporalAddress, s.log)
	if err != nil {
		return err
	}
	s.TemporalUIURL = s.ui.url
	return nil
}

func (s *Stack) startS3(ctx context.Context, cfg Config) error {
	var addr string // empty: StartS3 picks a free port
	if cfg.S3Port > 0 {
		addr = hostPort(cfg.S3Port)
	}
	var err error
	s.s3, err = StartS3(ctx, S3Config{DataDir: filepath.Join(cfg.DataDir, "s3"), Addr: addr}, s.log)
	if err != nil {
		return err
	}
	s.S3Endpoint, s.S3Addr = s.s3.Endpoint, s.s3.Addr
	s.S3AccessKey, s.S3SecretKey, s.S3Region = s.s3.AccessKey, s.s3.SecretKey, s.s3.Region
	return s.ensureBucket(ctx)
}

// ensureBucket creates the artifacts bucket unless it exists.
func (s *Stack) ensureBucket(ctx context.Context) error {
	mc, err := s.MinioClient()
	if err != nil {
		return err
	}
	exists, err := mc.BucketExists(ctx, s.S3Bucket)
	if err != nil {
		return fmt.Errorf("s3: check bucket %s: %w", s.S3Bucket, err)
	}
	if exists {
		return nil
	}
	err = mc.MakeBucket(ctx, s.S3Bucket, minio.MakeBucketOptions{Region: s.S3Region})
	if err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
		return fmt.Errorf("s3: create bucket %s: %w", s.S3Bucket, err)
	}
	return nil
}

// MinioClient returns a minio-go client for the stack's S3 endpoint
// (plain HTTP, static SigV4 credentials).
func (s *Stack) MinioClient() (*minio.Client, error) {
	mc, err := minio.New(s.S3Addr, &minio.Options{
		Creds:  credentials.NewStaticV4(s.S3AccessKey, s.S3SecretKey, ""),
		Secure: false,
		Region: s.S3Region,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: client for %s: %w", s.S3Addr, err)
	}
	return mc, nil
}

// Close stops the UI, Temporal, NATS (after flushing JetStream) and S3,
// releases the data directory, and returns the errors joined. Safe to call
// more than once.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.ui != nil {
			s.ui.stop()
		}
		if s.temporal != nil {
			errs = append(errs, s.temporal.stop())
		}
		if s.nats != nil {
			s.nats.Shutdown()
			s.nats.WaitForShutdown()
		}
		if s.s3 != nil {
			errs = append(errs, s.s3.Close())
		}
		if s.lock != nil {
			errs = append(errs, s.lock.unlock())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// PlatformConfig returns the service configuration that points at this stack: its NATS, Temporal
// namespace and S3 bucket, with the given local data directory, HTTP address and runtime.
func (s *Stack) PlatformConfig(dataDir, httpAddr, runtimeKind, logLevel string) platform.Config {
	cfg := platform.Config{HTTPAddr: httpAddr, NATSURL: s.NATSURL, DataDir: dataDir, Runtime: runtimeKind, LogLevel: logLevel}
	cfg.Temporal.HostPort, cfg.Temporal.Namespace = s.TemporalAddress, s.Namespace
	cfg.S3 = artifacts.Config{Endpoint: s.S3Endpoint, AccessKey: s.S3AccessKey, SecretKey: s.S3SecretKey, Bucket: s.S3Bucket, Region: s.S3Region}
	return cfg
}
