package tfevents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7"
)

// FileInfo names one event file of a Source.
type FileInfo struct {
	// Name is the path relative to the source's root, '/'-separated, e.g. "train/events.out.tfevents.1.h".
	Name string
	// Size is the file's length when listed.
	Size int64
}

// Source is where a Logdir's files live: a local directory or an S3 prefix.
type Source interface {
	// Files lists the event files below the root, at any depth: files whose base name contains
	// "tfevents", as TensorBoard selects them.
	Files(ctx context.Context) ([]FileInfo, error)
	// ReadFrom returns the bytes of file name from offset off to its current end.
	ReadFrom(ctx context.Context, name string, off int64) ([]byte, error)
	// Location is the root as a user would write it ("/data/logs", "s3://bucket/logs").
	Location() string
}

// IsEventFile reports whether a base name is an event file's.
func IsEventFile(base string) bool { return strings.Contains(base, "tfevents") }

// Dir is a Source over a local directory.
type Dir string

// Files implements Source. A missing directory has no files (a trainer may not have started yet).
func (d Dir) Files(ctx context.Context) ([]FileInfo, error) {
	var out []FileInfo
	err := filepath.WalkDir(string(d), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if e.IsDir() || !IsEventFile(e.Name()) {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(string(d), p)
		if err != nil {
			return err
		}
		out = append(out, FileInfo{Name: filepath.ToSlash(rel), Size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tfevents: list %s: %w", string(d), err)
	}
	return out, nil
}

// ReadFrom implements Source.
func (d Dir) ReadFrom(_ context.Context, name string, off int64) ([]byte, error) {
	f, err := os.Open(filepath.Join(string(d), filepath.FromSlash(name)))
	if err != nil {
		return nil, fmt.Errorf("tfevents: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, fmt.Errorf("tfevents: %w", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("tfevents: read %s: %w", name, err)
	}
	return b, nil
}

// Location implements Source.
func (d Dir) Location() string { return string(d) }

// S3 is a Source over the objects under Prefix in Bucket.
type S3 struct {
	Client *minio.Client
	Bucket string
	// Prefix is the root "directory"; a trailing '/' is implied.
	Prefix string
}

func (s S3) prefix() string {
	p := strings.Trim(s.Prefix, "/")
	if p == "" {
		return ""
	}
	return p + "/"
}

// Files implements Source.
func (s S3) Files(ctx context.Context) ([]FileInfo, error) {
	var out []FileInfo
	pre := s.prefix()
	for obj := range s.Client.ListObjects(ctx, s.Bucket, minio.ListObjectsOptions{Prefix: pre, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("tfevents: list %s: %w", s.Location(), obj.Err)
		}
		if !IsEventFile(path.Base(obj.Key)) {
			continue
		}
		out = append(out, FileInfo{Name: strings.TrimPrefix(obj.Key, pre), Size: obj.Size})
	}
	return out, nil
}

// ReadFrom implements Source.
func (s S3) ReadFrom(ctx context.Context, name string, off int64) ([]byte, error) {
	var opts minio.GetObjectOptions
	if off > 0 {
		if err := opts.SetRange(off, 0); err != nil {
			return nil, fmt.Errorf("tfevents: %w", err)
		}
	}
	obj, err := s.Client.GetObject(ctx, s.Bucket, s.prefix()+name, opts)
	if err != nil {
		return nil, fmt.Errorf("tfevents: get %s: %w", name, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && er.Code == "InvalidRange" {
			return nil, nil // nothing past off yet
		}
		return nil, fmt.Errorf("tfevents: read %s: %w", name, err)
	}
	return b, nil
}

// Location implements Source.
func (s S3) Location() string { return "s3://" + s.Bucket + "/" + strings.Trim(s.Prefix, "/") }
