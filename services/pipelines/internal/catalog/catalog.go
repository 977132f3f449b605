// Package catalog stores uploaded pipelines, their versions and experiments as JSON documents in the
// artifact store under _sluice/pipelines/, so every replica of the pipelines service sees the same
// catalog without a database of its own. Runs are not stored here: a run is its Temporal workflow.
package catalog

import (
	"bytes"
	"context"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sluice-ml/sluice/libs/artifacts"
)

// ErrNotFound is returned for an unknown pipeline, version or experiment.
var ErrNotFound = errors.New("catalog: not found")

// ErrExists is returned when a name is already taken.
var ErrExists = errors.New("catalog: name already exists")

const root = "_sluice/pipelines"

// DefaultNamespace holds what was stored before resources had namespaces, and what names none.
const DefaultNamespace = "default"

// Pipeline is an uploaded pipeline (KFP API: Pipeline). Namespace "" is a shared pipeline, readable from
// every namespace (KFP v2: "empty namespace means the pipeline is shared").
type Pipeline struct {
	ID          string    `json:"pipeline_id"`
	Name        string    `json:"display_name"`
	Description string    `json:"description,omitempty"`
	Namespace   string    `json:"namespace"`
	CreatedAt   time.Time `json:"created_at"`
}

// UnmarshalJSON reads a stored pipeline; one stored before pipelines had a namespace (no "namespace"
// key) belongs to DefaultNamespace, not to everyone.
func (p *Pipeline) UnmarshalJSON(b []byte) error {
	type plain Pipeline
	var v struct {
		plain
		Namespace *string `json:"namespace"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = Pipeline(v.plain)
	p.Namespace = DefaultNamespace
	if v.Namespace != nil {
		p.Namespace = *v.Namespace
	}
	return nil
}

// Version is one uploaded version of a pipeline (KFP API: PipelineVersion); Spec is its source text.
type Version struct {
	ID         string    `json:"pipeline_version_id"`
	PipelineID string    `json:"pipeline_id"`
	Name       string    `json:"display_name"`
	Format     string    `json:"format"`
	Spec       string    `json:"spec"`
	CreatedAt  time.Time `json:"created_at"`
}

// Experiment groups runs (KFP API: Experiment); its runs belong to its namespace (KFP v2 multi-user).
// One stored before experiments had a namespace belongs to DefaultNamespace.
type Experiment struct {
	ID          string    `json:"experiment_id"`
	Name        string    `json:"display_name"`
	Description string    `json:"description,omitempty"`
	Namespace   string    `json:"namespace"`
	CreatedAt   time.Time `json:"created_at"`
}

// DefaultExperimentID is the experiment of runs of DefaultNamespace that name none.
const DefaultExperimentID = "default"

// DefaultExperiment returns the experiment of runs of namespace ns that name none ("Default", as KFP
// creates one per namespace): id "default" in DefaultNamespace, "default-<ns>" elsewhere.
func DefaultExperiment(ns string) Experiment {
	if ns == "" || ns == DefaultNamespace {
		return Experiment{ID: DefaultExperimentID, Name: "Default", Namespace: DefaultNamespace}
	}
	return Experiment{ID: DefaultExperimentID + "-" + ns, Name: "Default", Namespace: ns}
}

// Catalog reads and writes the documents.
type Catalog struct {
	store *artifacts.Store
	aead  cipher.AEAD // seals stored secrets and config maps (WithSealer); nil stores them as plain JSON
}

// New returns a catalog over store.
func New(store *artifacts.Store) *Catalog { return &Catalog{store: store} }

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func (c *Catalog) put(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = c.store.Put(ctx, key, bytes.NewReader(b), int64(len(b)))
	return err
}

func (c *Catalog) get(ctx context.Context, key string, v any) error {
	rc, _, err := c.store.Get(ctx, key)
	if errors.Is(err, artifacts.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func (c *Catalog) list(ctx context.Context, prefix string, each func(key string) error) error {
	objs, err := c.store.List(ctx, prefix)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := each(o.Key); err != nil {
			return err
		}
	}
	return nil
}

func pipelineKey(id string) string { return path.Join(root, "pipelines", id, "pipeline.json") }
func versionKey(pid, vid string) string {
	return path.Join(root, "pipelines", pid, "versions", vid+".json")
}
func experimentKey(id string) string { return path.Join(root, "experiments", id+".json") }

// CreatePipeline stores a new pipeline with its first version (spec already validated by the caller) in
// namespace ns ("" = shared); names are unique per namespace.
func (c *Catalog) CreatePipeline(ctx context.Context, ns, name, description, format, spec string) (Pipeline, Version, error) {
	ps, err := c.Pipelines(ctx)
	if err != nil {
		return Pipeline{}, Version{}, err
	}
	for _, p := range ps {
		if p.Name == name && p.Namespace == ns {
			return Pipeline{}, Version{}, fmt.Errorf("%w: pipeline %q", ErrExists, name)
		}
	}
	p := Pipeline{ID: newID(), Name: name, Description: description, Namespace: ns, CreatedAt: time.Now().UTC()}
	if err := c.put(ctx, pipelineKey(p.ID), p); err != nil {
		return Pipeline{}, Version{}, err
	}
	v, err := c.CreateVersion(ctx, p.ID, name, format, spec)
	return p, v, err
}

// CreateVersion adds a version to a pipeline.
func (c *Catalog) CreateVersion(ctx context.Context, pipelineID, name, format, spec string) (Version, error) {
	if _, err := c.Pipeline(ctx, pipelineID); err != nil {
		return Version{}, err
	}
	v := Version{ID: newID(), PipelineID: pipelineID, Name: name, Format: format, Spec: spec, CreatedAt: time.Now().UTC()}
	return v, c.put(ctx, versionKey(pipelineID, v.ID), v)
}

// Pipeline returns a pipeline by id.
func (c *Catalog) Pipeline(ctx context.Context, id string) (Pipeline, error) {
	var p Pipeline
	if strings.ContainsAny(id, "/.") || id == "" {
		return p, ErrNotFound
	}
	return p, c.get(ctx, pipelineKey(id), &p)
}

// PipelineByName returns a pipeline by display name as namespace ns sees it: its own pipeline of that
// name, else a shared one.
func (c *Catalog) PipelineByName(ctx context.Context, ns, name string) (Pipeline, error) {
	ps, err := c.Pipelines(ctx)
	if err != nil {
		return Pipeline{}, err
	}
	var shared *Pipeline
	for i, p := range ps {
		switch {
		case p.Name != name:
		case p.Namespace == ns:
			return p, nil
		case p.Namespace == "" && shared == nil:
			shared = &ps[i]
		}
	}
	if shared != nil {
		return *shared, nil
	}
	return Pipeline{}, ErrNotFound
}

// Pipelines lists pipelines, newest first.
func (c *Catalog) Pipelines(ctx context.Context) ([]Pipeline, error) {
	var out []Pipeline
	err := c.list(ctx, path.Join(root, "pipelines"), func(key string) error {
		if !strings.HasSuffix(key, "/pipeline.json") {
			return nil
		}
		var p Pipeline
		if err := c.get(ctx, key, &p); err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out, err
}

// Versions lists a pipeline's versions, newest first.
func (c *Catalog) Versions(ctx context.Context, pipelineID string) ([]Version, error) {
	if _, err := c.Pipeline(ctx, pipelineID); err != nil {
		return nil, err
	}
	var out []Version
	err := c.list(ctx, path.Join(root, "pipelines", pipelineID, "versions"), func(key string) error {
		var v Version
		if err := c.get(ctx, key, &v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out, err
}

// Version returns one version; an empty versionID means the latest.
func (c *Catalog) Version(ctx context.Context, pipelineID, versionID string) (Version, error) {
	if versionID == "" {
		vs, err := c.Versions(ctx, pipelineID)
		if err != nil {
			return Version{}, err
		}
		if len(vs) == 0 {
			return Version{}, ErrNotFound
		}
		return vs[0], nil
	}
	var v Version
	if strings.ContainsAny(versionID, "/.") {
		return v, ErrNotFound
	}
	return v, c.get(ctx, versionKey(pipelineID, versionID), &v)
}

// CreateExperiment stores a new experiment in namespace ns; names are unique per namespace.
func (c *Catalog) CreateExperiment(ctx context.Context, ns, name, description string) (Experiment, error) {
	es, err := c.Experiments(ctx, ns)
	if err != nil {
		return Experiment{}, err
	}
	for _, e := range es {
		if e.Name == name {
			return Experiment{}, fmt.Errorf("%w: experiment %q", ErrExists, name)
		}
	}
	e := Experiment{ID: newID(), Name: name, Description: description, Namespace: ns, CreatedAt: time.Now().UTC()}
	return e, c.put(ctx, experimentKey(e.ID), e)
}

// Experiment returns an experiment by id (the default experiment of every namespace always exists).
func (c *Catalog) Experiment(ctx context.Context, id string) (Experiment, error) {
	if id == DefaultExperimentID {
		return DefaultExperiment(DefaultNamespace), nil
	}
	if ns, ok := strings.CutPrefix(id, DefaultExperimentID+"-"); ok && dns1123.MatchString(ns) && len(ns) <= 63 {
		return DefaultExperiment(ns), nil
	}
	var e Experiment
	if strings.ContainsAny(id, "/.") || id == "" {
		return e, ErrNotFound
	}
	if err := c.get(ctx, experimentKey(id), &e); err != nil {
		return e, err
	}
	if e.Namespace == "" {
		e.Namespace = DefaultNamespace
	}
	return e, nil
}

var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Experiments lists the experiments of namespace ns, its default one first; ns "" lists every
// namespace's, with the default experiment of DefaultNamespace only.
func (c *Catalog) Experiments(ctx context.Context, ns string) ([]Experiment, error) {
	out := []Experiment{DefaultExperiment(ns)}
	err := c.list(ctx, path.Join(root, "experiments"), func(key string) error {
		var e Experiment
		if err := c.get(ctx, key, &e); err != nil {
			return err
		}
		if e.Namespace == "" {
			e.Namespace = DefaultNamespace
		}
		if ns == "" || e.Namespace == ns {
			out = append(out, e)
		}
		return nil
	})
	return out, err
}
