package notebooksv1

import (
	"encoding/json"
	"reflect"
	"strings"
)

// Fields are JSON object members kept as given: the Kubernetes fields of a pod spec or container that the
// typed structs do not name.
type Fields map[string]json.RawMessage

// MarshalJSON writes the typed fields and Extra as one object (a typed field wins over an Extra member of
// the same name).
func (p PodSpec) MarshalJSON() ([]byte, error) {
	type plain PodSpec
	return inline(plain(p), p.Extra)
}

// UnmarshalJSON reads the typed fields and keeps the others in Extra.
func (p *PodSpec) UnmarshalJSON(b []byte) error {
	type plain PodSpec
	v, extra, err := withRest[plain](b)
	if err != nil {
		return err
	}
	*p = PodSpec(v)
	p.Extra = extra
	return nil
}

// MarshalJSON writes the typed fields and Extra as one object.
func (c Container) MarshalJSON() ([]byte, error) {
	type plain Container
	return inline(plain(c), c.Extra)
}

// UnmarshalJSON reads the typed fields and keeps the others in Extra.
func (c *Container) UnmarshalJSON(b []byte) error {
	type plain Container
	v, extra, err := withRest[plain](b)
	if err != nil {
		return err
	}
	*c = Container(v)
	c.Extra = extra
	return nil
}

func inline(v any, extra Fields) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, raw := range extra {
		if _, typed := m[k]; !typed {
			m[k] = raw
		}
	}
	return json.Marshal(m)
}

// withRest decodes b into a T and returns the members of b that T's fields do not name.
func withRest[T any](b []byte) (T, Fields, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return v, nil, err
	}
	extra, err := rest(b, reflect.TypeFor[T]())
	return v, extra, err
}

// rest returns the members of the JSON object b that t's fields do not name (nil when none).
func rest(b []byte, t reflect.Type) (Fields, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			delete(m, name)
		}
	}
	if len(m) == 0 {
		return nil, nil
	}
	return Fields(m), nil
}
