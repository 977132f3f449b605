package artifacts_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/sluice-ml/sluice/libs/artifacts"
)

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b)
	return b
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// onlyReader hides Seek/ReadAt so Put takes the streaming path.
type onlyReader struct{ io.Reader }

func readAll(t *testing.T, st *artifacts.Store, key string) ([]byte, artifacts.Object) {
	t.Helper()
	rc, obj, err := st.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return got, obj
}

func TestRoundTrip20MiBMultipart(t *testing.T) {
	t.Parallel()
	data := randomBytes(20<<20, 1)
	want := digestOf(data)
	cases := map[string]struct {
		r    io.Reader
		size int64
	}{
		"seekable with known size":      {bytes.NewReader(data), int64(len(data))},
		"stream with known size":        {onlyReader{bytes.NewReader(data)}, int64(len(data))},
		"stream with unknown size (-1)": {onlyReader{bytes.NewReader(data)}, -1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := newStore(t)
			put, err := st.Put(t.Context(), "model/weights.bin", tc.r, tc.size)
			if err != nil {
				t.Fatal(err)
			}
			if put.Digest != want || put.Size != int64(len(data)) {
				t.Fatalf("Put = digest %s size %d, want %s %d", put.Digest, put.Size, want, len(data))
			}
			// A multipart upload's ETag is "<md5 of part md5s>-<parts>".
			if !strings.Contains(put.ETag, "-") {
				t.Errorf("ETag %q: want a multipart ETag", put.ETag)
			}
			stat, err := st.Stat(t.Context(), "model/weights.bin")
			if err != nil {
				t.Fatal(err)
			}
			if stat.Digest != want || stat.Size != int64(len(data)) || stat.URI != put.URI {
				t.Fatalf("Stat = %+v, want digest %s size %d uri %s", stat, want, len(data), put.URI)
			}
			got, obj := readAll(t, st, "model/weights.bin")
			if !bytes.Equal(got, data) {
				t.Fatalf("Get returned %d bytes differing from the %d put", len(got), len(data))
			}
			if obj.Digest != want {
				t.Errorf("Get object digest %s, want %s", obj.Digest, want)
			}
		})
	}
}

func TestPutFileGetFile(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	data := randomBytes(3<<20+17, 2)
	src := filepath.Join(t.TempDir(), "in.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	put, err := st.PutFile(t.Context(), "a/in.bin", src)
	if err != nil {
		t.Fatal(err)
	}
	if put.Digest != digestOf(data) {
		t.Fatalf("digest %s, want %s", put.Digest, digestOf(data))
	}
	dst := filepath.Join(t.TempDir(), "nested", "out.bin")
	got, err := st.GetFile(t.Context(), "a/in.bin", dst)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != put.Digest {
		t.Errorf("GetFile digest %s, want %s", got.Digest, put.Digest)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, data) {
		t.Fatal("downloaded file differs")
	}
	entries, _ := os.ReadDir(filepath.Dir(dst))
	if len(entries) != 1 {
		t.Errorf("download dir has %d entries, want only out.bin (temp file left behind?)", len(entries))
	}
}

func TestEmptyObject(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	cases := map[string]struct {
		r    io.Reader
		size int64
	}{
		"seekable":            {bytes.NewReader(nil), 0},
		"stream":              {onlyReader{strings.NewReader("")}, 0},
		"stream unknown size": {onlyReader{strings.NewReader("")}, -1},
	}
	for name, tc := range cases {
		put, err := st.Put(t.Context(), name, tc.r, tc.size)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if put.Digest != digestOf(nil) || put.Size != 0 {
			t.Errorf("%s: Put = %+v", name, put)
		}
		got, _ := readAll(t, st, name)
		if len(got) != 0 {
			t.Errorf("%s: read %d bytes", name, len(got))
		}
	}
}

func TestDirRoundTrip(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	src := t.TempDir()
	files := map[string][]byte{
		"saved_model.pb":                     randomBytes(1<<20, 3),
		"variables/variables.index":          []byte("index"),
		"variables/variables.data-0-of-1":    randomBytes(70_000, 4),
		"assets/empty.txt":                   {},
		"deep/a/b/c/d.json":                  []byte(`{"x":1}`),
		"name with spaces/ü-unicode.txt":     []byte("ok"),
		"dots.in.name/file.tar.gz":           []byte("gz"),
		"variables/variables.data-0-of-1.sz": nil,
	}
	for rel, b := range files {
		p := filepath.Join(src, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A symlink to a file is uploaded as the file's content.
	if err := os.Symlink("saved_model.pb", filepath.Join(src, "link.pb")); err != nil {
		t.Fatal(err)
	}
	files["link.pb"] = files["saved_model.pb"]
	if err := os.MkdirAll(filepath.Join(src, "empty-dir"), 0o755); err != nil {
		t.Fatal(err)
	}

	put, err := st.PutDir(t.Context(), "models/m1", src)
	if err != nil {
		t.Fatal(err)
	}
	var wantKeys []string
	for rel := range files {
		wantKeys = append(wantKeys, "models/m1/"+rel)
	}
	slices.Sort(wantKeys)
	var putKeys []string
	for _, o := range put {
		putKeys = append(putKeys, o.Key)
		rel := strings.TrimPrefix(o.Key, "models/m1/")
		if o.Digest != digestOf(files[rel]) {
			t.Errorf("%s: digest %s, want %s", o.Key, o.Digest, digestOf(files[rel]))
		}
	}
	if !slices.Equal(putKeys, wantKeys) {
		t.Fatalf("PutDir keys:\n%v\nwant:\n%v", putKeys, wantKeys)
	}
	listed, err := st.List(t.Context(), "models/m1")
	if err != nil {
		t.Fatal(err)
	}
	var listKeys []string
	for _, o := range listed {
		listKeys = append(listKeys, o.Key)
	}
	if !slices.Equal(listKeys, wantKeys) {
		t.Fatalf("List keys:\n%v\nwant:\n%v", listKeys, wantKeys)
	}

	dst := filepath.Join(t.TempDir(), "restored")
	got, err := st.GetDir(t.Context(), "models/m1", dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(files) {
		t.Fatalf("GetDir returned %d objects, want %d", len(got), len(files))
	}
	for rel, want := range files {
		b, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if !bytes.Equal(b, want) {
			t.Errorf("%s: restored content differs", rel)
		}
	}
	var restored int
	_ = filepath.WalkDir(dst, func(_ string, d os.DirEntry, _ error) error {
		if d != nil && !d.IsDir() {
			restored++
		}
		return nil
	})
	if restored != len(files) {
		t.Errorf("restored %d files, want %d", restored, len(files))
	}
}

func TestPutDirRejectsIrregularFiles(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	src := t.TempDir()
	if err := os.Mkdir(filepath.Join(src, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(src, "dirlink")); err != nil {
		t.Fatal(err)
	}
	_, err := st.PutDir(t.Context(), "d", src)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(src, "dirlink")) {
		t.Fatalf("PutDir with a symlinked directory: err = %v, want an error naming dirlink", err)
	}
}

func TestKeySafety(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	cases := []struct {
		key, reason string
	}{
		{"", "empty key"},
		{"a/../b", `".." segment`},
		{"..", `".." segment`},
		{"../escape", `".." segment`},
		{"a/..", `".." segment`},
		{"./a", `"." segment`},
		{"a/./b", `"." segment`},
		{"/etc/passwd", "absolute path"},
		{"a//b", "empty segment"},
		{"a/", "empty segment"},
		{`a\..\b`, "backslash"},
		{"a\x00b", "control character"},
		{"line\nbreak", "control character"},
		{"del\x7f", "control character"},
		{"bad\xffutf8", "invalid UTF-8"},
		{strings.Repeat("k", 1025), "longer than 1024 bytes"},
	}
	for _, tc := range cases {
		wantMsg := "artifacts: unsafe key " + strconv.Quote(tc.key) + ": " + tc.reason
		if tc.reason == "longer than 1024 bytes" {
			wantMsg = tc.reason
		}
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, artifacts.ErrUnsafeKey) {
				t.Errorf("%s(%q): err = %v, want ErrUnsafeKey", op, tc.key, err)
				return
			}
			var ke *artifacts.KeyError
			if !errors.As(err, &ke) || ke.Reason != tc.reason {
				t.Errorf("%s(%q): err = %v, want reason %q", op, tc.key, err, tc.reason)
			}
			if !strings.Contains(err.Error(), wantMsg) {
				t.Errorf("%s(%q): message %q, want it to contain %q", op, tc.key, err.Error(), wantMsg)
			}
		}
		check("ValidateKey", artifacts.ValidateKey(tc.key))
		_, err := st.Put(t.Context(), tc.key, strings.NewReader("x"), 1)
		check("Put", err)
		_, _, err = st.Get(t.Context(), tc.key)
		check("Get", err)
		_, err = st.Stat(t.Context(), tc.key)
		check("Stat", err)
		check("Delete", st.Delete(t.Context(), tc.key))
		_, err = st.Sub(tc.key)
		check("Sub", err)
		if tc.key != "" {
			_, err = st.List(t.Context(), tc.key)
			check("List", err)
		}
		_, err = st.PutDir(t.Context(), tc.key, t.TempDir())
		check("PutDir", err)
	}
	// A prefixed key that becomes too long is rejected even if the relative key is fine.
	deep, err := st.Sub(strings.Repeat("p", 1000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deep.Put(t.Context(), strings.Repeat("k", 100), strings.NewReader("x"), 1); !errors.Is(err, artifacts.ErrUnsafeKey) {
		t.Errorf("over-long prefixed key: err = %v, want ErrUnsafeKey", err)
	}
	objs, err := st.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 0 {
		t.Errorf("rejected keys created %d objects: %+v", len(objs), objs)
	}
	// Valid keys that look odd are accepted.
	for _, key := range []string{"a", "a/b.c", "..a/b..", "a/.hidden", "ü/🙂", "a b/c+d=e"} {
		if err := artifacts.ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", key, err)
		}
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	_, err := st.Stat(t.Context(), "missing/obj")
	if !errors.Is(err, artifacts.ErrNotFound) {
		t.Errorf("Stat: err = %v, want ErrNotFound", err)
	}
	_, _, err = st.Get(t.Context(), "missing/obj")
	if !errors.Is(err, artifacts.ErrNotFound) {
		t.Errorf("Get: err = %v, want ErrNotFound", err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	_, err = st.GetFile(t.Context(), "missing/obj", dst)
	if !errors.Is(err, artifacts.ErrNotFound) {
		t.Errorf("GetFile: err = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("GetFile of a missing object created %s", dst)
	}
	ok, err := st.Exists(t.Context(), "missing/obj")
	if err != nil || ok {
		t.Errorf("Exists = %v, %v; want false, nil", ok, err)
	}
	if err := st.Delete(t.Context(), "missing/obj"); err != nil {
		t.Errorf("Delete of a missing object: %v", err)
	}
	objs, err := st.List(t.Context(), "missing")
	if err != nil || len(objs) != 0 {
		t.Errorf("List of an empty prefix = %v, %v", objs, err)
	}
}

func TestListStatDelete(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	for _, k := range []string{"a/1", "a/2", "a/sub/3", "ab/4", "b"} {
		if _, err := st.Put(t.Context(), k, strings.NewReader(k), int64(len(k))); err != nil {
			t.Fatal(err)
		}
	}
	keys := func(dir string) []string {
		t.Helper()
		objs, err := st.List(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, o := range objs {
			out = append(out, o.Key)
			if o.Size != int64(len(o.Key)) || o.URI != st.URI(o.Key) || o.LastModified.IsZero() {
				t.Errorf("List(%q) entry %+v", dir, o)
			}
		}
		return out
	}
	if got, want := keys("a"), []string{"a/1", "a/2", "a/sub/3"}; !slices.Equal(got, want) {
		t.Errorf("List(a) = %v, want %v", got, want)
	}
	if got, want := keys(""), []string{"a/1", "a/2", "a/sub/3", "ab/4", "b"}; !slices.Equal(got, want) {
		t.Errorf("List('') = %v, want %v", got, want)
	}
	o, err := st.Stat(t.Context(), "a/sub/3")
	if err != nil {
		t.Fatal(err)
	}
	if o.Key != "a/sub/3" || o.Size != 7 || o.Digest != digestOf([]byte("a/sub/3")) || o.ETag == "" {
		t.Errorf("Stat = %+v", o)
	}
	if err := st.Delete(t.Context(), "a/1"); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.Exists(t.Context(), "a/1"); err != nil || ok {
		t.Errorf("after Delete: Exists = %v, %v", ok, err)
	}
	n, err := st.DeleteDir(t.Context(), "a")
	if err != nil || n != 2 {
		t.Errorf("DeleteDir(a) = %d, %v; want 2, nil", n, err)
	}
	if got, want := keys(""), []string{"ab/4", "b"}; !slices.Equal(got, want) {
		t.Errorf("after DeleteDir: List = %v, want %v", got, want)
	}
}

func TestOverwriteReplacesDigest(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	if _, err := st.Put(t.Context(), "k", strings.NewReader("first"), 5); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(t.Context(), "k", onlyReader{strings.NewReader("second!")}, -1); err != nil {
		t.Fatal(err)
	}
	got, obj := readAll(t, st, "k")
	if string(got) != "second!" || obj.Digest != digestOf([]byte("second!")) {
		t.Errorf("after overwrite: %q %s", got, obj.Digest)
	}
}

func TestGetDetectsCorruption(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	mc := rawClient(t)
	// Written behind the store's back: content does not match the digest.
	wrong := sha256.Sum256([]byte("something else"))
	full := st.Prefix() + "/tampered"
	_, err := mc.PutObject(t.Context(), st.Bucket(), full, strings.NewReader("payload"), 7,
		minio.PutObjectOptions{UserMetadata: map[string]string{"Sha256": hex.EncodeToString(wrong[:])}})
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := st.Get(t.Context(), "tampered")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, artifacts.ErrDigestMismatch) {
		t.Fatalf("read tampered object: err = %v, want ErrDigestMismatch", err)
	}
	dst := filepath.Join(t.TempDir(), "tampered")
	if _, err := st.GetFile(t.Context(), "tampered", dst); !errors.Is(err, artifacts.ErrDigestMismatch) {
		t.Fatalf("GetFile: err = %v, want ErrDigestMismatch", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Error("GetFile left a corrupt file in place")
	}
	// Objects without a digest (foreign writers) are readable, unverified.
	if _, err := mc.PutObject(t.Context(), st.Bucket(), st.Prefix()+"/foreign", strings.NewReader("f"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	got, obj := readAll(t, st, "foreign")
	if string(got) != "f" || obj.Digest != "" {
		t.Errorf("foreign object: %q digest %q", got, obj.Digest)
	}
}

// changingSeeker returns different bytes after the first pass.
type changingSeeker struct {
	data   []byte
	pos    int64
	passes int
}

func (c *changingSeeker) Read(p []byte) (int, error) {
	if c.pos >= int64(len(c.data)) {
		return 0, io.EOF
	}
	n := copy(p, c.data[c.pos:])
	if c.passes > 0 {
		for i := range n {
			p[i] ^= 0xff
		}
	}
	c.pos += int64(n)
	return n, nil
}

func (c *changingSeeker) Seek(off int64, whence int) (int64, error) {
	if whence == io.SeekStart {
		if c.pos > 0 {
			c.passes++
		}
		c.pos = off
	}
	return c.pos, nil
}

func TestPutDetectsSourceChange(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	src := &changingSeeker{data: []byte("hello, world")}
	_, err := st.Put(t.Context(), "changed", src, int64(len(src.data)))
	if !errors.Is(err, artifacts.ErrDigestMismatch) {
		t.Fatalf("Put of a changing source: err = %v, want ErrDigestMismatch", err)
	}
	if ok, err := st.Exists(t.Context(), "changed"); err != nil || ok {
		t.Errorf("object from a failed Put still exists: %v %v", ok, err)
	}
}

func TestPutShortReader(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	for name, r := range map[string]io.Reader{"seekable": strings.NewReader("abc"), "stream": onlyReader{strings.NewReader("abc")}} {
		if _, err := st.Put(t.Context(), "short-"+name, r, 10); err == nil {
			t.Errorf("%s: Put of 3 bytes with size 10 succeeded", name)
		}
		if ok, _ := st.Exists(t.Context(), "short-"+name); ok {
			t.Errorf("%s: short Put left an object", name)
		}
	}
}

func TestPutDirRoot(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.MkdirAll(filepath.Join(real, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(real, "sub", "f"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	objs, err := st.PutDir(t.Context(), "via-link", link)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Key != "via-link/sub/f" {
		t.Errorf("PutDir through a symlinked root = %+v", objs)
	}
	file := filepath.Join(real, "sub", "f")
	if _, err := st.PutDir(t.Context(), "x", file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("PutDir of a file: err = %v", err)
	}
	if _, err := st.PutDir(t.Context(), "x", filepath.Join(base, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("PutDir of a missing dir: err = %v", err)
	}
}
