package platform

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// MaxBodyBytes is the default request body limit of API routes (8 MiB).
const MaxBodyBytes = 8 << 20

// Decoding errors. Each is wrapped with the detail (the field path, the limit).
var (
	// ErrUnknownField: the document has a field the API does not define.
	ErrUnknownField = errors.New("unknown field")
	// ErrBodyTooLarge: the body is longer than the route's limit (answer 413).
	ErrBodyTooLarge = errors.New("request body too large")
	// ErrMalformed: the body is not JSON/YAML of the expected shape.
	ErrMalformed = errors.New("malformed document")
	// ErrBadPageToken: a page_token that this server did not issue.
	ErrBadPageToken = errors.New("page_token: malformed")
)

// ReadBody reads r's body up to limit bytes; a longer body fails with ErrBodyTooLarge naming the limit.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, fmt.Errorf("%w: the limit is %d bytes", ErrBodyTooLarge, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read body: %v", ErrMalformed, err)
	}
	return b, nil
}

// DecodeJSON reads r's body (at most limit bytes) strictly into v: see [StrictJSON].
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	b, err := ReadBody(w, r, limit)
	if err != nil {
		return err
	}
	return StrictJSON(b, v)
}

// StrictJSON decodes one JSON document into v. A field v does not define fails with ErrUnknownField
// naming its path ("spec.bogus_field", "items[2].name"); a value of the wrong type or trailing data fail
// with ErrMalformed naming the path.
func StrictJSON(b []byte, v any) error { return StrictJSONKeeping(b, v) }

// StrictJSONKeeping is [StrictJSON] for Kubernetes-shaped documents: unknown fields under one of the keep
// paths pass (e.g. "metadata", "spec.tfReplicaSpecs.*.template" for the pod templates Sluice does not
// model). A keep path matches a field path segment by segment, "*" matching any one segment (a map key
// such as a replica type); array indices are dropped first, so "containers.x" keeps "containers[3].x".
func StrictJSONKeeping(b []byte, v any, keep ...string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: data after the document", ErrMalformed)
	}
	unknown := UnknownFields(doc, reflect.TypeOf(v))
	if len(keep) > 0 {
		unknown = slices.DeleteFunc(unknown, func(p string) bool {
			for _, k := range keep {
				if keptBy(p, k) {
					return true
				}
			}
			return false
		})
	}
	if len(unknown) > 0 {
		return fmt.Errorf("%w %q (at %s)", ErrUnknownField, lastName(unknown[0]), strings.Join(unknown, ", "))
	}
	if err := json.Unmarshal(b, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("%w: %s: %s is not a %s", ErrMalformed, te.Field, te.Value, te.Type)
		}
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// keptBy reports whether path lies under the keep pattern.
func keptBy(path, pattern string) bool {
	ps := strings.Split(indexRE.ReplaceAllString(path, ""), ".")
	ks := strings.Split(pattern, ".")
	if len(ps) < len(ks) {
		return false
	}
	for i, k := range ks {
		if k != "*" && k != ps[i] {
			return false
		}
	}
	return true
}

var indexRE = regexp.MustCompile(`\[[0-9]+\]`)

// StrictYAMLKeeping is [StrictJSONKeeping] for a YAML (or JSON) document.
func StrictYAMLKeeping(b []byte, v any, keep ...string) error {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return StrictJSONKeeping(j, v, keep...)
}

// StrictYAML decodes a YAML (or JSON) document into v with the rules of [StrictJSON].
func StrictYAML(b []byte, v any) error {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return StrictJSON(j, v)
}

func lastName(path string) string {
	if i := strings.LastIndexAny(path, ".]"); i >= 0 && path[i] == '.' {
		return path[i+1:]
	}
	return path
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// UnknownFields returns the paths of fields of doc (a decoded JSON value) that type t does not define,
// sorted. Types with their own UnmarshalJSON and maps of any are not looked into.
func UnknownFields(doc any, t reflect.Type) []string {
	var out []string
	walkUnknown(doc, t, "", &out)
	sort.Strings(out)
	return out
}

func walkUnknown(doc any, t reflect.Type, path string, out *[]string) {
	if t == nil {
		return
	}
	for t.Kind() == reflect.Pointer {
		if t.Implements(jsonUnmarshaler) || t.Implements(textUnmarshaler) {
			return
		}
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return
	}
	switch d := doc.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Map:
			for k, v := range d {
				walkUnknown(v, t.Elem(), join(path, k), out)
			}
		case reflect.Struct:
			fields := jsonFields(t)
			for k, v := range d {
				f, ok := fields[k]
				if !ok {
					f, ok = fields[strings.ToLower(k)]
				}
				if !ok {
					*out = append(*out, join(path, k))
					continue
				}
				walkUnknown(v, f, join(path, k), out)
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, v := range d {
				walkUnknown(v, t.Elem(), path+"["+strconv.Itoa(i)+"]", out)
			}
		}
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// jsonFields maps the JSON names of t's fields (and their lower-case forms, as encoding/json matches
// case-insensitively) to their types, following embedded structs.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		_ = opts
		ft := f.Type
		if f.Anonymous && name == "" {
			et := ft
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for k, v := range jsonFields(et) {
					if _, ok := out[k]; !ok {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = ft
		if _, ok := out[strings.ToLower(name)]; !ok {
			out[strings.ToLower(name)] = ft
		}
	}
	return out
}

// WriteDecodeError answers a decoding error of operation op: 413 for ErrBodyTooLarge, 400 otherwise,
// the message naming the operation and the field.
func WriteDecodeError(w http.ResponseWriter, op string, err error) {
	code := http.StatusBadRequest
	if errors.Is(err, ErrBodyTooLarge) {
		code = http.StatusRequestEntityTooLarge
	}
	WriteError(w, code, fmt.Errorf("%s: %w", op, err))
}

// EncodePageToken turns a server's position (any JSON value) into an opaque page_token.
func EncodePageToken(pos any) (string, error) {
	b, err := json.Marshal(pos)
	if err != nil {
		return "", err
	}
	return "p1." + base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodePageToken reads a page_token made by EncodePageToken into pos; anything else fails at once with
// ErrBadPageToken (answer 400, never pass it on to a backend).
func DecodePageToken(tok string, pos any) error {
	rest, ok := strings.CutPrefix(tok, "p1.")
	if !ok {
		return fmt.Errorf("%w: not a token this server issued", ErrBadPageToken)
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadPageToken, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(pos); err != nil {
		return fmt.Errorf("%w: %v", ErrBadPageToken, err)
	}
	return nil
}
