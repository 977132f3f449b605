package launcher_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
	"github.com/sluice-ml/sluice/services/pipelines/internal/launcher"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Run(m)) }

type fixture struct {
	store   *artifacts.Store
	spec    launcher.Spec
	environ []string
	dir     string
	bucket  string
}

// newFixture stores the inputs (a file and a directory) under a fresh run prefix of the real S3 and
// lays out a spec as the engine does for a pod: inputs and outputs under <dir>/s3/<bucket>/<key>.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	st := devstacktest.Stack(t)
	store, err := artifacts.New(artifacts.Config{Endpoint: st.S3Endpoint, AccessKey: st.S3AccessKey, SecretKey: st.S3SecretKey, Bucket: st.S3Bucket, Region: st.S3Region})
	require.NoError(t, err)
	require.NoError(t, store.EnsureBucket(t.Context()))
	run := "p/" + strings.ReplaceAll(t.Name(), "/", "-")
	ctx := t.Context()
	put := func(key, body string) {
		_, err := store.Put(ctx, key, strings.NewReader(body), int64(len(body)))
		require.NoError(t, err)
	}
	put(run+"/producer/data", "hello from upstream\n")
	put(run+"/producer/tree/a.txt", "A")
	put(run+"/producer/tree/sub/b.txt", "BB")
	dir := t.TempDir()
	local := func(key string) string { return filepath.Join(dir, "s3", st.S3Bucket, filepath.FromSlash(key)) }
	attempt := run + "/consumer/attempts/1"
	f := &fixture{store: store, dir: dir, bucket: st.S3Bucket,
		environ: []string{"PATH=" + os.Getenv("PATH"), "FOO=bar", launcher.EnvAccessKey + "=" + st.S3AccessKey,
			launcher.EnvSecretKey + "=" + st.S3SecretKey, launcher.EnvSpec + "={}"},
		spec: launcher.Spec{
			Endpoint: "http://" + strings.TrimPrefix(strings.TrimPrefix(st.S3Endpoint, "http://"), "https://"),
			Bucket:   st.S3Bucket, Region: st.S3Region, S3Root: filepath.Join(dir, "s3"), RunPrefix: run + "/",
			Downloads: []launcher.Transfer{
				{Key: run + "/producer/data", Path: local(run + "/producer/data")},
				{Key: run + "/producer/tree", Path: local(run + "/producer/tree"), Dir: true},
				{Key: run + "/producer/never-written", Path: local(run + "/producer/never-written"), Optional: true},
			},
			Outputs: []launcher.Output{
				{Name: "model", URI: "s3://" + st.S3Bucket + "/" + run + "/consumer/model", Path: local(run + "/consumer/model")},
				{Name: "moved", URI: "s3://" + st.S3Bucket + "/" + run + "/consumer/moved", Path: local(run + "/consumer/moved")},
				{Name: "unwritten", URI: "s3://" + st.S3Bucket + "/" + run + "/consumer/unwritten", Path: local(run + "/consumer/unwritten")},
			},
			ExecutorOutput: launcher.Transfer{Path: filepath.Join(dir, "outputs", "executor_output.json"), Key: attempt + "/executor_output.json"},
			Parameters:     []launcher.Transfer{{Path: filepath.Join(dir, "outputs", "parameters", "n"), Key: attempt + "/parameters/n"}},
			ResultKey:      attempt + "/launcher_result.json",
		}}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return f
}

func (f *fixture) read(t *testing.T, key string) string {
	t.Helper()
	rc, obj, err := f.store.Get(t.Context(), key)
	require.NoError(t, err, key)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	require.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), obj.Digest, "the launcher's uploads carry the store's digests")
	return string(b)
}

// The launcher downloads the inputs, runs the program without its own variables, and uploads the
// outputs the program wrote: a file to its given URI, a directory to the URI the executor output
// reports under the run prefix, the parameter file and the executor output; the result says which
// outputs were written.
func TestRunDownloadsRunsUploads(t *testing.T) {
	f := newFixture(t)
	run := strings.TrimSuffix(f.spec.RunPrefix, "/")
	elsewhere := "s3://" + f.bucket + "/" + run + "/consumer/elsewhere"
	eo, _ := json.Marshal(map[string]any{"artifacts": map[string]any{"moved": map[string]any{"artifacts": []any{map[string]any{"uri": elsewhere}}}}})
	script := strings.Join([]string{
		`set -e`,
		`[ -z "$SLUICE_LAUNCHER_S3_SECRET_KEY$SLUICE_LAUNCHER_S3_ACCESS_KEY$SLUICE_LAUNCHER_SPEC" ] || { echo launcher variables leaked; exit 9; }`,
		`[ ! -e "$3" ] || { echo optional input materialised; exit 8; }`,
		`tr a-z A-Z < "$1" > "$4"`,
		`printf '%s-%s' "$FOO" "$(cat "$2/a.txt" "$2/sub/b.txt")" > "$5"`,
		`mkdir -p "$6/deep" && echo x > "$6/deep/x.bin"`,
		`printf '%s' '` + string(eo) + `' > "$7"`,
		`echo done`,
	}, "\n")
	sp := f.spec
	argv := []string{"sh", "-c", script, "step", sp.Downloads[0].Path, sp.Downloads[1].Path, sp.Downloads[2].Path,
		sp.Outputs[0].Path, sp.Parameters[0].Path, filepath.Join(sp.S3Root, f.bucket, filepath.FromSlash(run+"/consumer/elsewhere")), sp.ExecutorOutput.Path}
	var out bytes.Buffer
	code, err := launcher.Run(t.Context(), sp, argv, f.environ, &out, &out)
	require.NoError(t, err, out.String())
	require.Equal(t, 0, code, out.String())
	require.Contains(t, out.String(), "done")

	require.Equal(t, "HELLO FROM UPSTREAM\n", f.read(t, run+"/consumer/model"))
	require.Equal(t, "x\n", f.read(t, run+"/consumer/elsewhere/deep/x.bin"))
	require.Equal(t, "bar-ABB", f.read(t, run+"/consumer/attempts/1/parameters/n"))
	require.JSONEq(t, string(eo), f.read(t, run+"/consumer/attempts/1/executor_output.json"))
	var res launcher.Result
	require.NoError(t, json.Unmarshal([]byte(f.read(t, sp.ResultKey)), &res))
	require.Equal(t, map[string]launcher.OutputResult{
		"model":     {URI: sp.Outputs[0].URI, Written: true, Uploaded: true},
		"moved":     {URI: elsewhere, Written: true, Dir: true, Uploaded: true},
		"unwritten": {URI: sp.Outputs[2].URI},
	}, res.Outputs)
	ok, err := f.store.Exists(t.Context(), run+"/consumer/unwritten")
	require.NoError(t, err)
	require.False(t, ok)
}

// A failing program's code passes through and nothing is uploaded (as KFP's launcher); a missing
// required input fails the launcher before the program runs; a reported URI outside the run prefix
// is not uploaded but recorded as written.
func TestRunFailuresAndForeignURIs(t *testing.T) {
	f := newFixture(t)
	code, err := launcher.Run(t.Context(), f.spec, []string{"sh", "-c", `echo partial > "$1"; exit 3`, "step", f.spec.Outputs[0].Path}, f.environ, io.Discard, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 3, code)
	for _, key := range []string{f.spec.ResultKey, strings.TrimSuffix(f.spec.RunPrefix, "/") + "/consumer/model"} {
		ok, err := f.store.Exists(t.Context(), key)
		require.NoError(t, err)
		require.False(t, ok, key)
	}

	missing := f.spec
	missing.Downloads = append([]launcher.Transfer(nil), f.spec.Downloads...)
	missing.Downloads[0].Key += "-gone"
	_, err = launcher.Run(t.Context(), missing, []string{"true"}, f.environ, io.Discard, io.Discard)
	require.ErrorContains(t, err, "download input")

	foreign := "s3://" + f.bucket + "/somewhere-else/x"
	eo := `{"artifacts":{"model":{"artifacts":[{"uri":"` + foreign + `"}]}}}`
	local := filepath.Join(f.spec.S3Root, f.bucket, "somewhere-else", "x")
	code, err = launcher.Run(t.Context(), f.spec, []string{"sh", "-c", `mkdir -p "$(dirname "$1")" && echo y > "$1" && printf '%s' "$2" > "$3"`, "step", local, eo, f.spec.ExecutorOutput.Path}, f.environ, io.Discard, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 0, code)
	var res launcher.Result
	require.NoError(t, json.Unmarshal([]byte(f.read(t, f.spec.ResultKey)), &res))
	require.Equal(t, launcher.OutputResult{URI: foreign, Written: true}, res.Outputs["model"])
	ok, err := f.store.Exists(t.Context(), "somewhere-else/x")
	require.NoError(t, err)
	require.False(t, ok, "nothing is uploaded outside the run prefix")
}

// The init container's copy: `launcher --copy DEST` copies the running binary, executable.
func TestMainCopy(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "bin", "launch")
	require.Equal(t, 0, launcher.Main([]string{"--copy", dest}, io.Discard, io.Discard))
	fi, err := os.Stat(dest)
	require.NoError(t, err)
	require.NotZero(t, fi.Mode()&0o111)
	self, _ := os.Executable()
	want, _ := os.ReadFile(self)
	got, _ := os.ReadFile(dest)
	require.True(t, bytes.Equal(want, got))
	require.Equal(t, 2, launcher.Main([]string{"run"}, io.Discard, io.Discard))
	_ = context.Background
}
