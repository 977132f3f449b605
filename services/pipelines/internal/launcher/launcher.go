// Package launcher is what runs inside a pipeline step's pod on the kubernetes runtime, in the role of
// KFP v2's launcher (backend/src/v2/component/launcher_v2.go): an init container copies the static
// launcher binary into an emptyDir shared with the main container (as KFP's "kfp-launcher" init
// container runs `launcher-v2 --copy /kfp-launcher/launch`), and the main container runs
// `<copy> -- <the step's command and args>`. The launcher then
//
//  1. downloads the step's input artifacts from S3 to the local paths its executor input names;
//  2. creates the parent directories of the output artifact and output parameter paths;
//  3. runs the step's program with the container's environment minus the launcher's own variables
//     (the spec and the S3 credentials, which come from a Kubernetes Secret), its stdout and stderr
//     going to the container log, and passes SIGTERM/SIGINT on;
//  4. when the program exits 0, uploads the output artifacts (each to the URI the executor reported in
//     its ExecutorOutput file when that is an s3:// URI under the run's prefix, else to the URI it was
//     given), the output parameter files and the ExecutorOutput file, and writes a Result record
//     beside them saying what it found;
//  5. exits with the program's exit code (ExitLauncher when the launcher itself failed).
//
// Objects are written through libs/artifacts (minio-go), so they carry the same sha256 digests as the
// objects the pipelines service writes itself.
package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sluice-ml/sluice/libs/artifacts"
)

// Environment variables the launcher reads; none of them reaches the step's program.
const (
	// EnvSpec holds the JSON Spec.
	EnvSpec = "SLUICE_LAUNCHER_SPEC"
	// EnvAccessKey and EnvSecretKey are the S3 credentials (from a Secret through secretKeyRef).
	EnvAccessKey = "SLUICE_LAUNCHER_S3_ACCESS_KEY"
	EnvSecretKey = "SLUICE_LAUNCHER_S3_SECRET_KEY"
	// envPrefix marks every launcher variable.
	envPrefix = "SLUICE_LAUNCHER_"
)

// ExitLauncher is the exit code when the launcher itself fails (S3 unreachable, an input missing, an
// upload failing); the container log says why. Programs' own codes pass through unchanged.
const ExitLauncher = 70

// Spec is one step attempt as the launcher carries it out.
type Spec struct {
	// Endpoint is the S3 endpoint as seen from the pod ("http(s)://host:port"); Bucket and Region
	// locate the bucket. Keys below are object keys in the bucket.
	Endpoint string `json:"endpoint"`
	Bucket   string `json:"bucket"`
	Region   string `json:"region,omitempty"`
	// Downloads are the input artifacts.
	Downloads []Transfer `json:"downloads,omitempty"`
	// Outputs are the declared output artifacts with the URI and path the executor input gives them.
	Outputs []Output `json:"outputs,omitempty"`
	// S3Root is the local directory KFP's executor maps s3:// URIs to (s3://b/k → <S3Root>/b/k).
	S3Root string `json:"s3_root"`
	// RunPrefix is the key prefix (ending in "/") under which an executor-reported output URI is
	// uploaded; a reported URI elsewhere is only recorded (see Result).
	RunPrefix string `json:"run_prefix"`
	// ExecutorOutput is KFP's ExecutorOutput file and where it is uploaded.
	ExecutorOutput Transfer `json:"executor_output"`
	// Parameters are the output parameter files and where each is uploaded.
	Parameters []Transfer `json:"parameters,omitempty"`
	// ResultKey is where the Result record is written.
	ResultKey string `json:"result_key"`
}

// Transfer is one file or directory (Dir) between Path and the object Key (a key prefix for a
// directory). Optional downloads that do not exist are skipped.
type Transfer struct {
	Key      string `json:"key"`
	Path     string `json:"path"`
	Dir      bool   `json:"dir,omitempty"`
	Optional bool   `json:"optional,omitempty"`
}

// Output is one declared output artifact: the s3:// URI and local path the executor input names.
type Output struct {
	Name string `json:"name"`
	URI  string `json:"uri"`
	Path string `json:"path"`
}

// Result is what the launcher found after a successful program, per output artifact name.
type Result struct {
	Outputs map[string]OutputResult `json:"outputs"`
}

// OutputResult is one output artifact after the program ran.
type OutputResult struct {
	// URI is the URI the artifact was looked for at (the reported one, or the given one).
	URI string `json:"uri"`
	// Written says the program left a file or a non-empty directory at the URI's local path; Dir that
	// it was a directory; Uploaded that it was uploaded (written, and under RunPrefix).
	Written  bool `json:"written,omitempty"`
	Dir      bool `json:"dir,omitempty"`
	Uploaded bool `json:"uploaded,omitempty"`
}

// Main is the launcher's command line: `launcher --copy DEST` (the init container) copies the running
// binary to DEST; `launcher -- ARGV...` runs ARGV as a step (see the package doc). It returns the exit
// code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 2 && args[0] == "--copy" {
		if err := copySelf(args[1]); err != nil {
			fmt.Fprintf(stderr, "launcher: copy: %v\n", err)
			return ExitLauncher
		}
		return 0
	}
	if len(args) == 0 || args[0] != "--" || len(args) == 1 {
		fmt.Fprintln(stderr, "usage: launcher --copy DEST | launcher -- COMMAND [ARG...]")
		return 2
	}
	var spec Spec
	if err := json.Unmarshal([]byte(os.Getenv(EnvSpec)), &spec); err != nil {
		fmt.Fprintf(stderr, "launcher: %s: %v\n", EnvSpec, err)
		return ExitLauncher
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	code, err := Run(ctx, spec, args[1:], os.Environ(), stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "launcher: %v\n", err)
		return ExitLauncher
	}
	return code
}

func copySelf(dest string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dest, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Run carries out spec for the program argv in environment environ (KEY=VALUE; the S3 credentials
// are read from it and removed, with every SLUICE_LAUNCHER_ variable). It returns the program's exit
// code; err is the launcher's own failure (nothing uploaded after a failed program, as KFP's launcher).
func Run(ctx context.Context, spec Spec, argv, environ []string, stdout, stderr io.Writer) (int, error) {
	var access, secret string
	var env []string
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == EnvAccessKey:
			access = v
		case k == EnvSecretKey:
			secret = v
		case strings.HasPrefix(k, envPrefix):
		default:
			env = append(env, kv)
		}
	}
	store, err := artifacts.New(artifacts.Config{Endpoint: spec.Endpoint, AccessKey: access, SecretKey: secret, Bucket: spec.Bucket, Region: spec.Region})
	if err != nil {
		return -1, err
	}
	for _, d := range spec.Downloads {
		if d.Dir {
			_, err = store.GetDir(ctx, d.Key, d.Path)
		} else {
			_, err = store.GetFile(ctx, d.Key, d.Path)
		}
		if errors.Is(err, artifacts.ErrNotFound) && d.Optional {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("download input %s to %s: %w", artifacts.FormatURI(spec.Bucket, d.Key), d.Path, err)
		}
	}
	for _, p := range append(outputPaths(spec), spec.ExecutorOutput.Path) {
		if p == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return -1, err
		}
	}

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, stdout, stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "launcher: start %s: %v\n", argv[0], err)
		return 127, nil
	}
	waited := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
		case <-waited:
		}
	}()
	werr := cmd.Wait()
	close(waited)
	code := cmd.ProcessState.ExitCode()
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return -1, werr
	}
	if code < 0 { // killed by a signal: the shell's convention
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	}
	if code != 0 {
		return code, nil
	}
	// A fresh context: a SIGTERM after the program ended still lets its outputs be uploaded.
	if err := upload(context.WithoutCancel(ctx), store, spec); err != nil {
		return -1, err
	}
	return 0, nil
}

func outputPaths(spec Spec) []string {
	var out []string
	for _, o := range spec.Outputs {
		out = append(out, o.Path)
	}
	for _, p := range spec.Parameters {
		out = append(out, p.Path)
	}
	return out
}

// reportedURIs reads the URIs the ExecutorOutput file reports per output artifact (the first of each
// list, as the pipelines service reads it).
func reportedURIs(p string) (map[string]string, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(strings.TrimSpace(string(b))) == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var eo struct {
		Artifacts map[string]struct {
			Artifacts []struct {
				URI string `json:"uri"`
			} `json:"artifacts"`
		} `json:"artifacts"`
	}
	if err := json.Unmarshal(b, &eo); err != nil {
		return nil, fmt.Errorf("executor output %s: %w", p, err)
	}
	out := map[string]string{}
	for name, l := range eo.Artifacts {
		if len(l.Artifacts) > 0 && l.Artifacts[0].URI != "" {
			out[name] = l.Artifacts[0].URI
		}
	}
	return out, nil
}

func upload(ctx context.Context, store *artifacts.Store, spec Spec) error {
	reported, err := reportedURIs(spec.ExecutorOutput.Path)
	if err != nil {
		return err
	}
	res := Result{Outputs: map[string]OutputResult{}}
	for _, o := range spec.Outputs {
		r := OutputResult{URI: o.URI}
		local := o.Path
		if u := reported[o.Name]; u != "" && u != o.URI {
			r.URI, local = u, ""
			if rest, ok := strings.CutPrefix(u, "s3://"); ok {
				local = filepath.Join(spec.S3Root, filepath.FromSlash(path.Clean("/"+rest)))
			}
		}
		bucket, key, perr := artifacts.ParseURI(r.URI)
		if local == "" || perr != nil {
			res.Outputs[o.Name] = r // not an s3:// URI: recorded as given by the service
			continue
		}
		fi, err := os.Stat(local)
		if errors.Is(err, os.ErrNotExist) {
			res.Outputs[o.Name] = r
			continue
		}
		if err != nil {
			return err
		}
		r.Written, r.Dir = true, fi.IsDir()
		if bucket == spec.Bucket && strings.HasPrefix(key, spec.RunPrefix) {
			if r.Dir {
				objs, err := store.PutDir(ctx, key, local)
				if err != nil {
					return fmt.Errorf("upload output %q: %w", o.Name, err)
				}
				r.Written = len(objs) > 0
			} else if _, err := store.PutFile(ctx, key, local); err != nil {
				return fmt.Errorf("upload output %q: %w", o.Name, err)
			}
			r.Uploaded = r.Written
		}
		res.Outputs[o.Name] = r
	}
	for _, p := range append(append([]Transfer(nil), spec.Parameters...), spec.ExecutorOutput) {
		if p.Path == "" {
			continue
		}
		if _, err := os.Stat(p.Path); errors.Is(err, os.ErrNotExist) {
			continue // the service reports a missing declared parameter
		}
		if _, err := store.PutFile(ctx, p.Key, p.Path); err != nil {
			return fmt.Errorf("upload %s: %w", p.Path, err)
		}
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if _, err := store.Put(ctx, spec.ResultKey, strings.NewReader(string(b)), int64(len(b))); err != nil {
		return fmt.Errorf("write the launcher result: %w", err)
	}
	return nil
}
