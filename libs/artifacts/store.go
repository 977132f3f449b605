// Package artifacts stores pipeline, training and model artifacts in an
// S3-compatible object store (AWS S3, MinIO, versitygw) through minio-go.
//
// Every object carries the sha256 of its content as user metadata
// (X-Amz-Meta-Sha256, lowercase hex), computed while the content streams; it
// is reported as Object.Digest ("sha256:<hex>") and checked when an object is
// read to the end. Keys are "/"-separated relative paths validated by
// ValidateKey; a Store can be narrowed to a key prefix with Sub so that
// callers can never address objects outside it. Artifacts are named by URIs
// "s3://bucket/key".
package artifacts

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// ErrNotFound is returned (wrapped) when an object does not exist.
var ErrNotFound = errors.New("artifacts: object not found")

// ErrDigestMismatch is returned (wrapped) by reads whose content does not
// match the stored digest or size, and by Put when a seekable source changed
// while it was uploaded.
var ErrDigestMismatch = errors.New("artifacts: digest mismatch")

// DefaultPartSize is the multipart part size used when the content length is
// unknown: uploads of unknown size hold one part in memory and are limited
// to 10,000 parts (about 156 GiB at 16 MiB).
const DefaultPartSize = 16 << 20

// Config locates the bucket. Field names match the S3_* environment variables
// services read (S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET,
// S3_REGION).
type Config struct {
	// Endpoint is "host:port" or a URL "http://host:port" /
	// "https://host:port" (the scheme then decides TLS). Required.
	Endpoint string
	// AccessKey and SecretKey are static SigV4 credentials. Required.
	AccessKey, SecretKey string
	// Bucket holds every artifact. Required; must be a valid bucket name.
	Bucket string
	// Region of the bucket. Empty lets the client discover it.
	Region string
	// Secure selects https for a scheme-less Endpoint.
	Secure bool
	// PartSize is the multipart part size in bytes for uploads of unknown
	// length. 0 means DefaultPartSize; otherwise at least 5 MiB.
	PartSize int64
}

// Validate reports every problem, joined; each error names its field, e.g.
// "artifacts: config: Bucket: required".
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("artifacts: config: %s: "+format, append([]any{field}, args...)...))
	}
	if c.Endpoint == "" {
		bad("Endpoint", "required")
	} else if _, _, err := c.endpoint(); err != nil {
		bad("Endpoint", "%v", err)
	}
	if c.AccessKey == "" {
		bad("AccessKey", "required")
	}
	if c.SecretKey == "" {
		bad("SecretKey", "required")
	}
	if c.Bucket == "" {
		bad("Bucket", "required")
	} else if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		bad("Bucket", "%v", err)
	}
	if c.PartSize != 0 && c.PartSize < 5<<20 {
		bad("PartSize", "must be 0 or at least 5 MiB, got %d", c.PartSize)
	}
	return errors.Join(errs...)
}

// endpoint returns the host:port and whether to use TLS.
func (c Config) endpoint() (string, bool, error) {
	if !strings.Contains(c.Endpoint, "://") {
		if strings.ContainsAny(c.Endpoint, "/?#") {
			return "", false, fmt.Errorf("%q: want host:port or http(s)://host:port", c.Endpoint)
		}
		return c.Endpoint, c.Secure, nil
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		return "", false, err
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", false, fmt.Errorf("%q: must not have a path, query or user info", c.Endpoint)
	}
	if u.Host == "" {
		return "", false, fmt.Errorf("%q: missing host", c.Endpoint)
	}
	switch u.Scheme {
	case "https":
		return u.Host, true, nil
	case "http":
		if c.Secure {
			return "", false, fmt.Errorf("%q: http scheme conflicts with Secure=true", c.Endpoint)
		}
		return u.Host, false, nil
	default:
		return "", false, fmt.Errorf("%q: scheme must be http or https", c.Endpoint)
	}
}

// Store reads and writes artifacts in one bucket, below an optional key
// prefix (see Sub). Keys passed to and returned by a Store are relative to
// that prefix. A Store is safe for concurrent use.
type Store struct {
	client   *minio.Client
	bucket   string
	region   string
	prefix   string // "" or a valid key without trailing "/"
	partSize uint64
}

// New validates cfg and returns a Store at the bucket root. It does not
// contact the server; see EnsureBucket.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	host, secure, _ := cfg.endpoint()
	client, err := minio.New(host, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: secure,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("artifacts: client for %s: %w", cfg.Endpoint, err)
	}
	partSize := cfg.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	return &Store{client: client, bucket: cfg.Bucket, region: cfg.Region, partSize: uint64(partSize)}, nil
}

// Client returns the underlying minio-go client (shared by all Subs).
func (s *Store) Client() *minio.Client { return s.client }

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// Prefix returns the store's key prefix in the bucket ("" at the root).
func (s *Store) Prefix() string { return s.prefix }

// Sub returns a Store whose keys live below prefix (relative to s). prefix
// must pass ValidateKey; "runs/r1" yields keys "runs/r1/<key>".
func (s *Store) Sub(prefix string) (*Store, error) {
	full, err := s.objectKey(prefix)
	if err != nil {
		return nil, err
	}
	sub := *s
	sub.prefix = full
	return &sub, nil
}

// EnsureBucket creates the bucket if it does not exist. Creating a bucket
// that appears concurrently is not an error.
func (s *Store) EnsureBucket(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("artifacts: check bucket %s: %w", s.bucket, err)
	}
	if ok {
		return nil
	}
	err = s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: s.region})
	var er minio.ErrorResponse
	if errors.As(err, &er) && (er.Code == minio.BucketAlreadyOwnedByYou) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("artifacts: create bucket %s: %w", s.bucket, err)
	}
	return nil
}

// URI returns "s3://bucket/<prefix>/key" for a relative key. It does not
// validate key; use Put's returned Object.URI for stored objects.
func (s *Store) URI(key string) string {
	if s.prefix == "" {
		return FormatURI(s.bucket, key)
	}
	if key == "" {
		return FormatURI(s.bucket, s.prefix)
	}
	return FormatURI(s.bucket, s.prefix+"/"+key)
}

// KeyOf returns the key, relative to s, of an artifact URI. It fails when the
// URI is malformed, names another bucket, or lies outside s's prefix.
func (s *Store) KeyOf(uri string) (string, error) {
	bucket, key, err := ParseURI(uri)
	if err != nil {
		return "", err
	}
	if bucket != s.bucket {
		return "", fmt.Errorf("artifacts: uri %q: bucket %q is not the store's bucket %q", uri, bucket, s.bucket)
	}
	if s.prefix == "" {
		if key == "" {
			return "", fmt.Errorf("artifacts: uri %q: no key", uri)
		}
		return key, nil
	}
	rel, ok := strings.CutPrefix(key, s.prefix+"/")
	if !ok {
		return "", fmt.Errorf("artifacts: uri %q: outside prefix %q", uri, s.prefix)
	}
	return rel, nil
}

// objectKey validates a relative key and returns the full object key.
func (s *Store) objectKey(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	if s.prefix == "" {
		return key, nil
	}
	full := s.prefix + "/" + key
	if len(full) > MaxKeyLen {
		return "", &KeyError{Key: full, Reason: fmt.Sprintf("longer than %d bytes", MaxKeyLen)}
	}
	return full, nil
}

// relKey turns a full object key into one relative to s.
func (s *Store) relKey(full string) string {
	if s.prefix == "" {
		return full
	}
	return strings.TrimPrefix(full, s.prefix+"/")
}

// Object describes a stored artifact.
type Object struct {
	// Key is relative to the Store that returned it.
	Key string
	// URI is the absolute "s3://bucket/key".
	URI string
	// Size in bytes.
	Size int64
	// Digest is "sha256:<lowercase hex>", or "" when the object was not
	// written by this package (List never fills it; use Stat).
	Digest string
	// ETag as reported by the server, without quotes.
	ETag string
	// LastModified as reported by the server (zero after Put on some
	// servers).
	LastModified time.Time
}

// metaSHA256 is the user-metadata name of the digest: header
// X-Amz-Meta-Sha256, value lowercase hex.
const metaSHA256 = "Sha256"

const digestPrefix = "sha256:"

func (s *Store) object(full string, info minio.ObjectInfo) Object {
	return Object{
		Key:          s.relKey(full),
		URI:          FormatURI(s.bucket, full),
		Size:         info.Size,
		Digest:       digestFromMeta(info.UserMetadata),
		ETag:         strings.Trim(info.ETag, `"`),
		LastModified: info.LastModified,
	}
}

// digestFromMeta reads the digest metadata, tolerating any header casing.
func digestFromMeta(md map[string]string) string {
	for k, v := range md {
		if strings.EqualFold(k, metaSHA256) && isSHA256Hex(v) {
			return digestPrefix + v
		}
	}
	return ""
}

func isSHA256Hex(v string) bool {
	if len(v) != 64 {
		return false
	}
	for _, c := range v {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// translate maps minio errors for one key: missing key -> ErrNotFound.
func translate(op, full string, err error) error {
	var er minio.ErrorResponse
	if errors.As(err, &er) && er.Code == minio.NoSuchKey {
		return fmt.Errorf("artifacts: %s %s: %w", op, full, ErrNotFound)
	}
	return fmt.Errorf("artifacts: %s %s: %w", op, full, err)
}

// Stat returns the object's metadata, or an error wrapping ErrNotFound.
func (s *Store) Stat(ctx context.Context, key string) (Object, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return Object{}, err
	}
	info, err := s.client.StatObject(ctx, s.bucket, full, minio.StatObjectOptions{})
	if err != nil {
		return Object{}, translate("stat", full, err)
	}
	return s.object(full, info), nil
}

// Exists reports whether the object exists.
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	_, err := s.Stat(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Delete removes the object. Deleting a missing object is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	full, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, full, minio.RemoveObjectOptions{}); err != nil {
		return translate("delete", full, err)
	}
	return nil
}

// List returns every object below dir (recursively), sorted by key. dir ""
// lists the whole store; otherwise it must pass ValidateKey and is treated as
// a directory: List("a") matches "a/x" but not "ab". Digest is not filled.
func (s *Store) List(ctx context.Context, dir string) ([]Object, error) {
	prefix, err := s.listPrefix(dir)
	if err != nil {
		return nil, err
	}
	var out []Object
	for info := range s.client.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if info.Err != nil {
			return nil, fmt.Errorf("artifacts: list %s: %w", FormatURI(s.bucket, prefix), info.Err)
		}
		if strings.HasSuffix(info.Key, "/") {
			continue // directory marker
		}
		out = append(out, s.object(info.Key, info))
	}
	return out, nil
}

// listPrefix returns the S3 prefix ("" or ending in "/") for dir.
func (s *Store) listPrefix(dir string) (string, error) {
	if dir == "" {
		if s.prefix == "" {
			return "", nil
		}
		return s.prefix + "/", nil
	}
	full, err := s.objectKey(dir)
	if err != nil {
		return "", err
	}
	return full + "/", nil
}

// DeleteDir removes every object below dir (as List selects them; "" is the
// whole store) and returns how many were removed.
func (s *Store) DeleteDir(ctx context.Context, dir string) (int, error) {
	objs, err := s.List(ctx, dir)
	if err != nil {
		return 0, err
	}
	ch := make(chan minio.ObjectInfo, len(objs))
	for _, o := range objs {
		ch <- minio.ObjectInfo{Key: s.prefixed(o.Key)}
	}
	close(ch)
	var errs []error
	for rerr := range s.client.RemoveObjects(ctx, s.bucket, ch, minio.RemoveObjectsOptions{}) {
		errs = append(errs, fmt.Errorf("artifacts: delete %s: %w", rerr.ObjectName, rerr.Err))
	}
	if len(errs) > 0 {
		return len(objs) - len(errs), errors.Join(errs...)
	}
	return len(objs), nil
}

func (s *Store) prefixed(rel string) string {
	if s.prefix == "" {
		return rel
	}
	return s.prefix + "/" + rel
}
