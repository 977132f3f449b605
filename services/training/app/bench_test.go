package app_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/runtime/docker"
	"github.com/sluice-ml/sluice/libs/runtime/runtimetest"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// benchJob's replicas run image with command (YAML flow sequence).
const benchJob = `apiVersion: kubeflow.org/v1
kind: TFJob
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  runPolicy: {cleanPodPolicy: All}
  tfReplicaSpecs:
    Chief: {replicas: 1, template: {spec: {containers: [{name: tensorflow, image: %[3]s, command: %[4]s}]}}}
    PS: {replicas: 1, template: {spec: {containers: [{name: tensorflow, image: %[3]s, command: %[4]s}]}}}
    Worker: {replicas: 2, template: {spec: {containers: [{name: tensorflow, image: %[3]s, command: %[4]s}]}}}
`

// BenchmarkEventToAllReplicasRunning measures, for a 4-replica TFJob (chief,
// PS, 2 workers), the time from publishing io.sluice.training.job.requested.v1
// to the moment the last replica's process is running (the watcher's start
// time, reported to the workflow), through the consumer, the workflow and
// the runtime, side by side for the local runtime (host processes on
// loopback ports) and the Docker runtime (one container per replica on the
// job's own network, FROM scratch probe image built here). Reports p50 and
// p99 in ms.
func BenchmarkEventToAllReplicasRunning(b *testing.B) {
	b.Run("local", func(b *testing.B) {
		benchAllRunning(b, newBenchEnv(b), "busybox", `[sleep, "60"]`)
	})
	b.Run("docker", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ok := docker.Available(ctx)
		cancel()
		if !ok {
			b.Skip("docker daemon unreachable")
		}
		img := probeImage(b)
		benchAllRunning(b, newEnvOn(b, b.TempDir(), "training-bench-"+uuid.NewString()[:8], "docker"), img, `[/probe, sleep]`)
	})
}

// probeImage builds a FROM scratch image holding the runtime test probe
// (sluice-training-test/probe:<pid>), removed at cleanup.
func probeImage(b testing.TB) string {
	b.Helper()
	rt, err := docker.New(docker.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rt.Close() })
	probe, err := runtimetest.BuildProbe(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	body, err := os.ReadFile(probe)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		body []byte
	}{{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY probe /probe\n")}, {"probe", 0o755, body}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body))}); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(f.body); err != nil {
			b.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	tag := fmt.Sprintf("sluice-training-test/probe:%d", os.Getpid())
	resp, err := rt.Client().ImageBuild(context.Background(), &buf, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true})
	if err != nil {
		b.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(out, []byte(`"error"`)) {
		b.Fatalf("build probe image: %s", out)
	}
	b.Cleanup(func() {
		_, _ = rt.Client().ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	return tag
}

func benchAllRunning(b *testing.B, e *env, img, command string) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := -1; i < b.N; i++ { // i = -1 warms the consumer and worker up, unmeasured
		name := fmt.Sprintf("bench-%d", i+1)
		ev := cloudevents.NewEvent()
		ev.SetID(uuid.NewString())
		ev.SetSource("/bench")
		ev.SetType(events.TrainingJobRequestedV1)
		if err := ev.SetData("application/yaml", []byte(fmt.Sprintf(benchJob, name, e.ns, img, command))); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := e.deps.Bus.Publish(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
		var last time.Time
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("job %s: replicas not all running", name)
			}
			var v trainingv1.JobView
			if e.get(name, &v) != http.StatusOK {
				continue
			}
			running := 0
			for _, r := range v.Replicas {
				if r.State == trainingv1.ReplicaRunning && r.StartedAt != nil {
					running++
					if r.StartedAt.After(last) {
						last = *r.StartedAt
					}
				}
			}
			if running == 4 {
				break
			}
		}
		if i >= 0 {
			lat = append(lat, last.Sub(t0))
		}
		if testing.Verbose() {
			d, err := e.deps.Temporal.DescribeWorkflowExecution(context.Background(), trainingv1.WorkflowID(trainingv1.KindTFJob, e.ns, name), "")
			if err == nil {
				b.Logf("%s: workflow started +%v, all running +%v", name, d.WorkflowExecutionInfo.StartTime.AsTime().Sub(t0), last.Sub(t0))
			}
		}
		b.StopTimer()
		_ = e.deps.Temporal.SignalWorkflow(context.Background(), trainingv1.WorkflowID(trainingv1.KindTFJob, e.ns, name), "", trainingv1.SignalDelete, nil)
		b.StartTimer()
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkDeleteToReplicasStopped measures, for a running 4-replica TFJob
// on the local runtime, the time from the delete request (REST DELETE's
// signal) to every replica process having exited. Reports p50 and p99 in
// ms. Goal: p50 <= 1 s (no waiting on heartbeat cycles).
func BenchmarkDeleteToReplicasStopped(b *testing.B) {
	e := newBenchEnv(b)
	script := `[sh, -c, 'echo $$ > pid; exec sleep 60']`
	lat := make([]time.Duration, 0, b.N)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		name := fmt.Sprintf("stop-%d", i)
		if code := e.do(http.MethodPost, e.jobs(), fmt.Sprintf(benchJob, name, e.ns, "busybox", script), nil); code != http.StatusCreated {
			b.Fatalf("create: %d", code)
		}
		var pids []int
		for deadline := time.Now().Add(2 * time.Minute); len(pids) < 4; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("job %s: replicas not all running", name)
			}
			var v trainingv1.JobView
			if e.get(name, &v) != http.StatusOK {
				continue
			}
			pids = pids[:0]
			for _, r := range v.Replicas {
				data, err := os.ReadFile(filepath.Join(e.deps.DataDir, "training", "work", e.ns, "tfjob", name, string(v.Job.Meta().UID), r.LogName(), "pid"))
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && perr == nil && r.State == trainingv1.ReplicaRunning {
					pids = append(pids, pid)
				}
			}
		}
		b.StartTimer()
		t0 := time.Now()
		if err := e.deps.Temporal.SignalWorkflow(context.Background(), trainingv1.WorkflowID(trainingv1.KindTFJob, e.ns, name), "", trainingv1.SignalDelete, nil); err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(2 * time.Millisecond) {
			left := 0
			for _, pid := range pids {
				if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(st), ") Z ") {
					left++
				}
			}
			if left == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("job %s: %d replica processes still running", name, left)
			}
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[int(0.99*float64(len(lat)-1))].Microseconds())/1000, "p99-ms")
}
