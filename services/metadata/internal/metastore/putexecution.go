package metastore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
)

func sortByID[T any](xs []T, id func(T) int64) {
	slices.SortFunc(xs, func(a, b T) int { return cmp.Compare(id(a), id(b)) })
}

// PutExecution implements mlmd.Repo: execution, artifacts, events, contexts, attributions and
// associations are written in one transaction.
func (s *Store) PutExecution(ctx context.Context, req mlmd.PutExecutionRequest) (mlmd.PutExecutionResult, error) {
	exec, err := executionNode("execution", req.Execution)
	if err != nil {
		return mlmd.PutExecutionResult{}, err
	}
	arts := make([]*node, len(req.ArtifactEventPairs))
	for i, p := range req.ArtifactEventPairs {
		f := fmt.Sprintf("artifact_event_pairs[%d]", i)
		if p.Artifact == nil && p.Event == nil {
			return mlmd.PutExecutionResult{}, mlmd.Invalid(f, "one of artifact and event must be set")
		}
		if p.Artifact != nil {
			n, err := artifactNode(f+".artifact", *p.Artifact)
			if err != nil {
				return mlmd.PutExecutionResult{}, err
			}
			arts[i] = &n
		} else if p.Event.ArtifactID == 0 {
			return mlmd.PutExecutionResult{}, mlmd.Invalid(f+".event.artifact_id", "must be set when artifact is absent")
		}
		if p.Event != nil {
			if _, err := mlmd.EventTypeCode(f+".event.type", p.Event.Type); err != nil {
				return mlmd.PutExecutionResult{}, err
			}
			if err := mlmd.ValidatePath(f+".event.path", p.Event.Path); err != nil {
				return mlmd.PutExecutionResult{}, err
			}
		}
	}
	ctxs := make([]node, len(req.Contexts))
	for i, c := range req.Contexts {
		n, err := contextNode(fmt.Sprintf("contexts[%d]", i), c)
		if err != nil {
			return mlmd.PutExecutionResult{}, err
		}
		ctxs[i] = n
	}

	res := mlmd.PutExecutionResult{ArtifactIDs: make([]int64, len(arts)), ContextIDs: make([]int64, len(ctxs))}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		types := s.newTypeCache(tx)
		id, err := s.putNode(ctx, tx, types, executionKind, "execution", exec, upsertExternalID)
		if err != nil {
			return err
		}
		res.ExecutionID = id
		for i, p := range req.ArtifactEventPairs {
			f := fmt.Sprintf("artifact_event_pairs[%d]", i)
			aid := int64(0)
			if arts[i] != nil {
				if aid, err = s.putNode(ctx, tx, types, artifactKind, f+".artifact", *arts[i], upsertExternalID); err != nil {
					return err
				}
			}
			if p.Event != nil {
				ev := *p.Event
				if aid != 0 {
					if ev.ArtifactID != 0 && ev.ArtifactID != aid {
						return mlmd.Invalid(f+".event.artifact_id", "is %d but the artifact is %d", ev.ArtifactID, aid)
					}
					ev.ArtifactID = aid
				}
				if ev.ExecutionID != 0 && ev.ExecutionID != id {
					return mlmd.Invalid(f+".event.execution_id", "is %d but the execution is %d", ev.ExecutionID, id)
				}
				ev.ExecutionID = id
				if err := s.insertEvent(ctx, tx, f+".event", ev); err != nil {
					return err
				}
				aid = ev.ArtifactID
			}
			res.ArtifactIDs[i] = aid
		}
		for i, c := range ctxs {
			f := fmt.Sprintf("contexts[%d]", i)
			cid, err := s.putNode(ctx, tx, types, contextKind, f, c, upsertName)
			if err != nil {
				return err
			}
			res.ContextIDs[i] = cid
			if err := s.link(ctx, tx, f, "association", "context_id", "execution_id", cid, id); err != nil {
				return err
			}
			for _, aid := range res.ArtifactIDs {
				if err := s.link(ctx, tx, f, "attribution", "context_id", "artifact_id", cid, aid); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return mlmd.PutExecutionResult{}, err
	}
	return res, nil
}
