// Command temporal-server is Sluice's local stand-in for the official Temporal images
// (temporalio/auto-setup + temporalio/ui): a real Temporal server v1.30.4 (frontend, history, matching,
// worker in one process) persisted in PostgreSQL through the postgres12 plugin, which creates and
// migrates its databases on start (the server's own SQL schema tool), registers DEFAULT_NAMESPACE, and,
// with the argument "ui", the Temporal Web UI (ui-server v2.45.1) instead.
//
// It reads the variables the official images read, so one compose file works with either:
//
//	server: DB (postgres12), POSTGRES_SEEDS, DB_PORT (5432), POSTGRES_USER, POSTGRES_PWD, DBNAME (temporal),
//	        VISIBILITY_DBNAME (temporal_visibility), DEFAULT_NAMESPACE (default),
//	        DEFAULT_NAMESPACE_RETENTION (24h), NUM_HISTORY_SHARDS (4), FRONTEND_GRPC_PORT (7233),
//	        BIND_ON_IP (0.0.0.0), DYNAMIC_CONFIG_FILE_PATH (unset: defaults), SKIP_SCHEMA_SETUP (false)
//	ui:     TEMPORAL_ADDRESS (127.0.0.1:7233), TEMPORAL_UI_PORT (8080), TEMPORAL_DEFAULT_NAMESPACE (default)
//
// "healthcheck" exits 0 when the frontend serves DEFAULT_NAMESPACE (server) or the UI answers (ui):
// the images are FROM scratch, so Compose health checks run the binary itself.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	sdkclient "go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	tlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	_ "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql" // postgres12 plugin
	"go.temporal.io/server/common/primitives"
	"go.temporal.io/server/temporal"
	sqltool "go.temporal.io/server/tools/sql"
	"google.golang.org/protobuf/types/known/durationpb"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"

	"github.com/sluice-ml/sluice/libs/netport"
)

const clusterName = "active"

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive integer", name, v)
	}
	return n, nil
}

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	mode := "server"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	var err error
	switch mode {
	case "server":
		err = runServer(log)
	case "ui":
		err = runUI()
	case "healthcheck":
		err = healthcheck()
	default:
		err = fmt.Errorf("unknown command %q (server, ui, healthcheck)", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "temporal-server:", err)
		os.Exit(1)
	}
}

type settings struct {
	plugin, host, user, password, db, visibilityDB string
	port, shards, frontendPort                     int
	namespace, bindIP, dynamicConfig               string
	retention                                      time.Duration
}

func readSettings() (settings, error) {
	s := settings{
		plugin: env("DB", "postgres12"), host: env("POSTGRES_SEEDS", ""), user: env("POSTGRES_USER", ""),
		password: os.Getenv("POSTGRES_PWD"), db: env("DBNAME", "temporal"),
		visibilityDB: env("VISIBILITY_DBNAME", "temporal_visibility"), namespace: env("DEFAULT_NAMESPACE", "default"),
		bindIP: env("BIND_ON_IP", "0.0.0.0"), dynamicConfig: os.Getenv("DYNAMIC_CONFIG_FILE_PATH"),
	}
	var errs []error
	if s.plugin != "postgres12" && s.plugin != "postgres12_pgx" {
		errs = append(errs, fmt.Errorf("DB: %q is not postgres12 or postgres12_pgx (this image persists in PostgreSQL only)", s.plugin))
	}
	if s.host == "" {
		errs = append(errs, errors.New("POSTGRES_SEEDS: required (PostgreSQL host)"))
	}
	if s.user == "" {
		errs = append(errs, errors.New("POSTGRES_USER: required"))
	}
	var err error
	if s.port, err = envInt("DB_PORT", 5432); err != nil {
		errs = append(errs, err)
	}
	if s.shards, err = envInt("NUM_HISTORY_SHARDS", 4); err != nil {
		errs = append(errs, err)
	}
	if s.frontendPort, err = envInt("FRONTEND_GRPC_PORT", 7233); err != nil {
		errs = append(errs, err)
	}
	if s.retention, err = time.ParseDuration(env("DEFAULT_NAMESPACE_RETENTION", "24h")); err != nil {
		errs = append(errs, fmt.Errorf("DEFAULT_NAMESPACE_RETENTION: %w", err))
	}
	return s, errors.Join(errs...)
}

func (s settings) sql(db string) *config.SQL {
	return &config.SQL{
		PluginName: s.plugin, DatabaseName: db, ConnectAddr: net.JoinHostPort(s.host, strconv.Itoa(s.port)),
		ConnectProtocol: "tcp", User: s.user, Password: s.password,
		MaxConns: 20, MaxIdleConns: 20, MaxConnLifetime: time.Hour,
	}
}

// setupSchema does what temporalio/auto-setup does with temporal-sql-tool: create each database if
// missing, create the version tables, then migrate to the embedded schema's latest version.
func (s settings) setupSchema() error {
	for _, d := range []struct{ name, schema string }{{s.db, "postgresql/v12/temporal"}, {s.visibilityDB, "postgresql/v12/visibility"}} {
		base := []string{"temporal-sql-tool", "--plugin", s.plugin, "--ep", s.host, "--port", strconv.Itoa(s.port),
			"--user", s.user, "--password", s.password, "--db", d.name}
		// create-database fails when the database exists; --quiet keeps that from exiting.
		create := append(append([]string{base[0], "--quiet"}, base[1:]...), "create-database", "--defaultdb", "postgres")
		if err := sqltool.RunTool(create); err != nil {
			return fmt.Errorf("create database %s: %w", d.name, err)
		}
		if err := sqltool.RunTool(append(append([]string{}, base...), "setup-schema", "-v", "0.0")); err != nil {
			return fmt.Errorf("set up schema of %s: %w", d.name, err)
		}
		if err := sqltool.RunTool(append(append([]string{}, base...), "update-schema", "--schema-name", d.schema)); err != nil {
			return fmt.Errorf("update schema of %s: %w", d.name, err)
		}
	}
	return nil
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

func runServer(log *slog.Logger) error {
	s, err := readSettings()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if env("SKIP_SCHEMA_SETUP", "false") != "true" {
		// PostgreSQL may still be starting: retry until it answers or we are stopped.
		for attempt := 1; ; attempt++ {
			err := s.setupSchema()
			if err == nil {
				break
			}
			log.Warn("schema setup failed, retrying", "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
				return err
			case <-time.After(2 * time.Second):
			}
		}
	}
	conf := &config.Config{}
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = "127.0.0.1"
	conf.Persistence.DefaultStore = "default"
	conf.Persistence.VisibilityStore = "visibility"
	conf.Persistence.NumHistoryShards = int32(s.shards)
	conf.Persistence.DataStores = map[string]config.DataStore{
		"default": {SQL: s.sql(s.db)}, "visibility": {SQL: s.sql(s.visibilityDB)},
	}
	httpPort, err := netport.Free("127.0.0.1")
	if err != nil {
		return err
	}
	conf.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10, MasterClusterName: clusterName, CurrentClusterName: clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{clusterName: {
			Enabled: true, InitialFailoverVersion: 1, RPCAddress: hostPort("127.0.0.1", s.frontendPort),
			HTTPAddress: hostPort("127.0.0.1", httpPort), ClusterID: uuid.NewString(),
		}},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Services = map[string]config.Service{}
	hosts := map[primitives.ServiceName]static.Hosts{}
	for _, name := range []primitives.ServiceName{primitives.FrontendService, primitives.HistoryService, primitives.MatchingService, primitives.WorkerService} {
		var svc config.Service
		svc.RPC.BindOnIP = "127.0.0.1"
		if name == primitives.FrontendService {
			svc.RPC.BindOnIP = s.bindIP
			svc.RPC.GRPCPort, svc.RPC.HTTPPort = s.frontendPort, httpPort
		} else if svc.RPC.GRPCPort, err = netport.Free("127.0.0.1"); err != nil {
			return err
		}
		conf.Services[string(name)] = svc
		hosts[name] = static.SingleLocalHost(hostPort("127.0.0.1", svc.RPC.GRPCPort))
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = hostPort("127.0.0.1", s.frontendPort)
	if s.dynamicConfig != "" {
		conf.DynamicConfigClient = &dynamicconfig.FileBasedClientConfig{Filepath: s.dynamicConfig, PollInterval: 10 * time.Second}
	}
	logger := tlog.NewZapLogger(tlog.BuildZapLogger(tlog.Config{Level: env("LOG_LEVEL", "warn"), Format: "json"}))
	srv, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorization.NewNoopAuthorizer()),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return authorization.NewNoopClaimMapper() }),
	)
	if err != nil {
		return fmt.Errorf("configure server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	defer srv.Stop()
	if err := registerNamespace(ctx, hostPort("127.0.0.1", s.frontendPort), s.namespace, s.retention, log); err != nil {
		return err
	}
	log.Info("temporal server ready", "frontend", hostPort(s.bindIP, s.frontendPort), "namespace", s.namespace)
	<-ctx.Done()
	return nil
}

// registerNamespace registers name (as `temporal operator namespace create` does in auto-setup), retrying
// until the frontend answers; an existing namespace is fine.
func registerNamespace(ctx context.Context, addr, name string, retention time.Duration, log *slog.Logger) error {
	quiet := sdklog.NewStructuredLogger(slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		err := func() error {
			c, err := sdkclient.NewNamespaceClient(sdkclient.Options{HostPort: addr, Logger: quiet})
			if err != nil {
				return err
			}
			defer c.Close()
			err = c.Register(ctx, &workflowservice.RegisterNamespaceRequest{
				Namespace: name, WorkflowExecutionRetentionPeriod: durationpb.New(retention),
				HistoryArchivalState: enumspb.ARCHIVAL_STATE_DISABLED, VisibilityArchivalState: enumspb.ARCHIVAL_STATE_DISABLED,
			})
			var exists *serviceerror.NamespaceAlreadyExists
			if err != nil && !errors.As(err, &exists) {
				return err
			}
			// Registration is asynchronous to the namespace cache: wait until it is served.
			_, err = c.Describe(ctx, name)
			return err
		}()
		if err == nil {
			return nil
		}
		log.Debug("register namespace", "namespace", name, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("register namespace %s: %w", name, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func runUI() error {
	port, err := envInt("TEMPORAL_UI_PORT", 8080)
	if err != nil {
		return err
	}
	srv := uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
		Host: "0.0.0.0", Port: port, TemporalGRPCAddress: env("TEMPORAL_ADDRESS", "127.0.0.1:7233"),
		EnableUI: true, DefaultNamespace: env("TEMPORAL_DEFAULT_NAMESPACE", "default"),
		CORS: uiconfig.CORS{CookieInsecure: true}, HideLogs: true, NotifyOnNewVersion: false,
	}))
	return srv.Start()
}

func healthcheck() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if len(os.Args) > 2 && os.Args[2] == "ui" {
		port, err := envInt("TEMPORAL_UI_PORT", 8080)
		if err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostPort("127.0.0.1", port)+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ui /healthz: %s", resp.Status)
		}
		return nil
	}
	port, err := envInt("FRONTEND_GRPC_PORT", 7233)
	if err != nil {
		return err
	}
	quiet := sdklog.NewStructuredLogger(slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	c, err := sdkclient.DialContext(ctx, sdkclient.Options{HostPort: hostPort("127.0.0.1", port), Logger: quiet})
	if err != nil {
		return err
	}
	defer c.Close()
	ns := env("DEFAULT_NAMESPACE", "default")
	_, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
	return err
}
