package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/testcontainers/testcontainers-go"
)

// BenchmarkHorizontalScale measures horizontal scale-out on the container deployment (issue 19, item 3):
// completed runs per second of a 10-step pipeline with one and then two replicas of the pipelines service
// (each replica is also a Temporal worker of the pipelines task queue and a member of the durable
// consumer pipelines-run-requests), and completed TFJobs per minute with one and then two replicas of the
// training service (worker of sluice-training, consumer training-job-requests), in the same run, and the
// ratio two / one.
//
// Workloads, published as request events straight onto JetStream (as any producer would):
//   - pipelines: SLUICE_BENCH_SCALE_RUNS (default 60) requests for a linear pipeline of 10 no-op steps
//     (`true`, each a process in the replica's container, SLUICE_RUNTIME=local), cache off;
//   - training: SLUICE_BENCH_SCALE_JOBS (default 60) TFJobs of one Worker running `/sluice-service
//     healthcheck` (the only executable in the FROM-scratch training image: a static binary that asks the
//     service's /readyz and exits 0) with the local runtime.
//
// A phase publishes its whole burst at once and ends when the last run.succeeded (job.succeeded) event
// of the burst is on the stream; the rate is the burst size over that wall time (ramp-up and tail
// included). A failed run or job fails the benchmark. Before each phase a few warm-up requests go through
// every replica.
//
// Modelling nodes on one machine: this box has 2 cores for everything (Temporal, its PostgreSQL, NATS,
// S3, the metadata service and its PostgreSQL, the replicas, the benchmark and other work). Each replica
// container gets the same fixed CPU quota, SLUICE_BENCH_REPLICA_CPUS (default 0.5 CPU, `docker update
// --cpus`), in both phases, and the same per-process worker options (the service defaults: 64 run-request
// handlers, 4 workflow-task and 8 activity-task pollers, 256 concurrent steps; training: 4 job-request
// handlers), so a replica's throughput is bounded as it is on a node of its own; the infrastructure has no
// quota and shares what is left. Nothing is tuned per phase. Where the ratio falls short of 2, the
// reported CPU split says why: throttled-% near 100 means the replicas are CPU-bound (scale-out helps);
// host-cores near 2 means the machine itself is full, so the second replica takes CPU from the
// infrastructure the first one needs.
//
// Metrics: <unit>/s (pipelines) or jobs/min (training) per phase and ratio; per phase (1r, 2r):
// replica-cores (average CPU of all replicas together), throttled-% (CFS periods in which a replica hit its
// quota), temporal-cores (Temporal + its PostgreSQL), other-cores (NATS, S3, metadata + its PostgreSQL)
// and host-cores (the whole machine busy, /proc/stat, other processes included).
func BenchmarkHorizontalScale(b *testing.B) {
	cpus := envFloat(b, "SLUICE_BENCH_REPLICA_CPUS", 0.5)
	b.Run("pipelines", func(b *testing.B) {
		runScaleBenchmark(b, pipelinesScale(envInt(b, "SLUICE_BENCH_SCALE_RUNS", 60)), cpus)
	})
	b.Run("training", func(b *testing.B) {
		runScaleBenchmark(b, trainingScale(envInt(b, "SLUICE_BENCH_SCALE_JOBS", 60)), cpus)
	})
}

// scaleCase is one service's scale-out workload.
type scaleCase struct {
	service  string        // image and NATS user: pipelines or training
	n        int           // requests per phase
	unit     string        // metric unit: runs or jobs
	per      time.Duration // rate per second or per minute
	perName  string        // "s" or "min"
	stream   string        // where the outcome events are
	done     []string      // subjects of the outcome events
	publish  func(b *testing.B, js jetstream.JetStream, ids []string)
	outcome  func(m jetstream.Msg) (id string, ok bool)
	idPrefix string
}

// scaleSpec10 is a linear pipeline of 10 no-op steps.
var scaleSpec10 = func() string {
	var s strings.Builder
	s.WriteString("apiVersion: sluice.io/v1\nkind: Pipeline\nmetadata: {name: scale-linear-10}\nspec:\n  tasks:\n")
	for i := range 10 {
		fmt.Fprintf(&s, "    s%d:\n      image: sluice-local/step:dev\n      command: [\"true\"]\n", i)
		if i > 0 {
			fmt.Fprintf(&s, "      dependsOn: [s%d]\n", i-1)
		}
	}
	return s.String()
}()

func pipelinesScale(n int) scaleCase {
	return scaleCase{
		service: "pipelines", n: n, unit: "runs", per: time.Second, perName: "s", idPrefix: "scale",
		stream: "SLUICE_PIPELINE", done: []string{"sluice.pipeline.run.succeeded.v1", "sluice.pipeline.run.failed.v1"},
		publish: func(b *testing.B, js jetstream.JetStream, ids []string) {
			for _, id := range ids {
				publishRunRequest(b, js, id, runRequest{RunName: "scale " + id, Spec: scaleSpec10, DisableCache: true})
			}
		},
		outcome: func(m jetstream.Msg) (string, bool) {
			var ev struct {
				RunID string `json:"run_id"`
			}
			_ = json.Unmarshal(m.Data(), &ev)
			return ev.RunID, m.Subject() == "sluice.pipeline.run.succeeded.v1"
		},
	}
}

// scaleJob is a TFJob of one Worker running a short command with the local runtime.
func scaleJob(name string) []byte {
	container := map[string]any{"name": "tensorflow", "image": serviceImage("training"), "command": []string{"/sluice-service", "healthcheck"}}
	doc := map[string]any{
		"apiVersion": "kubeflow.org/v1", "kind": "TFJob",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"spec": map[string]any{"tfReplicaSpecs": map[string]any{"Worker": map[string]any{
			"replicas": 1, "restartPolicy": "Never",
			"template": map[string]any{"spec": map[string]any{"containers": []any{container}}},
		}}},
	}
	body, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return body
}

func trainingScale(n int) scaleCase {
	return scaleCase{
		service: "training", n: n, unit: "jobs", per: time.Minute, perName: "min", idPrefix: "scale",
		stream: "SLUICE_TRAINING", done: []string{"sluice.training.job.succeeded.v1", "sluice.training.job.failed.v1"},
		publish: func(b *testing.B, js jetstream.JetStream, ids []string) {
			for _, id := range ids {
				msg := nats.NewMsg("sluice.training.job.requested.v1")
				msg.Header.Set("ce-specversion", "1.0")
				msg.Header.Set("ce-id", id)
				msg.Header.Set("ce-type", "io.sluice.training.job.requested.v1")
				msg.Header.Set("ce-source", "/tests/integration")
				msg.Header.Set("ce-subject", "jobs/default/tfjob/"+id)
				msg.Header.Set("ce-time", time.Now().UTC().Format(time.RFC3339Nano))
				msg.Header.Set("content-type", "application/json")
				msg.Header.Set(jetstream.MsgIDHeader, id)
				msg.Data = scaleJob(id)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := js.PublishMsg(ctx, msg)
				cancel()
				if err != nil {
					b.Fatalf("publish job request %s: %v", id, err)
				}
			}
		},
		outcome: func(m jetstream.Msg) (string, bool) {
			var ev struct {
				Name string `json:"name"`
			}
			_ = json.Unmarshal(m.Data(), &ev)
			return ev.Name, m.Subject() == "sluice.training.job.succeeded.v1"
		},
	}
}

// phaseResult is one phase's figures.
type phaseResult struct {
	wall                                 time.Duration
	replicaCores, throttledPct           float64
	temporalCores, otherCores, hostCores float64
	perContainer                         map[string]float64 // cores per container alias
}

func runScaleBenchmark(b *testing.B, sc scaleCase, cpus float64) {
	if st == nil {
		b.Skip("no stack")
	}
	// The stack's own replica (no quota) must not take a share: stopped for the benchmark.
	st.stop(b, sc.service)
	b.Cleanup(func() { st.start(b, sc.service) })
	_, js := connectNATS(b)
	dc, err := testcontainers.NewDockerClientWithOpts(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = dc.Close() })

	var replicas []string
	addReplica := func() {
		alias := fmt.Sprintf("scale-%s-%d", sc.service, len(replicas)+1)
		ctx, cancel := context.WithTimeout(context.Background(), startupDeadline)
		defer cancel()
		if err := st.startService(ctx, alias, sc.service, nil); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.remove(alias) })
		if _, err := docker("update", "--cpus", strconv.FormatFloat(cpus, 'f', -1, 64), st.name(alias)); err != nil {
			b.Fatal(err)
		}
		replicas = append(replicas, alias)
	}

	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		results := map[int]phaseResult{}
		for _, n := range []int{1, 2} {
			for len(replicas) < n {
				addReplica()
			}
			for len(replicas) > n { // a second iteration (b.N > 1) starts again from one replica
				st.remove(replicas[len(replicas)-1])
				replicas = replicas[:len(replicas)-1]
			}
			// Warm-up: a few requests per replica, so every replica has joined the consumer and polls.
			scalePhase(b, sc, js, dc, replicas, 4*n, true)
			b.StartTimer()
			results[n] = scalePhase(b, sc, js, dc, replicas, sc.n, false)
			b.StopTimer()
		}
		one, two := results[1], results[2]
		rate := func(r phaseResult) float64 { return float64(sc.n) / r.wall.Seconds() * sc.per.Seconds() }
		b.ReportMetric(rate(one), fmt.Sprintf("1r-%s/%s", sc.unit, sc.perName))
		b.ReportMetric(rate(two), fmt.Sprintf("2r-%s/%s", sc.unit, sc.perName))
		b.ReportMetric(rate(two)/rate(one), "ratio")
		for n, r := range map[string]phaseResult{"1r": one, "2r": two} {
			b.ReportMetric(r.replicaCores, n+"-replica-cores")
			b.ReportMetric(r.throttledPct, n+"-throttled-%")
			b.ReportMetric(r.temporalCores, n+"-temporal-cores")
			b.ReportMetric(r.otherCores, n+"-other-cores")
			b.ReportMetric(r.hostCores, n+"-host-cores")
		}
		b.ReportMetric(cpus, "cpus/replica")
		for _, n := range []int{1, 2} {
			r := results[n]
			aliases := make([]string, 0, len(r.perContainer))
			for a := range r.perContainer {
				aliases = append(aliases, a)
			}
			sort.Strings(aliases)
			var parts []string
			for _, a := range aliases {
				parts = append(parts, fmt.Sprintf("%s %.2f", a, r.perContainer[a]))
			}
			b.Logf("%s, %d replica(s): %d %s in %v (%.2f %s/%s); cores: %s; host %.2f; throttled %.0f%%",
				sc.service, n, sc.n, sc.unit, r.wall.Round(time.Millisecond), rate(r), sc.unit, sc.perName,
				strings.Join(parts, ", "), r.hostCores, r.throttledPct)
		}
	}
}

// scalePhase publishes n requests at once and waits for every outcome; it measures the wall time and the
// CPU used meanwhile by each container and by the whole host.
func scalePhase(b *testing.B, sc scaleCase, js jetstream.JetStream, dc *testcontainers.DockerClient, replicas []string, n int, warmup bool) phaseResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, sc.stream, jetstream.OrderedConsumerConfig{FilterSubjects: sc.done, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	pending := map[string]bool{}
	tag := "run"
	if warmup {
		tag = "warm"
	}
	batch := randomSuffix()
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%s-%s-%s-%d", sc.idPrefix, sc.service, tag, batch, i)
		pending[ids[i]] = true
	}
	infra := []string{"temporal", "temporal-postgresql", "nats", "s3", "metadata", "metadata-postgresql"}
	aliases := append(append([]string(nil), infra...), replicas...)
	before := cpuSnapshot(b, dc, aliases)
	host0 := hostBusy(b)
	start := time.Now()
	sc.publish(b, js, ids)
	// The phase ends at the last outcome's store time on the stream (its JetStream timestamp), not when
	// the fetch that carries it returns: a fetch short of its 100 messages waits out its MaxWait, which
	// would pad every phase's wall time.
	var last time.Time
	for len(pending) > 0 {
		msgs, err := cons.Fetch(100, jetstream.FetchMaxWait(250*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		for m := range msgs.Messages() {
			id, ok := sc.outcome(m)
			if !pending[id] {
				continue
			}
			if !ok {
				b.Fatalf("%s %s failed: %s", sc.unit, id, m.Data())
			}
			delete(pending, id)
			if md, err := m.Metadata(); err == nil && md.Timestamp.After(last) {
				last = md.Timestamp
			}
		}
		if err := msgs.Error(); err != nil && ctx.Err() == nil {
			b.Logf("fetch: %v", err)
		}
		if ctx.Err() != nil {
			b.Fatalf("%d of %d %s still unfinished after 20 minutes", len(pending), n, sc.unit)
		}
	}
	elapsed := time.Since(start) // the CPU window: from publish to the snapshots below
	wall := last.Sub(start)
	if last.IsZero() || wall <= 0 {
		wall = elapsed
	}
	after := cpuSnapshot(b, dc, aliases)
	host1 := hostBusy(b)
	r := phaseResult{wall: wall, hostCores: (host1 - host0).Seconds() / elapsed.Seconds(), perContainer: map[string]float64{}}
	var periods, throttled uint64
	for _, a := range aliases {
		cores := float64(after[a].usage-before[a].usage) / float64(elapsed.Nanoseconds())
		r.perContainer[a] = cores
		switch {
		case strings.HasPrefix(a, "scale-"):
			r.replicaCores += cores
			periods += after[a].periods - before[a].periods
			throttled += after[a].throttledPeriods - before[a].throttledPeriods
		case strings.HasPrefix(a, "temporal"):
			r.temporalCores += cores
		default:
			r.otherCores += cores
		}
	}
	if periods > 0 {
		r.throttledPct = 100 * float64(throttled) / float64(periods)
	}
	return r
}

type cpuStat struct{ usage, periods, throttledPeriods uint64 }

// cpuSnapshot reads each container's cumulative CPU time and CFS throttling from the Docker API.
func cpuSnapshot(b *testing.B, dc *testcontainers.DockerClient, aliases []string) map[string]cpuStat {
	b.Helper()
	out := map[string]cpuStat{}
	for _, a := range aliases {
		c := st.container(a)
		if c == nil {
			b.Fatalf("no container %s", a)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := dc.ContainerStats(ctx, c.GetContainerID(), client.ContainerStatsOptions{})
		if err != nil {
			cancel()
			b.Fatalf("stats of %s: %v", a, err)
		}
		var s struct {
			CPUStats struct {
				CPUUsage struct {
					TotalUsage uint64 `json:"total_usage"`
				} `json:"cpu_usage"`
				Throttling struct {
					Periods          uint64 `json:"periods"`
					ThrottledPeriods uint64 `json:"throttled_periods"`
				} `json:"throttling_data"`
			} `json:"cpu_stats"`
		}
		err = json.NewDecoder(res.Body).Decode(&s)
		res.Body.Close()
		cancel()
		if err != nil {
			b.Fatalf("stats of %s: %v", a, err)
		}
		out[a] = cpuStat{s.CPUStats.CPUUsage.TotalUsage, s.CPUStats.Throttling.Periods, s.CPUStats.Throttling.ThrottledPeriods}
	}
	return out
}

// hostBusy is the host's cumulative non-idle CPU time (/proc/stat, all cores).
func hostBusy(b *testing.B) time.Duration {
	b.Helper()
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var busy int64
	for i, f := range fields[1:] {
		v, _ := strconv.ParseInt(f, 10, 64)
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest times are already in user
			continue
		}
		busy += v
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s: %q is not a positive integer", name, v)
	}
	return n
}

func envFloat(b *testing.B, name string, def float64) float64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		b.Fatalf("%s: %q is not a positive number", name, v)
	}
	return f
}
