// Package platform is what every Sluice service stands on: its configuration from the environment, the
// connections it shares (NATS, Temporal, S3, a runtime), the HTTP server with /healthz, /readyz and
// Prometheus /metrics, and JSON logging with log/slog. A service binary's main is one call to [Main];
// `sluice dev` builds one [Deps] and hosts every service's routes on one port.
package platform

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/workflow"
)

// Config is what every service reads from its environment. Variable names are given per field.
type Config struct {
	// HTTPAddr is where the service's API, /healthz, /readyz and /metrics listen (SLUICE_HTTP_ADDR, default 127.0.0.1:8080).
	HTTPAddr string
	// NATSURL locates NATS with JetStream (NATS_URL, default nats://127.0.0.1:4222).
	NATSURL string
	// Temporal locates the Temporal frontend (TEMPORAL_ADDRESS default 127.0.0.1:7233, TEMPORAL_NAMESPACE default sluice).
	Temporal workflow.Config
	// S3 locates the artifact store (S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET default sluice, S3_REGION default us-east-1).
	S3 artifacts.Config
	// DataDir is where the service keeps local state such as step work dirs (SLUICE_DATA_DIR, default ./.sluice, made absolute).
	DataDir string
	// Runtime chooses where steps, replicas and notebook servers run: local, docker or kubernetes (SLUICE_RUNTIME, default local).
	Runtime string
	// LogLevel is debug, info, warn or error (SLUICE_LOG_LEVEL, default info).
	LogLevel string
}

// Env lists every variable ConfigFromEnv reads, with its default, for docs and `--help`.
var Env = [][2]string{
	{"SLUICE_HTTP_ADDR", "127.0.0.1:8080"},
	{"NATS_URL", "nats://127.0.0.1:4222"},
	{"TEMPORAL_ADDRESS", "127.0.0.1:7233"},
	{"TEMPORAL_NAMESPACE", "sluice"},
	{"S3_ENDPOINT", "http://127.0.0.1:9000"},
	{"S3_ACCESS_KEY", ""},
	{"S3_SECRET_KEY", ""},
	{"S3_BUCKET", "sluice"},
	{"S3_REGION", "us-east-1"},
	{"SLUICE_DATA_DIR", "./.sluice"},
	{"SLUICE_RUNTIME", "local"},
	{"SLUICE_LOG_LEVEL", "info"},
}

// ConfigFromEnv reads Config through getenv (os.Getenv in main), applying the defaults in [Env].
func ConfigFromEnv(getenv func(string) string) Config {
	get := func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		for _, e := range Env {
			if e[0] == name {
				return e[1]
			}
		}
		return ""
	}
	return Config{
		HTTPAddr: get("SLUICE_HTTP_ADDR"),
		NATSURL:  get("NATS_URL"),
		Temporal: workflow.Config{HostPort: get("TEMPORAL_ADDRESS"), Namespace: get("TEMPORAL_NAMESPACE")},
		S3: artifacts.Config{
			Endpoint: get("S3_ENDPOINT"), AccessKey: get("S3_ACCESS_KEY"), SecretKey: get("S3_SECRET_KEY"),
			Bucket: get("S3_BUCKET"), Region: get("S3_REGION"),
		},
		DataDir:  get("SLUICE_DATA_DIR"),
		Runtime:  get("SLUICE_RUNTIME"),
		LogLevel: get("SLUICE_LOG_LEVEL"),
	}
}

// BindFlags lets flags override the environment (flag names are the variables in kebab case, e.g. --nats-url).
func (c *Config) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "API listen address (SLUICE_HTTP_ADDR)")
	fs.StringVar(&c.NATSURL, "nats-url", c.NATSURL, "NATS URL (NATS_URL)")
	fs.StringVar(&c.Temporal.HostPort, "temporal-address", c.Temporal.HostPort, "Temporal frontend host:port (TEMPORAL_ADDRESS)")
	fs.StringVar(&c.Temporal.Namespace, "temporal-namespace", c.Temporal.Namespace, "Temporal namespace (TEMPORAL_NAMESPACE)")
	fs.StringVar(&c.S3.Endpoint, "s3-endpoint", c.S3.Endpoint, "S3 endpoint URL (S3_ENDPOINT)")
	fs.StringVar(&c.S3.Bucket, "s3-bucket", c.S3.Bucket, "artifact bucket (S3_BUCKET)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "local state directory (SLUICE_DATA_DIR)")
	fs.StringVar(&c.Runtime, "runtime", c.Runtime, "where work runs: local, docker or kubernetes (SLUICE_RUNTIME)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (SLUICE_LOG_LEVEL)")
}

// Validate returns every problem joined, each naming its variable.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("SLUICE_HTTP_ADDR: %q is not host:port", c.HTTPAddr))
	}
	if !strings.HasPrefix(c.NATSURL, "nats://") && !strings.HasPrefix(c.NATSURL, "tls://") {
		errs = append(errs, fmt.Errorf("NATS_URL: %q must start with nats:// or tls://", c.NATSURL))
	}
	errs = append(errs, c.Temporal.Validate())
	errs = append(errs, c.S3.Validate())
	switch c.Runtime {
	case "local", "docker", "kubernetes":
	default:
		errs = append(errs, fmt.Errorf("SLUICE_RUNTIME: %q is not local, docker or kubernetes", c.Runtime))
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("SLUICE_LOG_LEVEL: %w", err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("SLUICE_DATA_DIR: required"))
	} else if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	return errors.Join(errs...)
}

// ParseLevel maps debug/info/warn/error to a slog level.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q is not debug, info, warn or error", s)
	}
	return l, nil
}
