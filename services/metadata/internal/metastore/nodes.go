package metastore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
)

// kindInfo describes the tables of one node kind.
type kindInfo struct {
	kind      metadatav1.TypeKind
	table     string
	propTable string
	fk        string // property table's node column
	stateCol  string // "" for contexts
	list      string // token/list name, e.g. "artifacts"
}

var (
	artifactKind  = kindInfo{metadatav1.ArtifactKind, "artifact", "artifact_property", "artifact_id", "state", "artifacts"}
	executionKind = kindInfo{metadatav1.ExecutionKind, "execution", "execution_property", "execution_id", "last_known_state", "executions"}
	contextKind   = kindInfo{metadatav1.ContextKind, "context", "context_property", "context_id", "", "contexts"}
)

// node is the kind-independent row of an artifact, execution or context.
type node struct {
	ID, TypeID       int64
	Type             string
	Name             string
	ExternalID       string
	URI              string
	State            int
	Properties       map[string]mlmd.Value
	CustomProperties map[string]mlmd.Value
	Create, Update   int64
}

func artifactNode(field string, a mlmd.Artifact) (node, error) {
	st, err := mlmd.ArtifactStateCode(field+".state", a.State)
	if err != nil {
		return node{}, err
	}
	return node{ID: a.ID, TypeID: a.TypeID, Type: a.Type, Name: a.Name, ExternalID: a.ExternalID, URI: a.URI,
		State: st, Properties: a.Properties, CustomProperties: a.CustomProperties}, nil
}

func (n node) artifact() mlmd.Artifact {
	return mlmd.Artifact{ID: n.ID, TypeID: n.TypeID, Type: n.Type, Name: n.Name, URI: n.URI, ExternalID: n.ExternalID,
		State: metadatav1.ArtifactStates[n.State], Properties: n.Properties, CustomProperties: n.CustomProperties,
		CreateTimeSinceEpoch: n.Create, LastUpdateTimeSinceEpoch: n.Update}
}

func executionNode(field string, e mlmd.Execution) (node, error) {
	st, err := mlmd.ExecutionStateCode(field+".last_known_state", e.LastKnownState)
	if err != nil {
		return node{}, err
	}
	return node{ID: e.ID, TypeID: e.TypeID, Type: e.Type, Name: e.Name, ExternalID: e.ExternalID,
		State: st, Properties: e.Properties, CustomProperties: e.CustomProperties}, nil
}

func (n node) execution() mlmd.Execution {
	return mlmd.Execution{ID: n.ID, TypeID: n.TypeID, Type: n.Type, Name: n.Name, ExternalID: n.ExternalID,
		LastKnownState: metadatav1.ExecutionStates[n.State], Properties: n.Properties, CustomProperties: n.CustomProperties,
		CreateTimeSinceEpoch: n.Create, LastUpdateTimeSinceEpoch: n.Update}
}

func contextNode(field string, c mlmd.Context) (node, error) {
	if c.Name == "" {
		return node{}, mlmd.Invalid(field+".name", "must not be empty")
	}
	return node{ID: c.ID, TypeID: c.TypeID, Type: c.Type, Name: c.Name, ExternalID: c.ExternalID,
		Properties: c.Properties, CustomProperties: c.CustomProperties}, nil
}

func (n node) context() mlmd.Context {
	return mlmd.Context{ID: n.ID, TypeID: n.TypeID, Type: n.Type, Name: n.Name, ExternalID: n.ExternalID,
		Properties: n.Properties, CustomProperties: n.CustomProperties,
		CreateTimeSinceEpoch: n.Create, LastUpdateTimeSinceEpoch: n.Update}
}

func (n node) validate(field string) error {
	if err := mlmd.ValidateProperties(field+".properties", n.Properties); err != nil {
		return err
	}
	return mlmd.ValidateProperties(field+".custom_properties", n.CustomProperties)
}

// writeMode says how putNode treats a node without an id.
type writeMode int

const (
	insertOnly       writeMode = iota // plain insert; an existing name/external id is ErrAlreadyExists
	upsertExternalID                  // reuse the node with the same external id, replacing its fields
	upsertName                        // contexts: reuse the node with the same type and name, merging properties
	ingestMerge                       // reuse the node with the same external id, keeping its type, name and uri, moving its state forward and merging properties (see mlmd.IngestRequest)
)

// forwardState is the SQL of the state an ingested node keeps on conflict: executions move
// forward only (UNKNOWN 0 < NEW 1 < RUNNING 2 < terminal 3..6, terminal states are final);
// artifacts take any state but UNKNOWN.
var forwardState = map[string]string{
	"execution": "last_known_state = CASE WHEN execution.last_known_state < 3 AND (CASE WHEN excluded.last_known_state > 3 THEN 3 ELSE excluded.last_known_state END) >= execution.last_known_state THEN excluded.last_known_state ELSE execution.last_known_state END",
	"artifact":  "state = CASE WHEN excluded.state <> 0 THEN excluded.state ELSE artifact.state END",
}

// putNode inserts or updates one node and its properties in tx and returns its id.
func (s *Store) putNode(ctx context.Context, tx *sql.Tx, types *typeCache, k kindInfo, field string, n node, mode writeMode) (int64, error) {
	if err := n.validate(field); err != nil {
		return 0, err
	}
	t, err := types.resolve(ctx, field, k.kind, n.TypeID, n.Type)
	if err != nil {
		return 0, err
	}
	if err := t.checkProperties(field, n.Properties); err != nil {
		return 0, err
	}
	now := nowMillis()
	cols := []string{"type_id", "name", "external_id"}
	args := []any{t.id, nullString(n.Name), nullString(n.ExternalID)}
	if k == contextKind {
		args[1] = n.Name
	}
	if k == artifactKind {
		cols = append(cols, "uri")
		args = append(args, n.URI)
	}
	if k.stateCol != "" {
		cols = append(cols, k.stateCol)
		args = append(args, n.State)
	}
	mergeProps := false
	var id int64
	if n.ID != 0 {
		set := make([]string, 0, len(cols)+1)
		for _, c := range cols {
			set = append(set, c+" = ?")
		}
		set = append(set, "last_update_time_ms = ?")
		res, err := tx.ExecContext(ctx, s.rebind(`UPDATE `+k.table+` SET `+strings.Join(set, ", ")+` WHERE id = ?`), append(args, now, n.ID)...)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", field, s.classify(err))
		}
		if c, _ := res.RowsAffected(); c == 0 {
			return 0, fmt.Errorf("%w: %s.id: no %s with id %d", mlmd.ErrNotFound, field, k.table, n.ID)
		}
		id = n.ID
	} else {
		q := `INSERT INTO ` + k.table + ` (` + strings.Join(cols, ", ") + `, create_time_ms, last_update_time_ms) VALUES (` + placeholders(len(cols)+2) + `)`
		var conflict string
		switch {
		case mode == upsertExternalID && n.ExternalID != "":
			conflict = "external_id"
		case mode == upsertName && k == contextKind:
			conflict = "type_id, name"
			mergeProps = true
		case mode == ingestMerge:
			if n.ExternalID == "" {
				return 0, mlmd.Invalid(field+".external_id", "must be set")
			}
			mergeProps = true
			upd := []string{"last_update_time_ms = excluded.last_update_time_ms"}
			if f, ok := forwardState[k.table]; ok {
				upd = append(upd, f)
			}
			q += ` ON CONFLICT (external_id) DO UPDATE SET ` + strings.Join(upd, ", ")
		}
		if conflict != "" {
			upd := make([]string, 0, len(cols))
			for _, c := range cols {
				if !strings.Contains(conflict, c) {
					upd = append(upd, c+" = excluded."+c)
				}
			}
			if mergeProps {
				upd = upd[:0]
				if n.ExternalID != "" {
					upd = append(upd, "external_id = excluded.external_id")
				}
			}
			upd = append(upd, "last_update_time_ms = excluded.last_update_time_ms")
			q += ` ON CONFLICT (` + conflict + `) DO UPDATE SET ` + strings.Join(upd, ", ")
		}
		q += ` RETURNING id`
		if err := tx.QueryRowContext(ctx, s.rebind(q), append(args, now, now)...).Scan(&id); err != nil {
			return 0, fmt.Errorf("%s: %w", field, s.classify(err))
		}
	}
	fresh := n.ID == 0 && mode == insertOnly
	if err := s.writeProperties(ctx, tx, k, id, n, mergeProps || fresh); err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	return id, nil
}

// writeProperties replaces (or, when merge, upserts) the properties of node id.
func (s *Store) writeProperties(ctx context.Context, tx *sql.Tx, k kindInfo, id int64, n node, merge bool) error {
	if !merge {
		if _, err := tx.ExecContext(ctx, s.rebind(`DELETE FROM `+k.propTable+` WHERE `+k.fk+` = ?`), id); err != nil {
			return fmt.Errorf("metastore: clear properties: %w", err)
		}
	}
	if len(n.Properties)+len(n.CustomProperties) == 0 {
		return nil
	}
	q := `INSERT INTO ` + k.propTable + ` (` + k.fk + `, name, is_custom, int_value, double_value, string_value, bool_value, struct_value, proto_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	if merge {
		q += ` ON CONFLICT (` + k.fk + `, name, is_custom) DO UPDATE SET int_value = excluded.int_value, double_value = excluded.double_value, string_value = excluded.string_value, bool_value = excluded.bool_value, struct_value = excluded.struct_value, proto_value = excluded.proto_value`
	}
	stmt, err := tx.PrepareContext(ctx, s.rebind(q))
	if err != nil {
		return fmt.Errorf("metastore: write properties: %w", err)
	}
	defer stmt.Close()
	for _, custom := range []bool{false, true} {
		props := n.Properties
		if custom {
			props = n.CustomProperties
		}
		for _, name := range mlmd.SortedKeys(props) {
			v := props[name]
			if merge && custom && name == metadatav1.NamespaceProperty {
				// set once: a node keeps the namespace it was first recorded in
				if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO `+k.propTable+` (`+k.fk+`, name, is_custom, string_value) VALUES (?, ?, ?, ?) ON CONFLICT (`+k.fk+`, name, is_custom) DO NOTHING`),
					id, name, custom, v.StringValue); err != nil {
					return fmt.Errorf("metastore: write property %s: %w", name, s.classify(err))
				}
				continue
			}
			structV, protoV := encodedValues(v)
			if _, err := stmt.ExecContext(ctx, id, name, custom, v.IntValue, v.DoubleValue, v.StringValue, v.BoolValue, structV, protoV); err != nil {
				return fmt.Errorf("metastore: write property %s: %w", name, s.classify(err))
			}
		}
	}
	return nil
}

func (s *Store) putNodes(ctx context.Context, k kindInfo, nodes []node) ([]int64, error) {
	ids := make([]int64, len(nodes))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		types := s.newTypeCache(tx)
		for i, n := range nodes {
			id, err := s.putNode(ctx, tx, types, k, fmt.Sprintf("%s[%d]", k.list, i), n, insertOnly)
			if err != nil {
				return err
			}
			ids[i] = id
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// PutArtifacts implements mlmd.Repo.
func (s *Store) PutArtifacts(ctx context.Context, artifacts []mlmd.Artifact) ([]int64, error) {
	nodes := make([]node, len(artifacts))
	for i, a := range artifacts {
		n, err := artifactNode(fmt.Sprintf("artifacts[%d]", i), a)
		if err != nil {
			return nil, err
		}
		nodes[i] = n
	}
	return s.putNodes(ctx, artifactKind, nodes)
}

// PutExecutions implements mlmd.Repo.
func (s *Store) PutExecutions(ctx context.Context, executions []mlmd.Execution) ([]int64, error) {
	nodes := make([]node, len(executions))
	for i, e := range executions {
		n, err := executionNode(fmt.Sprintf("executions[%d]", i), e)
		if err != nil {
			return nil, err
		}
		nodes[i] = n
	}
	return s.putNodes(ctx, executionKind, nodes)
}

// PutContexts implements mlmd.Repo.
func (s *Store) PutContexts(ctx context.Context, contexts []mlmd.Context) ([]int64, error) {
	nodes := make([]node, len(contexts))
	for i, c := range contexts {
		n, err := contextNode(fmt.Sprintf("contexts[%d]", i), c)
		if err != nil {
			return nil, err
		}
		nodes[i] = n
	}
	return s.putNodes(ctx, contextKind, nodes)
}

// selectNodes runs a node query (columns from nodeColumns) and loads the properties.
func (s *Store) selectNodes(ctx context.Context, k kindInfo, where string, tail string, args ...any) ([]node, error) {
	cols := `n.id, n.type_id, t.name, n.name, n.external_id, n.create_time_ms, n.last_update_time_ms`
	if k == artifactKind {
		cols += `, n.uri`
	} else {
		cols += `, ''`
	}
	if k.stateCol != "" {
		cols += `, n.` + k.stateCol
	} else {
		cols += `, 0`
	}
	q := `SELECT ` + cols + ` FROM ` + k.table + ` n JOIN mlmd_type t ON t.id = n.type_id`
	if where != "" {
		q += ` WHERE ` + where
	}
	q += ` ` + tail
	rows, err := s.r.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: list %s: %w", k.list, err)
	}
	var out []node
	for rows.Next() {
		var n node
		var name, ext sql.NullString
		if err := rows.Scan(&n.ID, &n.TypeID, &n.Type, &name, &ext, &n.Create, &n.Update, &n.URI, &n.State); err != nil {
			rows.Close()
			return nil, fmt.Errorf("metastore: scan %s: %w", k.table, err)
		}
		n.Name, n.ExternalID = name.String, ext.String
		out = append(out, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list %s: %w", k.list, err)
	}
	if err := s.loadProperties(ctx, k, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) loadProperties(ctx context.Context, k kindInfo, nodes []node) error {
	if len(nodes) == 0 {
		return nil
	}
	index := make(map[int64]int, len(nodes))
	ids := make([]int64, len(nodes))
	for i, n := range nodes {
		index[n.ID] = i
		ids[i] = n.ID
	}
	for _, c := range chunk(ids, 500) {
		rows, err := s.r.QueryContext(ctx, s.rebind(`SELECT `+k.fk+`, name, is_custom, int_value, double_value, string_value, bool_value, struct_value, proto_value FROM `+k.propTable+` WHERE `+k.fk+` IN (`+placeholders(len(c))+`)`), int64Args(c)...)
		if err != nil {
			return fmt.Errorf("metastore: load properties: %w", err)
		}
		for rows.Next() {
			var id int64
			var name string
			var custom bool
			var iv sql.NullInt64
			var dv sql.NullFloat64
			var sv, stv, pv sql.NullString
			var bv sql.NullBool
			if err := rows.Scan(&id, &name, &custom, &iv, &dv, &sv, &bv, &stv, &pv); err != nil {
				rows.Close()
				return fmt.Errorf("metastore: scan property: %w", err)
			}
			var v mlmd.Value
			switch {
			case iv.Valid:
				v.IntValue = &iv.Int64
			case dv.Valid:
				v.DoubleValue = &dv.Float64
			case sv.Valid:
				v.StringValue = &sv.String
			case bv.Valid:
				v.BoolValue = &bv.Bool
			case stv.Valid:
				v.StructValue = json.RawMessage(stv.String)
			case pv.Valid:
				var p metadatav1.ProtoAny
				if err := json.Unmarshal([]byte(pv.String), &p); err == nil {
					v.ProtoValue = &p
				}
			}
			n := &nodes[index[id]]
			m := &n.Properties
			if custom {
				m = &n.CustomProperties
			}
			if *m == nil {
				*m = map[string]mlmd.Value{}
			}
			(*m)[name] = v
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("metastore: load properties: %w", err)
		}
	}
	return nil
}

func (s *Store) nodesByID(ctx context.Context, k kindInfo, ids []int64) ([]node, error) {
	var out []node
	for _, c := range chunk(ids, 500) {
		ns, err := s.selectNodes(ctx, k, `n.id IN (`+placeholders(len(c))+`)`, `ORDER BY n.id`, int64Args(c)...)
		if err != nil {
			return nil, err
		}
		out = append(out, ns...)
	}
	return out, nil
}

// GetArtifactsByID implements mlmd.Repo.
func (s *Store) GetArtifactsByID(ctx context.Context, ids []int64) ([]mlmd.Artifact, error) {
	ns, err := s.nodesByID(ctx, artifactKind, ids)
	return mapNodes(ns, node.artifact), err
}

// GetExecutionsByID implements mlmd.Repo.
func (s *Store) GetExecutionsByID(ctx context.Context, ids []int64) ([]mlmd.Execution, error) {
	ns, err := s.nodesByID(ctx, executionKind, ids)
	return mapNodes(ns, node.execution), err
}

// GetContextsByID implements mlmd.Repo.
func (s *Store) GetContextsByID(ctx context.Context, ids []int64) ([]mlmd.Context, error) {
	ns, err := s.nodesByID(ctx, contextKind, ids)
	return mapNodes(ns, node.context), err
}

func mapNodes[T any](ns []node, f func(node) T) []T {
	out := make([]T, len(ns))
	for i, n := range ns {
		out[i] = f(n)
	}
	return out
}

// listNodes pages through nodes of kind k matching req.
func (s *Store) listNodes(ctx context.Context, k kindInfo, req mlmd.ListRequest) ([]node, string, error) {
	size, err := mlmd.PageSize(req.PageSize)
	if err != nil {
		return nil, "", err
	}
	after, err := mlmd.DecodePageToken(k.list, req.Filter, req.PageToken)
	if err != nil {
		return nil, "", err
	}
	where, args, err := s.filterSQL(k, req.Filter)
	if err != nil {
		return nil, "", err
	}
	where = append(where, "n.id > ?")
	args = append(args, after)
	ns, err := s.selectNodes(ctx, k, strings.Join(where, " AND "), fmt.Sprintf("ORDER BY n.id LIMIT %d", size+1), args...)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(ns) > size {
		ns = ns[:size]
		next = mlmd.EncodePageToken(k.list, req.Filter, ns[size-1].ID)
	}
	return ns, next, nil
}

var propertyColumns = map[metadatav1.PropertyType]string{
	metadatav1.PropertyInt:    "int_value",
	metadatav1.PropertyDouble: "double_value",
	metadatav1.PropertyString: "string_value",
	metadatav1.PropertyBool:   "bool_value",
}

// filterSQL renders f as AND-ed conditions on alias n (node) and t (type).
func (s *Store) filterSQL(k kindInfo, f mlmd.Filter) ([]string, []any, error) {
	var where []string
	var args []any
	if f.TypeName != "" {
		where, args = append(where, "t.name = ?"), append(args, f.TypeName)
	}
	if f.Name != "" {
		where, args = append(where, "n.name = ?"), append(args, f.Name)
	}
	if f.ExternalID != "" {
		where, args = append(where, "n.external_id = ?"), append(args, f.ExternalID)
	}
	if f.URI != "" {
		if k != artifactKind {
			return nil, nil, mlmd.Invalid("uri", "only artifacts have a uri")
		}
		where, args = append(where, "n.uri = ?"), append(args, f.URI)
	}
	if f.ContextID != 0 {
		switch k {
		case artifactKind:
			where = append(where, "n.id IN (SELECT artifact_id FROM attribution WHERE context_id = ?)")
		case executionKind:
			where = append(where, "n.id IN (SELECT execution_id FROM association WHERE context_id = ?)")
		default:
			where = append(where, "n.id IN (SELECT child_id FROM parent_context WHERE parent_id = ?)")
		}
		args = append(args, f.ContextID)
	}
	if len(f.States) > 0 {
		if k.stateCol == "" {
			return nil, nil, mlmd.Invalid("state", "contexts have no state")
		}
		codes := make([]any, len(f.States))
		for i, st := range f.States {
			var c int
			var err error
			if k == artifactKind {
				c, err = mlmd.ArtifactStateCode(fmt.Sprintf("state[%d]", i), metadatav1.ArtifactState(st))
			} else {
				c, err = mlmd.ExecutionStateCode(fmt.Sprintf("state[%d]", i), metadatav1.ExecutionState(st))
			}
			if err != nil {
				return nil, nil, err
			}
			codes[i] = c
		}
		where, args = append(where, "n."+k.stateCol+" IN ("+placeholders(len(codes))+")"), append(args, codes...)
	}
	for i, p := range f.Properties {
		field := fmt.Sprintf("filter[%d]", i)
		pt, err := p.Value.Type()
		if err != nil {
			return nil, nil, mlmd.Invalid(field, "%v", err)
		}
		col, ok := propertyColumns[pt]
		if !ok {
			return nil, nil, mlmd.Invalid(field, "%s values cannot be compared", pt)
		}
		switch p.Op {
		case mlmd.OpEq, mlmd.OpNe, mlmd.OpLt, mlmd.OpLe, mlmd.OpGt, mlmd.OpGe:
		default:
			return nil, nil, mlmd.Invalid(field, "unknown operator %q", p.Op)
		}
		if pt == metadatav1.PropertyBool && p.Op != mlmd.OpEq && p.Op != mlmd.OpNe {
			return nil, nil, mlmd.Invalid(field, "bool values support only = and !=")
		}
		var v any
		switch pt {
		case metadatav1.PropertyInt:
			v = *p.Value.IntValue
		case metadatav1.PropertyDouble:
			v = *p.Value.DoubleValue
		case metadatav1.PropertyString:
			v = *p.Value.StringValue
		case metadatav1.PropertyBool:
			v = *p.Value.BoolValue
		}
		where = append(where, "EXISTS (SELECT 1 FROM "+k.propTable+" p WHERE p."+k.fk+" = n.id AND p.name = ? AND p.is_custom = ? AND p."+col+" "+string(p.Op)+" ?)")
		args = append(args, p.Name, p.Custom, v)
	}
	if f.InNamespaces {
		w, a := namespaceSQL(k, f.Namespaces)
		where, args = append(where, w), append(args, a...)
	}
	return where, args, nil
}

// namespaceSQL keeps the nodes (alias n) of kind k in one of namespaces; a node without the namespace
// property is in metadatav1.DefaultNamespace.
func namespaceSQL(k kindInfo, namespaces []string) (string, []any) {
	if len(namespaces) == 0 {
		return "1 = 0", nil
	}
	args := []any{metadatav1.NamespaceProperty, true}
	for _, ns := range namespaces {
		args = append(args, ns)
	}
	w := "(EXISTS (SELECT 1 FROM " + k.propTable + " p WHERE p." + k.fk + " = n.id AND p.name = ? AND p.is_custom = ? AND p.string_value IN (" + placeholders(len(namespaces)) + "))"
	if slices.Contains(namespaces, metadatav1.DefaultNamespace) {
		w += " OR NOT EXISTS (SELECT 1 FROM " + k.propTable + " p WHERE p." + k.fk + " = n.id AND p.name = ? AND p.is_custom = ?)"
		args = append(args, metadatav1.NamespaceProperty, true)
	}
	return w + ")", args
}

// ListArtifacts implements mlmd.Repo.
func (s *Store) ListArtifacts(ctx context.Context, req mlmd.ListRequest) (mlmd.Page[mlmd.Artifact], error) {
	ns, next, err := s.listNodes(ctx, artifactKind, req)
	return mlmd.Page[mlmd.Artifact]{Items: mapNodes(ns, node.artifact), NextPageToken: next}, err
}

// ListExecutions implements mlmd.Repo.
func (s *Store) ListExecutions(ctx context.Context, req mlmd.ListRequest) (mlmd.Page[mlmd.Execution], error) {
	ns, next, err := s.listNodes(ctx, executionKind, req)
	return mlmd.Page[mlmd.Execution]{Items: mapNodes(ns, node.execution), NextPageToken: next}, err
}

// ListContexts implements mlmd.Repo.
func (s *Store) ListContexts(ctx context.Context, req mlmd.ListRequest) (mlmd.Page[mlmd.Context], error) {
	ns, next, err := s.listNodes(ctx, contextKind, req)
	return mlmd.Page[mlmd.Context]{Items: mapNodes(ns, node.context), NextPageToken: next}, err
}

// GetExecutionByFingerprint implements mlmd.Repo.
func (s *Store) GetExecutionByFingerprint(ctx context.Context, q mlmd.CacheQuery) (mlmd.Execution, error) {
	if q.Fingerprint == "" {
		return mlmd.Execution{}, mlmd.Invalid("fingerprint", "must not be empty")
	}
	complete, _ := mlmd.ExecutionStateCode("", metadatav1.ExecutionComplete)
	where := `n.last_known_state = ? AND n.id IN (SELECT execution_id FROM execution_property WHERE name = ? AND is_custom = ? AND string_value = ?)`
	args := []any{complete, metadatav1.CacheFingerprintProperty, true, q.Fingerprint}
	if q.PipelineName != "" {
		where += ` AND n.id IN (SELECT a.execution_id FROM association a JOIN context c ON c.id = a.context_id JOIN mlmd_type ct ON ct.id = c.type_id WHERE ct.name = 'system.Pipeline' AND c.name = ?)`
		args = append(args, q.PipelineName)
	}
	if q.Namespace != "" {
		w, a := namespaceSQL(executionKind, []string{q.Namespace})
		where += " AND " + w
		args = append(args, a...)
	}
	ns, err := s.selectNodes(ctx, executionKind, where, `ORDER BY n.create_time_ms DESC, n.id DESC LIMIT 1`, args...)
	if err != nil {
		return mlmd.Execution{}, err
	}
	if len(ns) == 0 {
		return mlmd.Execution{}, fmt.Errorf("%w: no COMPLETE execution with cache fingerprint %q", mlmd.ErrNotFound, q.Fingerprint)
	}
	return ns[0].execution(), nil
}

// encodedValues returns the struct_value and proto_value columns of v (JSON text or NULL).
func encodedValues(v mlmd.Value) (structV, protoV any) {
	if v.StructValue != nil {
		structV = string(v.StructValue)
	}
	if v.ProtoValue != nil {
		b, _ := json.Marshal(v.ProtoValue)
		protoV = string(b)
	}
	return structV, protoV
}
