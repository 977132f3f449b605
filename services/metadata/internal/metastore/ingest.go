package metastore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
)

// Ingest implements mlmd.Ingester: the source event (CloudEvent source and id) is claimed
// first, so a redelivered event stops there, and everything else is written in the same
// transaction.
func (s *Store) Ingest(ctx context.Context, req mlmd.IngestRequest) (mlmd.IngestResult, error) {
	in, err := prepareIngest(req)
	if err != nil {
		return mlmd.IngestResult{}, err
	}
	exec, arts, ctxs := in.exec, in.arts, in.ctxs

	var res mlmd.IngestResult
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if s.legacyIDs {
			var n int
			err := tx.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM ingested_event WHERE ce_source = '' AND ce_id = ?`), req.SourceID).Scan(&n)
			if err != nil {
				return fmt.Errorf("metastore: look up source event: %w", err)
			}
			if n > 0 {
				return nil // applied before ingested_event kept sources
			}
		}
		r, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO ingested_event (ce_source, ce_id, type, received_ms) VALUES (?, ?, ?, ?) ON CONFLICT (ce_source, ce_id) DO NOTHING`),
			req.Source, req.SourceID, req.SourceType, nowMillis())
		if err != nil {
			return fmt.Errorf("metastore: record source event: %w", s.classify(err))
		}
		if n, err := r.RowsAffected(); err != nil {
			return fmt.Errorf("metastore: record source event: %w", err)
		} else if n == 0 {
			return nil // already applied
		}
		res = mlmd.IngestResult{Applied: true, ArtifactIDs: make([]int64, len(arts)), ContextIDs: make([]int64, len(ctxs))}
		types := s.newTypeCache(tx)
		for i, c := range ctxs {
			f := fmt.Sprintf("contexts[%d]", i)
			if res.ContextIDs[i], err = s.putNode(ctx, tx, types, contextKind, f, c, upsertName); err != nil {
				return err
			}
		}
		for i, l := range req.ParentContexts {
			if err := s.linkIDs(ctx, tx, fmt.Sprintf("parent_contexts[%d]", i), "parent_context", "child_id", "parent_id", res.ContextIDs[l.Child], res.ContextIDs[l.Parent]); err != nil {
				return err
			}
		}
		if exec != nil {
			if res.ExecutionID, err = s.putNode(ctx, tx, types, executionKind, "execution", *exec, ingestMerge); err != nil {
				return err
			}
			for i, cid := range res.ContextIDs {
				if err := s.linkIDs(ctx, tx, fmt.Sprintf("contexts[%d]", i), "association", "context_id", "execution_id", cid, res.ExecutionID); err != nil {
					return err
				}
			}
		}
		for i, a := range arts {
			f := fmt.Sprintf("artifacts[%d]", i)
			aid, err := s.putNode(ctx, tx, types, artifactKind, f+".artifact", a, ingestMerge)
			if err != nil {
				return err
			}
			res.ArtifactIDs[i] = aid
			if ev := req.Artifacts[i].Event; ev != nil {
				e := *ev
				e.ArtifactID, e.ExecutionID = aid, res.ExecutionID
				if err := s.insertEvent(ctx, tx, f+".event", e); err != nil {
					return err
				}
			}
			for j, cid := range res.ContextIDs {
				if err := s.linkIDs(ctx, tx, fmt.Sprintf("contexts[%d]", j), "attribution", "context_id", "artifact_id", cid, aid); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return mlmd.IngestResult{}, err
	}
	return res, nil
}

// IngestedCount implements mlmd.Ingester.
func (s *Store) IngestedCount(ctx context.Context) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM ingested_event`).Scan(&n); err != nil {
		return 0, fmt.Errorf("metastore: count ingested events: %w", err)
	}
	return n, nil
}

// ingestNodes is an IngestRequest checked and converted to rows (before any type lookup).
type ingestNodes struct {
	exec *node
	arts []node
	ctxs []node
}

// prepareIngest checks the parts of req that need no database and converts its nodes.
func prepareIngest(req mlmd.IngestRequest) (ingestNodes, error) {
	if req.SourceID == "" {
		return ingestNodes{}, mlmd.Invalid("source_id", "must be set")
	}
	if req.Source == "" {
		return ingestNodes{}, mlmd.Invalid("source", "must be set")
	}
	var exec *node
	if req.Execution != nil {
		n, err := executionNode("execution", *req.Execution)
		if err != nil {
			return ingestNodes{}, err
		}
		exec = &n
	}
	arts := make([]node, len(req.Artifacts))
	for i, a := range req.Artifacts {
		f := fmt.Sprintf("artifacts[%d]", i)
		n, err := artifactNode(f+".artifact", a.Artifact)
		if err != nil {
			return ingestNodes{}, err
		}
		arts[i] = n
		if a.Event != nil {
			if exec == nil {
				return ingestNodes{}, mlmd.Invalid(f+".event", "needs an execution")
			}
			if _, err := mlmd.EventTypeCode(f+".event.type", a.Event.Type); err != nil {
				return ingestNodes{}, err
			}
			if err := mlmd.ValidatePath(f+".event.path", a.Event.Path); err != nil {
				return ingestNodes{}, err
			}
		}
	}
	ctxs := make([]node, len(req.Contexts))
	for i, c := range req.Contexts {
		n, err := contextNode(fmt.Sprintf("contexts[%d]", i), c)
		if err != nil {
			return ingestNodes{}, err
		}
		ctxs[i] = n
	}
	for i, l := range req.ParentContexts {
		if l.Child < 0 || l.Child >= len(ctxs) || l.Parent < 0 || l.Parent >= len(ctxs) || l.Child == l.Parent {
			return ingestNodes{}, mlmd.Invalid(fmt.Sprintf("parent_contexts[%d]", i), "child %d and parent %d must be distinct indices into contexts", l.Child, l.Parent)
		}
	}
	return ingestNodes{exec: exec, arts: arts, ctxs: ctxs}, nil
}
