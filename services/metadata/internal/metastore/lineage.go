package metastore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
)

// eventCodes returns the stored codes of the event types for which pred holds, as a SQL list.
func eventCodes(pred func(metadatav1.EventType) bool) string {
	var codes []string
	for i, t := range metadatav1.EventTypes {
		if i > 0 && pred(t) {
			codes = append(codes, strconv.Itoa(i))
		}
	}
	return strings.Join(codes, ",")
}

var (
	inputCodes  = eventCodes(metadatav1.EventType.IsInput)
	outputCodes = eventCodes(metadatav1.EventType.IsOutput)
	allCodes    = eventCodes(func(metadatav1.EventType) bool { return true })
)

// lineageSQL builds the single recursive query of a lineage request. Walk rows are
// (kind, id, depth) with kind 0 = artifact, 1 = execution. From an artifact the walk follows
// events of the types in fromArtifact to their executions; from an execution, events of the
// types in fromExecution to their artifacts. The result has one row per reached node
// (row_kind 0: kind, id, depth) followed by one row per event joining two reached nodes whose
// type the walk follows (row_kind 1: event id, artifact id, execution id, type, time, path).
// CROSS JOIN pins the join order on SQLite so events are looked up from the (small) reached
// set instead of scanned.
func lineageSQL(q mlmd.LineageQuery) (string, []any) {
	var fromArtifact, fromExecution string
	switch q.Direction {
	case mlmd.Upstream: // artifact → its producers → their inputs
		fromArtifact, fromExecution = outputCodes, inputCodes
	case mlmd.Downstream: // artifact → its consumers → their outputs
		fromArtifact, fromExecution = inputCodes, outputCodes
	default:
		fromArtifact, fromExecution = allCodes, allCodes
	}
	var seeds []string
	var args []any
	var artCond []string
	if len(q.ArtifactIDs) > 0 {
		artCond = append(artCond, "id IN ("+placeholders(len(q.ArtifactIDs))+")")
		args = append(args, int64Args(q.ArtifactIDs)...)
	}
	if len(q.ArtifactURIs) > 0 {
		artCond = append(artCond, "uri IN ("+placeholders(len(q.ArtifactURIs))+")")
		for _, u := range q.ArtifactURIs {
			args = append(args, u)
		}
	}
	if len(artCond) > 0 {
		seeds = append(seeds, "SELECT 0, id, 0 FROM artifact WHERE "+strings.Join(artCond, " OR "))
	}
	if len(q.ExecutionIDs) > 0 {
		seeds = append(seeds, "SELECT 1, id, 0 FROM execution WHERE id IN ("+placeholders(len(q.ExecutionIDs))+")")
		args = append(args, int64Args(q.ExecutionIDs)...)
	}
	args = append(args, q.MaxHops)
	query := `WITH RECURSIVE walk(kind, id, depth) AS (
  ` + strings.Join(seeds, "\n  UNION\n  ") + `
  UNION
  SELECT 1 - w.kind,
         CASE WHEN w.kind = 0 THEN ev.execution_id ELSE ev.artifact_id END,
         w.depth + 1
  FROM walk w JOIN event ev
    ON (w.kind = 0 AND ev.artifact_id = w.id AND ev.type IN (` + fromArtifact + `))
    OR (w.kind = 1 AND ev.execution_id = w.id AND ev.type IN (` + fromExecution + `))
  WHERE w.depth < ?
),
reached AS (SELECT kind, id, MIN(depth) AS depth FROM walk GROUP BY kind, id)
SELECT 0 AS row_kind, kind AS a, id AS b, 0 AS c, depth AS d, 0 AS e, CAST(NULL AS TEXT) AS f FROM reached
UNION ALL
SELECT 1, ev.id, ev.artifact_id, ev.execution_id, ev.type, ev.time_ms, ev.path
FROM reached ra CROSS JOIN event ev
WHERE ra.kind = 0 AND ev.artifact_id = ra.id
  AND (ev.type IN (` + fromArtifact + `) OR ev.type IN (` + fromExecution + `))
  AND EXISTS (SELECT 1 FROM reached rx WHERE rx.kind = 1 AND rx.id = ev.execution_id)`
	return query, args
}

// GetLineageSubgraph implements mlmd.Repo. The walk and the edge set come from one recursive
// query; node details are then fetched by id in batches (a fixed number of queries however
// many hops the walk took).
func (s *Store) GetLineageSubgraph(ctx context.Context, q mlmd.LineageQuery) (mlmd.LineageGraph, error) {
	starts := len(q.ArtifactIDs) + len(q.ArtifactURIs) + len(q.ExecutionIDs)
	switch {
	case starts == 0:
		return mlmd.LineageGraph{}, mlmd.Invalid("artifact_id", "at least one starting artifact_id, artifact_uri or execution_id is required")
	case starts > mlmd.MaxStartingNodes:
		return mlmd.LineageGraph{}, mlmd.Invalid("artifact_id", "at most %d starting nodes, got %d", mlmd.MaxStartingNodes, starts)
	case q.MaxHops < 0 || q.MaxHops > mlmd.MaxLineageHops:
		return mlmd.LineageGraph{}, mlmd.Invalid("hops", "must be between 0 and %d, got %d", mlmd.MaxLineageHops, q.MaxHops)
	}
	if q.Direction == 0 {
		q.Direction = mlmd.Bidirectional
	}
	query, args := lineageSQL(q)
	rows, err := s.r.QueryContext(ctx, s.rebind(query), args...)
	if err != nil {
		return mlmd.LineageGraph{}, fmt.Errorf("metastore: lineage: %w", err)
	}
	var artIDs, execIDs []int64
	g := mlmd.LineageGraph{Types: []mlmd.Type{}, Artifacts: []mlmd.Artifact{}, Executions: []mlmd.Execution{}, Contexts: []mlmd.Context{},
		Events: []mlmd.Event{}, Attributions: []mlmd.Attribution{}, Associations: []mlmd.Association{}, ParentContexts: []mlmd.ParentContext{}}
	type evRow struct {
		id int64
		ev mlmd.Event
	}
	var evs []evRow
	for rows.Next() {
		var rk int
		var a, b, c, d, e int64
		var f sql.NullString
		if err := rows.Scan(&rk, &a, &b, &c, &d, &e, &f); err != nil {
			rows.Close()
			return mlmd.LineageGraph{}, fmt.Errorf("metastore: lineage: %w", err)
		}
		if rk == 0 {
			if a == 0 {
				artIDs = append(artIDs, b)
			} else {
				execIDs = append(execIDs, b)
			}
			continue
		}
		ev := mlmd.Event{ArtifactID: b, ExecutionID: c, Type: metadatav1.EventTypes[d], MillisecondsSinceEpoch: e}
		if f.Valid {
			var p metadatav1.EventPath
			if json.Unmarshal([]byte(f.String), &p) == nil {
				ev.Path = &p
			}
		}
		evs = append(evs, evRow{a, ev})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return mlmd.LineageGraph{}, fmt.Errorf("metastore: lineage: %w", err)
	}
	if len(artIDs)+len(execIDs) == 0 {
		return mlmd.LineageGraph{}, fmt.Errorf("%w: no starting node exists", mlmd.ErrNotFound)
	}
	sortByID(evs, func(r evRow) int64 { return r.id })
	for _, r := range evs {
		g.Events = append(g.Events, r.ev)
	}
	slices.Sort(artIDs)
	slices.Sort(execIDs)
	if g.Artifacts, err = s.GetArtifactsByID(ctx, artIDs); err != nil {
		return mlmd.LineageGraph{}, err
	}
	if g.Executions, err = s.GetExecutionsByID(ctx, execIDs); err != nil {
		return mlmd.LineageGraph{}, err
	}
	if err := s.lineageContexts(ctx, &g, artIDs, execIDs); err != nil {
		return mlmd.LineageGraph{}, err
	}
	typeIDs := map[int64]bool{}
	for _, a := range g.Artifacts {
		typeIDs[a.TypeID] = true
	}
	for _, e := range g.Executions {
		typeIDs[e.TypeID] = true
	}
	for _, c := range g.Contexts {
		typeIDs[c.TypeID] = true
	}
	ids := make([]int64, 0, len(typeIDs))
	for id := range typeIDs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if g.Types, err = s.GetTypesByID(ctx, ids); err != nil {
		return mlmd.LineageGraph{}, err
	}
	return g, nil
}

// lineageContexts adds the contexts of the graph's nodes, their links, and the parent chain
// of those contexts.
func (s *Store) lineageContexts(ctx context.Context, g *mlmd.LineageGraph, artIDs, execIDs []int64) error {
	ctxIDs := map[int64]bool{}
	for _, c := range chunk(artIDs, 500) {
		rows, err := s.r.QueryContext(ctx, s.rebind(`SELECT context_id, artifact_id FROM attribution WHERE artifact_id IN (`+placeholders(len(c))+`) ORDER BY artifact_id, context_id`), int64Args(c)...)
		if err != nil {
			return fmt.Errorf("metastore: attributions: %w", err)
		}
		for rows.Next() {
			var a mlmd.Attribution
			if err := rows.Scan(&a.ContextID, &a.ArtifactID); err != nil {
				rows.Close()
				return err
			}
			ctxIDs[a.ContextID] = true
			g.Attributions = append(g.Attributions, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	for _, c := range chunk(execIDs, 500) {
		rows, err := s.r.QueryContext(ctx, s.rebind(`SELECT context_id, execution_id FROM association WHERE execution_id IN (`+placeholders(len(c))+`) ORDER BY execution_id, context_id`), int64Args(c)...)
		if err != nil {
			return fmt.Errorf("metastore: associations: %w", err)
		}
		for rows.Next() {
			var a mlmd.Association
			if err := rows.Scan(&a.ContextID, &a.ExecutionID); err != nil {
				rows.Close()
				return err
			}
			ctxIDs[a.ContextID] = true
			g.Associations = append(g.Associations, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	// Parent chain: a handful of levels at most in practice; each level is one batched query.
	frontier := make([]int64, 0, len(ctxIDs))
	for id := range ctxIDs {
		frontier = append(frontier, id)
	}
	for len(frontier) > 0 {
		slices.Sort(frontier)
		links, err := s.GetParentContexts(ctx, frontier)
		if err != nil {
			return err
		}
		frontier = frontier[:0]
		for _, l := range links {
			g.ParentContexts = append(g.ParentContexts, l)
			if !ctxIDs[l.ParentID] {
				ctxIDs[l.ParentID] = true
				frontier = append(frontier, l.ParentID)
			}
		}
	}
	ids := make([]int64, 0, len(ctxIDs))
	for id := range ctxIDs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	cs, err := s.GetContextsByID(ctx, ids)
	if err != nil {
		return err
	}
	g.Contexts = cs
	return nil
}
