// Package app is the Sluice central dashboard: server-rendered pages (html/template, a little plain
// JavaScript for live updates over server-sent events) over the other services' public APIs, called
// with the signed-in user's own credential. Graphs are laid out by Graphviz (github.com/goccy/go-graphviz,
// Graphviz compiled to WebAssembly) and drawn as SVG on the server.
package app

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/platform"
)

// Name is the service's name.
const Name = "dashboard"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// App is the dashboard service.
type App struct {
	log    *slog.Logger
	apiURL string
	uiURL  string
	hc     *http.Client
	signer *auth.Signer
	pages  map[string]*template.Template
	layout *layouter
	poll   time.Duration
	deps   *platform.Deps
}

// Build builds the dashboard from deps. Environment (deps.Getenv): SLUICE_DASHBOARD_API_URL, the base URL
// of the Sluice APIs (default: the address each request arrived at, as under `sluice dev`, where every
// API shares the dashboard's port); SLUICE_TEMPORAL_UI_URL, the Temporal Web UI linked from run pages.
func Build(ctx context.Context, d *platform.Deps) (platform.Service, error) {
	return New(d, Config{APIURL: d.Getenv("SLUICE_DASHBOARD_API_URL"), TemporalUIURL: d.Getenv("SLUICE_TEMPORAL_UI_URL")})
}

// Config configures [New].
type Config struct {
	APIURL        string
	TemporalUIURL string
	// Poll is how often live pages re-read a run (default 1 s).
	Poll time.Duration
}

// New returns the dashboard.
func New(d *platform.Deps, cfg Config) (*App, error) {
	if cfg.APIURL != "" {
		if u, err := url.Parse(cfg.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errors.New("SLUICE_DASHBOARD_API_URL: want an http(s) URL such as http://gateway:8080")
		}
	}
	a := &App{log: d.Log, apiURL: cfg.APIURL, uiURL: strings.TrimSuffix(cfg.TemporalUIURL, "/"), deps: d,
		hc: &http.Client{Timeout: 60 * time.Second}, poll: cfg.Poll, layout: newLayouter()}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.poll <= 0 {
		a.poll = time.Second
	}
	var err error
	if a.pages, err = parsePages(); err != nil {
		return nil, err
	}
	return a, nil
}

// Name implements platform.Service.
func (a *App) Name() string { return Name }

// Start implements platform.Service; it learns the guard's signer (set once auth is enabled).
func (a *App) Start(ctx context.Context) error {
	if g := a.deps.Guard(); g != nil {
		a.signer = g.Authenticator().Signer()
	}
	return nil
}

// Ready implements platform.Service.
func (a *App) Ready(context.Context) error { return nil }

// Close implements platform.Service.
func (a *App) Close() error {
	a.layout.close()
	return nil
}

// Routes implements platform.Service. Every route has an entry in platform.Rules.
func (a *App) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /login", a.loginPage)
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("GET /ui/static/{file}", a.static)
	mux.HandleFunc("GET /favicon.ico", a.favicon)
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /ui/runs", a.runs)
	mux.HandleFunc("GET /ui/runs/{id}", a.run)
	mux.HandleFunc("GET /ui/runs/{id}/live", a.runLive)
	mux.HandleFunc("GET /ui/runs/{id}/logs", a.runLogs)
	mux.HandleFunc("POST /ui/runs/{id}/{action}", a.runAction)
	mux.HandleFunc("GET /ui/pipelines", a.pipelines)
	mux.HandleFunc("POST /ui/pipelines", a.uploadPipeline)
	mux.HandleFunc("GET /ui/pipelines/{id}", a.pipeline)
	mux.HandleFunc("POST /ui/pipelines/{id}/runs", a.createRun)
	mux.HandleFunc("GET /ui/jobs", a.jobs)
	mux.HandleFunc("GET /ui/jobs/{ns}/{name}", a.job)
	mux.HandleFunc("GET /ui/jobs/{ns}/{name}/logs", a.jobLogs)
	mux.HandleFunc("GET /ui/lineage", a.lineage)
	mux.HandleFunc("GET /ui/notebooks", a.notebooks)
	mux.HandleFunc("POST /ui/notebooks", a.createNotebook)
	mux.HandleFunc("POST /ui/notebooks/{ns}/{name}/{action}", a.notebookAction)
	a.dash1Routes(mux)
	a.routesDash2(mux)
}

// routesDash2 registers models and deployments, notebook connect and the events tail.
func (a *App) routesDash2(mux *http.ServeMux) {
	mux.HandleFunc("GET /ui/models", a.deployments)
	mux.HandleFunc("GET /ui/models/{ns}/{name}", a.deployment)
	mux.HandleFunc("POST /ui/models/{ns}/{name}/{action}", a.deploymentAction)
	mux.HandleFunc("GET /ui/notebooks/{ns}/{name}/connect", a.notebookConnect)
	mux.HandleFunc("GET /ui/events", a.eventsPage)
	mux.HandleFunc("GET /ui/events/live", a.eventsLive)
}

func (a *App) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := fs.ReadFile(staticFS, "static/"+name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	switch {
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case strings.HasSuffix(name, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case strings.HasSuffix(name, ".svg"):
		w.Header().Set("Content-Type", "image/svg+xml")
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(b)
}

// favicon answers the browser's own /favicon.ico request (text pages such as logs have no icon link).
func (a *App) favicon(w http.ResponseWriter, r *http.Request) {
	r.SetPathValue("file", "icon.svg")
	a.static(w, r)
}
