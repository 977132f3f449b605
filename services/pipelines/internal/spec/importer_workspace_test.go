package spec

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

// An importer with downloadToWorkspace (KFP SDK 2.14+) is accepted under the local and docker runtimes:
// the importer carries the flag and the run gets the pipeline workspace it downloads into.
func TestImporterDownloadToWorkspaceAccepted(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "importer-download-to-workspace.yaml"))
	require.NoError(t, err)
	p, err := Parse(src)
	require.NoError(t, err)
	im := p.Components["comp-a"].Importer
	require.NotNil(t, im)
	require.True(t, im.DownloadToWorkspace)
	require.Equal(t, "uri", im.URIParam)
	require.True(t, dag.UsesWorkspace(p), "the run needs the workspace the importer downloads into")
	require.NoError(t, CheckRuntime(p, "local"))
	require.NoError(t, CheckRuntime(p, "docker"))
}
