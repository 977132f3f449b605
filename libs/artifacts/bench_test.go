package artifacts_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/minio/minio-go/v7"
)

// BenchmarkPutGet compares the Store (sha256 while streaming, digest
// metadata, verified reads) with plain minio-go PutObject/GetObject against
// the same embedded S3 gateway in the same run. Sub-benchmark names:
// <size>/<path>/<op>, path "store" (seekable source: hash then upload once),
// "store-stream" (non-seekable source: tee hash + metadata copy) or "raw".
func BenchmarkPutGet(b *testing.B) {
	for _, size := range []int{4 << 10, 8 << 20} {
		data := randomBytes(size, 9)
		name := fmt.Sprintf("%dKiB", size>>10)
		if size >= 1<<20 {
			name = fmt.Sprintf("%dMiB", size>>20)
		}
		st := newStore(b)
		mc := rawClient(b)
		rawKey := st.Prefix() + "/raw"
		// Objects for the get benchmarks, whichever subset -bench selects.
		if _, err := st.Put(b.Context(), "obj", bytes.NewReader(data), int64(size)); err != nil {
			b.Fatal(err)
		}
		if _, err := mc.PutObject(b.Context(), st.Bucket(), rawKey, bytes.NewReader(data), int64(size), minio.PutObjectOptions{}); err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/store/put", func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := st.Put(b.Context(), "obj", bytes.NewReader(data), int64(size)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/store-stream/put", func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := st.Put(b.Context(), "stream", onlyReader{bytes.NewReader(data)}, int64(size)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/raw/put", func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := mc.PutObject(b.Context(), st.Bucket(), rawKey, bytes.NewReader(data), int64(size), minio.PutObjectOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/store/get", func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				rc, _, err := st.Get(b.Context(), "obj")
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, rc)
				rc.Close()
				if err != nil || n != int64(size) {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
		})
		b.Run(name+"/raw/get", func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				obj, err := mc.GetObject(b.Context(), st.Bucket(), rawKey, minio.GetObjectOptions{})
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, obj)
				obj.Close()
				if err != nil || n != int64(size) {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
		})
	}
}
