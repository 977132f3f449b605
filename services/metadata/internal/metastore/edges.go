package metastore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
)

// insertEvent records ev in tx unless the same (artifact, execution, type) is recorded.
func (s *Store) insertEvent(ctx context.Context, tx *sql.Tx, field string, ev mlmd.Event) error {
	code, err := mlmd.EventTypeCode(field+".type", ev.Type)
	if err != nil {
		return err
	}
	if err := mlmd.ValidatePath(field+".path", ev.Path); err != nil {
		return err
	}
	if ev.ArtifactID <= 0 {
		return mlmd.Invalid(field+".artifact_id", "must be set")
	}
	if ev.ExecutionID <= 0 {
		return mlmd.Invalid(field+".execution_id", "must be set")
	}
	if err := s.checkNodes(ctx, tx, field, node{ID: ev.ArtifactID}, artifactKind, node{ID: ev.ExecutionID}, executionKind); err != nil {
		return err
	}
	var path any
	if ev.Path != nil && len(ev.Path.Steps) > 0 {
		b, _ := json.Marshal(ev.Path)
		path = string(b)
	}
	t := ev.MillisecondsSinceEpoch
	if t == 0 {
		t = nowMillis()
	}
	_, err = tx.ExecContext(ctx, s.rebind(`INSERT INTO event (artifact_id, execution_id, type, time_ms, path) VALUES (?, ?, ?, ?, ?) ON CONFLICT (artifact_id, execution_id, type) DO NOTHING`),
		ev.ArtifactID, ev.ExecutionID, code, t, path)
	if err != nil {
		return fmt.Errorf("%s: %w", field, s.classify(err))
	}
	return nil
}

// PutEvents implements mlmd.Repo.
func (s *Store) PutEvents(ctx context.Context, events []mlmd.Event) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for i, ev := range events {
			if err := s.insertEvent(ctx, tx, fmt.Sprintf("events[%d]", i), ev); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) link(ctx context.Context, tx *sql.Tx, field, table, a, b string, x, y int64) error {
	if x <= 0 || y <= 0 {
		return mlmd.Invalid(field, "%s and %s must be set", a, b)
	}
	kx, ky := contextKind, contextKind
	switch table {
	case "association":
		ky = executionKind
	case "attribution":
		ky = artifactKind
	}
	if err := s.checkNodes(ctx, tx, field, node{ID: x}, kx, node{ID: y}, ky); err != nil {
		return err
	}
	return s.linkIDs(ctx, tx, field, table, a, b, x, y)
}

// checkNodes returns the ErrInvalidArgument a foreign key gave when node x (of kind kx) or y (of
// ky) does not exist: on PostgreSQL the edge tables have none (migration 00004), and an id an
// API caller sends must still name a node. Nodes are never deleted, so a node seen here
// still exists when the edge is written.
func (s *Store) checkNodes(ctx context.Context, tx *sql.Tx, field string, x node, kx kindInfo, y node, ky kindInfo) error {
	var nx, ny int
	err := tx.QueryRowContext(ctx, s.rebind(`SELECT (SELECT COUNT(*) FROM `+kx.table+` WHERE id = ?), (SELECT COUNT(*) FROM `+ky.table+` WHERE id = ?)`), x.ID, y.ID).Scan(&nx, &ny)
	switch {
	case err != nil:
		return fmt.Errorf("metastore: %s: %w", field, err)
	case nx == 0:
		return fmt.Errorf("%s: %w: references an unknown node: no %s with id %d", field, mlmd.ErrInvalidArgument, kx.table, x.ID)
	case ny == 0:
		return fmt.Errorf("%s: %w: references an unknown node: no %s with id %d", field, mlmd.ErrInvalidArgument, ky.table, y.ID)
	}
	return nil
}

// linkIDs writes an edge between nodes known to exist (ids written or returned in tx).
func (s *Store) linkIDs(ctx context.Context, tx *sql.Tx, field, table, a, b string, x, y int64) error {
	_, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO `+table+` (`+a+`, `+b+`) VALUES (?, ?) ON CONFLICT (`+a+`, `+b+`) DO NOTHING`), x, y)
	if err != nil {
		return fmt.Errorf("%s: %w", field, s.classify(err))
	}
	return nil
}

// PutAttributionsAndAssociations implements mlmd.Repo.
func (s *Store) PutAttributionsAndAssociations(ctx context.Context, attributions []mlmd.Attribution, associations []mlmd.Association) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for i, a := range attributions {
			if err := s.link(ctx, tx, fmt.Sprintf("attributions[%d]", i), "attribution", "context_id", "artifact_id", a.ContextID, a.ArtifactID); err != nil {
				return err
			}
		}
		for i, a := range associations {
			if err := s.link(ctx, tx, fmt.Sprintf("associations[%d]", i), "association", "context_id", "execution_id", a.ContextID, a.ExecutionID); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutParentContexts implements mlmd.Repo.
func (s *Store) PutParentContexts(ctx context.Context, links []mlmd.ParentContext) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for i, l := range links {
			field := fmt.Sprintf("parent_contexts[%d]", i)
			if l.ChildID == l.ParentID {
				return mlmd.Invalid(field, "a context cannot be its own parent")
			}
			// Reject a link that would close a cycle: child must not be an ancestor of parent.
			var n int
			err := tx.QueryRowContext(ctx, s.rebind(`WITH RECURSIVE anc(id) AS (SELECT CAST(? AS BIGINT) UNION SELECT pc.parent_id FROM parent_context pc JOIN anc ON pc.child_id = anc.id) SELECT COUNT(*) FROM anc WHERE id = ?`),
				l.ParentID, l.ChildID).Scan(&n)
			if err != nil {
				return fmt.Errorf("metastore: %s: %w", field, err)
			}
			if n > 0 {
				return mlmd.Invalid(field, "context %d is already an ancestor of %d", l.ChildID, l.ParentID)
			}
			if err := s.link(ctx, tx, field, "parent_context", "child_id", "parent_id", l.ChildID, l.ParentID); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) events(ctx context.Context, col string, ids []int64) ([]mlmd.Event, error) {
	type rec struct {
		id int64
		ev mlmd.Event
	}
	var recs []rec
	for _, c := range chunk(ids, 500) {
		rows, err := s.r.QueryContext(ctx, s.rebind(`SELECT id, artifact_id, execution_id, type, time_ms, path FROM event WHERE `+col+` IN (`+placeholders(len(c))+`) ORDER BY id`), int64Args(c)...)
		if err != nil {
			return nil, fmt.Errorf("metastore: events: %w", err)
		}
		for rows.Next() {
			var r rec
			var code int
			var path sql.NullString
			if err := rows.Scan(&r.id, &r.ev.ArtifactID, &r.ev.ExecutionID, &code, &r.ev.MillisecondsSinceEpoch, &path); err != nil {
				rows.Close()
				return nil, fmt.Errorf("metastore: scan event: %w", err)
			}
			r.ev.Type = metadatav1.EventTypes[code]
			if path.Valid {
				var p metadatav1.EventPath
				if err := json.Unmarshal([]byte(path.String), &p); err == nil {
					r.ev.Path = &p
				}
			}
			recs = append(recs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("metastore: events: %w", err)
		}
	}
	if len(ids) > 500 { // chunks are each ordered; restore global recorded order
		sortByID(recs, func(r rec) int64 { return r.id })
	}
	out := make([]mlmd.Event, len(recs))
	for i, r := range recs {
		out[i] = r.ev
	}
	return out, nil
}

// GetEventsByExecutionIDs implements mlmd.Repo.
func (s *Store) GetEventsByExecutionIDs(ctx context.Context, ids []int64) ([]mlmd.Event, error) {
	return s.events(ctx, "execution_id", ids)
}

// GetEventsByArtifactIDs implements mlmd.Repo.
func (s *Store) GetEventsByArtifactIDs(ctx context.Context, ids []int64) ([]mlmd.Event, error) {
	return s.events(ctx, "artifact_id", ids)
}

// GetParentContexts implements mlmd.Repo.
func (s *Store) GetParentContexts(ctx context.Context, childIDs []int64) ([]mlmd.ParentContext, error) {
	var out []mlmd.ParentContext
	for _, c := range chunk(childIDs, 500) {
		rows, err := s.r.QueryContext(ctx, s.rebind(`SELECT child_id, parent_id FROM parent_context WHERE child_id IN (`+placeholders(len(c))+`) ORDER BY child_id, parent_id`), int64Args(c)...)
		if err != nil {
			return nil, fmt.Errorf("metastore: parent contexts: %w", err)
		}
		for rows.Next() {
			var p mlmd.ParentContext
			if err := rows.Scan(&p.ChildID, &p.ParentID); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
