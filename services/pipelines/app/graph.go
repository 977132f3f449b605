package app

import (
	"net/http"

	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
	"github.com/sluice-ml/sluice/services/pipelines/internal/spec"
)

// graphOf returns the drawable DAG of a compiled pipeline (see pipelinesv1.Graph).
func graphOf(p *dag.Pipeline) pipelinesv1.Graph {
	g := pipelinesv1.Graph{PipelineName: p.Name, DisplayName: p.DisplayName, Description: p.Description, Tasks: []pipelinesv1.GraphTask{}}
	for _, in := range p.Inputs() {
		g.Inputs = append(g.Inputs, pipelinesv1.GraphInput{Name: in.Name, Type: string(in.Type), Default: in.Default,
			HasDefault: in.HasDefault, Optional: in.Optional, Description: in.Description})
	}
	var walk func(parent string, comp *dag.Component, depth int)
	walk = func(parent string, comp *dag.Component, depth int) {
		if comp == nil || comp.DAG == nil || depth > 32 {
			return
		}
		for _, t := range comp.DAG.Tasks {
			path := joinTaskPath(parent, t.Name)
			gt := pipelinesv1.GraphTask{Path: path, Name: t.Name, DisplayName: t.DisplayName, Parent: parent,
				Component: t.ComponentRef, Loop: t.Iterator != nil, Condition: t.Condition, ExitHandler: t.ExitHandler}
			for _, d := range t.DependsOn {
				gt.DependsOn = append(gt.DependsOn, joinTaskPath(parent, d))
			}
			c, ok := p.TaskComponent(t)
			if ok {
				gt.Kind = string(c.Kind)
			}
			g.Tasks = append(g.Tasks, gt)
			if ok && c.Kind == dag.KindDAG && t.Iterator == nil {
				walk(path, c, depth+1)
			}
		}
	}
	walk("", p.Root, 0)
	return g
}

// joinTaskPath is the engine's task path of name inside the DAG at parent.
func joinTaskPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "/" + name
}

func (a *App) runGraph(w http.ResponseWriter, r *http.Request) {
	if _, _, err := a.authorizeRun(r, r.PathValue("id")); err != nil {
		httpError(w, err)
		return
	}
	in, err := a.runInput(r.Context(), r.PathValue("id"))
	if err != nil {
		httpError(w, err)
		return
	}
	p, err := spec.Parse([]byte(in.Spec))
	if err != nil {
		httpError(w, invalid(err))
		return
	}
	platform.WriteJSON(w, http.StatusOK, graphOf(p))
}

func (a *App) pipelineGraph(w http.ResponseWriter, r *http.Request) {
	if _, err := a.pipeline(r, r.PathValue("id")); err != nil {
		httpError(w, err)
		return
	}
	v, err := a.catalog.Version(r.Context(), r.PathValue("id"), r.URL.Query().Get("version_id"))
	if err != nil {
		httpError(w, err)
		return
	}
	p, err := spec.Parse([]byte(v.Spec))
	if err != nil {
		httpError(w, invalid(err))
		return
	}
	platform.WriteJSON(w, http.StatusOK, graphOf(p))
}
