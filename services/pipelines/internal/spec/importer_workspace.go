package spec

import (
	"fmt"

	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

// checkWorkspaceImporters refuses, under a runtime without the pipeline workspace (kubernetes), each
// task whose importer has downloadToWorkspace (KFP ImporterSpec.download_to_workspace), naming the
// task: the importer downloads into the workspace and its consumers read the artifact there.
func checkWorkspaceImporters(p *dag.Pipeline, runtime string) dag.FieldErrors {
	var errs dag.FieldErrors
	visit := func(c *dag.Component) {
		if c == nil || c.DAG == nil {
			return
		}
		for _, t := range c.DAG.Tasks {
			tc, ok := p.TaskComponent(t)
			if !ok || tc.Importer == nil || !tc.Importer.DownloadToWorkspace {
				continue
			}
			errs = append(errs, dag.FieldError{Path: tc.Importer.Path + ".downloadToWorkspace",
				Message: fmt.Sprintf("task %s: the importer's downloadToWorkspace needs the pipeline workspace, which the %s runtime does not support yet (use the local or docker runtime)", t.Name, runtime)})
		}
	}
	visit(p.Root)
	for _, n := range p.ComponentNames() {
		visit(p.Components[n])
	}
	return errs
}
