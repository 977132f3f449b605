package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/workflowservice/v1"
	sdkclient "go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"

	"github.com/sluice-ml/sluice/libs/netport"
	"github.com/sluice-ml/sluice/libs/workflow"
	"go.temporal.io/server/temporal"
)

const (
	temporalDBFile      = "temporal.db"
	temporalClusterName = "active"
	temporalStoreName   = "sqlite-default"
	// temporalReadyTimeout bounds the wait for the frontend to serve the
	// sluice namespace after the server reports started.
	temporalReadyTimeout = 15 * time.Second
)

// temporalServer is an embedded single-process Temporal cluster (frontend,
// history, matching, worker) persisted in one SQLite file.
type temporalServer struct {
	server  temporal.Server
	address string // frontend gRPC host:port
	log     temporalLogger
}

// startTemporal opens (creating and migrating on first use)
// dataDir/temporal.db, registers the default and sluice namespaces if they are
// missing, starts all services on loopback with the frontend on
// frontendPort, and waits until the sluice namespace is served.
func startTemporal(ctx context.Context, dataDir string, frontendPort int, log *slog.Logger) (*temporalServer, error) {
	log = log.With("component", "temporal")
	sqlConf, err := temporalSQLConfig(filepath.Join(dataDir, temporalDBFile))
	if err != nil {
		return nil, err
	}
	conf, err := temporalConfig(frontendPort, sqlConf)
	if err != nil {
		return nil, err
	}
	hosts := map[primitives.ServiceName]static.Hosts{}
	for name, svc := range conf.Services {
		hosts[primitives.ServiceName(name)] = static.SingleLocalHost(hostPort(svc.RPC.GRPCPort))
	}
	// Single-node tuning (queue read rates, one task-queue partition, eager activities): see
	// dynamicconfig.go.
	dyn := temporalDynamicConfigClient()
	tlog := newTemporalLogger(log, slog.LevelWarn)
	srv, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(tlog),
		temporal.WithAuthorizer(authorization.NewNoopAuthorizer()),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper {
			return authorization.NewNoopClaimMapper()
		}),
		temporal.WithDynamicConfigClient(dyn),
	)
	if err != nil {
		return nil, fmt.Errorf("temporal: configure server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("temporal: start server: %w", err)
	}
	ts := &temporalServer{server: srv, address: hostPort(frontendPort), log: tlog}
	if err := ts.waitReady(ctx, log); err != nil {
		return nil, errors.Join(err, ts.stop())
	}
	return ts, nil
}

// temporalSQLConfig returns the SQLite persistence config for dbPath,
// creating the schema when the file does not exist yet and registering the
// default and sluice namespaces when missing (idempotent).
func temporalSQLConfig(dbPath string) (*config.SQL, error) {
	conf := &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: dbPath,
		// WAL with synchronous=NORMAL: commits survive a crash of the process (the dev stack's failure
		// mode) without an fsync per transaction, which would dominate every workflow transition.
		ConnectAttributes: map[string]string{"mode": "rwc", "journal_mode": "wal", "synchronous": "1", "busy_timeout": "5000"},
	}
	if _, err := os.Stat(dbPath); errors.Is(err, os.ErrNotExist) {
		if err := sqliteschema.SetupSchema(conf); err != nil {
			// Do not leave a half-initialised file behind: the next start
			// would skip the schema set-up.
			_ = os.Remove(dbPath)
			return nil, fmt.Errorf("temporal: create schema in %s: %w", dbPath, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("temporal: stat %s: %w", dbPath, err)
	}
	var namespaces []*sqliteschema.NamespaceConfig
	for _, name := range []string{DefaultNamespace, Namespace} {
		// Sluice's custom search attributes (libs/workflow/visibility.go) are part of a new namespace;
		// a data dir from before they existed gets them through the operator API in waitReady.
		ns, err := sqliteschema.NewNamespaceConfig(temporalClusterName, name, false, workflow.SearchAttributeTypes())
		if err != nil {
			return nil, fmt.Errorf("temporal: namespace %s: %w", name, err)
		}
		namespaces = append(namespaces, ns)
	}
	if err := sqliteschema.CreateNamespaces(conf, namespaces...); err != nil {
		return nil, fmt.Errorf("temporal: register namespaces: %w", err)
	}
	return conf, nil
}

// temporalConfig builds a single-node cluster config: one history shard,
// archival off, every service on a loopback port (internal ones random).
func temporalConfig(frontendPort int, sqlConf *config.SQL) (*config.Config, error) {
	frontendHTTPPort, err := netport.Free(loopback)
	if err != nil {
		return nil, fmt.Errorf("temporal: %w", err)
	}
	conf := &config.Config{}
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = loopback
	conf.Persistence.DefaultStore = temporalStoreName
	conf.Persistence.VisibilityStore = temporalStoreName
	conf.Persistence.NumHistoryShards = 1
	conf.Persistence.DataStores = map[string]config.DataStore{temporalStoreName: {SQL: sqlConf}}
	conf.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        temporalClusterName,
		CurrentClusterName:       temporalClusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			temporalClusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             hostPort(frontendPort),
				HTTPAddress:            hostPort(frontendHTTPPort),
				// Only used when the cluster record is first written; the
				// persisted id wins afterwards.
				ClusterID: uuid.NewString(),
			},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Services = map[string]config.Service{}
	for _, name := range []primitives.ServiceName{
		primitives.FrontendService, primitives.HistoryService,
		primitives.MatchingService, primitives.WorkerService,
	} {
		var svc config.Service
		svc.RPC.BindOnIP = loopback
		if name == primitives.FrontendService {
			svc.RPC.GRPCPort = frontendPort
			svc.RPC.HTTPPort = frontendHTTPPort
		} else if svc.RPC.GRPCPort, err = netport.Free(loopback); err != nil {
			return nil, fmt.Errorf("temporal: %w", err)
		}
		conf.Services[string(name)] = svc
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = hostPort(frontendPort)
	return conf, nil
}

// waitReady polls the frontend until DescribeNamespace(sluice) succeeds.
func (ts *temporalServer) waitReady(ctx context.Context, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, temporalReadyTimeout)
	defer cancel()
	quiet := slog.New(minLevelHandler{Handler: log.Handler(), min: slog.LevelWarn})
	var lastErr error
	for {
		lastErr = ts.describeNamespace(ctx, quiet)
		if lastErr == nil {
			return ts.registerSearchAttributes(ctx, quiet)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("temporal: frontend %s not serving namespace %q: %w", ts.address, Namespace, errors.Join(lastErr, ctx.Err()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (ts *temporalServer) describeNamespace(ctx context.Context, log *slog.Logger) error {
	c, err := sdkclient.DialContext(ctx, sdkclient.Options{
		HostPort:  ts.address,
		Namespace: Namespace,
		Logger:    sdklog.NewStructuredLogger(log),
	})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: Namespace})
	return err
}

// registerSearchAttributes adds Sluice's search attributes the sluice namespace lacks (only a data dir
// created before they existed does).
func (ts *temporalServer) registerSearchAttributes(ctx context.Context, log *slog.Logger) error {
	c, err := sdkclient.DialContext(ctx, sdkclient.Options{HostPort: ts.address, Namespace: Namespace, Logger: sdklog.NewStructuredLogger(log)})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := workflow.RegisterSearchAttributes(ctx, c, Namespace); err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	return nil
}

func (ts *temporalServer) stop() error {
	ts.log.stopping.Store(true)
	if err := ts.server.Stop(); err != nil {
		return fmt.Errorf("temporal: stop: %w", err)
	}
	return nil
}
