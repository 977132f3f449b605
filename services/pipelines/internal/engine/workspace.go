package engine

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

// WorkspaceMountPath is where a container step sees the run's workspace, as KFP mounts it in its pods
// (component.WorkspaceMountPath).
const WorkspaceMountPath = "/kfp-workspace"

// workspace returns the run's workspace directory as its steps see it, creating it on the host for the
// local runtime: <WorkDir>/<run>/workspace there (the step is a host process), WorkspaceMountPath in a
// container, where the Docker named volume sluice-ws-<hash of the run id> is mounted. Every step of the
// run shares it; RemoveWorkspace removes it when the run ends.
func (a *Activities) workspace(runID string) (string, error) {
	if _, local := a.Runtime.(*runtime.Local); !local {
		return WorkspaceMountPath, nil
	}
	dir, err := filepath.Abs(filepath.Join(a.WorkDir, runID, "workspace"))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("workspace: %w", err)
	}
	return dir, nil
}

func workspaceVolume(runID string) string { return "sluice-ws-" + shortHash(runID) }

// withWorkspace replaces {{$.workspace_path}} in string parameter values by the workspace path.
func withWorkspace(params map[string]any, ws string) map[string]any {
	out := make(map[string]any, len(params))
	for k, v := range params {
		if s, ok := v.(string); ok {
			v = strings.ReplaceAll(s, dag.WorkspacePlaceholder, ws)
		}
		out[k] = v
	}
	return out
}

// volumeRemover is a runtime with named volumes (the Docker runtime).
type volumeRemover interface {
	RemoveVolume(ctx context.Context, name string) error
}

// RemoveWorkspace removes a finished run's workspace: the host directory (local runtime) or the named
// volume (Docker). Removing what is already gone succeeds.
func (a *Activities) RemoveWorkspace(ctx context.Context, runID string) error {
	if vr, ok := a.Runtime.(volumeRemover); ok {
		return vr.RemoveVolume(ctx, workspaceVolume(runID))
	}
	if _, local := a.Runtime.(*runtime.Local); local {
		return os.RemoveAll(filepath.Join(a.WorkDir, runID, "workspace"))
	}
	return nil
}

// workspaceFlag is the artifact metadata key KFP's driver sets on an input artifact its importer
// downloaded into the workspace (driver common.WorkspaceMetadataField): the launcher then neither
// downloads it nor maps .path to the URI's local path, but to workspaceArtifactPath.
const workspaceFlag = "_kfp_workspace"

// inWorkspace reports whether art was downloaded into the run's workspace by its importer.
func inWorkspace(art Artifact) bool {
	b, _ := art.Metadata[workspaceFlag].(bool)
	return b
}

// withoutWorkspaceFlag returns art without workspaceFlag in its metadata (a copy when it has it).
func withoutWorkspaceFlag(art Artifact) Artifact {
	if _, ok := art.Metadata[workspaceFlag]; !ok {
		return art
	}
	m := maps.Clone(art.Metadata) // no range over the map: workflow code calls this
	delete(m, workspaceFlag)
	if len(m) == 0 {
		m = nil
	}
	art.Metadata = m
	return art
}

// workspaceArtifactPath is where an importer with downloadToWorkspace puts the artifact at uri inside
// the workspace ws, as KFP's launcher (LocalWorkspacePathForURI): the executor's local path for the URI
// (s3://B/K → s3/B/K) under <ws>/.artifacts/.
func workspaceArtifactPath(ws, uri string) string {
	return filepath.Join(ws, ".artifacts", strings.TrimPrefix(kfpLocalPath(uri), "/"))
}
