package platform

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/sluice-ml/sluice/libs/events"
)

// Healthcheck GETs http://<addr>/readyz (an unspecified listen host such as 0.0.0.0 is asked on
// 127.0.0.1) and returns 0 when it answers 200, else 1 with the reason on w. It is what
// `<service> healthcheck` runs inside a container.
func Healthcheck(addr string, w io.Writer) int {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(w, "healthcheck: SLUICE_HTTP_ADDR %q: %v\n", addr, err)
		return 1
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/readyz", nil)
	if err != nil {
		fmt.Fprintln(w, "healthcheck:", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(w, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		fmt.Fprintf(w, "healthcheck: /readyz %s: %s\n", resp.Status, body)
		return 1
	}
	return 0
}

// EventsGateway hosts the event gateway (/apis/events/v1/publish and /tail, see events.Bus.Routes) in a
// service binary, so that every deployed service can take CloudEvents over HTTP as `sluice dev` does.
type EventsGateway struct{ Bus *events.Bus }

// Name is "events".
func (g EventsGateway) Name() string { return "events" }

// Routes registers the gateway's routes.
func (g EventsGateway) Routes(mux *http.ServeMux) { g.Bus.Routes(mux) }

// Start does nothing: the gateway uses the shared bus.
func (g EventsGateway) Start(context.Context) error { return nil }

// Ready is always nil (the bus connection is checked by Deps.Checks).
func (g EventsGateway) Ready(context.Context) error { return nil }

// Close does nothing.
func (g EventsGateway) Close() error { return nil }
