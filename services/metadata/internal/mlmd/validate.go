package mlmd

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"

	"github.com/sluice-ml/sluice/services/metadata/api/metadatav1"
)

// ArtifactStateCode returns the stored code of s ("" = UNKNOWN) or an error naming field.
func ArtifactStateCode(field string, s metadatav1.ArtifactState) (int, error) {
	if s == "" {
		return 0, nil
	}
	if i := slices.Index(metadatav1.ArtifactStates, s); i >= 0 {
		return i, nil
	}
	return 0, invalid(field, "unknown artifact state %q", s)
}

// ExecutionStateCode returns the stored code of s ("" = UNKNOWN) or an error naming field.
func ExecutionStateCode(field string, s metadatav1.ExecutionState) (int, error) {
	if s == "" {
		return 0, nil
	}
	if i := slices.Index(metadatav1.ExecutionStates, s); i >= 0 {
		return i, nil
	}
	return 0, invalid(field, "unknown execution state %q", s)
}

// EventTypeCode returns the stored code of t or an error naming field; UNKNOWN and "" are
// rejected because an event must say how the artifact was used.
func EventTypeCode(field string, t metadatav1.EventType) (int, error) {
	i := slices.Index(metadatav1.EventTypes, t)
	if i <= 0 {
		return 0, invalid(field, "must be one of INPUT, OUTPUT, DECLARED_INPUT, DECLARED_OUTPUT, INTERNAL_INPUT, INTERNAL_OUTPUT, PENDING_OUTPUT, got %q", t)
	}
	return i, nil
}

// ValidateProperties checks that each value has exactly one field set and that struct values
// are JSON objects.
func ValidateProperties(field string, props map[string]Value) error {
	for _, name := range sortedKeys(props) {
		v := props[name]
		if name == "" {
			return invalid(field, "property name must not be empty")
		}
		t, err := v.Type()
		if err != nil {
			return invalid(field+"."+name, "%v", err)
		}
		if t == metadatav1.PropertyStruct {
			var obj map[string]any
			if err := json.Unmarshal(v.StructValue, &obj); err != nil || obj == nil {
				return invalid(field+"."+name+".struct_value", "must be a JSON object")
			}
		}
	}
	return nil
}

// ValidatePath checks that every step has exactly one of key and index.
func ValidatePath(field string, p *metadatav1.EventPath) error {
	if p == nil {
		return nil
	}
	for i, s := range p.Steps {
		if (s.Key == nil) == (s.Index == nil) {
			return invalid(fmt.Sprintf("%s.steps[%d]", field, i), "exactly one of key and index must be set")
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SortedKeys returns the keys of m in ascending order (deterministic error reporting).
func SortedKeys[V any](m map[string]V) []string { return sortedKeys(m) }

// PageSize normalises a requested page size: 0 → DefaultPageSize, capped at MaxPageSize.
func PageSize(n int) (int, error) {
	switch {
	case n < 0:
		return 0, invalid("page_size", "must be >= 0, got %d", n)
	case n == 0:
		return DefaultPageSize, nil
	case n > MaxPageSize:
		return MaxPageSize, nil
	}
	return n, nil
}

// filterHash fingerprints a filter so a token cannot be replayed against another query.
func filterHash(kind string, f Filter) uint32 {
	h := fnv.New32a()
	b, _ := json.Marshal(struct {
		K string
		F Filter
	}{kind, f})
	h.Write(b)
	return h.Sum32()
}

// EncodePageToken returns the opaque token for the page after lastID of a list of kind.
func EncodePageToken(kind string, f Filter, lastID int64) string {
	var buf [12]byte
	binary.BigEndian.PutUint32(buf[:4], filterHash(kind, f))
	binary.BigEndian.PutUint64(buf[4:], uint64(lastID))
	return base64.RawURLEncoding.EncodeToString(buf[:])
}

// DecodePageToken returns the id after which the next page starts ("" → 0).
func DecodePageToken(kind string, f Filter, token string) (int64, error) {
	if token == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(token))
	if err != nil || len(b) != 12 {
		return 0, invalid("page_token", "malformed token")
	}
	if binary.BigEndian.Uint32(b[:4]) != filterHash(kind, f) {
		return 0, invalid("page_token", "token belongs to a different query")
	}
	return int64(binary.BigEndian.Uint64(b[4:])), nil
}
