package catalog

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"
)

// Kinds of namespaced objects (Object.Kind), as kfp-kubernetes settings name them.
const (
	KindSecret    = "secret"
	KindConfigMap = "configmap"
)

// Object is a secret or a config map of a namespace, shaped as the Kubernetes core/v1 objects: Data maps
// each key to its value (a Secret's values are bytes, a ConfigMap's text). Steps of the namespace's runs
// read them through kfp-kubernetes secretAsEnv/secretAsVolume/configMapAsEnv/configMapAsVolume.
type Object struct {
	Kind      string            `json:"kind"`
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Data      map[string][]byte `json:"data"`
	CreatedAt time.Time         `json:"created_at"`
}

// Keys are the object's keys, sorted.
func (o Object) Keys() []string {
	keys := make([]string, 0, len(o.Data))
	for k := range o.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// sealed is how an object is stored: its JSON, encrypted with the catalog's AEAD when it has one (secrets
// always are then; Nonce is empty for plain text).
type sealed struct {
	Nonce []byte `json:"nonce,omitempty"`
	Body  []byte `json:"body"`
}

// WithSealer makes the catalog encrypt the objects it stores (AES-GCM or any AEAD) and decrypt them when
// read; a stored object written without one is still read.
func (c *Catalog) WithSealer(aead cipher.AEAD) *Catalog {
	c.aead = aead
	return c
}

func objectKey(ns, kind, name string) string {
	return path.Join(root, "objects", ns, kind, name+".json")
}

// CreateObject stores a new secret or config map; ErrExists when the name is taken in its namespace and
// kind. The caller validates names and keys.
func (c *Catalog) CreateObject(ctx context.Context, o Object) (Object, error) {
	if _, err := c.Object(ctx, o.Namespace, o.Kind, o.Name); err == nil {
		return Object{}, fmt.Errorf("%w: %s %q", ErrExists, o.Kind, o.Name)
	} else if !errors.Is(err, ErrNotFound) {
		return Object{}, err
	}
	o.CreatedAt = time.Now().UTC()
	if o.Data == nil {
		o.Data = map[string][]byte{}
	}
	body, err := json.Marshal(o)
	if err != nil {
		return Object{}, err
	}
	s := sealed{Body: body}
	if c.aead != nil {
		s.Nonce = make([]byte, c.aead.NonceSize())
		if _, err := rand.Read(s.Nonce); err != nil {
			return Object{}, err
		}
		s.Body = c.aead.Seal(nil, s.Nonce, body, []byte(objectKey(o.Namespace, o.Kind, o.Name)))
	}
	return o, c.put(ctx, objectKey(o.Namespace, o.Kind, o.Name), s)
}

// Object returns a secret or config map by namespace, kind and name (ErrNotFound when there is none).
func (c *Catalog) Object(ctx context.Context, ns, kind, name string) (Object, error) {
	var o Object
	if name == "" || ns == "" || strings.ContainsAny(name+ns, "/") || strings.HasPrefix(name, ".") || strings.HasPrefix(ns, ".") {
		return o, ErrNotFound
	}
	key := objectKey(ns, kind, name)
	var s sealed
	if err := c.get(ctx, key, &s); err != nil {
		return o, err
	}
	body := s.Body
	if len(s.Nonce) > 0 {
		if c.aead == nil {
			return o, fmt.Errorf("%s %q of namespace %q is encrypted and this catalog has no key", kind, name, ns)
		}
		var err error
		if body, err = c.aead.Open(nil, s.Nonce, s.Body, []byte(key)); err != nil {
			return o, fmt.Errorf("%s %q of namespace %q cannot be decrypted with this key", kind, name, ns)
		}
	}
	return o, json.Unmarshal(body, &o)
}

// Objects lists a namespace's objects of kind, by name.
func (c *Catalog) Objects(ctx context.Context, ns, kind string) ([]Object, error) {
	var out []Object
	err := c.list(ctx, path.Join(root, "objects", ns, kind), func(key string) error {
		name := strings.TrimSuffix(path.Base(key), ".json")
		o, err := c.Object(ctx, ns, kind, name)
		if errors.Is(err, ErrNotFound) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		out = append(out, o)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// DeleteObject removes a secret or config map (ErrNotFound when there is none).
func (c *Catalog) DeleteObject(ctx context.Context, ns, kind, name string) error {
	if _, err := c.Object(ctx, ns, kind, name); err != nil {
		return err
	}
	return c.store.Delete(ctx, objectKey(ns, kind, name))
}
