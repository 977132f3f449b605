package app

import (
	"strings"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
)

// notebookDetails are the pairs of a notebook workflow's static details in the Temporal Web UI: each
// container's image and command.
func notebookDetails(nb notebooksv1.Notebook) [][2]string {
	var pairs [][2]string
	for _, c := range nb.Spec.Template.Spec.Containers {
		pairs = append(pairs, [2]string{"Container " + c.Name, strings.TrimSpace(c.Image + " " + strings.Join(append(append([]string(nil), c.Command...), c.Args...), " "))})
	}
	return pairs
}
