package metastore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
)

// maxBatchParams bounds the bind parameters of one multi-row statement (PostgreSQL allows
// 65535, SQLite 32766).
const maxBatchParams = 30000

// sqliteBatchParams bounds the bind parameters of one multi-row statement on SQLite, far below
// its limit: modernc.org/sqlite binds parameter i by scanning the arguments for ordinal i, so
// binding n parameters costs n²/2 steps (a 30,000-parameter statement spent seconds there),
// while another statement in process costs microseconds.
const sqliteBatchParams = 1000

// ErrBatchByID is returned by IngestBatch for a request naming a node by id: such requests are
// applied one at a time with Ingest.
var ErrBatchByID = errors.New("metastore: ingest batch: nodes addressed by id are applied one by one")

// IngestBatch implements mlmd.Ingester. Types named for the first time are registered first,
// each in its own statement; then the whole batch is one transaction of set-based statements (one multi-row statement per table, whatever the batch size): source ids are
// claimed first with a single INSERT ... ON CONFLICT DO NOTHING RETURNING, so a redelivered
// event stops there; nodes recorded by several events of the batch are folded in event order
// with the rules Ingest applies row by row (first record's type, name and uri; execution
// states move forward, terminal states are final; artifacts take the last state that is not
// UNKNOWN; properties merged with new values winning, the namespace kept from the first
// record), so a batch leaves the same records as its events ingested one by one. Rows are
// written in key order so concurrent batches (of one consumer, or of several replicas) lock
// them in the same order; contexts, shared by many batches, are locked only when a batch
// changes them, at the end (writeContexts). A deadlock is retried, twice at most.
func (s *Store) IngestBatch(ctx context.Context, reqs []mlmd.IngestRequest) ([]mlmd.IngestResult, []error, error) {
	res := make([]mlmd.IngestResult, len(reqs))
	errs := make([]error, len(reqs))
	prep := make([]ingestNodes, len(reqs))
	live := make([]bool, len(reqs))
	seen := make(map[string]bool, len(reqs))
	for i, r := range reqs {
		p, err := prepareIngest(r)
		if err != nil {
			errs[i] = err
			continue
		}
		if p.byID() {
			return nil, nil, ErrBatchByID
		}
		if seen[sourceKey(r.Source, r.SourceID)] {
			continue // the same event (source and id) twice in one batch: the second is a redelivery
		}
		seen[sourceKey(r.Source, r.SourceID)] = true
		prep[i], live[i] = p, true
	}
	// Types are registered before the transaction, each INSERT committing on its own: inside
	// it, a new type's row would stay locked until the batch commits, and every concurrent
	// batch naming the type would wait for that.
	learned := map[string]int64{}
	types := s.newTypeCache(s.w)
	for i := range reqs {
		if !live[i] {
			continue
		}
		if err := prep[i].resolveTypes(ctx, s, types, learned); err != nil {
			if !errors.Is(err, mlmd.ErrInvalidArgument) {
				return nil, nil, err
			}
			errs[i], live[i] = err, false
		}
	}
	for k, id := range learned {
		s.typeIDs.Store(k, id)
	}
	// A deadlock with a concurrent batch (PostgreSQL detects it and fails one of the two) is
	// retried: rows are written in key order table by table, but a batch can still meet
	// another that locked a shared artifact or execution first.
	var err error
	for attempt := 1; ; attempt++ {
		err = s.inTx(ctx, func(tx *sql.Tx) error { return s.ingestBatchTx(ctx, tx, reqs, prep, slices.Clone(live), res) })
		if err == nil || attempt == 3 || !retryable(err) {
			break
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return res, errs, nil
}

// ingestBatchTx writes the live requests of a batch in tx and sets their results in res.
func (s *Store) ingestBatchTx(ctx context.Context, tx *sql.Tx, reqs []mlmd.IngestRequest, prep []ingestNodes, live []bool, res []mlmd.IngestResult) error {
	applied, err := s.claim(ctx, tx, reqs, live)
	if err != nil {
		return err
	}
	b := newBatchFold()
	for i := range reqs {
		res[i] = mlmd.IngestResult{}
		if applied[i] {
			b.add(prep[i])
		}
	}
	if err := b.write(ctx, s, tx); err != nil {
		return err
	}
	for i := range reqs {
		if !applied[i] {
			continue
		}
		res[i], err = b.link(reqs[i], prep[i])
		if err != nil {
			return err
		}
	}
	if err := b.writeEdges(ctx, s, tx); err != nil {
		return err
	}
	return b.writeContexts(ctx, s, tx)
}

// retryable reports a transaction that failed only for its timing: a deadlock or a
// serialization failure on PostgreSQL.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

func (p ingestNodes) byID() bool {
	if p.exec != nil && p.exec.ID != 0 {
		return true
	}
	for _, n := range p.arts {
		if n.ID != 0 {
			return true
		}
	}
	for _, n := range p.ctxs {
		if n.ID != 0 {
			return true
		}
	}
	return false
}

// resolveTypes checks every node as putNode does and sets its TypeID. A node naming its type
// by name without declared properties takes the id from s.typeIDs when known; ids resolved
// here are added to learned, for s.typeIDs (types is outside the batch's transaction: the
// types it registers are committed).
func (p *ingestNodes) resolveTypes(ctx context.Context, s *Store, types *typeCache, learned map[string]int64) error {
	one := func(k kindInfo, field string, n *node) error {
		if err := n.validate(field); err != nil {
			return err
		}
		if k != contextKind && n.ExternalID == "" {
			return mlmd.Invalid(field+".external_id", "must be set")
		}
		key := string(k.kind) + "\x00" + n.Type
		if n.TypeID == 0 && n.Type != "" && len(n.Properties) == 0 {
			if id, ok := s.typeIDs.Load(key); ok {
				n.TypeID = id.(int64)
				return nil
			}
		}
		byName := n.TypeID == 0
		t, err := types.resolve(ctx, field, k.kind, n.TypeID, n.Type)
		if err != nil {
			return err
		}
		if err := t.checkProperties(field, n.Properties); err != nil {
			return err
		}
		n.TypeID = t.id
		if byName {
			learned[key] = t.id
		}
		return nil
	}
	for i := range p.ctxs {
		if err := one(contextKind, fmt.Sprintf("contexts[%d]", i), &p.ctxs[i]); err != nil {
			return err
		}
	}
	if p.exec != nil {
		if err := one(executionKind, "execution", p.exec); err != nil {
			return err
		}
	}
	for i := range p.arts {
		if err := one(artifactKind, fmt.Sprintf("artifacts[%d].artifact", i), &p.arts[i]); err != nil {
			return err
		}
	}
	return nil
}

// claim records the source events (CloudEvent source and id) of the live requests and
// reports which were new: one INSERT ... ON CONFLICT DO NOTHING RETURNING for the batch, after
// one lookup of the ids recorded without their source (legacyIDs) when the table has any.
func (s *Store) claim(ctx context.Context, tx *sql.Tx, reqs []mlmd.IngestRequest, live []bool) ([]bool, error) {
	if s.legacyIDs {
		var ids []string
		for i, r := range reqs {
			if live[i] {
				ids = append(ids, r.SourceID)
			}
		}
		old, err := s.legacySources(ctx, tx, ids)
		if err != nil {
			return nil, err
		}
		for i, r := range reqs {
			if live[i] && old[r.SourceID] {
				live[i] = false
			}
		}
	}
	now := nowMillis()
	var rows [][]any
	for i, r := range reqs {
		if live[i] {
			rows = append(rows, []any{r.Source, r.SourceID, r.SourceType, now})
		}
	}
	// key order, as every other table of the batch: concurrent batches wait, never deadlock
	slices.SortFunc(rows, func(a, b []any) int {
		return cmp.Or(strings.Compare(a[0].(string), b[0].(string)), strings.Compare(a[1].(string), b[1].(string)))
	})
	claimed := make(map[string]bool, len(rows))
	err := s.execRows(ctx, tx, `INSERT INTO ingested_event (ce_source, ce_id, type, received_ms)`, rows, `ON CONFLICT (ce_source, ce_id) DO NOTHING RETURNING ce_source, ce_id`,
		func(rs *sql.Rows) error {
			var src, id string
			if err := rs.Scan(&src, &id); err != nil {
				return err
			}
			claimed[sourceKey(src, id)] = true
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("metastore: record source events: %w", err)
	}
	applied := make([]bool, len(reqs))
	for i, r := range reqs {
		applied[i] = live[i] && claimed[sourceKey(r.Source, r.SourceID)]
	}
	return applied, nil
}

// legacySources returns which of ids were recorded before ingested_event kept sources.
func (s *Store) legacySources(ctx context.Context, tx *sql.Tx, ids []string) (map[string]bool, error) {
	found := map[string]bool{}
	per := maxBatchParams
	if s.dialect == dialectSQLite {
		per = sqliteBatchParams
	}
	for lo := 0; lo < len(ids); lo += per {
		part := ids[lo:min(lo+per, len(ids))]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		rs, err := tx.QueryContext(ctx, s.rebind(`SELECT ce_id FROM ingested_event WHERE ce_source = '' AND ce_id IN (`+placeholders(len(part))+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("metastore: look up source events: %w", err)
		}
		for rs.Next() {
			var id string
			if err := rs.Scan(&id); err != nil {
				rs.Close()
				return nil, err
			}
			found[id] = true
		}
		err = rs.Err()
		rs.Close()
		if err != nil {
			return nil, fmt.Errorf("metastore: look up source events: %w", err)
		}
	}
	return found, nil
}

// sourceKey is the identity of a source event: CloudEvent source and id.
func sourceKey(source, id string) string { return source + "\x00" + id }

type propKey struct {
	name   string
	custom bool
}

// folded is one node as the events of a batch leave it.
type folded struct {
	key   string
	n     node // the first record, with the folded state and external id
	props map[propKey]mlmd.Value
	ns    *mlmd.Value // the first namespace custom property
	id    int64
	// existed: a context recorded before the batch; changed: given another external id;
	// inserted: a node this batch inserted (its properties and edges are all new)
	existed, changed, inserted bool
}

func (f *folded) merge(k kindInfo, n node) {
	switch k {
	case executionKind:
		if f.n.State < 3 && min(n.State, 3) >= f.n.State {
			f.n.State = n.State
		}
	case artifactKind:
		if n.State != 0 {
			f.n.State = n.State
		}
	case contextKind:
		if n.ExternalID != "" {
			f.n.ExternalID = n.ExternalID
		}
	}
	f.mergeProps(n)
}

func (f *folded) mergeProps(n node) {
	for name, v := range n.Properties {
		f.props[propKey{name, false}] = v
	}
	for name, v := range n.CustomProperties {
		if name == metadatav1.NamespaceProperty {
			if f.ns == nil {
				v := v
				f.ns = &v
			}
			continue
		}
		f.props[propKey{name, true}] = v
	}
}

type foldSet struct {
	k     kindInfo
	byKey map[string]*folded
}

func (fs *foldSet) add(key string, n node) {
	if f, ok := fs.byKey[key]; ok {
		f.merge(fs.k, n)
		return
	}
	f := &folded{key: key, n: n, props: map[propKey]mlmd.Value{}}
	f.mergeProps(n)
	fs.byKey[key] = f
}

func (fs *foldSet) sorted() []*folded {
	out := make([]*folded, 0, len(fs.byKey))
	for _, f := range fs.byKey {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b *folded) int { return strings.Compare(a.key, b.key) })
	return out
}

// batchFold collects the nodes and edges of the applied events of one batch.
type batchFold struct {
	ctxs, execs, arts foldSet
	parents           map[[2]int64]bool // child, parent
	assocs            map[[2]int64]bool // context, execution
	attribs           map[[2]int64]bool // context, artifact
	events            map[[3]int64][]any
	inserted          map[string]map[int64]bool // table → ids of the nodes this batch inserted
}

func newBatchFold() *batchFold {
	return &batchFold{
		ctxs:    foldSet{contextKind, map[string]*folded{}},
		execs:   foldSet{executionKind, map[string]*folded{}},
		arts:    foldSet{artifactKind, map[string]*folded{}},
		parents: map[[2]int64]bool{}, assocs: map[[2]int64]bool{}, attribs: map[[2]int64]bool{},
		events:   map[[3]int64][]any{},
		inserted: map[string]map[int64]bool{contextKind.table: {}, executionKind.table: {}, artifactKind.table: {}},
	}
}

func contextKey(n node) string { return fmt.Sprintf("%d\x00%s", n.TypeID, n.Name) }

func (b *batchFold) add(p ingestNodes) {
	for _, n := range p.ctxs {
		b.ctxs.add(contextKey(n), n)
	}
	if p.exec != nil {
		b.execs.add(p.exec.ExternalID, *p.exec)
	}
	for _, n := range p.arts {
		b.arts.add(n.ExternalID, n)
	}
}

// write records the folded nodes and the properties of executions and artifacts and sets
// their ids. Contexts are only inserted when new (ON CONFLICT DO NOTHING) and looked up
// otherwise, without a row lock: the update of the contexts that existed, and the properties
// of all, wait for writeContexts at the end of the transaction. A context is shared by every
// event of its run, and a pipeline's by all its runs, so a row lock on it taken here would
// make each concurrent batch wait for the whole of the one before it.
func (b *batchFold) write(ctx context.Context, s *Store, tx *sql.Tx) error {
	now := nowMillis()
	ctxs := b.ctxs.sorted()
	rows := make([][]any, len(ctxs))
	for i, f := range ctxs {
		rows[i] = []any{f.n.TypeID, f.n.Name, nullString(f.n.ExternalID), now, now}
	}
	err := s.execRows(ctx, tx, `INSERT INTO context (type_id, name, external_id, create_time_ms, last_update_time_ms)`, rows,
		`ON CONFLICT (type_id, name) DO NOTHING RETURNING id, type_id, name`, func(rs *sql.Rows) error {
			var n node
			if err := rs.Scan(&n.ID, &n.TypeID, &n.Name); err != nil {
				return err
			}
			if f := b.ctxs.byKey[contextKey(n)]; f != nil {
				f.id, f.inserted = n.ID, true
				b.inserted[contextKind.table][n.ID] = true
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("contexts: %w", err)
	}
	var keys [][]any
	for _, f := range ctxs {
		if f.id == 0 {
			f.existed = true
			keys = append(keys, []any{f.n.TypeID, f.n.Name})
		}
	}
	if err := b.loadContexts(ctx, s, tx, keys); err != nil {
		return fmt.Errorf("contexts: %w", err)
	}
	for _, fs := range []*foldSet{&b.execs, &b.arts} {
		nodes := fs.sorted()
		rows := make([][]any, len(nodes))
		cols := "type_id, name, external_id, last_known_state"
		if fs.k == artifactKind {
			cols = "type_id, name, external_id, uri, state"
		}
		for i, f := range nodes {
			rows[i] = []any{f.n.TypeID, nullString(f.n.Name), f.n.ExternalID}
			if fs.k == artifactKind {
				rows[i] = append(rows[i], f.n.URI)
			}
			rows[i] = append(rows[i], f.n.State, now, now)
		}
		// PostgreSQL tells a row this statement inserted (xmax 0) from one it updated; SQLite
		// does not, and its batches upsert every property and edge of the node.
		inserted := "xmax = 0"
		if s.dialect == dialectSQLite {
			inserted = "false"
		}
		err := s.execRows(ctx, tx, `INSERT INTO `+fs.k.table+` (`+cols+`, create_time_ms, last_update_time_ms)`, rows,
			`ON CONFLICT (external_id) DO UPDATE SET last_update_time_ms = excluded.last_update_time_ms, `+forwardState[fs.k.table]+` RETURNING id, external_id, `+inserted,
			func(rs *sql.Rows) error {
				var id int64
				var ext string
				var ins bool
				if err := rs.Scan(&id, &ext, &ins); err != nil {
					return err
				}
				if f := fs.byKey[ext]; f != nil {
					f.id, f.inserted = id, ins
					if ins {
						b.inserted[fs.k.table][id] = true
					}
				}
				return nil
			})
		if err != nil {
			return fmt.Errorf("%s: %w", fs.k.list, err)
		}
	}
	for _, fs := range []*foldSet{&b.execs, &b.arts} {
		if err := b.writeProps(ctx, s, tx, fs); err != nil {
			return err
		}
	}
	return nil
}

// loadContexts sets the ids of the contexts keyed by keys (type id, name), recorded before
// the batch, and drops from their folded records what they already hold (the same external
// id, property values, a namespace), so that writeContexts touches only those the batch
// changes. Nothing is locked: a context's last update time moves when the ingest changes it.
func (b *batchFold) loadContexts(ctx context.Context, s *Store, tx *sql.Tx, keys [][]any) error {
	if len(keys) == 0 {
		return nil
	}
	byID := map[int64]*folded{}
	// An insert that conflicted with one not yet committed waited for it, so every context
	// not inserted by this batch is committed and visible here.
	err := s.execRows(ctx, tx, `WITH k (type_id, name) AS (`, keys,
		`) SELECT c.id, c.type_id, c.name, c.external_id FROM context c JOIN k ON c.type_id = k.type_id AND c.name = k.name`,
		func(rs *sql.Rows) error {
			var n node
			var ext sql.NullString
			if err := rs.Scan(&n.ID, &n.TypeID, &n.Name, &ext); err != nil {
				return err
			}
			if f := b.ctxs.byKey[contextKey(n)]; f != nil {
				f.id, byID[n.ID] = n.ID, f
				f.changed = f.n.ExternalID != "" && f.n.ExternalID != ext.String
			}
			return nil
		})
	if err != nil {
		return err
	}
	ids := make([][]any, 0, len(byID))
	for id := range byID {
		ids = append(ids, []any{id})
	}
	slices.SortFunc(ids, func(a, b []any) int { return cmp.Compare(a[0].(int64), b[0].(int64)) })
	return s.execRows(ctx, tx, `WITH k (id) AS (`, ids,
		`) SELECT p.context_id, p.name, p.is_custom, p.int_value, p.double_value, p.string_value, p.bool_value, p.struct_value, p.proto_value FROM context_property p JOIN k ON p.context_id = k.id`,
		func(rs *sql.Rows) error {
			var id int64
			var k propKey
			var iv sql.NullInt64
			var dv sql.NullFloat64
			var sv, st, pv sql.NullString
			var bv sql.NullBool
			if err := rs.Scan(&id, &k.name, &k.custom, &iv, &dv, &sv, &bv, &st, &pv); err != nil {
				return err
			}
			f := byID[id]
			if f == nil {
				return nil
			}
			if k.custom && k.name == metadatav1.NamespaceProperty {
				f.ns = nil // set once
				return nil
			}
			if v, ok := f.props[k]; ok {
				structV, protoV := encodedValues(v)
				if valueKey(v.IntValue, v.DoubleValue, v.StringValue, v.BoolValue, structV, protoV) == valueKey(nullPtr(iv.Int64, iv.Valid), nullPtr(dv.Float64, dv.Valid), nullPtr(sv.String, sv.Valid), nullPtr(bv.Bool, bv.Valid), nullAny(st), nullAny(pv)) {
					delete(f.props, k)
				}
			}
			return nil
		})
}

func nullPtr[T any](v T, valid bool) *T {
	if !valid {
		return nil
	}
	return &v
}

func nullAny(v sql.NullString) any {
	if !v.Valid {
		return nil
	}
	return v.String
}

// valueKey renders a property row's values (nil pointers as NULL) for comparison.
func valueKey(i *int64, d *float64, s *string, b *bool, st, pv any) string {
	var out strings.Builder
	for _, v := range []any{i, d, s, b} {
		switch v := v.(type) {
		case *int64:
			if v != nil {
				fmt.Fprintf(&out, "i%d", *v)
			}
		case *float64:
			if v != nil {
				fmt.Fprintf(&out, "d%v", *v)
			}
		case *string:
			if v != nil {
				fmt.Fprintf(&out, "s%q", *v)
			}
		case *bool:
			if v != nil {
				fmt.Fprintf(&out, "b%t", *v)
			}
		}
		out.WriteByte('|')
	}
	for _, v := range []any{st, pv} {
		if v != nil {
			fmt.Fprintf(&out, "%q", v)
		}
		out.WriteByte('|')
	}
	return out.String()
}

// writeContexts, the last writes of a batch, updates the contexts recorded before it that the
// batch changes (external id, property values) as Ingest does, and writes the properties left
// by loadContexts, so a context's row lock, when one is taken, is held only until the commit
// that follows. A context shared by every event of its run, or a pipeline's by all its runs,
// is thus not locked at all by the batches that only link to it.
func (b *batchFold) writeContexts(ctx context.Context, s *Store, tx *sql.Tx) error {
	now := nowMillis()
	var rows [][]any
	for _, f := range b.ctxs.sorted() {
		if f.existed && (f.changed || len(f.props) > 0 || f.ns != nil) {
			rows = append(rows, []any{f.n.TypeID, f.n.Name, nullString(f.n.ExternalID), now, now})
		}
	}
	err := s.execRows(ctx, tx, `INSERT INTO context (type_id, name, external_id, create_time_ms, last_update_time_ms)`, rows,
		`ON CONFLICT (type_id, name) DO UPDATE SET external_id = COALESCE(excluded.external_id, context.external_id), last_update_time_ms = excluded.last_update_time_ms`, nil)
	if err != nil {
		return fmt.Errorf("contexts: %w", err)
	}
	return b.writeProps(ctx, s, tx, &b.ctxs)
}

func (b *batchFold) writeProps(ctx context.Context, s *Store, tx *sql.Tx, fs *foldSet) error {
	var rows, fresh [][]any
	for _, f := range fs.sorted() {
		if f.id == 0 {
			return fmt.Errorf("metastore: ingest batch: no id returned for %s %q", fs.k.table, f.key)
		}
		start := len(rows)
		keys := make([]propKey, 0, len(f.props))
		for k := range f.props {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b propKey) int {
			if c := strings.Compare(a.name, b.name); c != 0 {
				return c
			}
			return cmp.Compare(btoi(a.custom), btoi(b.custom))
		})
		for _, k := range keys {
			v := f.props[k]
			structV, protoV := encodedValues(v)
			rows = append(rows, []any{f.id, k.name, k.custom, v.IntValue, v.DoubleValue, v.StringValue, v.BoolValue, structV, protoV})
		}
		if f.ns != nil {
			rows = append(rows, []any{f.id, metadatav1.NamespaceProperty, true, (*int64)(nil), (*float64)(nil), f.ns.StringValue, (*bool)(nil), nil, nil})
		}
		if f.inserted { // a node inserted by this batch has no properties yet: plain INSERT
			fresh = append(fresh, rows[start:]...)
			rows = rows[:start]
		}
	}
	k := fs.k
	cols := `INSERT INTO ` + k.propTable + ` AS p (` + k.fk + `, name, is_custom, int_value, double_value, string_value, bool_value, struct_value, proto_value)`
	if err := s.execRows(ctx, tx, cols, fresh, ``, nil); err != nil {
		return fmt.Errorf("metastore: write %s properties: %w", k.table, err)
	}
	// One statement per table: new values win, except the namespace, set once (a node keeps the
	// namespace it was first recorded in); a row whose values are unchanged is not rewritten, so
	// a redundant update leaves no dead tuple and no index entries behind.
	err := s.execRows(ctx, tx, cols, rows,
		`ON CONFLICT (`+k.fk+`, name, is_custom) DO UPDATE SET int_value = excluded.int_value, double_value = excluded.double_value, string_value = excluded.string_value, bool_value = excluded.bool_value, struct_value = excluded.struct_value, proto_value = excluded.proto_value`+
			` WHERE NOT (p.is_custom AND p.name = '`+metadatav1.NamespaceProperty+`')`+
			` AND (p.int_value, p.double_value, p.string_value, p.bool_value, p.struct_value, p.proto_value) IS DISTINCT FROM (excluded.int_value, excluded.double_value, excluded.string_value, excluded.bool_value, excluded.struct_value, excluded.proto_value)`, nil)
	if err != nil {
		return fmt.Errorf("metastore: write %s properties: %w", k.table, err)
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// link collects the edges of one applied request (ids known after write) and returns its result.
func (b *batchFold) link(req mlmd.IngestRequest, p ingestNodes) (mlmd.IngestResult, error) {
	r := mlmd.IngestResult{Applied: true, ArtifactIDs: make([]int64, len(p.arts)), ContextIDs: make([]int64, len(p.ctxs))}
	for i, n := range p.ctxs {
		r.ContextIDs[i] = b.ctxs.byKey[contextKey(n)].id
	}
	for _, l := range req.ParentContexts {
		b.parents[[2]int64{r.ContextIDs[l.Child], r.ContextIDs[l.Parent]}] = true
	}
	if p.exec != nil {
		r.ExecutionID = b.execs.byKey[p.exec.ExternalID].id
		for _, cid := range r.ContextIDs {
			b.assocs[[2]int64{cid, r.ExecutionID}] = true
		}
	}
	for i, n := range p.arts {
		aid := b.arts.byKey[n.ExternalID].id
		r.ArtifactIDs[i] = aid
		if ev := req.Artifacts[i].Event; ev != nil {
			code, err := mlmd.EventTypeCode(fmt.Sprintf("artifacts[%d].event.type", i), ev.Type)
			if err != nil {
				return mlmd.IngestResult{}, err
			}
			key := [3]int64{aid, r.ExecutionID, int64(code)}
			if _, ok := b.events[key]; !ok { // the first record of an event is kept
				var path any
				if ev.Path != nil && len(ev.Path.Steps) > 0 {
					j, _ := json.Marshal(ev.Path)
					path = string(j)
				}
				t := ev.MillisecondsSinceEpoch
				if t == 0 {
					t = nowMillis()
				}
				b.events[key] = []any{aid, r.ExecutionID, code, t, path}
			}
		}
		for _, cid := range r.ContextIDs {
			b.attribs[[2]int64{cid, aid}] = true
		}
	}
	return r, nil
}

// writeEdges inserts the collected links and events, keeping those already recorded.
func (b *batchFold) writeEdges(ctx context.Context, s *Store, tx *sql.Tx) error {
	pairs := func(m map[[2]int64]bool) [][]any {
		keys := make([][2]int64, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b [2]int64) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
		rows := make([][]any, len(keys))
		for i, k := range keys {
			rows[i] = []any{k[0], k[1]}
		}
		return rows
	}
	// An edge with an end inserted by this batch cannot be recorded yet: plain INSERT. The others
	// keep the rows already recorded (ON CONFLICT DO NOTHING).
	split := func(rows [][]any, fresh func(r []any) bool) (old, new [][]any) {
		for _, r := range rows {
			if fresh(r) {
				new = append(new, r)
			} else {
				old = append(old, r)
			}
		}
		return old, new
	}
	ins := b.inserted
	for _, e := range []struct {
		table, a, b  string
		m            map[[2]int64]bool
		aKind, bKind string
	}{
		{"parent_context", "child_id", "parent_id", b.parents, contextKind.table, contextKind.table},
		{"association", "context_id", "execution_id", b.assocs, contextKind.table, executionKind.table},
		{"attribution", "context_id", "artifact_id", b.attribs, contextKind.table, artifactKind.table},
	} {
		old, fresh := split(pairs(e.m), func(r []any) bool { return ins[e.aKind][r[0].(int64)] || ins[e.bKind][r[1].(int64)] })
		if err := s.execRows(ctx, tx, `INSERT INTO `+e.table+` (`+e.a+`, `+e.b+`)`, fresh, ``, nil); err != nil {
			return fmt.Errorf("metastore: write %s: %w", e.table, err)
		}
		if err := s.execRows(ctx, tx, `INSERT INTO `+e.table+` (`+e.a+`, `+e.b+`)`, old, `ON CONFLICT (`+e.a+`, `+e.b+`) DO NOTHING`, nil); err != nil {
			return fmt.Errorf("metastore: write %s: %w", e.table, err)
		}
	}
	keys := make([][3]int64, 0, len(b.events))
	for k := range b.events {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [3]int64) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]), cmp.Compare(a[2], b[2]))
	})
	rows := make([][]any, len(keys))
	for i, k := range keys {
		rows[i] = b.events[k]
	}
	old, fresh := split(rows, func(r []any) bool {
		return ins[artifactKind.table][r[0].(int64)] || ins[executionKind.table][r[1].(int64)]
	})
	if err := s.execRows(ctx, tx, `INSERT INTO event (artifact_id, execution_id, type, time_ms, path)`, fresh, ``, nil); err != nil {
		return fmt.Errorf("metastore: write events: %w", err)
	}
	if err := s.execRows(ctx, tx, `INSERT INTO event (artifact_id, execution_id, type, time_ms, path)`, old, `ON CONFLICT (artifact_id, execution_id, type) DO NOTHING`, nil); err != nil {
		return fmt.Errorf("metastore: write events: %w", err)
	}
	return nil
}

// execRows runs head VALUES (row), (row)... tail over rows in statements of at most
// maxBatchParams parameters, calling scan for every returned row when scan is set.
func (s *Store) execRows(ctx context.Context, tx *sql.Tx, head string, rows [][]any, tail string, scan func(*sql.Rows) error) error {
	if len(rows) == 0 {
		return nil
	}
	cols := len(rows[0])
	if s.dialect == dialectPostgres {
		return s.execUnnest(ctx, tx, head, rows, tail, scan)
	}
	per := max(1, sqliteBatchParams/cols)
	one := "(" + placeholders(cols) + ")"
	for lo := 0; lo < len(rows); lo += per {
		part := rows[lo:min(lo+per, len(rows))]
		var q strings.Builder
		q.Grow(len(head) + len(tail) + len(part)*(len(one)+2) + 16)
		q.WriteString(head)
		q.WriteString(" VALUES ")
		args := make([]any, 0, len(part)*cols)
		for i, r := range part {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString(one)
			args = append(args, r...)
		}
		q.WriteString(" ")
		q.WriteString(tail)
		if scan == nil {
			if _, err := tx.ExecContext(ctx, s.rebind(q.String()), args...); err != nil {
				return s.classify(err)
			}
			continue
		}
		rs, err := tx.QueryContext(ctx, s.rebind(q.String()), args...)
		if err != nil {
			return s.classify(err)
		}
		for rs.Next() {
			if err := scan(rs); err != nil {
				rs.Close()
				return err
			}
		}
		if err := rs.Err(); err != nil {
			rs.Close()
			return s.classify(err)
		}
		rs.Close()
	}
	return nil
}

// execUnnest is execRows on PostgreSQL: one statement per call whatever the number of rows,
// INSERT ... SELECT * FROM unnest($1::bigint[], $2::text[], ...), one array parameter per
// column, so the statement text is the same for every batch (prepared once per connection,
// planned in constant time) instead of a VALUES list of thousands of parameters.
func (s *Store) execUnnest(ctx context.Context, tx *sql.Tx, head string, rows [][]any, tail string, scan func(*sql.Rows) error) error {
	cols := len(rows[0])
	args := make([]any, cols)
	casts := make([]string, cols)
	for c := range cols {
		kind := "text"
		for _, r := range rows {
			if k := pgArrayKind(r[c]); k != "" {
				kind = k
				break
			}
		}
		casts[c] = fmt.Sprintf("$%d::%s[]", c+1, kind)
		var err error
		if args[c], err = pgColumn(kind, rows, c); err != nil {
			return fmt.Errorf("metastore: %s column %d: %w", head, c, err)
		}
	}
	q := head + " SELECT * FROM unnest(" + strings.Join(casts, ", ") + ") " + tail
	if scan == nil {
		_, err := tx.ExecContext(ctx, q, args...)
		return s.classify(err)
	}
	rs, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return s.classify(err)
	}
	defer rs.Close()
	for rs.Next() {
		if err := scan(rs); err != nil {
			return err
		}
	}
	return s.classify(rs.Err())
}

// pgArrayKind names the PostgreSQL element type of a column value ("" for an untyped nil).
func pgArrayKind(v any) string {
	switch v.(type) {
	case int, int64, *int64:
		return "bigint"
	case bool, *bool:
		return "boolean"
	case float64, *float64:
		return "double precision"
	case string, *string:
		return "text"
	}
	return ""
}

// pgColumn gathers column c of rows into a slice of pointers (nil = NULL) of kind.
func pgColumn(kind string, rows [][]any, c int) (any, error) {
	switch kind {
	case "bigint":
		out := make([]*int64, len(rows))
		for i, r := range rows {
			switch v := r[c].(type) {
			case int:
				n := int64(v)
				out[i] = &n
			case int64:
				out[i] = &v
			case *int64:
				out[i] = v
			case nil:
			default:
				return nil, fmt.Errorf("%T in a bigint column", v)
			}
		}
		return out, nil
	case "boolean":
		out := make([]*bool, len(rows))
		for i, r := range rows {
			switch v := r[c].(type) {
			case bool:
				out[i] = &v
			case *bool:
				out[i] = v
			case nil:
			default:
				return nil, fmt.Errorf("%T in a boolean column", v)
			}
		}
		return out, nil
	case "double precision":
		out := make([]*float64, len(rows))
		for i, r := range rows {
			switch v := r[c].(type) {
			case float64:
				out[i] = &v
			case *float64:
				out[i] = v
			case nil:
			default:
				return nil, fmt.Errorf("%T in a double column", v)
			}
		}
		return out, nil
	}
	out := make([]*string, len(rows))
	for i, r := range rows {
		switch v := r[c].(type) {
		case string:
			out[i] = &v
		case *string:
			out[i] = v
		case nil:
		default:
			return nil, fmt.Errorf("%T in a text column", v)
		}
	}
	return out, nil
}
