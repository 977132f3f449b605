package app

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/platform"
	"github.com/sluice-ml/sluice/services/pipelines/internal/catalog"
	"github.com/sluice-ml/sluice/services/pipelines/internal/dag"
)

// Secrets and config maps of a namespace, read by the steps of its runs through kfp-kubernetes
// secretAsEnv, secretAsVolume, configMapAsEnv and configMapAsVolume (Docker runtime). The API is shaped
// as Kubernetes core/v1 (a Secret has base64 "data" and plain "stringData", a ConfigMap "data" and
// base64 "binaryData"), under /apis/v1/namespaces/{ns}/secrets and .../configmaps; the guard authorises
// the path's namespace (platform.Rules). A secret's values are only returned by a get (contributors);
// its list shows names and keys. Values are never logged, and stored encrypted (AES-256-GCM, key from
// SLUICE_PIPELINES_OBJECTS_KEY or <data dir>/pipelines/objects.key, made on first start).

// ObjectMeta is the metadata of a secret or config map (Kubernetes ObjectMeta, the fields Sluice keeps).
type ObjectMeta struct {
	Name              string     `json:"name"`
	Namespace         string     `json:"namespace,omitempty"`
	CreationTimestamp *time.Time `json:"creationTimestamp,omitempty"`
}

// ObjectBody is a Secret or ConfigMap as the API reads and writes it. Data holds base64 values for a
// Secret and text for a ConfigMap; StringData (Secret) text values merged over Data; BinaryData
// (ConfigMap) base64 values. Keys lists the keys in a list's items, which carry no values for secrets.
type ObjectBody struct {
	APIVersion string            `json:"apiVersion,omitempty"`
	Kind       string            `json:"kind,omitempty"`
	Metadata   ObjectMeta        `json:"metadata"`
	Type       string            `json:"type,omitempty"`
	Data       map[string]string `json:"data,omitempty"`
	StringData map[string]string `json:"stringData,omitempty"`
	BinaryData map[string]string `json:"binaryData,omitempty"`
	Keys       []string          `json:"keys,omitempty"`
}

// ObjectList is the answer of a list (Kubernetes SecretList / ConfigMapList).
type ObjectList struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Items      []ObjectBody `json:"items"`
}

// maxObjectBytes bounds one object's data, as Kubernetes does (1 MiB).
const maxObjectBytes = 1 << 20

var objectKeyRe = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

func (a *App) objectRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /apis/v1/namespaces/{ns}/secrets", a.createObject(catalog.KindSecret))
	mux.HandleFunc("GET /apis/v1/namespaces/{ns}/secrets", a.listObjects(catalog.KindSecret))
	mux.HandleFunc("GET /apis/v1/namespaces/{ns}/secrets/{name}", a.getObject(catalog.KindSecret))
	mux.HandleFunc("DELETE /apis/v1/namespaces/{ns}/secrets/{name}", a.deleteObject(catalog.KindSecret))
	mux.HandleFunc("POST /apis/v1/namespaces/{ns}/configmaps", a.createObject(catalog.KindConfigMap))
	mux.HandleFunc("GET /apis/v1/namespaces/{ns}/configmaps", a.listObjects(catalog.KindConfigMap))
	mux.HandleFunc("GET /apis/v1/namespaces/{ns}/configmaps/{name}", a.getObject(catalog.KindConfigMap))
	mux.HandleFunc("DELETE /apis/v1/namespaces/{ns}/configmaps/{name}", a.deleteObject(catalog.KindConfigMap))
}

func kindName(kind string) string {
	if kind == catalog.KindSecret {
		return "Secret"
	}
	return "ConfigMap"
}

// objectData reads the values of a create body, naming each bad field.
func objectData(kind string, b ObjectBody) (map[string][]byte, []string) {
	var problems []string
	data := map[string][]byte{}
	add := func(field, k string, v []byte) {
		if len(k) > 253 || !objectKeyRe.MatchString(k) || k == "." || k == ".." {
			problems = append(problems, fmt.Sprintf("%s.%s: a key must be letters, digits, '-', '_' or '.'", field, k))
			return
		}
		data[k] = v
	}
	b64 := func(field string, m map[string]string) {
		for k, v := range m {
			raw, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s.%s: not base64: %v", field, k, err))
				continue
			}
			add(field, k, raw)
		}
	}
	if kind == catalog.KindSecret {
		b64("data", b.Data)
		for k, v := range b.StringData { // stringData wins over data, as in Kubernetes
			add("stringData", k, []byte(v))
		}
		if len(b.BinaryData) > 0 {
			problems = append(problems, "binaryData: a Secret has data (base64) and stringData")
		}
		if b.Type != "" && b.Type != "Opaque" {
			problems = append(problems, fmt.Sprintf("type: only Opaque secrets are supported, got %q", b.Type))
		}
	} else {
		for k, v := range b.Data {
			add("data", k, []byte(v))
		}
		b64("binaryData", b.BinaryData)
		if len(b.StringData) > 0 || b.Type != "" {
			problems = append(problems, "stringData, type: a ConfigMap has data and binaryData")
		}
	}
	size := 0
	for k, v := range data {
		size += len(k) + len(v)
	}
	if size > maxObjectBytes {
		problems = append(problems, fmt.Sprintf("data: %d bytes; at most %d", size, maxObjectBytes))
	}
	return data, problems
}

// objectNS is the path's namespace, checked (the guard checks it too when auth is on).
func objectNS(r *http.Request) (string, error) {
	ns := r.PathValue("ns")
	if err := auth.ValidNamespace(ns); err != nil {
		return "", &invalidError{what: "request", problems: []string{"namespace: " + err.Error()}}
	}
	return ns, nil
}

func (a *App) createObject(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ns, err := objectNS(r)
		if err != nil {
			httpError(w, err)
			return
		}
		var b ObjectBody
		if err := decode(r, &b); err != nil {
			httpError(w, err)
			return
		}
		var problems []string
		if b.Kind != "" && b.Kind != kindName(kind) {
			problems = append(problems, fmt.Sprintf("kind: want %s, got %q", kindName(kind), b.Kind))
		}
		if b.APIVersion != "" && b.APIVersion != "v1" {
			problems = append(problems, fmt.Sprintf("apiVersion: want v1, got %q", b.APIVersion))
		}
		if !dag.ValidObjectName(b.Metadata.Name) {
			problems = append(problems, fmt.Sprintf("metadata.name: %q must be lowercase letters, digits, '-' or '.' (a Kubernetes object name)", b.Metadata.Name))
		}
		if b.Metadata.Namespace != "" && b.Metadata.Namespace != ns {
			problems = append(problems, fmt.Sprintf("metadata.namespace: %q differs from the path's namespace %q", b.Metadata.Namespace, ns))
		}
		if len(b.Keys) > 0 || b.Metadata.CreationTimestamp != nil {
			problems = append(problems, "keys, metadata.creationTimestamp: read-only fields")
		}
		data, bad := objectData(kind, b)
		if problems = append(problems, bad...); len(problems) > 0 {
			httpError(w, &invalidError{what: kindName(kind), problems: problems})
			return
		}
		o, err := a.catalog.CreateObject(r.Context(), catalog.Object{Kind: kind, Name: b.Metadata.Name, Namespace: ns, Data: data})
		if err != nil {
			httpError(w, err)
			return
		}
		platform.WriteJSON(w, http.StatusCreated, objectBody(o, false))
	}
}

// objectBody renders o; withValues is false for a secret in a list (names and keys only).
func objectBody(o catalog.Object, withValues bool) ObjectBody {
	at := o.CreatedAt
	b := ObjectBody{APIVersion: "v1", Kind: kindName(o.Kind), Metadata: ObjectMeta{Name: o.Name, Namespace: o.Namespace, CreationTimestamp: &at}}
	if o.Kind == catalog.KindSecret {
		b.Type = "Opaque"
		if !withValues {
			b.Keys = o.Keys()
			return b
		}
	}
	for _, k := range o.Keys() {
		v := o.Data[k]
		switch {
		case o.Kind == catalog.KindSecret:
			put(&b.Data, k, base64.StdEncoding.EncodeToString(v))
		case utf8.Valid(v):
			put(&b.Data, k, string(v))
		default:
			put(&b.BinaryData, k, base64.StdEncoding.EncodeToString(v))
		}
	}
	return b
}

func put(m *map[string]string, k, v string) {
	if *m == nil {
		*m = map[string]string{}
	}
	(*m)[k] = v
}

func (a *App) listObjects(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ns, err := objectNS(r)
		if err != nil {
			httpError(w, err)
			return
		}
		objs, err := a.catalog.Objects(r.Context(), ns, kind)
		if err != nil {
			httpError(w, err)
			return
		}
		out := ObjectList{APIVersion: "v1", Kind: kindName(kind) + "List", Items: []ObjectBody{}}
		for _, o := range objs {
			out.Items = append(out.Items, objectBody(o, kind != catalog.KindSecret))
		}
		platform.WriteJSON(w, http.StatusOK, out)
	}
}

func (a *App) getObject(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ns, err := objectNS(r)
		if err != nil {
			httpError(w, err)
			return
		}
		o, err := a.catalog.Object(r.Context(), ns, kind, r.PathValue("name"))
		if err != nil {
			httpError(w, objectErr(kind, r, err))
			return
		}
		platform.WriteJSON(w, http.StatusOK, objectBody(o, true))
	}
}

func (a *App) deleteObject(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ns, err := objectNS(r)
		if err != nil {
			httpError(w, err)
			return
		}
		if err := a.catalog.DeleteObject(r.Context(), ns, kind, r.PathValue("name")); err != nil {
			httpError(w, objectErr(kind, r, err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func objectErr(kind string, r *http.Request, err error) error {
	if errors.Is(err, catalog.ErrNotFound) {
		return fmt.Errorf("%s %q in namespace %q: %w", kind, r.PathValue("name"), r.PathValue("ns"), catalog.ErrNotFound)
	}
	return err
}

// objectSource gives the engine's steps the namespaces' secrets and config maps.
type objectSource struct{ c *catalog.Catalog }

func (s objectSource) Object(ctx context.Context, ns, kind, name string) (map[string][]byte, bool, error) {
	o, err := s.c.Object(ctx, ns, kind, name)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return o.Data, true, nil
}

// objectsKey returns the AES-256 key sealing stored secrets and config maps: SLUICE_PIPELINES_OBJECTS_KEY
// (base64 of 32 bytes; every replica of the service needs the same) or the key file under dataDir, made
// (mode 0600) on first use.
func objectsKey(getenv func(string) string, dataDir string) (cipher.AEAD, error) {
	var key []byte
	if v := getenv("SLUICE_PIPELINES_OBJECTS_KEY"); v != "" {
		k, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(k) != 32 {
			return nil, errors.New("SLUICE_PIPELINES_OBJECTS_KEY: want the base64 of 32 bytes")
		}
		key = k
	} else {
		file := filepath.Join(dataDir, Name, "objects.key")
		k, err := os.ReadFile(file)
		switch {
		case errors.Is(err, os.ErrNotExist):
			k = make([]byte, 32)
			if _, err := rand.Read(k); err != nil {
				return nil, err
			}
			// 0711 like the other service dirs: per-namespace users traverse <data>/pipelines to their work dirs.
			if err := os.MkdirAll(filepath.Dir(file), 0o711); err != nil {
				return nil, err
			}
			f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, os.ErrExist) { // made meanwhile by another process
				return objectsKey(getenv, dataDir)
			}
			if err != nil {
				return nil, err
			}
			if _, err := f.Write(k); err != nil {
				f.Close()
				return nil, err
			}
			if err := f.Close(); err != nil {
				return nil, err
			}
		case err != nil:
			return nil, err
		case len(k) != 32:
			return nil, fmt.Errorf("%s: want 32 bytes, got %d", file, len(k))
		}
		key = k
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
