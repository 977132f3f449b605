package command

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ml/sluice/libs/devstack"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
)

// devServices lists every service `sluice dev` hosts; each service's file adds itself in init.
var devServices []platform.Builder

// devHooks run once the platform is up (the quickstart adds itself here).
var devHooks []func(ctx context.Context, o *Options, env DevEnv) error

// DevEnv is what `sluice dev` started, for hooks and for printing.
type DevEnv struct {
	API         string
	TemporalUI  string
	Temporal    string
	NATS        string
	S3Endpoint  string
	S3AccessKey string
	S3SecretKey string
	S3Bucket    string
	DataDir     string
	Namespace   string
}

func newDevCmd(o *Options) *cobra.Command {
	cfg := devstack.DefaultConfig()
	var httpAddr, adminAddr, logLevel, runtimeKind, kubeconfig string
	var quickstart bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole platform in one process: NATS JetStream, Temporal + Web UI, S3, and every service",
		Long: `sluice dev embeds NATS with JetStream, a Temporal server (SQLite) with its Web UI, and an S3 server,
all on loopback and persistent under --data-dir, then hosts every Sluice service with all APIs on one port.
Stop it with Ctrl-C; a second start reuses the data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			log := platform.NewLogger(o.Err, logLevel)
			cfg.Logger = log.With("component", "devstack")
			if _, _, err := net.SplitHostPort(httpAddr); err != nil {
				return usageError(fmt.Errorf("--http-addr: %w", err))
			}
			if err := cfg.Validate(); err != nil {
				return usageError(err)
			}
			start := time.Now()
			stack, err := devstack.Start(ctx, cfg)
			if err != nil {
				return fmt.Errorf("start dev stack: %w", err)
			}
			defer stack.Close()

			pcfg := stack.PlatformConfig(stack.DataDir, httpAddr, runtimeKind, logLevel)
			if err := pcfg.Validate(); err != nil {
				return usageError(err)
			}
			// Services that call the gateway (e.g. pipelines submitting training jobs) learn its address.
			var internalEnv map[string]string // set once auth is up (devauth.go)
			getenv := func(k string) string {
				if k == platform.EnvKubeconfig && kubeconfig != "" {
					return kubeconfig
				}
				if v := os.Getenv(k); v != "" {
					return v
				}
				if v, ok := internalEnv[k]; ok {
					return v
				}
				if k == "SLUICE_HTTP_ADDR" {
					return httpAddr
				}
				if k == "SLUICE_TEMPORAL_UI_URL" { // the dashboard links runs to their workflows
					return stack.TemporalUIURL
				}
				if k == "SLUICE_PUBLIC_URL" { // links in workflow details in the Temporal UI
					return "http://" + httpAddr
				}
				return ""
			}
			if os.Getenv("SLUICE_TEMPORAL_UI_URL") == "" { // links this process prints (quickstart, run get) use this stack's UI port
				_ = os.Setenv("SLUICE_TEMPORAL_UI_URL", stack.TemporalUIURL)
			}
			isolation := platform.EnableLocalIsolation(stack.DataDir, runtimeKind, log) // before services build runtimes
			deps, err := platform.Connect(ctx, pcfg, "dev", log, getenv)
			if err != nil {
				return err
			}
			defer deps.Close()
			adminToken, err := enableDevAuth(ctx, deps, stack.DataDir)
			if err != nil {
				return err
			}
			var apiHandler serviceHandler
			if internalEnv, err = startServiceShims(ctx, deps, &apiHandler, log); err != nil {
				return err
			}
			var svcs []platform.Service
			for _, build := range devServices {
				svc, err := build(ctx, deps)
				if err != nil {
					return fmt.Errorf("build service: %w", err)
				}
				defer svc.Close()
				if err := svc.Start(ctx); err != nil {
					return fmt.Errorf("start %s: %w", svc.Name(), err)
				}
				svcs = append(svcs, svc)
			}
			ln, err := net.Listen("tcp", httpAddr)
			if err != nil {
				return fmt.Errorf("--http-addr: %w", err)
			}
			// The event gateway talks to NATS as a user that may publish request types only (devstack natsauth.go).
			gwBus, err := events.Connect(ctx, stack.NATSGatewayURL, "sluice-event-gateway", log)
			if err != nil {
				return err
			}
			defer gwBus.Close()
			h := platform.NewHandler(platform.HandlerConfig{Registry: deps.Metrics, Log: log, Checks: deps.Checks(), Guard: deps.Guard(), NoMetrics: adminAddr != ""},
				append(svcs, busService{gwBus}, platform.AuthService(deps))...)
			apiHandler.set(h)
			if adminAddr != "" {
				aln, err := net.Listen("tcp", adminAddr)
				if err != nil {
					return fmt.Errorf("--admin-addr: %w", err)
				}
				go func() { _ = platform.ServeListener(ctx, aln, platform.AdminHandler(deps.Metrics), log) }()
			}
			env := DevEnv{
				API: "http://" + ln.Addr().String(), TemporalUI: stack.TemporalUIURL, Temporal: stack.TemporalAddress,
				NATS: stack.NATSURL, S3Endpoint: stack.S3Endpoint, S3AccessKey: stack.S3AccessKey,
				S3SecretKey: stack.S3SecretKey, S3Bucket: stack.S3Bucket, DataDir: stack.DataDir, Namespace: stack.Namespace,
			}
			printDevEnv(o, env, time.Since(start))
			printDevAuth(o, stack.DataDir, adminToken, runtimeKind, isolation)
			errc := make(chan error, 1)
			go func() { errc <- platform.ServeListener(ctx, ln, h, log) }()
			if quickstart {
				for _, hook := range devHooks {
					if err := hook(ctx, &Options{Server: env.API, Token: adminToken, Out: o.Out, Err: o.Err}, env); err != nil {
						log.Error("quickstart failed", "err", err)
						fmt.Fprintf(o.Err, "quickstart failed: %v\n", err)
					}
				}
			}
			err = <-errc
			fmt.Fprintln(o.Out, "sluice dev: stopped")
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "where all state lives (NATS, Temporal, S3, services)")
	f.StringVar(&httpAddr, "http-addr", "127.0.0.1:8080", "address of the one API port hosting every service")
	f.StringVar(&adminAddr, "admin-addr", "", "address of the admin port serving /metrics without a token (then the API port serves none; empty: /metrics on the API port, for admins)")
	f.IntVar(&cfg.NATSPort, "nats-port", cfg.NATSPort, "NATS port (0 = random)")
	f.IntVar(&cfg.TemporalPort, "temporal-port", cfg.TemporalPort, "Temporal frontend port (0 = random)")
	f.IntVar(&cfg.TemporalUIPort, "temporal-ui-port", cfg.TemporalUIPort, "Temporal Web UI port (0 = random)")
	f.IntVar(&cfg.S3Port, "s3-port", cfg.S3Port, "S3 port (0 = random)")
	f.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	f.StringVar(&runtimeKind, "runtime", "local", "where steps run: local, docker or kubernetes")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster for --runtime kubernetes (default: KUBECONFIG, then the in-cluster config); SLUICE_KUBE_NAMESPACE / SLUICE_KUBE_NAMESPACE_PREFIX map Sluice namespaces to Kubernetes ones")
	f.BoolVar(&quickstart, "quickstart", false, "once up, publish the CloudEvent that runs the quickstart pipeline and show its progress")
	f.StringVar(&quickstartExamples, "examples-dir", quickstartExamples, "where the quickstart finds examples/pipelines")
	return cmd
}

func printDevEnv(o *Options, e DevEnv, took time.Duration) {
	fmt.Fprintf(o.Out, `Sluice dev is up (%.1fs).
  Dashboard            %s/  (sign in with the admin token below)
  API (all services)   %s      e.g. curl %s/readyz
  Temporal Web UI      %s  (namespace %s)
  Temporal frontend    %s
  NATS JetStream       %s
  S3 endpoint          %s  bucket %s  access key %s  secret key %s
  Data dir             %s
Press Ctrl-C to stop; data survives restarts.
`, took.Seconds(), e.API, e.API, e.API, e.TemporalUI, e.Namespace, e.Temporal, redacted(e.NATS), e.S3Endpoint, e.S3Bucket, e.S3AccessKey, e.S3SecretKey, e.DataDir)
}

// busService hosts the event gateway (publish/tail over HTTP) next to the services.
type busService struct{ bus *events.Bus }

func (b busService) Name() string                { return "events" }
func (b busService) Routes(mux *http.ServeMux)   { b.bus.Routes(mux) }
func (b busService) Start(context.Context) error { return nil }
func (b busService) Ready(context.Context) error { return nil }
func (b busService) Close() error                { return nil }

// redacted hides the password of a URL.
func redacted(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return s
}
