package devstack

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// Default loopback ports used by DefaultConfig. They match the ports the
// upstream tools use (nats-server, temporal CLI dev server, Temporal UI, MinIO)
// so that existing clients work without flags.
const (
	DefaultNATSPort       = 4222
	DefaultTemporalPort   = 7233
	DefaultTemporalUIPort = 8233
	DefaultS3Port         = 9000
	// DefaultDataDir is the data directory used when Config.DataDir is empty.
	// It is resolved against the working directory once, in Start.
	DefaultDataDir = ".sluice"
)

// Well-known names inside a stack.
const (
	// Namespace is the Temporal namespace Sluice services use.
	Namespace = "sluice"
	// DefaultNamespace is Temporal's own default namespace, also registered.
	DefaultNamespace = "default"
	// Bucket is the S3 bucket created at start for artifacts.
	Bucket = "sluice"
)

// Config configures Start. Every listener binds 127.0.0.1 only.
//
// A port of 0 or -1 selects a random free port (for tests); use DefaultConfig
// for the well-known ports.
type Config struct {
	// DataDir holds all state: DataDir/nats (JetStream file store),
	// DataDir/temporal.db (Temporal SQLite, default and visibility stores) and
	// DataDir/s3 (object store). Empty means DefaultDataDir. A relative path
	// is made absolute once at Start; nothing later depends on the working
	// directory. It is created (mode 0o755) if missing.
	DataDir string
	// NATSPort is the NATS client port.
	NATSPort int
	// TemporalPort is the Temporal frontend gRPC port.
	TemporalPort int
	// TemporalUIPort is the Temporal Web UI HTTP port.
	TemporalUIPort int
	// S3Port is the S3 API port.
	S3Port int
	// Logger receives the stack's own logs and, at warn level and above,
	// Temporal's and NATS's. Nil discards everything.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration `sluice dev` uses: DataDir
// "./.sluice" and the default ports 4222 (NATS), 7233 (Temporal), 8233
// (Temporal UI) and 9000 (S3).
func DefaultConfig() Config {
	return Config{
		DataDir:        DefaultDataDir,
		NATSPort:       DefaultNATSPort,
		TemporalPort:   DefaultTemporalPort,
		TemporalUIPort: DefaultTemporalUIPort,
		S3Port:         DefaultS3Port,
	}
}

// Validate reports every invalid field, joined, each error naming the field
// (e.g. "NATSPort: must be between -1 and 65535, got 70000").
func (c Config) Validate() error {
	var errs []error
	ports := []struct {
		name string
		port int
	}{
		{"NATSPort", c.NATSPort},
		{"TemporalPort", c.TemporalPort},
		{"TemporalUIPort", c.TemporalUIPort},
		{"S3Port", c.S3Port},
	}
	seen := map[int]string{}
	for _, p := range ports {
		if p.port < -1 || p.port > 65535 {
			errs = append(errs, fmt.Errorf("%s: must be between -1 and 65535, got %d", p.name, p.port))
			continue
		}
		if p.port <= 0 {
			continue
		}
		if other, ok := seen[p.port]; ok {
			errs = append(errs, fmt.Errorf("%s: port %d is already used by %s", p.name, p.port, other))
			continue
		}
		seen[p.port] = p.name
	}
	if c.DataDir != "" {
		if fi, err := os.Stat(c.DataDir); err == nil && !fi.IsDir() {
			errs = append(errs, fmt.Errorf("DataDir: %s exists and is not a directory", c.DataDir))
		}
	}
	return errors.Join(errs...)
}

// resolved returns a copy with defaults applied and DataDir made absolute.
func (c Config) resolved() (Config, error) {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return c, fmt.Errorf("DataDir: %w", err)
	}
	c.DataDir = abs
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
