// Package app is the composition root of the notebooks service: Jupyter servers on demand (one Temporal
// lifecycle workflow per notebook), Kubeflow's idle culling, an authenticating reverse proxy at
// /notebook/<namespace>/<name>/, REST under /apis/notebooks/v1 and a durable consumer of
// io.sluice.notebook.requested.v1. `sluice dev` and cmd/notebooks both host it through [Build].
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	sdkworkflow "go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/internal/access"
	"github.com/sluice-ml/sluice/services/notebooks/internal/boards"
	"github.com/sluice-ml/sluice/services/notebooks/internal/cluster"
	"github.com/sluice-ml/sluice/services/notebooks/internal/lifecycle"
	"github.com/sluice-ml/sluice/services/notebooks/internal/nbspec"
	"github.com/sluice-ml/sluice/services/notebooks/internal/nbstore"
	"github.com/sluice-ml/sluice/services/notebooks/internal/spawner"
)

// Name is the service name; local state lives under <data-dir>/notebooks.
const Name = "notebooks"

// ConsumerDurable is the durable consumer of notebook requests.
const ConsumerDurable = "notebooks-requests"

// Service is the notebooks service.
type Service struct {
	cfg     Config
	d       *platform.Deps
	log     *slog.Logger
	dir     string
	spawner *spawner.Spawner
	// cluster runs the servers as StatefulSets under SLUICE_RUNTIME=kubernetes (nil: the local spawner).
	cluster  *cluster.Servers
	store    *nbstore.Store
	tokens   access.Tokens
	devToken string
	// Tensorboard resources (tensorboard.go).
	boardStore *boards.Store
	boardData  *boards.Data

	mu      sync.Mutex
	started bool
	worker  worker.Worker
	sub     *events.Subscription
}

// Build is the platform.Builder of the notebooks service.
func Build(ctx context.Context, d *platform.Deps) (platform.Service, error) {
	return New(ctx, d)
}

// New builds the service (Build returns it as a platform.Service).
func New(ctx context.Context, d *platform.Deps) (*Service, error) {
	getenv := d.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cfg, err := ConfigFromEnv(getenv)
	if err != nil {
		return nil, fmt.Errorf("notebooks: %w", err)
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("service", Name)
	dir := filepath.Join(d.DataDir, Name)
	store, err := nbstore.New(filepath.Join(dir, "records"))
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, d: d, log: log, dir: dir, store: store, tokens: cfg.Tokens}
	switch d.RuntimeKind {
	case "", runtime.NameLocal:
	case runtime.NameKubernetes:
		if s.cluster, err = newCluster(cfg, getenv, log); err != nil {
			return nil, fmt.Errorf("notebooks: %w", err)
		}
		// Servers are pods; the warm pool (pre-imported local Python processes) has no meaning there.
		if cfg.WarmPool > 0 {
			log.InfoContext(ctx, "notebook warm pool off: SLUICE_RUNTIME=kubernetes runs servers as StatefulSets", "warm_pool", cfg.WarmPool)
		}
		cfg.WarmPool = 0
	default:
		log.WarnContext(ctx, "notebook servers run with the local runtime; SLUICE_RUNTIME applies to other services", "runtime", d.RuntimeKind)
	}
	rt := runtime.NewLocal(runtime.LocalConfig{GracePeriod: 5 * time.Second})
	if s.boardStore, err = boards.NewStore(filepath.Join(dir, "tensorboards")); err != nil {
		return nil, err
	}
	s.boardData = &boards.Data{VolumesDir: cfg.VolumesDir}
	if s.boardData.VolumesDir == "" {
		s.boardData.VolumesDir = filepath.Join(d.DataDir, "volumes")
	}
	if d.Artifacts != nil {
		s.boardData.S3 = d.Artifacts.Client()
	}
	s.spawner = spawner.New(spawner.Config{
		Dir: filepath.Join(dir, "servers"), Jupyter: cfg.Jupyter, PATH: cfg.PATH, ReadyTimeout: cfg.ReadyTimeout,
		WarmPool: cfg.WarmPool,
	}, rt, log)
	if !cfg.TokensConfigured {
		// 0711 before the token file is made (auth.FileToken would create the directory 0700): as root, the
		// namespace users running notebook servers must traverse it to reach servers/; the file stays 0600.
		if err := os.MkdirAll(filepath.Dir(DevTokenPath(d.DataDir)), 0o711); err != nil {
			return nil, fmt.Errorf("notebooks: dev token: %w", err)
		}
		tok, err := auth.FileToken(DevTokenPath(d.DataDir))
		if err != nil {
			return nil, fmt.Errorf("notebooks: dev token: %w", err)
		}
		s.devToken, s.tokens = tok, access.Single(tok)
		log.WarnContext(ctx, "SLUICE_NOTEBOOKS_TOKENS not set: using a generated token for every namespace (fine for sluice dev only)",
			"token_file", DevTokenPath(d.DataDir))
	}
	return s, nil
}

// DevTokenPath is where the generated token is kept when SLUICE_NOTEBOOKS_TOKENS is empty.
func DevTokenPath(dataDir string) string { return filepath.Join(dataDir, Name, "dev-token") }

// DevToken returns the generated token ("" when tokens are configured).
func (s *Service) DevToken() string { return s.devToken }

// WarmReady is the number of warm notebook servers waiting to be claimed (SLUICE_NOTEBOOKS_WARM_POOL).
func (s *Service) WarmReady() int { return s.spawner.WarmReady() }

// Name returns "notebooks".
func (s *Service) Name() string { return Name }

// Start ends orphaned servers of an earlier process, then starts the Temporal worker and the request consumer.
func (s *Service) Start(ctx context.Context) error {
	s.spawner.ReapOrphans()
	w := workflow.NewWorker(s.d.Temporal, notebooksv1.TaskQueue)
	w.RegisterWorkflowWithOptions(lifecycle.Lifecycle, sdkworkflow.RegisterOptions{Name: notebooksv1.WorkflowType})
	acts := &lifecycle.Activities{Spawner: s.spawner, Store: s.store, Bus: s.d.Bus}
	if s.cluster != nil {
		acts.Servers = s.cluster
	}
	w.RegisterActivity(acts)
	w.RegisterWorkflowWithOptions(boards.Lifecycle, sdkworkflow.RegisterOptions{Name: notebooksv1.TensorboardWorkflowType})
	w.RegisterActivity(&boards.Activities{Store: s.boardStore, Data: s.boardData, Bus: s.d.Bus})
	if err := w.Start(); err != nil {
		return fmt.Errorf("notebooks: start worker: %w", err)
	}
	s.mu.Lock()
	s.worker = w
	s.mu.Unlock()
	if s.d.Bus != nil {
		sub, err := s.d.Bus.Consume(ctx, events.ConsumerConfig{
			Stream: events.StreamNotebook, Durable: ConsumerDurable,
			FilterSubjects: []string{events.SubjectFor(events.NotebookRequestedV1)}, Concurrency: 4,
		}, s.handleRequest)
		if err != nil {
			return fmt.Errorf("notebooks: %w", err)
		}
		s.mu.Lock()
		s.sub = sub
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	return nil
}

// Ready is nil once Start has run.
func (s *Service) Ready(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return errors.New("not started")
	}
	return nil
}

// Close stops the consumer and the worker, then ends the servers this process runs (their workflows start
// them again on the next worker).
func (s *Service) Close() error {
	s.mu.Lock()
	sub, w := s.sub, s.worker
	s.sub, s.worker, s.started = nil, nil, false
	s.mu.Unlock()
	s.spawner.BeginClose()
	if sub != nil {
		sub.Stop()
	}
	if w != nil {
		w.Stop()
	}
	s.spawner.Close()
	return nil
}

// Errors of the create path.
var (
	ErrAlreadyExists = errors.New("notebooks: notebook already exists")
	ErrNotFound      = errors.New("notebooks: notebook not found")
)

// Create starts the lifecycle workflow of a validated notebook. requestID identifies the request (CE id);
// a second Create of a running notebook fails with ErrAlreadyExists unless it carries the same requestID
// (then it is a duplicate delivery and succeeds).
func (s *Service) Create(ctx context.Context, nb notebooksv1.Notebook, requestID string, requestedAt time.Time) error {
	id := notebooksv1.WorkflowID(nb.Metadata.Namespace, nb.Metadata.Name)
	in := notebooksv1.LifecycleInput{Notebook: nb, Culling: s.cfg.Culling, Crash: s.cfg.Crash, RequestID: requestID, RequestedAt: requestedAt}
	_, err := s.d.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                notebooksv1.TaskQueue,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy:                 enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		Memo:                                     map[string]any{"requestId": requestID},
		// What the Temporal Web UI shows and filters by (libs/workflow/visibility.go).
		StaticSummary: "Notebook " + nb.Metadata.Namespace + "/" + nb.Metadata.Name,
		StaticDetails: workflow.Details("Notebook "+nb.Metadata.Namespace+"/"+nb.Metadata.Name, notebookDetails(nb),
			[2]string{"Notebook (Sluice API)", "/apis/notebooks/v1/namespaces/" + url.PathEscape(nb.Metadata.Namespace) + "/notebooks/" + url.PathEscape(nb.Metadata.Name)},
			[2]string{"Notebook server", "/notebook/" + url.PathEscape(nb.Metadata.Namespace) + "/" + url.PathEscape(nb.Metadata.Name) + "/"}),
		TypedSearchAttributes: workflow.Attributes("Notebook", nb.Metadata.Namespace, workflow.Keyword(workflow.SAJobName, nb.Metadata.Name), workflow.Keyword(workflow.SAOwner, workflow.Owner(ctx))),
	}, notebooksv1.WorkflowType, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		desc, derr := s.d.Temporal.DescribeWorkflowExecution(ctx, id, "")
		if derr == nil {
			var rid string
			if p, ok := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()["requestId"]; ok {
				_ = converter.GetDefaultDataConverter().FromPayload(p, &rid)
			}
			if rid == requestID {
				return nil
			}
		}
		return fmt.Errorf("%w: %s/%s", ErrAlreadyExists, nb.Metadata.Namespace, nb.Metadata.Name)
	}
	if err != nil {
		return fmt.Errorf("notebooks: start lifecycle %s: %w", id, err)
	}
	return nil
}

// Get returns the live notebook from its workflow, falling back to the stored record when the workflow
// cannot answer; ErrNotFound when it does not exist (or was deleted).
func (s *Service) Get(ctx context.Context, ns, name string) (notebooksv1.Notebook, error) {
	resp, err := s.d.Temporal.QueryWorkflowWithOptions(ctx, &client.QueryWorkflowWithOptionsRequest{
		WorkflowID: notebooksv1.WorkflowID(ns, name), QueryType: notebooksv1.QueryNotebook,
		QueryRejectCondition: enums.QUERY_REJECT_CONDITION_NOT_OPEN,
	})
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return notebooksv1.Notebook{}, ErrNotFound
	case err == nil && resp.QueryRejected != nil:
		return notebooksv1.Notebook{}, ErrNotFound
	case err == nil:
		var nb notebooksv1.Notebook
		if err := resp.QueryResult.Get(&nb); err != nil {
			return nb, err
		}
		return nb, nil
	}
	s.log.WarnContext(ctx, "notebook query failed; answering from the record", "namespace", ns, "notebook", name, "err", err)
	nb, rerr := s.store.Get(ns, name)
	if errors.Is(rerr, nbstore.ErrNotFound) {
		return nb, ErrNotFound
	}
	return nb, rerr
}

// List returns the namespace's notebooks from their records.
func (s *Service) List(_ context.Context, ns string) ([]notebooksv1.Notebook, error) {
	return s.store.List(ns)
}

// Control sends stop, start or delete to the notebook's workflow.
func (s *Service) Control(ctx context.Context, ns, name string, c notebooksv1.Control) error {
	err := s.d.Temporal.SignalWorkflow(ctx, notebooksv1.WorkflowID(ns, name), "", notebooksv1.SignalControl, c)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return ErrNotFound
	}
	return err
}

// handleRequest is the consumer of io.sluice.notebook.requested.v1: an invalid document is rejected
// (NotebookRejectedV1) and dead-lettered; a duplicate delivery (same CE id) is acknowledged.
func (s *Service) handleRequest(ctx context.Context, ev events.Event) error {
	ctx = events.WithPublisher(ctx, ev) // the notebook's owner (SluiceOwner) is the publisher
	nb, err := parseDocument(ev.Data(), s.cfg.DefaultNamespace)
	if ns := events.Namespace(ev); err == nil && nb.Metadata.Namespace != ns {
		// Created in the namespace the gateway authorised the publisher in and no other: a document
		// naming none lands in SLUICE_NOTEBOOKS_DEFAULT_NAMESPACE, which must then be the one authorised.
		err = &nbspec.InvalidError{Fields: []nbspec.FieldError{{Path: "metadata.namespace", Message: fmt.Sprintf(
			"the notebook would be created in %q, not in the request's namespace %q (the document's metadata.namespace, else the event's namespace extension, else %q)",
			nb.Metadata.Namespace, ns, events.DefaultNamespace)}}}
	}
	if err != nil {
		if perr := s.reject(ctx, ev.ID(), "", "", "Invalid", err.Error()); perr != nil {
			return perr
		}
		return events.Permanent(err)
	}
	err = s.Create(ctx, nb, ev.ID(), time.Now())
	if errors.Is(err, ErrAlreadyExists) {
		return s.reject(ctx, ev.ID(), nb.Metadata.Namespace, nb.Metadata.Name, "AlreadyExists", err.Error())
	}
	return err
}

func (s *Service) reject(ctx context.Context, requestID, ns, name, reason, msg string) error {
	ev, err := events.New(lifecycle.Source, events.NotebookRejectedV1, "requests/"+requestID,
		notebooksv1.Rejection{RequestID: requestID, Namespace: ns, Name: name, Reason: reason, Message: msg})
	if err != nil {
		return err
	}
	ev.SetID(uuid.NewSHA1(uuid.NameSpaceURL, []byte("sluice-notebook-rejected/"+requestID)).String())
	return s.d.Bus.Publish(ctx, ev)
}
