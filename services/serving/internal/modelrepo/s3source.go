package modelrepo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/sluice-ml/sluice/libs/artifacts"
)

// S3Source is a model base path in the artifact store: s3://bucket/prefix, whose version
// directories are the first path segment of the keys below prefix (S3 has no directories; a
// version "exists" once an object lives under prefix/<version>/).
type S3Source struct {
	store *artifacts.Store
	uri   string
	key   string // base prefix relative to store, "" for the bucket root
}

// NewS3Source returns the source for uri, which must name the store's bucket (and lie inside its
// prefix, if any).
func NewS3Source(store *artifacts.Store, uri string) (*S3Source, error) {
	if store == nil {
		return nil, errors.New("modelrepo: no artifact store configured for s3:// model base paths")
	}
	uri = strings.TrimSuffix(uri, "/")
	bucket, _, err := artifacts.ParseURI(uri)
	if err != nil {
		return nil, err
	}
	if bucket != store.Bucket() {
		return nil, fmt.Errorf("modelrepo: %s: bucket %q is not the artifact store's bucket %q", uri, bucket, store.Bucket())
	}
	key := ""
	if uri != artifacts.FormatURI(bucket, "") || store.Prefix() != "" {
		if key, err = store.KeyOf(uri); err != nil {
			return nil, err
		}
	}
	return &S3Source{store: store, uri: uri, key: key}, nil
}

// List returns the distinct first segments of the keys below the base prefix (children that hold
// at least one object).
func (s *S3Source) List(ctx context.Context) ([]string, error) {
	objs, err := s.store.List(ctx, s.key)
	if err != nil {
		return nil, fmt.Errorf("list model base path %s: %w", s.uri, err)
	}
	seen := map[string]bool{}
	var out []string
	for _, o := range objs {
		rel := o.Key
		if s.key != "" {
			rel = strings.TrimPrefix(o.Key, s.key+"/")
		}
		child, _, isDir := strings.Cut(rel, "/")
		if !isDir || child == "" || seen[child] {
			continue
		}
		seen[child] = true
		out = append(out, child)
	}
	sort.Strings(out)
	return out, nil
}

// ReadFile reads prefix/dir/name; a missing object is ErrNoModelFile. The store verifies the
// object's recorded sha256 while reading.
func (s *S3Source) ReadFile(ctx context.Context, dir, name string) ([]byte, error) {
	key := dir + "/" + name
	if s.key != "" {
		key = s.key + "/" + key
	}
	rc, _, err := s.store.Get(ctx, key)
	if errors.Is(err, artifacts.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s/%s/%s", ErrNoModelFile, s.uri, dir, name)
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (s *S3Source) String() string { return s.uri }
