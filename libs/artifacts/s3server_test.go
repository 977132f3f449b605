package artifacts_test

// Tests of the embedded S3 gateway's lifecycle as the artifact store sees
// it: data and digests survive a restart, and the gateway child dies with
// its parent.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/devstack"
)

// parentRoleEnv makes this test binary act as a process that starts S3 and
// then blocks, so a test can SIGKILL it (see TestS3ChildDiesWithParent).
const parentRoleEnv = "SLUICE_ARTIFACTS_TEST_S3_PARENT"

func init() {
	dir, ok := os.LookupEnv(parentRoleEnv)
	if !ok || os.Getenv("SLUICE_DEVSTACK_ROLE") != "" {
		return
	}
	srv, err := devstack.StartS3(context.Background(), devstack.S3Config{DataDir: dir}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(srv.Endpoint)
	select {} // until killed
}

func TestS3RestartKeepsObjectsAndDigests(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := func() (*devstack.S3Server, *artifacts.Store) {
		srv, err := devstack.StartS3(t.Context(), devstack.S3Config{DataDir: dir}, nil)
		if err != nil {
			t.Fatal(err)
		}
		st, err := artifacts.New(artifacts.Config{Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Region: srv.Region, Bucket: "persist"})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.EnsureBucket(t.Context()); err != nil {
			t.Fatal(err)
		}
		return srv, st
	}
	srv, st := start()
	data := randomBytes(1<<20, 5)
	put, err := st.Put(t.Context(), "runs/r1/out.bin", onlyReader{strings.NewReader(string(data))}, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := http.Get(srv.Endpoint + "/healthz"); err == nil {
		t.Fatal("gateway still answers after Close")
	}

	srv2, st2 := start()
	defer srv2.Close()
	stat, err := st2.Stat(t.Context(), "runs/r1/out.bin")
	if err != nil {
		t.Fatal(err)
	}
	if stat.Digest != put.Digest || stat.Size != put.Size {
		t.Fatalf("after restart: %+v, want digest %s size %d", stat, put.Digest, put.Size)
	}
	got, _ := readAll(t, st2, "runs/r1/out.bin")
	if string(got) != string(data) {
		t.Fatal("content changed across restart")
	}
}

func TestS3ChildDiesWithParent(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), parentRoleEnv+"="+t.TempDir())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var endpoint string
	if err := json.NewDecoder(bufio.NewReader(out)).Decode(&endpoint); err != nil {
		t.Fatalf("parent did not report an endpoint: %v", err)
	}
	health := endpoint + "/healthz"
	resp, err := http.Get(health)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health: %s", resp.Status)
	}

	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup in the parent
		t.Fatal(err)
	}
	_ = cmd.Wait()
	client := &http.Client{Timeout: 500 * time.Millisecond}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(health)
		if err != nil {
			return // the orphaned gateway has exited
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("gateway child still answers 10s after its parent was killed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
