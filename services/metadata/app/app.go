// Package app is the metadata service's composition root: `cmd/metadata` and `sluice dev` both
// build it from platform.Deps.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/metadata/internal/httpapi"
	"github.com/sluice-ml/sluice/services/metadata/internal/ingest"
	"github.com/sluice-ml/sluice/services/metadata/internal/metastore"
)

// Name is the service's short name.
const Name = "metadata"

// Config is the metadata service's own configuration.
type Config struct {
	// DatabaseURL selects the store (METADATA_DATABASE_URL): a postgres:// URL for PostgreSQL,
	// otherwise a SQLite file path. Empty means SQLite at <DataDir>/metadata/mlmd.db.
	DatabaseURL string
	// IngestBatch bounds the events the ingest writes per transaction (METADATA_INGEST_BATCH,
	// 1 to 10000; 0 means events.DefaultMaxBatch, 256; 1 writes one transaction per event).
	// Larger batches raise throughput under a burst; an idle consumer never waits to fill one.
	IngestBatch int
	// IngestConcurrency is how many batches each ingest consumer writes at once
	// (METADATA_INGEST_CONCURRENCY, 1 to 64; 0 means ingest.DefaultConcurrency, 4; 1 writes one
	// batch at a time in stream order). Events are partitioned by run (ingest.PartitionKey).
	IngestConcurrency int

	ingestBatchRaw       string // METADATA_INGEST_BATCH as given, for New's error
	ingestConcurrencyRaw string // METADATA_INGEST_CONCURRENCY as given
}

// Env lists the variables ConfigFromEnv reads, with their defaults.
var Env = [][2]string{{"METADATA_DATABASE_URL", "<SLUICE_DATA_DIR>/metadata/mlmd.db"}, {"METADATA_INGEST_BATCH", "256"}, {"METADATA_INGEST_CONCURRENCY", "4"}}

// maxIngestBatch bounds METADATA_INGEST_BATCH, maxIngestConcurrency METADATA_INGEST_CONCURRENCY.
const (
	maxIngestBatch       = 10000
	maxIngestConcurrency = 64
)

// ConfigFromEnv reads Config through getenv; New rejects a METADATA_INGEST_BATCH that is not
// an integer from 1 to 10000 and a METADATA_INGEST_CONCURRENCY not from 1 to 64.
func ConfigFromEnv(getenv func(string) string) Config {
	cfg := Config{DatabaseURL: strings.TrimSpace(getenv("METADATA_DATABASE_URL"))}
	if raw := strings.TrimSpace(getenv("METADATA_INGEST_BATCH")); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxIngestBatch {
			n = -1
		}
		cfg.IngestBatch, cfg.ingestBatchRaw = n, raw
	}
	if raw := strings.TrimSpace(getenv("METADATA_INGEST_CONCURRENCY")); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxIngestConcurrency {
			n = -1
		}
		cfg.IngestConcurrency, cfg.ingestConcurrencyRaw = n, raw
	}
	return cfg
}

// ConsumerPrefix names the durable ingest consumers: metadata-pipeline, metadata-training
// and metadata-serving.
const ConsumerPrefix = Name

// App is the metadata service: the lineage store, its REST API and the event ingest.
type App struct {
	log   *slog.Logger
	store *metastore.Store
	api   *httpapi.Server
	bus   *events.Bus
	batch int // Config.IngestBatch
	conc  int // Config.IngestConcurrency

	mu   sync.Mutex
	subs []*events.Subscription
}

var _ platform.Service = (*App)(nil)

// Build is the platform.Builder of the service.
func Build(ctx context.Context, d *platform.Deps) (platform.Service, error) {
	getenv := d.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	return New(ctx, ConfigFromEnv(getenv), d)
}

// New opens (and migrates) the store named by cfg and builds the API. d.Log, d.DataDir and
// d.Bus (for the ingest started by Start) are used.
func New(ctx context.Context, cfg Config, d *platform.Deps) (*App, error) {
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.IngestBatch < 0 || cfg.IngestBatch > maxIngestBatch {
		return nil, fmt.Errorf("metadata: METADATA_INGEST_BATCH: must be an integer from 1 to %d, got %q", maxIngestBatch, cfg.ingestBatchRaw)
	}
	if cfg.IngestConcurrency < 0 || cfg.IngestConcurrency > maxIngestConcurrency {
		return nil, fmt.Errorf("metadata: METADATA_INGEST_CONCURRENCY: must be an integer from 1 to %d, got %q", maxIngestConcurrency, cfg.ingestConcurrencyRaw)
	}
	dsn := cfg.DatabaseURL
	if dsn == "" {
		if d.DataDir == "" {
			return nil, errors.New("metadata: METADATA_DATABASE_URL is empty and no data dir is set")
		}
		dir := filepath.Join(d.DataDir, Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
		dsn = filepath.Join(dir, "mlmd.db")
	}
	store, err := metastore.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &App{log: log, store: store, api: httpapi.New(store, log), bus: d.Bus, batch: cfg.IngestBatch, conc: cfg.IngestConcurrency}, nil
}

// Name implements platform.Service.
func (a *App) Name() string { return Name }

// Routes registers /apis/metadata/v1/... on mux.
func (a *App) Routes(mux *http.ServeMux) { a.api.Routes(mux) }

// Start runs the durable ingest consumers (metadata-pipeline, metadata-training,
// metadata-serving) that record pipeline, training and serving events; without a bus (a
// store-only deployment) it only logs that ingest is off.
func (a *App) Start(ctx context.Context) error {
	if a.bus == nil {
		a.log.WarnContext(ctx, "metadata: no event bus, event ingest is off")
		return nil
	}
	c := ingest.New(a.store, a.log)
	c.MaxBatch, c.Concurrency = a.batch, a.conc
	subs, err := c.Start(ctx, a.bus, ConsumerPrefix)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.subs = append(a.subs, subs...)
	a.mu.Unlock()
	return nil
}

// Ready reports whether the database answers.
func (a *App) Ready(ctx context.Context) error { return a.store.DB().PingContext(ctx) }

// Close stops the ingest consumers (waiting for events in flight) and closes the store.
func (a *App) Close() error {
	a.mu.Lock()
	subs := a.subs
	a.subs = nil
	a.mu.Unlock()
	for _, s := range subs {
		s.Stop()
	}
	return a.store.Close()
}
