package app

import "net/http"

// dash1Routes registers the artifact, KFP experiment, recurring run, Katib experiment and TensorBoard
// pages. Every route has an entry in platform.Rules.
func (a *App) dash1Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /ui/runs/{id}/artifacts/{name}", a.artifact)
	mux.HandleFunc("GET /ui/runs/{id}/artifacts/{name}/raw", a.artifactRaw)
	mux.HandleFunc("GET /ui/runs/{id}/clone", a.cloneRun)
	mux.HandleFunc("GET /ui/experiments", a.experiments)
	mux.HandleFunc("GET /ui/experiments/{id}", a.experiment)
	mux.HandleFunc("GET /ui/recurringruns", a.recurringRuns)
	mux.HandleFunc("POST /ui/recurringruns/{id}/{action}", a.recurringRunAction)
	mux.HandleFunc("GET /ui/katib", a.katibExperiments)
	mux.HandleFunc("GET /ui/katib/{ns}/{name}", a.katibExperiment)
	mux.HandleFunc("GET /ui/tensorboards", a.tensorboards)
	mux.HandleFunc("GET /ui/tensorboards/{ns}/{name}", a.tensorboard)
}
