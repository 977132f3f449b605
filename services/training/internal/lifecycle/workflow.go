package lifecycle

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/sluice-ml/sluice/libs/events"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/internal/clusterspec"
	"github.com/sluice-ml/sluice/services/training/internal/jobstatus"
)

// ErrTypeJobFailed is the application error type of a workflow whose job
// ended Failed.
const ErrTypeJobFailed = "sluice.TrainingJobFailed"

// DefaultHeartbeatTimeout is how long a watcher whose worker died goes
// unnoticed when JobInput.HeartbeatTimeout is 0.
const DefaultHeartbeatTimeout = 10 * time.Second

// maxHistory bounded the history of runs started before restart backoff
// (version 0): a job still restarting replicas past it was failed. Runs of
// version 1 continue as new instead (see JobInput.HistoryLimit).
const maxHistory = 3800

// defaultHistoryLimit is JobInput.HistoryLimit's default.
const defaultHistoryLimit = 2000

// versionBackoff is the workflow.GetVersion change id of restart backoff,
// permanent start failures, continue-as-new and job UIDs.
const versionBackoff = "restart-backoff"

// ErrTypeWatcherLostContact is the application error type of a replica
// watcher attempt that lost contact with Temporal (its heartbeat failed)
// and left the replica running for the next attempt.
const ErrTypeWatcherLostContact = "sluice.TrainingWatcherLostContact"

// versionRewatch is the workflow.GetVersion change id of watching a replica
// again, adopting its process, when its watcher ran out of attempts by
// losing contact with Temporal (version 1); before, the replica failed
// (WatchFailed).
const versionRewatch = "rewatch-after-lost-contact"

// versionAdopt is the workflow.GetVersion change id of continuing as new
// while replicas run: the next run adopts their processes (version 1).
// Runs without it continue as new only when no replica runs.
const versionAdopt = "adopt-running-replicas"

// replica is the workflow's record of one replica.
type replica struct {
	r      clusterspec.Replica
	policy trainingv1.RestartPolicy
	view   trainingv1.ReplicaView
	phase  jobstatus.ReplicaPhase
	// active: a watcher runs for the current attempt.
	active bool
	// stopping: the workflow cancelled the current attempt.
	stopping bool
	// startOnExit: start again once the stopping attempt has exited.
	startOnExit bool
	cancel      workflow.CancelFunc
	// fut is the current attempt's watcher; process its ProcessName.
	fut     workflow.Future
	process string
	// crashes counts consecutive policy restarts (the backoff exponent);
	// backoff is the pending CrashLoopBackOff timer.
	crashes       int
	backoff       workflow.Future
	backoffCancel workflow.CancelFunc
}

type exitMsg struct {
	Name    string
	Attempt int
	Exit    ReplicaExit
	Err     error
}

type pubItem struct {
	publish *PublishInput
	export  *ExportInput
	purge   *PurgeInput
}

type lifecycle struct {
	// sa is set at versionSearchAttributes >= 1; phase is the SluicePhase last set (visibility.go).
	sa    bool
	phase string
	in    trainingv1.JobInput
	job   *trainingv1.Job
	wfID  string
	runID string
	// kind is the trainingv1.KindSegment of a kind-qualified workflow ID
	// ("" for a legacy ID: unqualified names, keys and subjects).
	kind      string
	net       clusterspec.Loopback
	replicas  []*replica
	byName    map[string]*replica
	restarts  int32
	suspended bool
	deleted   bool
	modelURI  string
	evCount   map[string]int

	exitCh   workflow.Channel
	pubCh    workflow.Channel
	watchers int

	deadline       workflow.Future
	deadlineCancel workflow.CancelFunc
	ttl            workflow.Future
	failed         error
	// version is the GetVersion of versionBackoff (0 for older histories).
	version workflow.Version
	// adoptVersion is the GetVersion of versionAdopt.
	adoptVersion workflow.Version
	// rewatch: versionRewatch >= 1.
	rewatch bool
}

// JobWorkflow runs one training job from creation to deletion; see the
// package documentation. Its state is served by the trainingv1.QueryJob
// query; trainingv1.SignalSuspend / SignalResume / SignalDelete control it.
// It fails (ErrTypeJobFailed) when the job ends Failed.
func JobWorkflow(ctx workflow.Context, in trainingv1.JobInput) (trainingv1.JobResult, error) {
	info := workflow.GetInfo(ctx)
	job := in.Job
	carry := in.Carry
	if carry == nil {
		*job.Status() = trainingv1.JobStatus{}
	}
	l := &lifecycle{
		in: in, job: &job, wfID: info.WorkflowExecution.ID, runID: info.WorkflowExecution.RunID,
		byName: map[string]*replica{}, evCount: map[string]int{},
		exitCh: workflow.NewChannel(ctx), pubCh: workflow.NewBufferedChannel(ctx, 1024),
	}
	_, l.kind, _, _ = trainingv1.ParseWorkflowID(l.wfID)
	l.version = workflow.GetVersion(ctx, versionBackoff, workflow.DefaultVersion, 1)
	if l.version >= 1 {
		l.adoptVersion = workflow.GetVersion(ctx, versionAdopt, workflow.DefaultVersion, 1)
	}
	l.sa = workflow.GetVersion(ctx, versionSearchAttributes, workflow.DefaultVersion, 1) >= 1
	l.rewatch = workflow.GetVersion(ctx, versionRewatch, workflow.DefaultVersion, 1) >= 1
	if carry == nil {
		l.phase = string(trainingv1.JobCreated) // set by Start
	}
	if l.version >= 1 && job.Meta().UID == "" {
		var uid string
		if err := workflow.SideEffect(ctx, func(workflow.Context) any { return uuid.NewString() }).Get(&uid); err != nil {
			return trainingv1.JobResult{}, err
		}
		job.Meta().UID = types.UID(uid)
	}
	for i, r := range clusterspec.Replicas(&job) {
		rep := &replica{r: r, policy: job.ReplicaSpecs()[r.Type].RestartPolicy, phase: jobstatus.PhasePending,
			view: trainingv1.ReplicaView{Name: r.Name(job.Meta().Name), Type: r.Type, Index: r.Index, State: trainingv1.ReplicaPending}}
		rep.view.Attempt = 0
		if carry != nil && i < len(carry.Replicas) && carry.Replicas[i].View.Name == rep.view.Name {
			rep.view, rep.phase, rep.crashes = carry.Replicas[i].View, jobstatus.ReplicaPhase(carry.Replicas[i].Phase), carry.Replicas[i].Crashes
			if carry.Replicas[i].Running {
				rep.process = carry.Replicas[i].ProcessName
			}
		}
		l.replicas = append(l.replicas, rep)
		l.byName[rep.view.Name] = rep
	}
	if err := workflow.SetQueryHandler(ctx, trainingv1.QueryJob, func() (trainingv1.JobView, error) {
		v := l.viewOf()
		l.addTFConfig(&v)
		return v, nil
	}); err != nil {
		return trainingv1.JobResult{}, err
	}
	pubDone := l.startPublisher(ctx)

	suspendCh := workflow.GetSignalChannel(ctx, trainingv1.SignalSuspend)
	resumeCh := workflow.GetSignalChannel(ctx, trainingv1.SignalResume)
	deleteCh := workflow.GetSignalChannel(ctx, trainingv1.SignalDelete)
	startedCh := workflow.GetSignalChannel(ctx, trainingv1.SignalReplicaStarted)

	if carry == nil {
		before := snapshot(l.job.Status())
		jobstatus.MarkCreated(l.job, workflow.Now(ctx))
		l.emit(ctx, before)
	}

	if carry != nil {
		// Replicas were stopped, waiting to restart, or (versionAdopt)
		// running when the run continued as new.
		l.resumeCarried(ctx, carry)
	} else if err := l.allocateNetwork(ctx); err != nil {
		l.fail(ctx, "cannot allocate replica addresses: "+err.Error())
	} else if rp := job.RunPolicy(); rp.Suspend != nil && *rp.Suspend {
		l.suspend(ctx)
	} else {
		for _, r := range l.replicas {
			l.startReplica(ctx, r)
		}
	}

	for !l.done() {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(l.exitCh, func(c workflow.ReceiveChannel, _ bool) {
			var m exitMsg
			c.Receive(ctx, &m)
			l.onExit(ctx, m)
		})
		sel.AddReceive(startedCh, func(c workflow.ReceiveChannel, _ bool) {
			var s trainingv1.ReplicaStarted
			c.Receive(ctx, &s)
			l.onStarted(ctx, s)
		})
		sel.AddReceive(suspendCh, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			l.suspend(ctx)
		})
		sel.AddReceive(resumeCh, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			l.resume(ctx)
		})
		sel.AddReceive(deleteCh, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			l.delete(ctx, "deleted by request")
		})
		if l.deadline != nil {
			sel.AddFuture(l.deadline, func(f workflow.Future) {
				l.deadline = nil
				if f.Get(ctx, nil) == nil {
					l.onDeadline(ctx)
				}
			})
		}
		if l.ttl != nil {
			sel.AddFuture(l.ttl, func(f workflow.Future) {
				l.ttl = nil
				if f.Get(ctx, nil) == nil {
					l.delete(ctx, "ttlSecondsAfterFinished passed")
				}
			})
		}
		for _, r := range l.replicas {
			if r.backoff == nil {
				continue
			}
			r := r
			sel.AddFuture(r.backoff, func(f workflow.Future) {
				r.backoff, r.backoffCancel = nil, nil
				if f.Get(ctx, nil) == nil {
					l.onBackoffDone(ctx, r)
				}
			})
		}
		sel.Select(ctx)
		if l.version == workflow.DefaultVersion {
			if !jobstatus.IsFinished(l.job.Status()) && workflow.GetInfo(ctx).GetCurrentHistoryLength() > maxHistory {
				l.fail(ctx, fmt.Sprintf("%s has failed because its history reached %d events (too many restarts)", subjectOf(l.job), maxHistory))
			}
			continue
		}
		if l.shouldContinueAsNew(ctx) && !l.drainSignals(ctx, suspendCh, resumeCh, deleteCh, startedCh) {
			l.pubCh.Close()
			_ = pubDone.Get(ctx, nil)
			return trainingv1.JobResult{}, workflow.NewContinueAsNewError(ctx, trainingv1.WorkflowType, l.continuation(ctx))
		}
	}
	l.pubCh.Close()
	_ = pubDone.Get(ctx, nil)
	view := l.viewOf()
	if jobstatus.IsFailed(l.job.Status()) {
		c, _ := jobstatus.Condition(l.job.Status(), trainingv1.JobFailed)
		return trainingv1.JobResult{View: view}, temporal.NewNonRetryableApplicationError(c.Message, ErrTypeJobFailed, nil)
	}
	return trainingv1.JobResult{View: view}, nil
}

// allocateNetwork picks the replicas' loopback ports once per job, as a
// local activity (a few binds; no task-queue round trip).
func (l *lifecycle) allocateNetwork(ctx workflow.Context) error {
	if l.in.Network == trainingv1.NetworkDNS {
		l.net = clusterspec.Loopback{Mode: clusterspec.ModeDNS}
		return nil
	}
	if l.in.Network == trainingv1.NetworkKubernetes {
		// No command: addresses are the Services' names (new inputs only,
		// so no history replays differently).
		l.net = clusterspec.Loopback{Mode: clusterspec.ModeKubernetes, Namespace: l.in.ClusterNamespace}
		return nil
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 10 * time.Second})
	return workflow.ExecuteLocalActivity(lctx, AllocateNetwork, *l.job).Get(ctx, &l.net)
}

// done: the workflow can end once no watcher runs and the job is deleted,
// or finished without a pending TTL.
func (l *lifecycle) done() bool {
	if l.watchers > 0 {
		return false
	}
	if l.deleted {
		return true
	}
	return jobstatus.IsFinished(l.job.Status()) && l.ttl == nil
}

func subjectOf(job *trainingv1.Job) string {
	return job.Kind() + " " + job.Meta().Namespace + "/" + job.Meta().Name
}

func (l *lifecycle) heartbeatTimeout() time.Duration {
	if l.in.HeartbeatTimeout > 0 {
		return l.in.HeartbeatTimeout
	}
	return DefaultHeartbeatTimeout
}

// replicaRun builds the watcher input of r's next attempt from the pod
// spec training-operator would create (distribution env on the default
// container). Only the default container runs; sidecars are not started.
func (l *lifecycle) replicaRun(r *replica) (ReplicaRun, error) {
	pod, err := clusterspec.PodSpec(l.job, r.r, l.net)
	if err != nil {
		return ReplicaRun{}, err
	}
	var c *corev1.Container
	for i := range pod.Containers {
		if pod.Containers[i].Name == l.job.DefaultContainerName() {
			c = &pod.Containers[i]
			break
		}
	}
	if c == nil && len(pod.Containers) > 0 {
		c = &pod.Containers[0]
	}
	if c == nil {
		return ReplicaRun{}, errors.New("no container")
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	var claims []ClaimMount
	for _, vm := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == vm.Name && v.PersistentVolumeClaim != nil {
				claims = append(claims, ClaimMount{Claim: v.PersistentVolumeClaim.ClaimName, MountPath: vm.MountPath,
					ReadOnly: vm.ReadOnly || v.PersistentVolumeClaim.ReadOnly})
			}
		}
	}
	meta := l.job.Meta()
	runPart := l.runID
	if len(runPart) > 8 {
		runPart = runPart[:8]
	}
	process := strings.ToLower(fmt.Sprintf("%s.%s.%s.a%d", r.view.Name, meta.Namespace, runPart, r.view.Attempt))
	if l.kind != "" {
		process = strings.ToLower(fmt.Sprintf("%s.%s.%s.%s.a%d", r.view.Name, l.kind, meta.Namespace, runPart, r.view.Attempt))
	}
	run := ReplicaRun{
		Namespace: meta.Namespace, JobName: meta.Name, UID: string(meta.UID), Kind: l.kind, Replica: r.r, Name: r.view.Name, LogName: r.view.LogName(),
		Attempt: r.view.Attempt, Image: c.Image, Command: c.Command, Args: c.Args, Env: env, WorkingDir: c.WorkingDir, Network: l.in.Network, Claims: claims,
		ProcessName: process,
	}
	if l.in.Network == trainingv1.NetworkKubernetes {
		// Activity input only (no command changes): the whole pod as
		// training-operator creates it, and the job it belongs to.
		run.Kube = kubeReplica(l.job, r.r, pod)
	}
	return run, nil
}

// startReplica starts the next attempt of r under one watcher activity.
func (l *lifecycle) startReplica(ctx workflow.Context, r *replica) {
	r.view.Attempt++
	r.phase, r.view.State = jobstatus.PhasePending, trainingv1.ReplicaPending
	r.view.StartedAt = nil
	if host, port, err := l.net.Endpoint(l.job, r.r, false); err == nil {
		r.view.Address = host + ":" + strconv.Itoa(int(port))
	}
	run, err := l.replicaRun(r)
	if err != nil {
		l.fail(ctx, fmt.Sprintf("%s has failed: replica %s: %v", subjectOf(l.job), r.view.Name, err))
		return
	}
	l.watch(ctx, r, run)
}

// adoptReplica follows r's attempt that an earlier run started and left
// running when it continued as new (process r.process).
func (l *lifecycle) adoptReplica(ctx workflow.Context, r *replica) {
	run, err := l.replicaRun(r)
	if err != nil {
		l.fail(ctx, fmt.Sprintf("%s has failed: replica %s: %v", subjectOf(l.job), r.view.Name, err))
		return
	}
	run.ProcessName, run.Adopt = r.process, true
	l.watch(ctx, r, run)
}

// watch runs the watcher activity of run, r's current attempt.
func (l *lifecycle) watch(ctx workflow.Context, r *replica, run ReplicaRun) {
	cctx, cancel := workflow.WithCancel(ctx)
	opts := wf.LongActivity(l.heartbeatTimeout(), 30*24*time.Hour)
	actx := workflow.WithActivityOptions(cctx, opts)
	r.active, r.stopping, r.cancel = true, false, cancel
	r.process = run.ProcessName
	l.watchers++
	name, attempt := r.view.Name, r.view.Attempt
	fut := workflow.ExecuteActivity(withSummary(actx, watchSummary(run)), (*Activities).WatchReplica, run)
	r.fut = fut
	workflow.Go(ctx, func(gctx workflow.Context) {
		var res ReplicaExit
		err := fut.Get(gctx, &res)
		l.exitCh.Send(gctx, exitMsg{Name: name, Attempt: attempt, Exit: res, Err: err})
	})
}

// stop cancels r's running attempt (its watcher kills the process once
// its next heartbeat carries the cancellation; the worker's heartbeat
// throttle bounds that, see WorkerOptions) and drops a pending restart.
func (l *lifecycle) stop(ctx workflow.Context, r *replica) {
	l.cancelBackoff(r)
	if r.active && !r.stopping {
		r.stopping = true
		r.cancel()
	}
}

func (l *lifecycle) onStarted(ctx workflow.Context, s trainingv1.ReplicaStarted) {
	r := l.byName[s.Name]
	if r == nil || r.view.Attempt != s.Attempt || !r.active || r.stopping {
		return
	}
	t := s.Time
	r.view.StartedAt = &t
	r.phase, r.view.State = jobstatus.PhaseRunning, trainingv1.ReplicaRunning
	l.reconcile(ctx, nil)
}

func (l *lifecycle) onExit(ctx workflow.Context, m exitMsg) {
	l.watchers--
	r := l.byName[m.Name]
	if r == nil || r.view.Attempt != m.Attempt {
		return
	}
	r.active = false
	var canceled *temporal.CanceledError
	if r.stopping || errors.As(m.Err, &canceled) {
		r.stopping = false
		r.view.State, r.view.Reason = trainingv1.ReplicaTerminated, ReasonTerminated
		if r.phase == jobstatus.PhaseRunning {
			r.phase = jobstatus.PhasePending
		}
		if r.startOnExit && !l.suspended && !l.deleted {
			r.startOnExit = false
			l.startReplica(ctx, r)
		}
		return
	}
	if m.Err != nil && l.rewatch && r.process != "" && lostContact(m.Err) &&
		!jobstatus.IsFinished(l.job.Status()) && !l.suspended && !l.deleted {
		// The watcher's retries ran out while it kept losing contact with
		// Temporal (heartbeats failing or timing out on a busy machine): the
		// replica may still run. A new watcher follows its process, or
		// reports it Lost.
		l.adoptReplica(ctx, r)
		return
	}
	res := m.Exit
	if m.Err != nil {
		res = ReplicaExit{Code: -1, Reason: "WatchFailed", Message: m.Err.Error()}
	}
	code := res.Code
	r.view.ExitCode, r.view.Reason = &code, res.Reason
	if res.LogURI != "" {
		r.view.LogURI = res.LogURI
	}
	st := l.job.Status()
	if jobstatus.IsFinished(st) || l.suspended || l.deleted {
		if code == 0 {
			r.phase, r.view.State = jobstatus.PhaseSucceeded, trainingv1.ReplicaSucceeded
		} else {
			r.phase, r.view.State = jobstatus.PhaseFailed, trainingv1.ReplicaFailed
		}
		return
	}
	if res.Lost {
		l.startReplica(ctx, r)
		l.reconcile(ctx, nil)
		return
	}
	now := workflow.Now(ctx)
	var restarting []trainingv1.ReplicaType
	exitDesc := fmt.Sprintf("%s exited with code %d", r.view.Name, code)
	if l.version >= 1 && res.Reason != "" {
		exitDesc = fmt.Sprintf("replica %s exited with code %d, reason %s", r.view.Name, code, res.Reason)
	}
	if res.Message != "" && res.Reason != "Completed" {
		exitDesc += " (" + res.Message + ")"
	}
	action := jobstatus.OnExit(r.policy, code)
	if l.version >= 1 && res.Reason == ReasonStartError {
		// A replica that cannot start (no command, executable or image
		// missing) would fail the same way again: it fails instead of
		// being restarted.
		action = jobstatus.ExitFailed
	}
	switch action {
	case jobstatus.ExitSucceeded:
		r.phase, r.view.State = jobstatus.PhaseSucceeded, trainingv1.ReplicaSucceeded
	case jobstatus.ExitFailed:
		r.phase, r.view.State = jobstatus.PhaseFailed, trainingv1.ReplicaFailed
		dynamicWorker := l.job.TFJob != nil && l.job.TFJob.Spec.EnableDynamicWorker && r.r.Type == trainingv1.ReplicaTypeWorker
		if !dynamicWorker {
			l.markFailed(ctx, fmt.Sprintf("%s has failed because 1 %s replica(s) failed: %s.", subjectOf(l.job), r.r.Type, exitDesc), now)
		}
	case jobstatus.ExitRestart:
		r.view.Restarts++
		if jobstatus.CountsTowardBackoff(r.policy) {
			l.restarts++
		}
		if jobstatus.PastBackoffLimit(l.job.RunPolicy(), l.restarts) {
			r.phase, r.view.State = jobstatus.PhaseFailed, trainingv1.ReplicaFailed
			l.markFailed(ctx, jobstatus.BackoffLimitMessage(l.job)+" (last: "+exitDesc+").", now)
		} else {
			restarting = append(restarting, r.r.Type)
			if l.version >= 1 {
				l.scheduleRestart(ctx, r, now)
			} else {
				l.startReplica(ctx, r)
			}
		}
	}
	l.reconcile(ctx, restarting)
}

// lostContact: a watcher's last attempt lost contact with Temporal (it
// left the replica running) or timed out waiting for its heartbeat.
func lostContact(err error) bool {
	var te *temporal.TimeoutError
	if errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_HEARTBEAT {
		return true
	}
	return wf.ErrorType(err) == ErrTypeWatcherLostContact
}

// scheduleRestart arms r's CrashLoopBackOff timer: the in.RestartBackoff
// delay of its consecutive crash count, reset when the attempt that just
// ended ran for at least 2×Max.
func (l *lifecycle) scheduleRestart(ctx workflow.Context, r *replica, now time.Time) {
	b := l.in.RestartBackoff
	maxD := b.Max
	if maxD <= 0 {
		maxD = trainingv1.DefaultBackoffMax
	}
	if r.view.StartedAt != nil && now.Sub(*r.view.StartedAt) >= 2*maxD {
		r.crashes = 0
	}
	r.crashes++
	l.armBackoff(ctx, r, b.Delay(r.crashes), now)
}

func (l *lifecycle) armBackoff(ctx workflow.Context, r *replica, d time.Duration, now time.Time) {
	l.cancelBackoff(r)
	if d <= 0 {
		d = time.Millisecond
	}
	at := now.Add(d)
	r.phase, r.view.State, r.view.RestartAt = jobstatus.PhasePending, trainingv1.ReplicaPending, &at
	tctx, cancel := workflow.WithCancel(ctx)
	r.backoff, r.backoffCancel = newTimer(tctx, d, fmt.Sprintf("backoff %s before restart of %s", d, r.view.Name)), cancel
}

func (l *lifecycle) cancelBackoff(r *replica) {
	if r.backoffCancel != nil {
		r.backoffCancel()
	}
	r.backoff, r.backoffCancel, r.view.RestartAt = nil, nil, nil
}

func (l *lifecycle) onBackoffDone(ctx workflow.Context, r *replica) {
	r.view.RestartAt = nil
	if jobstatus.IsFinished(l.job.Status()) || l.suspended || l.deleted || r.active {
		return
	}
	l.startReplica(ctx, r)
}

// shouldContinueAsNew: the run is long enough to hand over, and every
// replica is finished, waiting to restart or (versionAdopt) running (its
// start signalled) with no exit or stop pending: its process is handed to
// the next run.
// Without versionAdopt no watcher may run.
func (l *lifecycle) shouldContinueAsNew(ctx workflow.Context) bool {
	if l.deleted || jobstatus.IsFinished(l.job.Status()) {
		return false
	}
	if l.watchers > 0 {
		if l.adoptVersion < 1 {
			return false
		}
		active := 0
		for _, r := range l.replicas {
			if !r.active {
				continue
			}
			// Only a process known to run (its start signalled) is handed
			// over: a watcher still starting it would leave the next run's
			// watcher nothing to adopt.
			if r.stopping || r.startOnExit || r.fut == nil || r.fut.IsReady() || r.phase != jobstatus.PhaseRunning {
				return false
			}
			active++
		}
		if active != l.watchers {
			return false // an earlier attempt's exit is still to be received
		}
	}
	info := workflow.GetInfo(ctx)
	limit := l.in.HistoryLimit
	if limit <= 0 {
		limit = defaultHistoryLimit
	}
	return info.GetCurrentHistoryLength() >= limit || info.GetContinueAsNewSuggested()
}

// drainSignals handles every signal already delivered (a run must not
// continue as new with unread signals) and reports whether there was one.
func (l *lifecycle) drainSignals(ctx workflow.Context, suspendCh, resumeCh, deleteCh, startedCh workflow.ReceiveChannel) bool {
	got := false
	for {
		switch {
		case suspendCh.ReceiveAsync(nil):
			l.suspend(ctx)
		case resumeCh.ReceiveAsync(nil):
			l.resume(ctx)
		case deleteCh.ReceiveAsync(nil):
			l.delete(ctx, "deleted by request")
		default:
			var s trainingv1.ReplicaStarted
			if !startedCh.ReceiveAsync(&s) {
				return got
			}
			l.onStarted(ctx, s)
		}
		got = true
	}
}

// continuation is the input of the next run: the job with its status and
// every replica's state (backoff timers resume from RestartAt).
func (l *lifecycle) continuation(ctx workflow.Context) trainingv1.JobInput {
	in := l.in
	in.Job = *l.job
	c := &trainingv1.Carry{Restarts: l.restarts, Suspended: l.suspended, Ports: l.net.Ports, NetMode: l.net.Mode}
	for _, r := range l.replicas {
		cr := trainingv1.CarriedReplica{View: r.view, Phase: string(r.phase), Crashes: r.crashes}
		if r.active {
			cr.Running, cr.ProcessName = true, r.process
		}
		c.Replicas = append(c.Replicas, cr)
	}
	in.Carry = c
	return in
}

// resumeCarried restores the state of a continued run: counters,
// addresses, the deadline, and the backoff timers still pending.
func (l *lifecycle) resumeCarried(ctx workflow.Context, c *trainingv1.Carry) {
	l.restarts, l.suspended, l.net = c.Restarts, c.Suspended, clusterspec.Loopback{Ports: c.Ports, Mode: c.NetMode}
	if c.NetMode == clusterspec.ModeKubernetes {
		l.net.Namespace = l.in.ClusterNamespace
	}
	for _, r := range l.replicas {
		if r.process != "" {
			l.adoptReplica(ctx, r)
		}
	}
	if l.suspended {
		return
	}
	now := workflow.Now(ctx)
	for _, r := range l.replicas {
		if r.view.RestartAt != nil {
			l.armBackoff(ctx, r, r.view.RestartAt.Sub(now), now)
		}
	}
	l.armDeadline(ctx)
}

// markFailed records Failed=True with msg (used before reconcile so the
// message carries the exit code).
func (l *lifecycle) markFailed(ctx workflow.Context, msg string, now time.Time) {
	wasFinished := jobstatus.IsFinished(l.job.Status())
	before := snapshot(l.job.Status())
	jobstatus.MarkFailed(l.job, msg, now)
	if !wasFinished {
		l.job.Status().ReplicaStatuses = jobstatus.ReplicaStatuses(l.job, l.observation(nil))
		l.emit(ctx, before)
		l.onFinished(ctx)
	}
}

// fail fails the job for a reason that is not a replica exit.
func (l *lifecycle) fail(ctx workflow.Context, msg string) {
	l.markFailed(ctx, msg, workflow.Now(ctx))
}

func (l *lifecycle) observation(restarting []trainingv1.ReplicaType) jobstatus.Observation {
	obs := jobstatus.Observation{Phases: map[trainingv1.ReplicaType][]jobstatus.ReplicaPhase{}, Restarting: restarting}
	for _, r := range l.replicas {
		obs.Phases[r.r.Type] = append(obs.Phases[r.r.Type], r.phase)
	}
	return obs
}

// reconcile folds the replicas' phases into the status (jobstatus.Update),
// publishes the transitions, arms the deadline and handles completion.
func (l *lifecycle) reconcile(ctx workflow.Context, restarting []trainingv1.ReplicaType) {
	st := l.job.Status()
	if jobstatus.IsFinished(st) || l.suspended || l.deleted {
		return
	}
	before := snapshot(st)
	jobstatus.Update(l.job, l.observation(restarting), workflow.Now(ctx))
	l.emit(ctx, before)
	if jobstatus.IsFinished(st) {
		l.onFinished(ctx)
		return
	}
	l.armDeadline(ctx)
}

func (l *lifecycle) armDeadline(ctx workflow.Context) {
	if l.deadline != nil {
		return
	}
	at, ok := jobstatus.ActiveDeadline(l.job)
	if !ok {
		return
	}
	d := at.Sub(workflow.Now(ctx))
	if d <= 0 {
		d = time.Millisecond
	}
	tctx, cancel := workflow.WithCancel(ctx)
	l.deadline, l.deadlineCancel = newTimer(tctx, d, fmt.Sprintf("activeDeadlineSeconds: fail the job in %s", d)), cancel
}

func (l *lifecycle) disarmDeadline() {
	if l.deadlineCancel != nil {
		l.deadlineCancel()
	}
	l.deadline, l.deadlineCancel = nil, nil
}

func (l *lifecycle) onDeadline(ctx workflow.Context) {
	l.deadlineCancel = nil
	if jobstatus.IsFinished(l.job.Status()) || l.suspended || l.deleted {
		return
	}
	l.fail(ctx, jobstatus.ActiveDeadlineMessage(l.job))
}

// onFinished applies cleanPodPolicy, records an exported model on success
// and arms the TTL.
func (l *lifecycle) onFinished(ctx workflow.Context) {
	l.disarmDeadline()
	rp := l.job.RunPolicy()
	for _, r := range l.replicas {
		l.cancelBackoff(r)
		if r.active && jobstatus.ShouldClean(rp, r.phase) {
			l.stop(ctx, r)
		}
	}
	if jobstatus.IsSucceeded(l.job.Status()) {
		if dir := l.job.ExportDir(); strings.HasPrefix(dir, "s3://") {
			l.pubCh.Send(ctx, pubItem{export: &ExportInput{Job: jobKey(l.job), Kind: l.job.Kind(), ExportDir: dir, Subject: l.subject(),
				EventID: EventID(l.wfID, l.runID, events.TrainingModelExportedV1)}})
		}
	}
	if at, ok := jobstatus.TTLExpiry(l.job); ok {
		d := at.Sub(workflow.Now(ctx))
		if d <= 0 {
			d = time.Millisecond
		}
		l.ttl = newTimer(ctx, d, fmt.Sprintf("ttlSecondsAfterFinished: delete the job in %s", d))
	}
}

func (l *lifecycle) suspend(ctx workflow.Context) {
	if l.suspended || l.deleted || jobstatus.IsFinished(l.job.Status()) {
		return
	}
	l.suspended = true
	for _, r := range l.replicas {
		r.startOnExit = false
		l.stop(ctx, r)
	}
	l.disarmDeadline()
	before := snapshot(l.job.Status())
	jobstatus.MarkSuspended(l.job, workflow.Now(ctx))
	obs := jobstatus.Observation{Phases: map[trainingv1.ReplicaType][]jobstatus.ReplicaPhase{}}
	for _, r := range l.replicas {
		p := r.phase
		if p == jobstatus.PhaseRunning {
			p = jobstatus.PhasePending
		}
		obs.Phases[r.r.Type] = append(obs.Phases[r.r.Type], p)
	}
	l.job.Status().ReplicaStatuses = jobstatus.ReplicaStatuses(l.job, obs)
	l.emit(ctx, before)
}

func (l *lifecycle) resume(ctx workflow.Context) {
	if !l.suspended || l.deleted {
		return
	}
	l.suspended = false
	before := snapshot(l.job.Status())
	jobstatus.MarkResumed(l.job, workflow.Now(ctx))
	l.emit(ctx, before)
	if len(l.net.Ports) == 0 && l.net.Mode == "" {
		if err := l.allocateNetwork(ctx); err != nil {
			l.fail(ctx, "cannot allocate replica addresses: "+err.Error())
			return
		}
	}
	for _, r := range l.replicas {
		if r.phase == jobstatus.PhaseSucceeded {
			continue
		}
		if r.active {
			r.startOnExit = true
			continue
		}
		l.startReplica(ctx, r)
	}
}

func (l *lifecycle) delete(ctx workflow.Context, why string) {
	if l.deleted {
		return
	}
	l.deleted = true
	for _, r := range l.replicas {
		r.startOnExit = false
		l.stop(ctx, r)
	}
	l.disarmDeadline()
	l.ttl = nil
	_ = workflow.UpsertMemo(ctx, map[string]interface{}{trainingv1.MemoDeleted: true})
	l.publish(ctx, events.TrainingJobDeletedV1, trainingv1.JobEvent{Condition: "Deleted", Message: subjectOf(l.job) + " is deleted: " + why})
	if meta := l.job.Meta(); l.version >= 1 && meta.UID != "" {
		l.pubCh.Send(ctx, pubItem{purge: &PurgeInput{Namespace: meta.Namespace, Kind: l.kind, JobName: meta.Name, UID: string(meta.UID)}})
	}
}

// condState is a condition as seen before a change.
type condState struct {
	status corev1.ConditionStatus
	ltt    metav1.Time
	reason string
}

func snapshot(st *trainingv1.JobStatus) map[trainingv1.JobConditionType]condState {
	m := make(map[trainingv1.JobConditionType]condState, len(st.Conditions))
	for _, c := range st.Conditions {
		m[c.Type] = condState{status: c.Status, ltt: c.LastTransitionTime, reason: c.Reason}
	}
	return m
}

// emit publishes one event per condition that became True since before,
// and resumed when Suspended turned False with reason <Kind>Resumed.
func (l *lifecycle) emit(ctx workflow.Context, before map[trainingv1.JobConditionType]condState) {
	defer func() { l.upsertPhase(ctx, currentPhase(l.job.Status())) }()
	for _, c := range l.job.Status().Conditions {
		prev, had := before[c.Type]
		switch {
		case c.Status == corev1.ConditionTrue && (!had || prev.status != corev1.ConditionTrue || !prev.ltt.Equal(&c.LastTransitionTime)):
			if typ := trainingv1.EventTypeFor(c.Type); typ != "" {
				l.publish(ctx, typ, trainingv1.JobEvent{Condition: string(c.Type), Reason: c.Reason, Message: c.Message})
			}
		case c.Type == trainingv1.JobSuspended && c.Status == corev1.ConditionFalse && had && prev.status == corev1.ConditionTrue:
			l.publish(ctx, events.TrainingJobResumedV1, trainingv1.JobEvent{Condition: "Resumed", Reason: c.Reason, Message: c.Message})
		}
	}
}

func (l *lifecycle) publish(ctx workflow.Context, typ string, ev trainingv1.JobEvent) {
	meta := l.job.Meta()
	ev.Kind, ev.Namespace, ev.Name, ev.Time = l.job.Kind(), meta.Namespace, meta.Name, workflow.Now(ctx).UTC()
	ev.ReplicaStatuses = l.job.Status().ReplicaStatuses
	data, err := json.Marshal(ev)
	if err != nil {
		return
	}
	l.evCount[typ]++
	in := PublishInput{Type: typ, ID: EventID(l.wfID, l.runID, typ, strconv.Itoa(l.evCount[typ])),
		Subject: l.subject(), Data: data}
	l.pubCh.Send(ctx, pubItem{publish: &in})
}

// subject is the CloudEvents subject of the job's events
// (trainingv1.EventSubject; kind-qualified unless the workflow ID is legacy).
func (l *lifecycle) subject() string {
	meta := l.job.Meta()
	return trainingv1.EventSubject(l.kind, meta.Namespace, meta.Name)
}

// startPublisher publishes events one at a time, in order, off the main
// loop; the returned future is ready once the channel is closed and drained.
func (l *lifecycle) startPublisher(ctx workflow.Context) workflow.Future {
	fut, set := workflow.NewFuture(ctx)
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	actx := workflow.WithActivityOptions(dctx, wf.ShortActivity())
	workflow.Go(dctx, func(gctx workflow.Context) {
		for {
			var item pubItem
			if more := l.pubCh.Receive(gctx, &item); !more {
				break
			}
			switch {
			case item.publish != nil:
				_ = workflow.ExecuteActivity(withSummary(actx, "event "+item.publish.Type), (*Activities).Publish, *item.publish).Get(gctx, nil)
			case item.purge != nil:
				// After the replicas' watchers ended (delete waits for them via done()).
				_ = workflow.ExecuteActivity(withSummary(actx, "purge the deleted job's replicas and logs"), (*Activities).PurgeJob, *item.purge).Get(gctx, nil)
			case item.export != nil:
				var out *trainingv1.ModelExported
				if err := workflow.ExecuteActivity(withSummary(actx, "record the exported model "+item.export.ExportDir), (*Activities).RecordExport, *item.export).Get(gctx, &out); err == nil && out != nil {
					l.modelURI = out.URI
				}
			}
		}
		set.Set(nil, nil)
	})
	return fut
}

// addTFConfig fills each replica's TF_CONFIG in v (a query answer: computed from the job and its
// network, never stored, so no command or history changes).
func (l *lifecycle) addTFConfig(v *trainingv1.JobView) {
	if l.job.TFJob == nil {
		return
	}
	for i, r := range l.replicas {
		if i >= len(v.Replicas) {
			break
		}
		if tc, err := clusterspec.TFConfigJSON(l.job, r.r, l.net); err == nil {
			v.Replicas[i].TFConfig = tc
		}
	}
}

func (l *lifecycle) viewOf() trainingv1.JobView {
	meta := l.job.Meta()
	v := trainingv1.JobView{Kind: l.job.Kind(), Namespace: meta.Namespace, Name: meta.Name,
		State: jobstatus.State(l.job.Status()), Job: *l.job, Restarts: l.restarts, Deleted: l.deleted, ModelURI: l.modelURI}
	for _, r := range l.replicas {
		v.Replicas = append(v.Replicas, r.view)
	}
	return v
}
