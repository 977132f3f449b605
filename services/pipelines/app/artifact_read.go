package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	"github.com/sluice-ml/sluice/services/pipelines/internal/engine"
)

// artifactRoutes registers the reads of a run's output artifacts and of a run's input (KFP's ReadArtifact,
// GET /apis/v1beta1/runs/{run_id}/nodes/{node_id}/artifacts/{artifact_name}:read, and the pipeline
// reference and runtime config of KFP's GetRun, which a clone pre-fills a run form from):
//
//	GET /apis/v1/runs/{id}/artifacts/{name}?task=<task path>[&file=<path in a directory artifact>]
//	GET /apis/v1/runs/{id}/input
func (a *App) artifactRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /apis/v1/runs/{id}/artifacts/{name}", a.readArtifact)
	mux.HandleFunc("GET /apis/v1/runs/{id}/input", a.runInputView)
}

// ArtifactDirectory is the answer of an artifact read of a directory artifact without ?file=: the files
// below it (paths relative to the artifact's URI, sizes in bytes), sorted by path. Its Content-Type is
// ArtifactDirectoryType.
type ArtifactDirectory struct {
	URI   string         `json:"uri"`
	Files []ArtifactFile `json:"files"`
}

// ArtifactFile is one file of a directory artifact.
type ArtifactFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// ArtifactDirectoryType is the media type of an [ArtifactDirectory] answer.
const ArtifactDirectoryType = "application/vnd.sluice.artifact-directory+json"

// readArtifact streams the bytes of output artifact {name} of task ?task= of run {id} from the artifact
// store (Content-Type application/octet-stream, Content-Length the object's size, X-Artifact-Uri its URI).
// A directory artifact answers its file list ([ArtifactDirectory]) unless ?file= names one of its files.
// Errors: 400 without ?task= or with an unsafe ?file=; 404 for an unknown run, task, output or object
// (and for an artifact outside Sluice's store, which it cannot read).
func (a *App) readArtifact(w http.ResponseWriter, r *http.Request) {
	id, name := r.PathValue("id"), r.PathValue("name")
	// Authorised first: a run another namespace owns is not found, whatever the query says.
	if _, _, err := a.authorizeRun(r, id); err != nil {
		httpError(w, err)
		return
	}
	task := r.URL.Query().Get("task")
	if task == "" {
		httpError(w, &invalidError{what: "artifact read", problems: []string{"task: required (the task path of the artifact's producer)"}})
		return
	}
	file := r.URL.Query().Get("file")
	if file != "" {
		if err := artifacts.ValidateKey(file); err != nil || path.Clean(file) != file {
			httpError(w, &invalidError{what: "artifact read", problems: []string{fmt.Sprintf("file: %q is not a relative path inside the artifact", file)}})
			return
		}
	}
	st, err := engine.State(r.Context(), a.tc, id)
	if err != nil {
		httpError(w, err)
		return
	}
	var art *pipelinesv1.Artifact
	for _, t := range st.Tasks {
		if t.Path == task && t.Outputs != nil {
			if v, ok := t.Outputs.Artifacts[name]; ok {
				art = &v
			}
		}
	}
	if art == nil {
		platform.WriteError(w, http.StatusNotFound, fmt.Errorf("run %s: task %q has no output artifact %q", id, task, name))
		return
	}
	key, err := a.d.Artifacts.KeyOf(strings.TrimSuffix(art.URI, "/"))
	if err != nil {
		platform.WriteError(w, http.StatusNotFound, fmt.Errorf("artifact %s: not in Sluice's artifact store: %v", art.URI, err))
		return
	}
	if file == "" {
		rc, obj, err := a.d.Artifacts.Get(r.Context(), key)
		if err == nil {
			defer rc.Close()
			streamArtifact(w, obj, rc)
			return
		}
		if !errors.Is(err, artifacts.ErrNotFound) {
			httpError(w, err)
			return
		}
		objs, lerr := a.d.Artifacts.List(r.Context(), key)
		if lerr != nil {
			httpError(w, lerr)
			return
		}
		if len(objs) == 0 {
			platform.WriteError(w, http.StatusNotFound, fmt.Errorf("artifact %s: nothing stored (the task wrote no file)", art.URI))
			return
		}
		dir := ArtifactDirectory{URI: art.URI, Files: make([]ArtifactFile, 0, len(objs))}
		for _, o := range objs {
			dir.Files = append(dir.Files, ArtifactFile{Path: strings.TrimPrefix(o.Key, key+"/"), Size: o.Size})
		}
		w.Header().Set("Content-Type", ArtifactDirectoryType)
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(dir)
		return
	}
	rc, obj, err := a.d.Artifacts.Get(r.Context(), key+"/"+file)
	if err != nil {
		httpError(w, err)
		return
	}
	defer rc.Close()
	streamArtifact(w, obj, rc)
}

func streamArtifact(w http.ResponseWriter, obj artifacts.Object, rc io.Reader) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(obj.Size, 10))
	w.Header().Set("X-Artifact-Uri", obj.URI)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, rc)
}

// RunInputView is the answer of GET /apis/v1/runs/{id}/input: what the run was started with (KFP's
// pipeline_version_reference and runtime_config.parameters of a run).
type RunInputView struct {
	RunID             string         `json:"run_id"`
	RunName           string         `json:"run_name"`
	ExperimentID      string         `json:"experiment_id,omitempty"`
	Namespace         string         `json:"namespace,omitempty"`
	PipelineID        string         `json:"pipeline_id,omitempty"`
	PipelineVersionID string         `json:"pipeline_version_id,omitempty"`
	PipelineName      string         `json:"pipeline_name,omitempty"`
	Parameters        map[string]any `json:"parameters,omitempty"`
}

func (a *App) runInputView(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, _, err := a.authorizeRun(r, id); err != nil {
		httpError(w, err)
		return
	}
	in, err := a.runInput(r.Context(), id)
	if err != nil {
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, RunInputView{RunID: in.RunID, RunName: in.RunName, ExperimentID: in.ExperimentID, Namespace: in.Namespace,
		PipelineID: in.PipelineID, PipelineVersionID: in.VersionID, PipelineName: in.PipelineName, Parameters: in.Parameters})
}
