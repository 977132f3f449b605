package clusterspec_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/services/training/api/jobspec"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/internal/clusterspec"
)

// syncBuffer is a bytes.Buffer safe for a process writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMNISTDistributedOnLoopback runs examples/training/mnist/tfjob.yaml as
// real processes: the job is parsed and defaulted by jobspec, every replica
// gets its environment from clusterspec with loopback ports, and the trainer
// must reach 90% test accuracy. The test adds a second PS (so the
// parameters are sharded) and an Evaluator to the example's Chief, PS and
// two Workers. PS replicas never exit; they are killed at the end, as
// cleanPodPolicy would.
func TestMNISTDistributedOnLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("trains MNIST with real processes")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	bin := filepath.Join(t.TempDir(), "mnist-trainer")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/sluice-ml/sluice/examples/training/mnist/cmd/mnist-trainer")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build trainer: %v\n%s", err, out)
	}

	doc, err := os.ReadFile("../../../../examples/training/mnist/tfjob.yaml")
	if err != nil {
		t.Fatal(err)
	}
	job, err := jobspec.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	specs := job.TFJob.Spec.TFReplicaSpecs
	two, one := int32(2), int32(1)
	specs[trainingv1.ReplicaTypePS].Replicas = &two
	eval := specs[trainingv1.ReplicaTypeWorker].DeepCopy()
	eval.Replicas = &one
	specs[trainingv1.ReplicaTypeEvaluator] = eval

	lb, err := clusterspec.AllocateLoopback(job)
	if err != nil {
		t.Fatal(err)
	}
	modelDir, exportDir := filepath.Join(t.TempDir(), "model"), filepath.Join(t.TempDir(), "export")
	logDir := filepath.Join(t.TempDir(), "logs") // the YAML's s3:// log dir, kept local like exportDir

	type proc struct {
		r    clusterspec.Replica
		cmd  *exec.Cmd
		out  *syncBuffer
		done chan error
	}
	var procs []*proc
	t.Cleanup(func() {
		for _, p := range procs {
			if p.cmd.ProcessState == nil {
				p.cmd.Process.Kill()
				<-p.done
			}
		}
	})
	for _, r := range clusterspec.Replicas(job) {
		pod, err := clusterspec.PodSpec(job, r, lb)
		if err != nil {
			t.Fatal(err)
		}
		c := pod.Containers[0]
		if c.Name != "tensorflow" || len(c.Command) != 1 || c.Command[0] != "mnist-trainer" {
			t.Fatalf("%s: unexpected container %+v", r, c)
		}
		env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "GOFLAGS=" + os.Getenv("GOFLAGS"), "GOMODCACHE=" + os.Getenv("GOMODCACHE")}
		tfConfig := ""
		for _, e := range c.Env {
			switch e.Name {
			case "modelDir":
				e.Value = modelDir
			case "exportDir":
				e.Value = exportDir
			case "logDir":
				e.Value = logDir
			case clusterspec.EnvTFConfig:
				tfConfig = e.Value
			}
			env = append(env, e.Name+"="+e.Value)
		}
		assertLoopbackTFConfig(t, job, r, lb, tfConfig)
		out := &syncBuffer{}
		cmd := exec.CommandContext(ctx, bin, c.Args...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &proc{r: r, cmd: cmd, out: out, done: make(chan error, 1)}
		go func() { p.done <- cmd.Wait() }()
		procs = append(procs, p)
	}

	results := map[string]string{}
	for _, p := range procs {
		if p.r.Type == trainingv1.ReplicaTypePS {
			continue
		}
		select {
		case err := <-p.done:
			p.done <- err
			if err != nil {
				t.Fatalf("%s exited with %v:\n%s", p.r, err, p.out.String())
			}
		case <-ctx.Done():
			t.Fatalf("%s did not finish:\n%s", p.r, p.out.String())
		}
		results[p.r.String()] = p.out.String()
	}
	for _, p := range procs {
		if p.r.Type != trainingv1.ReplicaTypePS {
			continue
		}
		select {
		case err := <-p.done:
			t.Fatalf("PS %s must keep running until killed; exited %v:\n%s", p.r, err, p.out.String())
		default:
		}
		p.cmd.Process.Signal(os.Interrupt)
		<-p.done
	}

	acc := regexp.MustCompile(`(?m)^accuracy=(0\.\d+)$`).FindStringSubmatch(results["Chief-0"])
	if acc == nil {
		t.Fatalf("chief printed no accuracy:\n%s", results["Chief-0"])
	}
	if v, _ := strconv.ParseFloat(acc[1], 64); v < 0.90 {
		t.Fatalf("test accuracy %.4f < 0.90", v)
	}
	t.Logf("chief: accuracy=%s", acc[1])
	if !regexp.MustCompile(`(?m)^step=600 accuracy=0\.9\d+$`).MatchString(results["Evaluator-0"]) {
		t.Errorf("evaluator did not report the final checkpoint:\n%s", results["Evaluator-0"])
	}
	onnx, err := os.Stat(filepath.Join(exportDir, "1", "model.onnx"))
	if err != nil || onnx.Size() < 400_000 {
		t.Fatalf("exported model: %v %v", onnx, err)
	}
	var m struct {
		Accuracy     float64 `json:"accuracy"`
		TestExamples int     `json:"testExamples"`
	}
	b, err := os.ReadFile(filepath.Join(exportDir, "1", "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil || m.TestExamples != 10000 || m.Accuracy < 0.90 {
		t.Fatalf("metrics.json = %s (%v)", b, err)
	}
}

func assertLoopbackTFConfig(t *testing.T, job *trainingv1.Job, r clusterspec.Replica, lb clusterspec.Loopback, s string) {
	t.Helper()
	var cfg clusterspec.TFConfig
	if err := json.Unmarshal([]byte(s), &cfg); err != nil {
		t.Fatalf("%s TF_CONFIG %q: %v", r, s, err)
	}
	self := cfg.Cluster[string(bytes.ToLower([]byte(r.Type)))][r.Index]
	want := "127.0.0.1:" + strconv.Itoa(int(lb.Ports[r.Name(job.Meta().Name)]))
	if self != want || len(cfg.Cluster["ps"]) != 2 || len(cfg.Cluster["worker"]) != 2 || len(cfg.Cluster["evaluator"]) != 1 {
		t.Fatalf("%s TF_CONFIG = %s", r, s)
	}
}
