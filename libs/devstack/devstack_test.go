package devstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.temporal.io/api/workflowservice/v1"
	sdkclient "go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/libs/devstack"
	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Run(m)) }

func TestConfigValidate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  devstack.Config
		want []string // substrings of the error; none means valid
	}{
		{name: "zero value is valid", cfg: devstack.Config{}},
		{name: "defaults are valid", cfg: devstack.DefaultConfig()},
		{name: "random ports are valid", cfg: devstacktest.Config(t.TempDir())},
		{
			name: "ports out of range name each field",
			cfg:  devstack.Config{NATSPort: -2, TemporalPort: 65536, TemporalUIPort: 70000, S3Port: -5},
			want: []string{
				"NATSPort: must be between -1 and 65535, got -2",
				"TemporalPort: must be between -1 and 65535, got 65536",
				"TemporalUIPort: must be between -1 and 65535, got 70000",
				"S3Port: must be between -1 and 65535, got -5",
			},
		},
		{
			name: "duplicate port names both fields",
			cfg:  devstack.Config{NATSPort: 4222, TemporalPort: 7233, TemporalUIPort: 7233, S3Port: 4222},
			want: []string{
				"TemporalUIPort: port 7233 is already used by TemporalPort",
				"S3Port: port 4222 is already used by NATSPort",
			},
		},
		{
			name: "data dir that is a file",
			cfg:  devstack.Config{DataDir: file},
			want: []string{"DataDir: " + file + " exists and is not a directory"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("Validate() returned %d errors, want %d: %v", len(lines), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !slices.Contains(lines, w) {
					t.Errorf("Validate() = %q, missing %q", err, w)
				}
			}
		})
	}
}

func TestStartRejectsInvalidConfig(t *testing.T) {
	st, err := devstack.Start(t.Context(), devstack.Config{DataDir: t.TempDir(), NATSPort: -7})
	if err == nil {
		st.Close()
		t.Fatal("Start with NATSPort -7 succeeded, want error")
	}
	if !strings.Contains(err.Error(), "NATSPort") {
		t.Errorf("Start error = %v, want it to name NATSPort", err)
	}
}

func TestStackIsLoopbackOnly(t *testing.T) {
	st := devstacktest.Stack(t)
	if !filepath.IsAbs(st.DataDir) {
		t.Errorf("DataDir = %q, want absolute", st.DataDir)
	}
	for name, addr := range map[string]string{
		"NATSURL":         st.NATSURL,
		"TemporalAddress": "grpc://" + st.TemporalAddress,
		"TemporalUIURL":   st.TemporalUIURL,
		"S3Endpoint":      st.S3Endpoint,
	} {
		u, err := url.Parse(addr)
		if err != nil {
			t.Errorf("%s = %q: %v", name, addr, err)
			continue
		}
		if u.Hostname() != "127.0.0.1" {
			t.Errorf("%s = %q, want host 127.0.0.1", name, addr)
		}
	}
	if st.Namespace != "sluice" || st.S3Bucket != "sluice" {
		t.Errorf("Namespace, S3Bucket = %q, %q; want sluice, sluice", st.Namespace, st.S3Bucket)
	}
}

func TestTemporalUI(t *testing.T) {
	st := devstacktest.Stack(t)
	client := &http.Client{Timeout: 10 * time.Second}

	resp, body := httpGet(t, client, st.TemporalUIURL+"/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d, want 200; body: %.200s", resp.StatusCode, body)
	}
	if !bytes.Contains(bytes.ToLower(body), []byte("<html")) {
		t.Errorf("GET / body is not the UI's HTML page: %.200s", body)
	}

	resp, body = httpGet(t, client, st.TemporalUIURL+"/api/v1/namespaces")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/namespaces = %d, want 200; body: %.300s", resp.StatusCode, body)
	}
	var list struct {
		Namespaces []struct {
			NamespaceInfo struct {
				Name string `json:"name"`
			} `json:"namespaceInfo"`
		} `json:"namespaces"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("decode /api/v1/namespaces: %v; body: %.300s", err, body)
	}
	var names []string
	for _, ns := range list.Namespaces {
		names = append(names, ns.NamespaceInfo.Name)
	}
	for _, want := range []string{"sluice", "default"} {
		if !slices.Contains(names, want) {
			t.Errorf("/api/v1/namespaces lists %q, missing %q", names, want)
		}
	}
}

func httpGet(t *testing.T, c *http.Client, u string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", u, err)
	}
	return resp, body
}

// echoInput and echoOutput are the restart test workflow's I/O.
type echoInput struct{ Text string }
type echoOutput struct{ Text string }

func echoWorkflow(_ workflow.Context, in echoInput) (echoOutput, error) {
	return echoOutput{Text: "echo: " + in.Text}, nil
}

const (
	restartStream    = "DEVSTACK_RESTART"
	restartSubject   = "devstack.restart.note"
	restartQueue     = "devstack-restart"
	restartWorkflow  = "devstack-restart/echo"
	restartObjectKey = "devstack/restart/object.txt"
)

// TestRestartKeepsData writes a JetStream message, a started (not yet run)
// workflow and an object, stops the stack, starts a new one on the same data
// directory (given relative the first time, absolute the second) and checks
// that all three survived and that the workflow completes on the new stack.
func TestRestartKeepsData(t *testing.T) {
	root := t.TempDir()
	t.Chdir(root)
	first := devstacktest.Start(t, "data") // relative: resolved against root once
	want := filepath.Join(root, "data")
	if first.DataDir != want {
		t.Fatalf("DataDir = %q, want %q", first.DataDir, want)
	}
	ctx := t.Context()
	payload := []byte(`{"note":"survives restart"}`)
	object := bytes.Repeat([]byte("sluice "), 1000)

	// JetStream message.
	js := jetStream(t, first.NATSURL)
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: restartStream, Subjects: []string{"devstack.restart.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := js.Publish(ctx, restartSubject, payload); err != nil {
		t.Fatalf("publish: %v", err)
	}

	// Workflow started with no worker running: it stays pending.
	tc := temporalClient(t, first)
	run, err := tc.ExecuteWorkflow(ctx, sdkclient.StartWorkflowOptions{
		ID: restartWorkflow, TaskQueue: restartQueue,
	}, "Echo", echoInput{Text: "hello"})
	if err != nil {
		t.Fatalf("start workflow: %v", err)
	}

	// Object.
	mc := minioClient(t, first)
	if _, err := mc.PutObject(ctx, first.S3Bucket, restartObjectKey, bytes.NewReader(object), int64(len(object)),
		minio.PutObjectOptions{ContentType: "text/plain"}); err != nil {
		t.Fatalf("put object: %v", err)
	}

	if err := first.Close(); err != nil {
		t.Fatalf("close first stack: %v", err)
	}

	// Restart on the same directory, from another working directory.
	t.Chdir(t.TempDir())
	second := devstacktest.Start(t, want)
	if second.DataDir != want {
		t.Fatalf("restarted DataDir = %q, want %q", second.DataDir, want)
	}

	js = jetStream(t, second.NATSURL)
	stream, err := js.Stream(ctx, restartStream)
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, restartSubject)
	if err != nil {
		t.Fatalf("message after restart: %v", err)
	}
	if !bytes.Equal(msg.Data, payload) {
		t.Errorf("message after restart = %q, want %q", msg.Data, payload)
	}

	tc = temporalClient(t, second)
	if _, err := tc.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: second.Namespace}); err != nil {
		t.Errorf("namespace %s after restart: %v", second.Namespace, err)
	}
	w := worker.New(tc, restartQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(echoWorkflow, workflow.RegisterOptions{Name: "Echo"})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	defer w.Stop()
	var out echoOutput
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := tc.GetWorkflow(wctx, restartWorkflow, run.GetRunID()).Get(wctx, &out); err != nil {
		t.Fatalf("workflow started before restart: %v", err)
	}
	if out.Text != "echo: hello" {
		t.Errorf("workflow result = %q, want %q", out.Text, "echo: hello")
	}

	mc = minioClient(t, second)
	obj, err := mc.GetObject(ctx, second.S3Bucket, restartObjectKey, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get object after restart: %v", err)
	}
	defer obj.Close()
	got, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read object after restart: %v", err)
	}
	if !bytes.Equal(got, object) {
		t.Errorf("object after restart: got %d bytes, want %d identical bytes", len(got), len(object))
	}
}

func jetStream(t *testing.T, natsURL string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatalf("connect %s: %v", natsURL, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func temporalClient(t *testing.T, st *devstack.Stack) sdkclient.Client {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := sdkclient.DialContext(t.Context(), sdkclient.Options{
		HostPort: st.TemporalAddress, Namespace: st.Namespace, Logger: sdklog.NewStructuredLogger(quiet),
	})
	if err != nil {
		t.Fatalf("dial temporal %s: %v", st.TemporalAddress, err)
	}
	t.Cleanup(c.Close)
	return c
}

func minioClient(t *testing.T, st *devstack.Stack) *minio.Client {
	t.Helper()
	mc, err := st.MinioClient()
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

func TestBucketExists(t *testing.T) {
	st := devstacktest.Stack(t)
	ok, err := minioClient(t, st).BucketExists(t.Context(), st.S3Bucket)
	if err != nil || !ok {
		t.Fatalf("BucketExists(%s) = %v, %v; want true, nil", st.S3Bucket, ok, err)
	}
}

func TestSecondStartOnSameDataDirFails(t *testing.T) {
	running := devstacktest.Stack(t)
	st, err := devstack.Start(t.Context(), devstacktest.Config(running.DataDir))
	if err == nil {
		st.Close()
		t.Fatal("second Start on a data dir in use succeeded")
	}
	if !errors.Is(err, devstack.ErrDataDirInUse) || !strings.Contains(err.Error(), "DataDir: "+running.DataDir) {
		t.Errorf("second Start error = %v, want ErrDataDirInUse naming DataDir", err)
	}
}
