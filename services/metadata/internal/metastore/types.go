package metastore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
	"github.com/sluice-ml/sluice/services/metadata/internal/mlmd"
)

var typeKinds = []metadatav1.TypeKind{"", metadatav1.ArtifactKind, metadatav1.ExecutionKind, metadatav1.ContextKind}

func kindCode(field string, k metadatav1.TypeKind) (int, error) {
	if i := slices.Index(typeKinds, k); i > 0 {
		return i, nil
	}
	return 0, mlmd.Invalid(field, "must be ARTIFACT, EXECUTION or CONTEXT, got %q", k)
}

// typeInfo is a resolved type: its kind and declared properties.
type typeInfo struct {
	id    int64
	kind  metadatav1.TypeKind
	name  string
	props map[string]metadatav1.PropertyType
}

// typeCache resolves types within one transaction.
type typeCache struct {
	s      *Store
	q      queryer
	byID   map[int64]*typeInfo
	byName map[string]*typeInfo // kind + "\x00" + name (version "")
}

func (s *Store) newTypeCache(q queryer) *typeCache {
	return &typeCache{s: s, q: q, byID: map[int64]*typeInfo{}, byName: map[string]*typeInfo{}}
}

func (c *typeCache) load(ctx context.Context, id int64) (*typeInfo, error) {
	if t, ok := c.byID[id]; ok {
		return t, nil
	}
	t := &typeInfo{id: id, props: map[string]metadatav1.PropertyType{}}
	var kind int
	err := c.q.QueryRowContext(ctx, c.s.rebind(`SELECT kind, name FROM mlmd_type WHERE id = ?`), id).Scan(&kind, &t.name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("metastore: load type %d: %w", id, err)
	}
	t.kind = typeKinds[kind]
	rows, err := c.q.QueryContext(ctx, c.s.rebind(`SELECT name, data_type FROM type_property WHERE type_id = ?`), id)
	if err != nil {
		return nil, fmt.Errorf("metastore: load type %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var n, dt string
		if err := rows.Scan(&n, &dt); err != nil {
			return nil, err
		}
		t.props[n] = metadatav1.PropertyType(dt)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	c.byID[id] = t
	return t, nil
}

// resolve finds the type of a node by id or by name (version ""), registering a type named by
// name on first use. field is the node's path for errors.
func (c *typeCache) resolve(ctx context.Context, field string, kind metadatav1.TypeKind, id int64, name string) (*typeInfo, error) {
	if id != 0 {
		t, err := c.load(ctx, id)
		if err != nil {
			return nil, err
		}
		if t == nil || t.kind != kind {
			return nil, mlmd.Invalid(field+".type_id", "no %s type with id %d", kind, id)
		}
		if name != "" && name != t.name {
			return nil, mlmd.Invalid(field+".type", "type_id %d is %q, not %q", id, t.name, name)
		}
		return t, nil
	}
	if name == "" {
		return nil, mlmd.Invalid(field, "one of type_id and type must be set")
	}
	key := string(kind) + "\x00" + name
	if t, ok := c.byName[key]; ok {
		return t, nil
	}
	code, _ := kindCode("", kind)
	if _, err := c.q.ExecContext(ctx, c.s.rebind(`INSERT INTO mlmd_type (kind, name, version) VALUES (?, ?, '') ON CONFLICT (kind, name, version) DO NOTHING`), code, name); err != nil {
		return nil, fmt.Errorf("metastore: register type %q: %w", name, c.s.classify(err))
	}
	var tid int64
	if err := c.q.QueryRowContext(ctx, c.s.rebind(`SELECT id FROM mlmd_type WHERE kind = ? AND name = ? AND version = ''`), code, name).Scan(&tid); err != nil {
		return nil, fmt.Errorf("metastore: resolve type %q: %w", name, err)
	}
	t, err := c.load(ctx, tid)
	if err != nil {
		return nil, err
	}
	c.byName[key] = t
	return t, nil
}

// checkProperties verifies declared properties against the type.
func (t *typeInfo) checkProperties(field string, props map[string]mlmd.Value) error {
	for _, name := range mlmd.SortedKeys(props) {
		want, ok := t.props[name]
		if !ok {
			return mlmd.Invalid(field+".properties."+name, "not declared by type %q (use custom_properties)", t.name)
		}
		got, _ := props[name].Type()
		if got != want {
			return mlmd.Invalid(field+".properties."+name, "type %q declares %s, got %s", t.name, want, got)
		}
	}
	return nil
}

// PutTypes implements mlmd.Repo.
func (s *Store) PutTypes(ctx context.Context, types []mlmd.Type) ([]int64, error) {
	for i, t := range types {
		f := fmt.Sprintf("types[%d]", i)
		if _, err := kindCode(f+".kind", t.Kind); err != nil {
			return nil, err
		}
		if t.Name == "" {
			return nil, mlmd.Invalid(f+".name", "must not be empty")
		}
		for _, pn := range mlmd.SortedKeys(t.Properties) {
			if !t.Properties[pn].Valid() {
				return nil, mlmd.Invalid(f+".properties."+pn, "unknown property type %q", t.Properties[pn])
			}
		}
	}
	ids := make([]int64, len(types))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for i, t := range types {
			f := fmt.Sprintf("types[%d]", i)
			code, _ := kindCode("", t.Kind)
			var id int64
			err := tx.QueryRowContext(ctx, s.rebind(`SELECT id FROM mlmd_type WHERE kind = ? AND name = ? AND version = ?`), code, t.Name, t.Version).Scan(&id)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				err = tx.QueryRowContext(ctx, s.rebind(`INSERT INTO mlmd_type (kind, name, version, description, external_id, base_type) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`),
					code, t.Name, t.Version, t.Description, nullString(t.ExternalID), t.BaseType).Scan(&id)
				if err != nil {
					return fmt.Errorf("%s: %w", f, s.classify(err))
				}
			case err != nil:
				return fmt.Errorf("metastore: %s: %w", f, err)
			default:
				if _, err := tx.ExecContext(ctx, s.rebind(`UPDATE mlmd_type SET description = CASE WHEN ? = '' THEN description ELSE ? END, base_type = CASE WHEN ? = '' THEN base_type ELSE ? END WHERE id = ?`),
					t.Description, t.Description, t.BaseType, t.BaseType, id); err != nil {
					return fmt.Errorf("metastore: %s: %w", f, err)
				}
			}
			existing, err := s.newTypeCache(tx).load(ctx, id)
			if err != nil {
				return err
			}
			for _, pn := range mlmd.SortedKeys(t.Properties) {
				pt := t.Properties[pn]
				if old, ok := existing.props[pn]; ok {
					if old != pt {
						return fmt.Errorf("%w: %s.properties.%s: type %q already declares it as %s", mlmd.ErrAlreadyExists, f, pn, t.Name, old)
					}
					continue
				}
				if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO type_property (type_id, name, data_type) VALUES (?, ?, ?)`), id, pn, string(pt)); err != nil {
					return fmt.Errorf("%s.properties.%s: %w", f, pn, s.classify(err))
				}
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

// GetTypes implements mlmd.Repo.
func (s *Store) GetTypes(ctx context.Context, kind metadatav1.TypeKind) ([]mlmd.Type, error) {
	code, err := kindCode("kind", kind)
	if err != nil {
		return nil, err
	}
	return s.queryTypes(ctx, `WHERE kind = ?`, code)
}

// GetTypesByID implements mlmd.Repo.
func (s *Store) GetTypesByID(ctx context.Context, ids []int64) ([]mlmd.Type, error) {
	var out []mlmd.Type
	for _, c := range chunk(ids, 500) {
		ts, err := s.queryTypes(ctx, `WHERE id IN (`+placeholders(len(c))+`)`, int64Args(c)...)
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
	}
	return out, nil
}

func (s *Store) queryTypes(ctx context.Context, where string, args ...any) ([]mlmd.Type, error) {
	rows, err := s.r.QueryContext(ctx, s.rebind(`SELECT id, kind, name, version, description, external_id, base_type FROM mlmd_type `+where+` ORDER BY id`), args...)
	if err != nil {
		return nil, fmt.Errorf("metastore: types: %w", err)
	}
	var out []mlmd.Type
	index := map[int64]int{}
	for rows.Next() {
		var t mlmd.Type
		var kind int
		var ext sql.NullString
		if err := rows.Scan(&t.ID, &kind, &t.Name, &t.Version, &t.Description, &ext, &t.BaseType); err != nil {
			rows.Close()
			return nil, err
		}
		t.Kind = typeKinds[kind]
		t.ExternalID = ext.String
		index[t.ID] = len(out)
		out = append(out, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	ids := make([]int64, 0, len(out))
	for _, t := range out {
		ids = append(ids, t.ID)
	}
	for _, c := range chunk(ids, 500) {
		prow, err := s.r.QueryContext(ctx, s.rebind(`SELECT type_id, name, data_type FROM type_property WHERE type_id IN (`+placeholders(len(c))+`)`), int64Args(c)...)
		if err != nil {
			return nil, fmt.Errorf("metastore: type properties: %w", err)
		}
		for prow.Next() {
			var id int64
			var n, dt string
			if err := prow.Scan(&id, &n, &dt); err != nil {
				prow.Close()
				return nil, err
			}
			t := &out[index[id]]
			if t.Properties == nil {
				t.Properties = map[string]metadatav1.PropertyType{}
			}
			t.Properties[n] = metadatav1.PropertyType(dt)
		}
		prow.Close()
		if err := prow.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
