package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/minio/minio-go/v7"
)

// Put stores size bytes from r at key (size -1 = read to EOF) and returns
// the stored object with its sha256 Digest.
//
// When r is an io.ReadSeeker and size is known, Put hashes the content first,
// seeks back and uploads it once with the digest as metadata, so the object
// never exists without its digest; the uploaded bytes are hashed again while
// streaming and ErrDigestMismatch is returned (and the object deleted) if the
// source changed in between. Otherwise the content streams once through the
// hash (multipart for unknown or large sizes) and the digest is attached
// afterwards with a metadata-only server-side copy of the object onto
// itself, guarded by its ETag.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (Object, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return Object{}, err
	}
	if size < -1 {
		return Object{}, fmt.Errorf("artifacts: put %s: size must be >= -1, got %d", full, size)
	}
	if rs, ok := r.(io.ReadSeeker); ok && size >= 0 {
		return s.putSeekable(ctx, full, rs, size)
	}
	return s.putStream(ctx, full, r, size)
}

func (s *Store) putOptions(size int64, digestHex string) minio.PutObjectOptions {
	opts := minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		// Sign the payload as UNSIGNED-PAYLOAD, as minio-go always does over
		// TLS, instead of aws-chunked streaming signatures over plain HTTP:
		// content integrity is what the sha256 digest (in signed metadata)
		// checks on every full read. This also avoids a versitygw v1.8.0
		// interop bug where a streaming-signed empty PUT leaves its body on
		// the connection and breaks the next request.
		DisableContentSha256: true,
	}
	if size < 0 {
		opts.PartSize = s.partSize
	}
	if digestHex != "" {
		opts.UserMetadata = map[string]string{metaSHA256: digestHex}
	}
	return opts
}

func (s *Store) putSeekable(ctx context.Context, full string, rs io.ReadSeeker, size int64) (Object, error) {
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return Object{}, fmt.Errorf("artifacts: put %s: seek: %w", full, err)
	}
	pre := sha256.New()
	n, err := io.Copy(pre, io.LimitReader(rs, size))
	if err != nil {
		return Object{}, fmt.Errorf("artifacts: put %s: read source: %w", full, err)
	}
	if n != size {
		return Object{}, fmt.Errorf("artifacts: put %s: source has %d bytes, want %d: %w", full, n, size, io.ErrUnexpectedEOF)
	}
	want := hex.EncodeToString(pre.Sum(nil))
	if _, err := rs.Seek(start, io.SeekStart); err != nil {
		return Object{}, fmt.Errorf("artifacts: put %s: seek: %w", full, err)
	}
	h := sha256.New()
	info, err := s.client.PutObject(ctx, s.bucket, full, io.TeeReader(io.LimitReader(rs, size), h), size, s.putOptions(size, want))
	if err != nil {
		return Object{}, fmt.Errorf("artifacts: put %s: %w", full, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		_ = s.client.RemoveObject(ctx, s.bucket, full, minio.RemoveObjectOptions{})
		return Object{}, fmt.Errorf("artifacts: put %s: source changed during upload: %w", full, ErrDigestMismatch)
	}
	return s.uploaded(full, info, want), nil
}

func (s *Store) putStream(ctx context.Context, full string, r io.Reader, size int64) (Object, error) {
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(r, h)}
	info, err := s.client.PutObject(ctx, s.bucket, full, cr, size, s.putOptions(size, ""))
	if err != nil {
		return Object{}, fmt.Errorf("artifacts: put %s: %w", full, err)
	}
	if size >= 0 && cr.n != size {
		_ = s.client.RemoveObject(ctx, s.bucket, full, minio.RemoveObjectOptions{})
		return Object{}, fmt.Errorf("artifacts: put %s: read %d bytes, want %d: %w", full, cr.n, size, io.ErrUnexpectedEOF)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	dst := minio.CopyDestOptions{
		Bucket: s.bucket, Object: full,
		UserMetadata: map[string]string{metaSHA256: sum}, ReplaceMetadata: true,
	}
	src := minio.CopySrcOptions{Bucket: s.bucket, Object: full, MatchETag: info.ETag}
	var copied minio.UploadInfo
	if cr.n <= maxCopySize {
		copied, err = s.client.CopyObject(ctx, dst, src)
	} else {
		copied, err = s.client.ComposeObject(ctx, dst, src) // multipart copy
	}
	if err != nil {
		// Do not leave an object without its digest behind.
		_ = s.client.RemoveObject(ctx, s.bucket, full, minio.RemoveObjectOptions{})
		return Object{}, fmt.Errorf("artifacts: put %s: attach digest: %w", full, err)
	}
	info.Size = cr.n
	if copied.ETag != "" {
		info.ETag = copied.ETag
	}
	if !copied.LastModified.IsZero() {
		info.LastModified = copied.LastModified
	}
	return s.uploaded(full, info, sum), nil
}

func (s *Store) uploaded(full string, info minio.UploadInfo, digestHex string) Object {
	return Object{
		Key:          s.relKey(full),
		URI:          FormatURI(s.bucket, full),
		Size:         info.Size,
		Digest:       digestPrefix + digestHex,
		ETag:         info.ETag,
		LastModified: info.LastModified,
	}
}

// maxCopySize is the largest object a single S3 CopyObject accepts (5 GiB).
const maxCopySize = 5 << 30

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// PutFile uploads the regular file at path to key (symlinks are followed).
func (s *Store) PutFile(ctx context.Context, key, path string) (Object, error) {
	f, err := os.Open(path)
	if err != nil {
		return Object{}, fmt.Errorf("artifacts: put file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Object{}, fmt.Errorf("artifacts: put file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Object{}, fmt.Errorf("artifacts: put file %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	return s.Put(ctx, key, f, fi.Size())
}

// Get opens the object for reading. The caller must Close the reader; ctx
// must stay live while reading. When the object has a digest, reading to EOF
// verifies size and sha256 and fails with ErrDigestMismatch instead of
// io.EOF on a mismatch. A missing object yields an error wrapping
// ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, Object, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return nil, Object{}, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, full, minio.GetObjectOptions{})
	if err != nil {
		return nil, Object{}, translate("get", full, err)
	}
	info, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, Object{}, translate("get", full, err)
	}
	o := s.object(full, info)
	if o.Digest == "" {
		return obj, o, nil
	}
	return &verifyingReader{rc: obj, h: sha256.New(), want: o.Digest[len(digestPrefix):], size: o.Size, full: full}, o, nil
}

// verifyingReader hashes what is read and checks it at EOF.
type verifyingReader struct {
	rc   io.ReadCloser
	h    hash.Hash
	n    int64
	size int64
	want string
	full string
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if errors.Is(err, io.EOF) {
		if v.n != v.size {
			return n, fmt.Errorf("artifacts: get %s: read %d bytes, object has %d: %w", v.full, v.n, v.size, ErrDigestMismatch)
		}
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			return n, fmt.Errorf("artifacts: get %s: content sha256:%s, stored sha256:%s: %w", v.full, got, v.want, ErrDigestMismatch)
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.rc.Close() }

// GetFile downloads the object to path, creating parent directories. The file
// is written under a temporary name in the same directory and renamed into
// place only after the digest checked out.
func (s *Store) GetFile(ctx context.Context, key, path string) (Object, error) {
	rc, o, err := s.Get(ctx, key)
	if err != nil {
		return Object{}, err
	}
	defer rc.Close()
	if err := writeFileAtomic(path, rc); err != nil {
		return Object{}, fmt.Errorf("artifacts: get file %s: %w", o.URI, err)
	}
	return o, nil
}

func writeFileAtomic(path string, r io.Reader) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.part")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, r); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
