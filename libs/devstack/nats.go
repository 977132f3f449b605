package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// natsReadyTimeout bounds how long Start waits for NATS to accept clients.
const natsReadyTimeout = 10 * time.Second

// startNATS runs an in-process NATS server with JetStream storing files under
// dataDir/nats. port <= 0 lets the server pick a free port.
func startNATS(dataDir string, port int, log *slog.Logger) (*natsserver.Server, error) {
	if port <= 0 {
		port = natsserver.RANDOM_PORT
	}
	opts := &natsserver.Options{
		ServerName: "sluice-dev",
		Host:       loopback,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(dataDir, "nats"),
		NoSigs:     true,
		// No HTTP monitoring, no cluster, no leafnodes: loopback clients only.
		Users: natsUsers(), // see natsauth.go
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats: configure server: %w", err)
	}
	nl := &natsLogger{log: log.With("component", "nats")}
	ns.SetLoggerV2(nl, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(natsReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		if err := nl.fatal(); err != nil {
			return nil, fmt.Errorf("nats: start: %w", err)
		}
		return nil, fmt.Errorf("nats: not ready for connections on %s after %s", hostPort(port), natsReadyTimeout)
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, errors.Join(errors.New("nats: JetStream did not start"), nl.fatal())
	}
	return ns, nil
}

// natsLogger routes nats-server logs to slog. Notices (banners, routine
// start-up lines) go to debug so the stack stays quiet; Fatalf is recorded so
// Start can report why the server did not come up (nats-server's own Fatalf
// exits the process, which an embedded server must not do).
type natsLogger struct {
	log *slog.Logger

	mu       sync.Mutex
	fatalErr error
}

func (l *natsLogger) Noticef(format string, v ...any) {
	l.logf(slog.LevelDebug, format, v...)
}

func (l *natsLogger) Warnf(format string, v ...any) { l.logf(slog.LevelWarn, format, v...) }

func (l *natsLogger) Errorf(format string, v ...any) { l.logf(slog.LevelError, format, v...) }

func (l *natsLogger) Debugf(format string, v ...any) { l.logf(slog.LevelDebug, format, v...) }

func (l *natsLogger) Tracef(format string, v ...any) { l.logf(slog.LevelDebug, format, v...) }

func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.fatalErr == nil {
		l.fatalErr = errors.New(msg)
	}
	l.mu.Unlock()
	l.log.Error(msg, "fatal", true)
}

func (l *natsLogger) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalErr
}

func (l *natsLogger) logf(level slog.Level, format string, v ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
}
