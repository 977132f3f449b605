package lifecycle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/sluice-ml/sluice/libs/artifacts"
	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/runtime"
	"github.com/sluice-ml/sluice/libs/runtime/kube"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/internal/clusterspec"
)

// Activities do the I/O of job lifecycles. Register a pointer with the worker.
type Activities struct {
	Runtime  runtime.Runtime
	Store    *artifacts.Store
	Bus      *events.Bus
	Temporal client.Client
	Log      *slog.Logger
	// Source is the CloudEvents source of published events ("/sluice/training").
	Source string
	// DataDir holds replica logs while they run (DataDir/logs/...) and
	// replica working directories (DataDir/work/...).
	DataDir string
	// Env is added to every replica's environment (after the job's own
	// variables, which win): the S3_* variables of the artifact store, so
	// trainers can export to s3:// URIs.
	Env map[string]string
	// PathPrefix is prepended to the replica's PATH (e.g. <repo>/bin, where
	// `make build` puts mnist-trainer); empty keeps the host PATH.
	PathPrefix string
	// HostPath is the service's own PATH (replicas inherit the service's
	// environment under the local runtime).
	HostPath string
	// Labels are added to every replica's container labels (the service's
	// owner label, so a restarted service finds containers it left).
	Labels map[string]string
	// HeartbeatEvery is the watcher's heartbeat interval (default 250 ms;
	// the worker's heartbeat throttle decides how often one is sent, and so
	// how soon a stop reaches the watcher).
	HeartbeatEvery time.Duration

	// DetachGrace is how long a replica left running by a watcher whose
	// run continued as new waits for the next run's watcher to adopt it
	// before it is killed (default 1 min).
	DetachGrace time.Duration

	mu    sync.Mutex
	procs map[string]*replicaProc
}

// replicaProc is one running (or just ended) replica attempt on this
// worker, followed by one watcher at a time (owner). Its monitor goroutine
// collects the exit status and uploads the log, whoever watches, so a
// process handed from one workflow run to the next loses neither.
type replicaProc struct {
	proc    runtime.Process
	started time.Time
	// ended is closed once exit is set (the log uploaded).
	ended chan struct{}
	exit  ReplicaExit
	// owner is the watcher following it ("" while detached).
	owner string
	// killed: it was killed (its watcher's worker stopping, the workflow stopping it, left detached past
	// DetachGrace), so no watcher adopts it.
	killed bool
	// detaches counts detach calls, so only the latest one's grace timer kills it.
	detaches int
}

// eventNamespace derives deterministic event ids so a retried activity
// re-publishes the same id and the stream drops the duplicate.
var eventNamespace = uuid.MustParse("0b6f2d8e-5f0a-4f5e-8f43-2a1f9c7d6e10")

// EventID is the deterministic CloudEvent id (UUID v5) of a job event.
func EventID(parts ...string) string {
	return uuid.NewSHA1(eventNamespace, []byte(strings.Join(parts, "\x00"))).String()
}

// KeepAttemptLogs is how many of a replica's latest attempt logs are kept
// in the store: uploading attempt n removes attempt n-KeepAttemptLogs, so a
// restart storm never writes an unbounded number of log objects.
const KeepAttemptLogs = 10

// LogKey is the object key of one attempt's log:
// training/<namespace>/<kind>/<job>/<uid>/<replica>/attempt-<n>.log,
// replica as "worker-0", kind as ReplicaRun.Kind; without the kind for
// jobs with a legacy workflow ID, and without uid for jobs started before
// job UIDs (training/<namespace>/<job>/<replica>/attempt-<n>.log).
func LogKey(namespace, kind, job, uid, replica string, attempt int) string {
	return path.Join(JobKeyPrefix(namespace, kind, job, uid), replica, fmt.Sprintf("attempt-%d.log", attempt))
}

// JobKeyPrefix is the store prefix of one job's logs,
// training/<namespace>/<kind>/<job>/<uid> (see LogKey).
func JobKeyPrefix(namespace, kind, job, uid string) string {
	return path.Join("training", namespace, kind, job, uid)
}

// LocalLogPath is where a running attempt's log is written before upload,
// DataDir/logs/<namespace>/<kind>/<job>/<uid>/<replica>/attempt-<n>.log.
func LocalLogPath(dataDir, namespace, kind, job, uid, replica string, attempt int) string {
	return filepath.Join(dataDir, "logs", namespace, kind, job, uid, replica, fmt.Sprintf("attempt-%d.log", attempt))
}

// WorkDir is a replica's working directory under the local runtime,
// DataDir/work/<namespace>/<kind>/<job>/<uid>/<replica>.
func WorkDir(dataDir, namespace, kind, job, uid, replica string) string {
	return filepath.Join(dataDir, "work", namespace, kind, job, uid, replica)
}

// AllocateNetwork picks a free loopback port for every replica of job (a
// local activity). The workflow keeps the result, so restarted replicas
// reuse their addresses.
func AllocateNetwork(ctx context.Context, job trainingv1.Job) (clusterspec.Loopback, error) {
	return clusterspec.AllocateLoopback(&job)
}

// Publish publishes one event with the workflow-chosen id (duplicates are
// dropped by the stream).
func (a *Activities) Publish(ctx context.Context, in PublishInput) error {
	ev, err := events.New(a.Source, in.Type, in.Subject, nil)
	if err != nil {
		return err
	}
	ev.SetID(in.ID)
	if err := ev.SetData("application/json", []byte(in.Data)); err != nil {
		return err
	}
	return a.Bus.Publish(ctx, ev)
}

// track registers a started process and runs its monitor: once the
// process ends, the log is closed and uploaded and the exit recorded; the
// entry stays for DetachGrace so a watcher adopting it late still gets
// the exit.
func (a *Activities) track(in ReplicaRun, p runtime.Process, logFile *os.File, logPath, owner string) *replicaProc {
	rp := &replicaProc{proc: p, started: time.Now().UTC(), ended: make(chan struct{}), owner: owner}
	a.mu.Lock()
	if a.procs == nil {
		a.procs = map[string]*replicaProc{}
	}
	a.procs[in.ProcessName] = rp
	a.mu.Unlock()
	go func() {
		<-p.Done()
		st, werr := p.Wait(context.Background())
		logFile.Close()
		res := ReplicaExit{Code: int32(st.Code), Reason: st.Reason, Message: st.Message}
		if werr != nil {
			res = ReplicaExit{Code: -1, Reason: "Unknown", Message: werr.Error()}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		res.LogURI = a.uploadLog(ctx, in, logPath)
		cancel()
		rp.exit = res
		close(rp.ended)
		time.AfterFunc(a.detachGrace(), func() {
			a.mu.Lock()
			if a.procs[in.ProcessName] == rp {
				delete(a.procs, in.ProcessName)
			}
			a.mu.Unlock()
		})
	}()
	return rp
}

func (a *Activities) tracked(name string) *replicaProc {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.procs[name]
}

// adopt makes owner the watcher of the tracked process name (nil when this
// worker has none, or a watcher killed it).
func (a *Activities) adopt(name, owner string) *replicaProc {
	a.mu.Lock()
	defer a.mu.Unlock()
	rp := a.procs[name]
	if rp == nil || rp.killed {
		return nil
	}
	rp.owner = owner
	return rp
}

// kill kills rp's process and waits for its exit to be recorded; no watcher adopts it afterwards.
func (a *Activities) kill(rp *replicaProc) {
	a.mu.Lock()
	rp.killed = true
	a.mu.Unlock()
	_ = rp.proc.Kill()
	<-rp.ended
}

func (a *Activities) owns(rp *replicaProc, owner string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return rp.owner == owner
}

// detach leaves rp running without a watcher; unless a watcher adopts it
// within DetachGrace, it is killed then (replicas never outlive their job).
func (a *Activities) detach(rp *replicaProc, owner, name string) {
	a.mu.Lock()
	if rp.owner == owner {
		rp.owner = ""
	}
	rp.detaches++
	n := rp.detaches
	a.mu.Unlock()
	time.AfterFunc(a.detachGrace(), func() {
		a.mu.Lock()
		orphan := rp.owner == "" && rp.detaches == n // still detached, and not again since
		if orphan {
			rp.killed = true
		}
		a.mu.Unlock()
		if orphan {
			a.Log.Warn("no watcher adopted a detached replica; killing it", "process", name)
			_ = rp.proc.Kill()
		}
	})
}

func (a *Activities) detachGrace() time.Duration {
	if a.DetachGrace > 0 {
		return a.DetachGrace
	}
	return time.Minute
}

// WatchReplica runs one attempt of a replica: it starts the process (its
// output going to a log file, uploaded to S3 at the end), signals the
// workflow once it runs, heartbeats until it exits and returns the exit
// status. Cancellation (cleanPodPolicy, suspend, delete, or the worker
// stopping) kills the process group. A retried watcher follows the process
// an earlier attempt on this worker left running when it lost contact with
// Temporal (see follow); when there is none (its worker died or stopped) it
// reports the replica Lost.
//
// When the watcher's workflow run continues as new while the replica runs
// (the heartbeat then finds the run closed), the process is left running
// for the next run's watcher: one with ReplicaRun.Adopt follows the
// process of that name on this worker (signalling the start again, to its
// own run) and reports Lost when there is none.
func (a *Activities) WatchReplica(ctx context.Context, in ReplicaRun) (ReplicaExit, error) {
	info := activity.GetInfo(ctx)
	me := info.WorkflowExecution.RunID + "/" + info.ActivityID
	lost := ReplicaExit{Code: -1, Reason: ReasonLost, Lost: true,
		Message: fmt.Sprintf("replica %s attempt %d was lost with its worker", in.Name, in.Attempt)}
	if info.Attempt > 1 {
		if rp := a.adopt(in.ProcessName, me); rp != nil {
			// The earlier attempt lost contact with Temporal (a heartbeat failed or timed out) and left
			// the replica running: follow it on.
			started := trainingv1.ReplicaStarted{Name: in.Name, Attempt: in.Attempt, Time: rp.started}
			if err := a.signalStarted(ctx, info, started); err != nil {
				a.Log.WarnContext(ctx, "signal followed replica started", "replica", in.Name, "err", err)
			}
			return a.follow(ctx, info, in, rp, me)
		}
		if rp := a.tracked(in.ProcessName); rp != nil {
			a.kill(rp)
		}
		return lost, nil
	}
	if in.Adopt {
		rp := a.adopt(in.ProcessName, me)
		if rp == nil {
			return lost, nil
		}
		started := trainingv1.ReplicaStarted{Name: in.Name, Attempt: in.Attempt, Time: rp.started}
		if err := a.signalStarted(ctx, info, started); err != nil {
			a.Log.WarnContext(ctx, "signal adopted replica started", "replica", in.Name, "err", err)
		}
		return a.follow(ctx, info, in, rp, me)
	}
	logPath := LocalLogPath(a.DataDir, in.Namespace, in.Kind, in.JobName, in.UID, in.LogName, in.Attempt)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return ReplicaExit{}, err
	}
	// 0600: the log is the service's (replicas write it through a pipe); other users' programs cannot read it.
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return ReplicaExit{}, err
	}
	lw := &lockedWriter{w: logFile}
	spec, err := a.spec(in, lw)
	if err != nil {
		logFile.Close()
		return ReplicaExit{}, err
	}
	proc, err := a.start(ctx, in, spec)
	var netErr *networkError
	if errors.As(err, &netErr) {
		logFile.Close()
		return ReplicaExit{}, netErr.err
	}
	if err != nil {
		fmt.Fprintf(lw, "sluice: cannot start replica %s: %v\n", in.Name, err)
		logFile.Close()
		a.removeNetwork(ctx, spec.Network)
		res := ReplicaExit{Code: 127, Reason: ReasonStartError, Message: err.Error()}
		res.LogURI = a.uploadLog(ctx, in, logPath)
		return res, nil
	}
	rp := a.track(in, proc, logFile, logPath, me)
	if spec.Network != "" {
		go func() { <-rp.ended; a.removeNetwork(context.WithoutCancel(ctx), spec.Network) }() // the last replica out removes it
	}
	started := trainingv1.ReplicaStarted{Name: in.Name, Attempt: in.Attempt, Time: rp.started}
	if err := a.signalStarted(ctx, info, started); err != nil {
		a.Log.WarnContext(ctx, "signal replica started", "replica", in.Name, "err", err)
	}
	return a.follow(ctx, info, in, rp, me)
}

// networkError is a failure to create the job's network (retried by
// Temporal, unlike a replica that cannot start).
type networkError struct{ err error }

func (e *networkError) Error() string { return e.err.Error() }

// start creates the job's network (container runtimes) and starts the
// process, heartbeating meanwhile: pulling an image or starting a
// container may take longer than the heartbeat timeout.
func (a *Activities) start(ctx context.Context, in ReplicaRun, spec runtime.Spec) (runtime.Process, error) {
	type result struct {
		p   runtime.Process
		err error
	}
	done := make(chan result, 1)
	go func() {
		if spec.Network != "" {
			if nw, ok := a.Runtime.(networker); ok {
				if err := nw.EnsureNetwork(context.WithoutCancel(ctx), spec.Network, map[string]string{LabelJobUID: in.UID}); err != nil {
					done <- result{err: &networkError{err}}
					return
				}
			}
		}
		var p runtime.Process
		var err error
		if kr, ok := a.Runtime.(*kube.Runtime); ok && in.Kube != nil {
			p, err = a.startKube(context.WithoutCancel(ctx), kr, in, spec.Stdout)
		} else {
			p, err = a.Runtime.Start(context.WithoutCancel(ctx), spec)
		}
		done <- result{p, err}
	}()
	every := a.HeartbeatEvery
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		activity.RecordHeartbeat(ctx, in.Attempt)
		select {
		case r := <-done:
			return r.p, r.err
		case <-tick.C:
		}
	}
}

func (a *Activities) removeNetwork(ctx context.Context, name string) {
	if nw, ok := a.Runtime.(networker); ok && name != "" {
		_, _ = nw.RemoveNetwork(context.WithoutCancel(ctx), name)
	}
}

// follow heartbeats until rp ends (its exit is the result), or the watcher
// is cancelled: by the workflow (the process is killed: Terminated), by
// the worker stopping (killed; the error makes Temporal retry the watcher,
// which reports Lost), by its run having continued as new (detached), or by
// its heartbeat failing (detached; the error makes Temporal retry the
// watcher, which follows the process on).
//
// Only a cancellation the workflow requested (a temporal.CanceledError
// cause) stops the replica. The SDK also cancels the context when a
// heartbeat RPC fails, even a transient failure such as one that took
// longer than the heartbeat throttle interval on a busy machine (cause
// serviceerror.DeadlineExceeded), and when the server no longer knows the
// attempt (NotFound: it timed out, or the run closed). Killing the replica
// then would report exit 137 for a replica nobody stopped, and the job
// would fail under its restart policy.
func (a *Activities) follow(ctx context.Context, info activity.Info, in ReplicaRun, rp *replicaProc, me string) (ReplicaExit, error) {
	every := a.HeartbeatEvery
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		activity.RecordHeartbeat(ctx, in.Attempt)
		select {
		case <-rp.ended:
			return rp.exit, nil
		case <-ctx.Done():
			if !a.owns(rp, me) {
				// A watcher of the next run follows it now.
				return ReplicaExit{Code: -1, Reason: ReasonDetached}, nil
			}
			select {
			case <-activity.GetWorkerStopChannel(ctx):
				a.kill(rp)
				return ReplicaExit{}, ctx.Err() // the worker stops: Temporal retries the watcher
			default:
			}
			if cause := context.Cause(ctx); wf.LostContact(ctx) {
				// Not stopped by the workflow, nor past StartToClose: the heartbeat failed.
				switch wf.RunStatus(ctx, a.Temporal) {
				case enums.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
					a.detach(rp, me, in.ProcessName)
					return ReplicaExit{Code: -1, Reason: ReasonDetached}, nil
				case enums.WORKFLOW_EXECUTION_STATUS_RUNNING, enums.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED:
					// The run goes on (or could not be asked): leave the replica running for the
					// retried watcher, which adopts it; unadopted, it is killed after DetachGrace.
					a.detach(rp, me, in.ProcessName)
					return ReplicaExit{}, temporal.NewApplicationErrorWithCause(fmt.Sprintf(
						"replica %s attempt %d: heartbeat failed, the replica is left running for the retried watcher", in.Name, in.Attempt),
						ErrTypeWatcherLostContact, cause)
				}
				// The run closed (completed, failed, terminated, timed out): nothing follows the replica.
			}
			// The workflow stopped the replica (cleanPodPolicy, suspend,
			// delete): an intended end, reported as a result, not an error.
			a.kill(rp)
			return ReplicaExit{Code: 137, Reason: ReasonTerminated, LogURI: rp.exit.LogURI}, nil
		case <-tick.C:
		}
	}
}

func (a *Activities) signalStarted(ctx context.Context, info activity.Info, s trainingv1.ReplicaStarted) error {
	var err error
	for i := 0; i < 5; i++ {
		err = a.Temporal.SignalWorkflow(ctx, info.WorkflowExecution.ID, info.WorkflowExecution.RunID, trainingv1.SignalReplicaStarted, s)
		if err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(i+1) * 100 * time.Millisecond)
	}
	return err
}

// spec builds the runtime spec of an attempt: the job's env over the
// service's extra env, PATH with PathPrefix first, a per-replica working
// directory unless the container sets one.
func (a *Activities) spec(in ReplicaRun, log io.Writer) (runtime.Spec, error) {
	env := map[string]string{}
	for k, v := range a.Env {
		env[k] = v
	}
	container := a.Runtime.Name() != runtime.NameLocal
	if a.PathPrefix != "" && !container { // a container's PATH is its image's
		p := a.PathPrefix
		if a.HostPath != "" {
			p += string(os.PathListSeparator) + a.HostPath
		}
		env["PATH"] = p
	}
	for k, v := range in.Env {
		env[k] = v
	}
	workDir, own := in.WorkingDir, false
	if workDir == "" || a.Runtime.Name() == runtime.NameLocal {
		if fi, err := os.Stat(workDir); workDir == "" || err != nil || !fi.IsDir() {
			workDir, own = WorkDir(a.DataDir, in.Namespace, in.Kind, in.JobName, in.UID, in.LogName), true
			if err := os.MkdirAll(workDir, 0o755); err != nil {
				return runtime.Spec{}, err
			}
		}
	}
	if _, set := env["TMPDIR"]; !set && !container {
		// A host without a temporary directory (the service's FROM-scratch container has no /tmp) would
		// fail every replica that makes a temporary file; there its temporary files go to its work dir.
		if _, err := os.Stat(os.TempDir()); err != nil {
			env["TMPDIR"] = workDir
		}
	}
	var network string
	var aliases []string
	if container && in.Network == trainingv1.NetworkDNS {
		// Replicas find each other by training-operator's service names on the job's own network.
		network, aliases = JobNetworkName(in.Namespace, in.Kind, in.JobName, in.UID), []string{in.Name}
	}
	var mounts []runtime.Mount
	if container {
		for _, c := range in.Claims {
			mounts = append(mounts, runtime.Mount{Volume: ClaimVolumeName(in.Namespace, c.Claim), ContainerPath: c.MountPath, ReadOnly: c.ReadOnly})
		}
	} else if own {
		// The replica's own work dir: a local runtime that isolates namespaces makes it private (0700) to
		// the namespace's user. A working dir the job names on the host is never handed over.
		mounts = append(mounts, runtime.Mount{HostPath: workDir, ContainerPath: workDir})
	}
	return runtime.Spec{
		Name: in.ProcessName, Namespace: in.Namespace, Image: in.Image, Command: in.Command, Args: in.Args, Env: env,
		InheritEnv: true, WorkDir: workDir, Stdout: log, Stderr: log, Mounts: mounts,
		Network: network, Aliases: aliases, Hostname: hostnameOf(aliases),
		Labels: a.labels(replicaLabels(in)),
	}, nil
}

// replicaLabels are training-operator's pod labels (job-name, replica-type,
// replica-index, and operator-name "<kind>-controller", which tells a TFJob
// from a PyTorchJob of the same name).
func replicaLabels(in ReplicaRun) map[string]string {
	m := map[string]string{
		"training.kubeflow.org/job-name":      in.JobName,
		"training.kubeflow.org/replica-type":  strings.ToLower(string(in.Replica.Type)),
		"training.kubeflow.org/replica-index": strconv.Itoa(int(in.Replica.Index)),
	}
	if in.Kind != "" {
		m["training.kubeflow.org/operator-name"] = in.Kind + "-controller"
	}
	return m
}

func (a *Activities) uploadLog(ctx context.Context, in ReplicaRun, logPath string) string {
	obj, err := a.Store.PutFile(ctx, LogKey(in.Namespace, in.Kind, in.JobName, in.UID, in.LogName, in.Attempt), logPath)
	if err != nil {
		a.Log.WarnContext(ctx, "upload replica log", "replica", in.Name, "attempt", in.Attempt, "err", err)
		return ""
	}
	_ = os.Remove(logPath)
	if old := in.Attempt - KeepAttemptLogs; old >= 1 {
		if err := a.Store.Delete(ctx, LogKey(in.Namespace, in.Kind, in.JobName, in.UID, in.LogName, old)); err != nil {
			a.Log.WarnContext(ctx, "remove old replica log", "replica", in.Name, "attempt", old, "err", err)
		}
	}
	return obj.URI
}

func (a *Activities) labels(m map[string]string) map[string]string {
	for k, v := range a.Labels {
		m[k] = v
	}
	return m
}

// LabelJobUID labels a job's Docker network with the job's UID.
const LabelJobUID = "sluice.io/training-job-uid"

// networker is implemented by runtimes with per-job networks (Docker).
type networker interface {
	EnsureNetwork(ctx context.Context, name string, labels map[string]string) error
	RemoveNetwork(ctx context.Context, name string) (bool, error)
}

// JobNetworkName is the Docker network of one job:
// "sluice-training-<first 12 hex of sha256(namespace/kind/name/uid)>"
// (namespace/name/uid for the legacy layout, kind "").
func JobNetworkName(namespace, kind, job, uid string) string {
	key := namespace + "/" + job + "/" + uid
	if kind != "" {
		key = namespace + "/" + kind + "/" + job + "/" + uid
	}
	sum := sha256.Sum256([]byte(key))
	return "sluice-training-" + hex.EncodeToString(sum[:6])
}

// ClaimVolumeName is the Docker named volume standing for a
// persistentVolumeClaim: "sluice-training-pvc-<namespace>-<claim>". Like a
// PVC it outlives the jobs that mount it.
func ClaimVolumeName(namespace, claim string) string {
	return "sluice-training-pvc-" + namespace + "-" + claim
}

func hostnameOf(aliases []string) string {
	if len(aliases) == 0 || len(aliases[0]) > 63 {
		return ""
	}
	return aliases[0]
}

// PurgeJob removes a deleted job's logs (store and local) and work dirs.
func (a *Activities) PurgeJob(ctx context.Context, in PurgeInput) error {
	if in.UID == "" || in.JobName == "" || in.Namespace == "" {
		return nil
	}
	if kr, ok := a.Runtime.(*kube.Runtime); ok && in.Kind != "" {
		// The job's pods, Services and mirror (a cluster's garbage
		// collector would follow the owner references; do it at once).
		if err := kr.DeleteOwned(ctx, kr.NamespaceOf(in.Namespace), KubeJobSelector(in.Kind, in.JobName), KubeJobResource(in.Kind), in.JobName, in.UID); err != nil {
			return err
		}
	}
	if _, err := a.Store.DeleteDir(ctx, JobKeyPrefix(in.Namespace, in.Kind, in.JobName, in.UID)); err != nil {
		return err
	}
	for _, d := range []string{"logs", "work"} {
		if err := os.RemoveAll(filepath.Join(a.DataDir, d, in.Namespace, in.Kind, in.JobName, in.UID)); err != nil {
			return err
		}
	}
	return nil
}

// RecordExport looks for metrics.json in ExportDir (an s3:// URI in the
// store's bucket) or, failing that, in its highest-numbered version
// directory, and publishes TrainingModelExportedV1 with the directory URI,
// the model digest and the metrics. It returns nil when nothing was exported.
func (a *Activities) RecordExport(ctx context.Context, in ExportInput) (*trainingv1.ModelExported, error) {
	key, err := a.Store.KeyOf(strings.TrimSuffix(in.ExportDir, "/"))
	if err != nil {
		a.Log.WarnContext(ctx, "exportDir not in the artifact store; no model recorded", "export_dir", in.ExportDir, "err", err)
		return nil, nil
	}
	objs, err := a.Store.List(ctx, key)
	if err != nil {
		return nil, err
	}
	dir := ""
	bestVersion := int64(-1)
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, key+"/")
		switch {
		case rel == "metrics.json":
			dir, bestVersion = key, 1<<62
		case strings.HasSuffix(rel, "/metrics.json") && strings.Count(rel, "/") == 1:
			v, err := strconv.ParseInt(strings.TrimSuffix(rel, "/metrics.json"), 10, 64)
			if err == nil && v > bestVersion {
				dir, bestVersion = key+"/"+strconv.FormatInt(v, 10), v
			}
		}
	}
	if dir == "" {
		return nil, nil
	}
	rc, _, err := a.Store.Get(ctx, dir+"/metrics.json")
	if err != nil {
		return nil, err
	}
	var metrics map[string]any
	derr := json.NewDecoder(rc).Decode(&metrics)
	rc.Close()
	if derr != nil {
		metrics = map[string]any{"error": "metrics.json: " + derr.Error()}
	}
	out := &trainingv1.ModelExported{Job: in.Job, Kind: in.Kind, URI: a.Store.URI(dir), Metrics: metrics, Time: time.Now().UTC()}
	var lines []string
	for _, o := range objs {
		if !strings.HasPrefix(o.Key, dir+"/") || (dir == key && strings.Count(strings.TrimPrefix(o.Key, dir+"/"), "/") > 0) {
			continue
		}
		st, err := a.Store.Stat(ctx, o.Key)
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(o.Key, "/model.onnx") {
			out.ModelURI, out.Digest = st.URI, st.Digest
		}
		lines = append(lines, strings.TrimPrefix(o.Key, dir+"/")+"\x00"+st.Digest)
	}
	if out.Digest == "" {
		sort.Strings(lines)
		h := sha256.New()
		for _, l := range lines {
			h.Write([]byte(l + "\n"))
		}
		out.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	}
	data, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	subject := in.Subject
	if subject == "" {
		subject = "jobs/" + in.Job
	}
	if err := a.Publish(ctx, PublishInput{Type: events.TrainingModelExportedV1, ID: in.EventID, Subject: subject, Data: data}); err != nil {
		return nil, err
	}
	return out, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
