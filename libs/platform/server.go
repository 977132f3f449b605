package platform

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Service is one Sluice service hosted by [Serve]: a binary hosts one, `sluice dev` hosts all of them.
type Service interface {
	// Name is the service's short name ("pipelines").
	Name() string
	// Routes registers the service's API on mux. Patterns must not collide across services: each service
	// owns its prefixes (e.g. /apis/v1/pipelines, /apis/metadata/v1, /v1/models, /v2, /notebook).
	Routes(mux *http.ServeMux)
	// Start launches workers and consumers; it returns once they run. Work stops when ctx ends or Close is called.
	Start(ctx context.Context) error
	// Ready reports whether the service can take requests (nil = ready).
	Ready(ctx context.Context) error
	// Close stops what Start launched.
	Close() error
}

// NewLogger returns a JSON slog logger at the given level writing to w.
func NewLogger(w io.Writer, level string) *slog.Logger {
	l, err := ParseLevel(level)
	if err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// NewRegistry returns a Prometheus registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Handler builds the HTTP handler of a process: every service's routes, /healthz (the process is up),
// /readyz (every check and service is ready; 503 listing what is not) and /metrics, all wrapped in a
// request counter and latency histogram labelled by route pattern.
func Handler(reg *prometheus.Registry, log *slog.Logger, checks map[string]func(context.Context) error, svcs ...Service) http.Handler {
	return NewHandler(HandlerConfig{Registry: reg, Log: log, Checks: checks}, svcs...)
}

// HandlerConfig configures [NewHandler].
type HandlerConfig struct {
	Registry *prometheus.Registry
	Log      *slog.Logger
	Checks   map[string]func(context.Context) error
	// Guard authenticates and authorises every request ([Deps.EnableAuth]); nil serves without (service
	// unit tests only: every process that listens for users has a guard).
	Guard *Guard
	// NoMetrics leaves /metrics off this handler: the process serves it on a separate admin port
	// ([AdminHandler], SLUICE_ADMIN_ADDR) only.
	NoMetrics bool
}

// NewHandler is [Handler] with a guard in front of every route. Every answer carries
// X-Content-Type-Options: nosniff.
func NewHandler(hc HandlerConfig, svcs ...Service) http.Handler {
	reg, checks := hc.Registry, hc.Checks
	mux := http.NewServeMux()
	for _, s := range svcs {
		s.Routes(mux)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		problems := map[string]string{}
		for name, check := range checks {
			if err := check(ctx); err != nil {
				problems[name] = err.Error()
			}
		}
		for _, s := range svcs {
			if err := s.Ready(ctx); err != nil {
				problems[s.Name()] = err.Error()
			}
		}
		if len(problems) > 0 {
			WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "problems": problems})
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	if !hc.NoMetrics {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	}

	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_http_requests_total", Help: "HTTP requests by route pattern and status code.",
	}, []string{"route", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sluice_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route"})
	if err := reg.Register(requests); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			requests = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	if err := reg.Register(latency); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			latency = are.ExistingCollector.(*prometheus.HistogramVec)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header().Set("X-Content-Type-Options", "nosniff")
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		var route string
		if hc.Guard != nil {
			_, route = mux.Handler(r)
			hc.Guard.serve(mux, route, sw, r)
		} else {
			mux.ServeHTTP(sw, r)
			route = r.Pattern
		}
		if route == "" {
			route = "unmatched"
		}
		requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// AdminHandler serves /metrics without a credential, for a separate admin port that only operators reach.
func AdminHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

// statusWriter records the status code; it passes Flush and Hijack through (streaming and WebSockets).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("platform: response writer cannot hijack")
	}
	return h.Hijack()
}

// ListenAndServe serves h on addr until ctx ends, then shuts down gracefully (10 s).
func ListenAndServe(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("platform: listen %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, h, log)
}

// ServeListener is ListenAndServe on an open listener.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := srv.Shutdown(shutdownCtx)
		<-errc
		return err
	}
}

// WriteJSON writes v as JSON with the status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes {"error": msg} with the status code.
func WriteError(w http.ResponseWriter, code int, err error) {
	WriteJSON(w, code, map[string]string{"error": err.Error()})
}
