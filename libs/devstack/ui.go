package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
)

const uiReadyTimeout = 10 * time.Second

// temporalUI is the Temporal Web UI (ui-server/v2 with its embedded assets)
// serving http://127.0.0.1:<port>/ against the embedded frontend.
type temporalUI struct {
	server *uiserver.Server
	url    string
	done   chan error
}

// startTemporalUI serves the UI on loopback port, proxying API calls to the
// Temporal frontend at frontendAddress, and waits until it answers.
func startTemporalUI(ctx context.Context, port int, frontendAddress string, log *slog.Logger) (*temporalUI, error) {
	// ui-server exits the whole process when it cannot bind, so refuse a
	// taken port up front.
	if err := checkPortFree("TemporalUIPort", port); err != nil {
		return nil, fmt.Errorf("temporal ui: %w", err)
	}
	srv := uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
		Host:                loopback,
		Port:                port,
		TemporalGRPCAddress: frontendAddress,
		EnableUI:            true,
		DefaultNamespace:    Namespace,
		CORS:                uiconfig.CORS{CookieInsecure: true},
		HideLogs:            true,
		// No outbound calls from a local dev stack.
		NotifyOnNewVersion: false,
	}))
	ui := &temporalUI{server: srv, url: "http://" + hostPort(port), done: make(chan error, 1)}
	go func() { ui.done <- srv.Start() }()
	if err := ui.waitReady(ctx); err != nil {
		ui.stop()
		return nil, err
	}
	log.Debug("temporal ui ready", "component", "temporal-ui", "url", ui.url)
	return ui, nil
}

func (ui *temporalUI) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, uiReadyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	var lastErr error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ui.url+"/healthz", nil)
		if err != nil {
			return fmt.Errorf("temporal ui: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /healthz: status %d", resp.StatusCode)
		}
		lastErr = err
		select {
		case err := <-ui.done:
			return fmt.Errorf("temporal ui: server exited: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("temporal ui: not ready at %s: %w", ui.url, errors.Join(lastErr, ctx.Err()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (ui *temporalUI) stop() {
	ui.server.Stop()
}
