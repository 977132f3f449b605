package platform

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/workflow"
)

// Deps are the shared connections a service is built with. One process builds them once.
type Deps struct {
	Log       *slog.Logger
	Metrics   *prometheus.Registry
	Bus       *events.Bus
	Temporal  client.Client
	Namespace string
	Artifacts *artifacts.Store
	// DataDir is an absolute directory for local state; a service uses DataDir/<service>.
	DataDir string
	// RuntimeKind is local, docker or kubernetes.
	RuntimeKind string
	// Getenv reads service-specific variables (os.Getenv in a binary); services never call os.Getenv.
	Getenv  func(string) string
	closers []func()

	guard    *Guard
	profiles *auth.Profiles
}

// Close releases what Connect opened.
func (d *Deps) Close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

// Connect opens the shared connections described by cfg (which must be valid): NATS (and makes sure the
// streams exist), Temporal and the artifact store (and makes sure the bucket exists).
func Connect(ctx context.Context, cfg Config, name string, log *slog.Logger, getenv func(string) string) (*Deps, error) {
	d := &Deps{Log: log, Metrics: NewRegistry(), Namespace: cfg.Temporal.Namespace, DataDir: cfg.DataDir, RuntimeKind: cfg.Runtime, Getenv: getenv}
	fail := func(err error) (*Deps, error) { d.Close(); return nil, err }
	bus, err := events.Connect(ctx, cfg.NATSURL, "sluice-"+name, log)
	if err != nil {
		return fail(err)
	}
	d.Bus = bus
	d.closers = append(d.closers, bus.Close)
	if err := bus.EnsureStreams(ctx); err != nil {
		return fail(err)
	}
	tc, err := workflow.Dial(ctx, cfg.Temporal, log)
	if err != nil {
		return fail(err)
	}
	d.Temporal = tc
	d.closers = append(d.closers, tc.Close)
	workflow.SetPublicURL(getenv("SLUICE_PUBLIC_URL")) // links in workflow details (Temporal UI)
	store, err := artifacts.New(cfg.S3)
	if err != nil {
		return fail(err)
	}
	if err := store.EnsureBucket(ctx); err != nil {
		return fail(err)
	}
	d.Artifacts = store
	return d, nil
}

// Checks returns the readiness checks of the shared connections.
func (d *Deps) Checks() map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"nats": func(context.Context) error {
			if !d.Bus.Conn().IsConnected() {
				return errors.New("not connected")
			}
			return nil
		},
		"temporal": func(ctx context.Context) error {
			_, err := d.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		},
	}
}

// Builder builds a service from the shared deps.
type Builder func(ctx context.Context, d *Deps) (Service, error)

// Main runs one service as its own binary: config from env and flags, JSON logs on stderr, connections,
// the service, HTTP on SLUICE_HTTP_ADDR, until SIGINT/SIGTERM. It returns the process exit code
// (2 for bad configuration).
//
// `<binary> healthcheck` instead asks the running service's /readyz on SLUICE_HTTP_ADDR and exits 0 when
// it is ready: images are FROM scratch, so container health checks run the binary itself.
func Main(name string, build Builder) int {
	cfg := ConfigFromEnv(os.Getenv)
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		return Healthcheck(cfg.HTTPAddr, os.Stderr)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	cfg.BindFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	log := NewLogger(os.Stderr, cfg.LogLevel).With("service", name)
	if err := cfg.Validate(); err != nil {
		log.Error("invalid configuration", "err", err)
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// Decided before the service builds its runtime; logged plainly either way.
	EnableLocalIsolation(cfg.DataDir, cfg.Runtime, log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	deps, err := connectWithin(ctx, startupConnectTimeout, cfg, name, log)
	if err != nil {
		log.Error("connect", "err", err)
		return 1
	}
	defer deps.Close()
	// Before the service is built, so the clients it makes for other services' APIs sign their calls
	// (Deps.ServiceClient). Every request needs a credential: the signed identity header of the gateway
	// in front, or (unless SLUICE_AUTH_MODE=gateway) a token of SLUICE_AUTH_TOKENS or an OIDC ID token;
	// /metrics is open only on SLUICE_ADMIN_ADDR, and then not served on the API port at all.
	if err := deps.EnableAuth(ctx, auth.ConfigFromEnv(os.Getenv)); err != nil {
		log.Error("auth", "err", err)
		return 2
	}
	svc, err := build(ctx, deps)
	if err != nil {
		log.Error("build service", "err", err)
		return 1
	}
	defer svc.Close()
	if err := svc.Start(ctx); err != nil {
		log.Error("start service", "err", err)
		return 1
	}
	adminAddr := os.Getenv("SLUICE_ADMIN_ADDR")
	if addr := adminAddr; addr != "" {
		go func() {
			if err := ListenAndServe(ctx, addr, AdminHandler(deps.Metrics), log); err != nil {
				log.Error("admin http", "err", err)
			}
		}()
	}
	// The event gateway (HTTP publish and tail) talks to NATS as the gateway's user when one is configured
	// (SLUICE_EVENTS_NATS_URL): NATS itself then lets it publish request types only.
	gwBus := deps.Bus
	if u := os.Getenv("SLUICE_EVENTS_NATS_URL"); u != "" {
		b, err := events.Connect(ctx, u, "sluice-"+name+"-event-gateway", log)
		if err != nil {
			log.Error("SLUICE_EVENTS_NATS_URL", "err", err)
			return 1
		}
		defer b.Close()
		gwBus = b
	}
	log.Info("serving", "addr", cfg.HTTPAddr)
	// With an admin port, /metrics is served there only.
	h := NewHandler(HandlerConfig{Registry: deps.Metrics, Log: log, Checks: deps.Checks(), Guard: deps.Guard(), NoMetrics: adminAddr != ""}, svc, AuthService(deps), EventsGateway{gwBus})
	if err := ListenAndServe(ctx, cfg.HTTPAddr, h, log); err != nil {
		log.Error("http", "err", err)
		return 1
	}
	return 0
}

// startupConnectTimeout bounds how long a service binary waits at start for NATS, Temporal and S3 to
// answer: in a container they may start at the same time (Temporal migrates its schema first).
const startupConnectTimeout = 2 * time.Minute

// registerSearchAttributes makes sure the namespace has Sluice's search attributes (idempotent). A
// Temporal that refuses the operator API (a hosted namespace) gets them from its own admin tooling or
// `sluice temporal setup`; until then, workflow starts fail naming the missing attribute.
func registerSearchAttributes(ctx context.Context, c client.Client, namespace string, log *slog.Logger) {
	if added, err := workflow.RegisterSearchAttributes(ctx, c, namespace); err != nil {
		log.Warn("register Temporal search attributes", "err", err)
	} else if len(added) > 0 {
		log.Info("registered Temporal search attributes", "namespace", namespace, "added", added)
	}
}

// connectWithin retries Connect (1 s apart, each failure logged at warn) until it succeeds, d passes
// or ctx ends, and returns the last error then.
func connectWithin(ctx context.Context, d time.Duration, cfg Config, name string, log *slog.Logger) (*Deps, error) {
	deadline := time.Now().Add(d)
	for {
		deps, err := Connect(ctx, cfg, name, log, os.Getenv)
		if err == nil {
			// A Temporal frontend answers before its namespaces are registered (a server starting next
			// to the service): workers cannot start until the namespace is served.
			if _, err = deps.Temporal.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: cfg.Temporal.Namespace}); err == nil {
				registerSearchAttributes(ctx, deps.Temporal, cfg.Temporal.Namespace, log)
				return deps, nil
			}
			err = fmt.Errorf("temporal namespace %s: %w", cfg.Temporal.Namespace, err)
			deps.Close()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, err
		}
		log.Warn("dependencies not reachable yet, retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Second):
		}
	}
}
