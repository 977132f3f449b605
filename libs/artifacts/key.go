package artifacts

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// MaxKeyLen is the longest object key S3 accepts, in bytes (per the Amazon S3
// object key naming rules).
const MaxKeyLen = 1024

// ErrUnsafeKey is matched (errors.Is) by every *KeyError.
var ErrUnsafeKey = errors.New("artifacts: unsafe key")

// KeyError reports a key or prefix that is not a safe relative path.
type KeyError struct {
	Key    string // the offending key as given
	Reason string // e.g. `".." segment`, "absolute path", "empty segment"
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("artifacts: unsafe key %q: %s", e.Key, e.Reason)
}

// Is makes errors.Is(err, ErrUnsafeKey) true.
func (e *KeyError) Is(target error) bool { return target == ErrUnsafeKey }

// ValidateKey reports whether key is a safe relative object key: non-empty,
// at most MaxKeyLen bytes of valid UTF-8, "/"-separated segments that are
// neither empty (no leading, trailing or doubled "/") nor "." or "..", and no
// backslashes or control characters. The error is a *KeyError naming key.
func ValidateKey(key string) error {
	if reason := keyProblem(key); reason != "" {
		return &KeyError{Key: key, Reason: reason}
	}
	return nil
}

func keyProblem(key string) string {
	switch {
	case key == "":
		return "empty key"
	case len(key) > MaxKeyLen:
		return fmt.Sprintf("longer than %d bytes", MaxKeyLen)
	case !utf8.ValidString(key):
		return "invalid UTF-8"
	case strings.HasPrefix(key, "/"):
		return "absolute path"
	}
	for _, r := range key {
		switch {
		case r == '\\':
			return "backslash"
		case r < 0x20 || r == 0x7f:
			return "control character"
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return "empty segment"
		case ".":
			return `"." segment`
		case "..":
			return `".." segment`
		}
	}
	return ""
}

// JoinKey joins elems with "/" and validates the result (see ValidateKey).
// Each element may itself contain "/"; the error names the joined key.
func JoinKey(elems ...string) (string, error) {
	key := strings.Join(elems, "/")
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return key, nil
}

// URIScheme is the scheme of artifact URIs.
const URIScheme = "s3://"

// FormatURI returns "s3://bucket/key" (or "s3://bucket" when key is empty).
func FormatURI(bucket, key string) string {
	if key == "" {
		return URIScheme + bucket
	}
	return URIScheme + bucket + "/" + key
}

// ParseURI splits "s3://bucket/key" into bucket and key. The bucket must be a
// valid S3 bucket name; the key may be empty ("s3://bucket" or
// "s3://bucket/") and one trailing "/" is dropped (directory URIs); otherwise
// it must pass ValidateKey.
func ParseURI(uri string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(uri, URIScheme)
	if !ok {
		return "", "", fmt.Errorf("artifacts: uri %q: scheme must be s3://", uri)
	}
	bucket, key, _ = strings.Cut(rest, "/")
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return "", "", fmt.Errorf("artifacts: uri %q: bucket: %w", uri, err)
	}
	key = strings.TrimSuffix(key, "/")
	if key == "" {
		return bucket, "", nil
	}
	if err := ValidateKey(key); err != nil {
		return "", "", fmt.Errorf("artifacts: uri %q: %w", uri, err)
	}
	return bucket, key, nil
}
