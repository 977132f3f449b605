package jobstatus

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// ReplicaPhase is the observed state of one replica, as a pod phase.
type ReplicaPhase string

const (
	// PhasePending: created, process not started yet (or being restarted).
	PhasePending ReplicaPhase = "Pending"
	// PhaseRunning: the process is running.
	PhaseRunning ReplicaPhase = "Running"
	// PhaseSucceeded: the process exited and the policy says it completed.
	PhaseSucceeded ReplicaPhase = "Succeeded"
	// PhaseFailed: the process exited and the policy says it failed for good.
	PhaseFailed ReplicaPhase = "Failed"
)

// Observation is what the lifecycle saw of the job's replicas in one
// reconcile.
type Observation struct {
	// Phases holds, per replica type, the phase of each replica by index.
	Phases map[trainingv1.ReplicaType][]ReplicaPhase `json:"phases"`
	// Restarting lists the replica types that had a replica restarted in
	// this reconcile (in canonical order; duplicates allowed).
	Restarting []trainingv1.ReplicaType `json:"restarting,omitempty"`
}

// ReplicaStatuses counts replicas by phase for every replica type of job:
// active = Running, succeeded, failed (as training-operator counts pods).
func ReplicaStatuses(job *trainingv1.Job, obs Observation) map[trainingv1.ReplicaType]*trainingv1.ReplicaStatus {
	out := make(map[trainingv1.ReplicaType]*trainingv1.ReplicaStatus)
	for _, t := range job.ReplicaTypes() {
		rs := &trainingv1.ReplicaStatus{}
		for _, p := range obs.Phases[t] {
			switch p {
			case PhaseRunning:
				rs.Active++
			case PhaseSucceeded:
				rs.Succeeded++
			case PhaseFailed:
				rs.Failed++
			}
		}
		out[t] = rs
	}
	return out
}

// Update folds an observation into the job's status, per training-operator
// v1's UpdateJobStatus:
//   - startTime is set on the first update, replicaStatuses recomputed;
//   - a restart sets Restarting=True ("<Kind> <ns>/<name> is restarting
//     because N <Type> replica(s) failed.");
//   - with a Chief/Master: Running while it runs, Succeeded once all its
//     replicas succeeded (whatever PS and workers do);
//   - without: Succeeded when worker 0 succeeded (successPolicy "") or all
//     workers succeeded (AllWorkers, and always for PyTorchJob), or any
//     worker succeeded (elastic PyTorchJob), otherwise Running while a
//     worker runs;
//   - any permanently failed replica sets Failed=True, except Workers of a
//     TFJob with enableDynamicWorker;
//   - completionTime is set when the job succeeds or fails.
//
// Running is not re-asserted in a reconcile that restarted a replica, so
// Restarting stays visible until the next observation. Update reports
// whether the status changed.
func Update(job *trainingv1.Job, obs Observation, now time.Time) bool {
	st := job.Status()
	before := fingerprint(st)
	if IsFinished(st) {
		return false
	}
	if st.StartTime == nil {
		t := metav1.NewTime(now)
		st.StartTime = &t
	}
	st.ReplicaStatuses = ReplicaStatuses(job, obs)
	kind := job.Kind()
	specs := job.ReplicaSpecs()
	restarting := len(obs.Restarting) > 0
	if restarting {
		rt := obs.Restarting[0]
		n := 0
		for _, t := range obs.Restarting {
			if t == rt {
				n++
			}
		}
		SetCondition(st, trainingv1.JobRestarting, corev1.ConditionTrue, Reason(kind, ReasonRestarting),
			fmt.Sprintf("%s is restarting because %d %s replica(s) failed.", subject(job), n, rt), now)
	}
	hasChief := specs[trainingv1.ReplicaTypeChief] != nil || specs[trainingv1.ReplicaTypeMaster] != nil
	allWorkers := job.PyTorchJob != nil ||
		(job.TFJob.Spec.SuccessPolicy != nil && *job.TFJob.Spec.SuccessPolicy == trainingv1.SuccessPolicyAllWorkers)
	worker0Succeeded := len(obs.Phases[trainingv1.ReplicaTypeWorker]) > 0 && obs.Phases[trainingv1.ReplicaTypeWorker][0] == PhaseSucceeded
	// An elastic PyTorchJob (no Master) succeeds once any worker succeeded
	// (training-operator v1.6+ PyTorchJob UpdateJobStatus).
	elastic := job.PyTorchJob != nil && job.PyTorchJob.Spec.ElasticPolicy != nil

	succeed := func() {
		if st.CompletionTime == nil {
			t := metav1.NewTime(now)
			st.CompletionTime = &t
		}
		SetCondition(st, trainingv1.JobSucceeded, corev1.ConditionTrue, Reason(kind, ReasonSucceeded), subject(job)+" successfully completed.", now)
	}
	running := func() {
		if !restarting {
			SetCondition(st, trainingv1.JobRunning, corev1.ConditionTrue, Reason(kind, ReasonRunning), subject(job)+" is running.", now)
		}
	}
	for _, t := range job.ReplicaTypes() {
		rs := st.ReplicaStatuses[t]
		expected := job.Replicas(t) - rs.Succeeded
		isChief := t == trainingv1.ReplicaTypeChief || t == trainingv1.ReplicaTypeMaster
		switch {
		case hasChief && isChief:
			if rs.Active > 0 {
				running()
			}
			if expected == 0 {
				succeed()
			}
		case !hasChief && t == trainingv1.ReplicaTypeWorker:
			if expected == 0 || (worker0Succeeded && !allWorkers) || (elastic && rs.Succeeded > 0) {
				succeed()
			} else if rs.Active > 0 {
				running()
			}
		}
		if rs.Failed > 0 {
			if job.TFJob != nil && job.TFJob.Spec.EnableDynamicWorker && t == trainingv1.ReplicaTypeWorker {
				continue
			}
			if st.CompletionTime == nil {
				ct := metav1.NewTime(now)
				st.CompletionTime = &ct
			}
			SetCondition(st, trainingv1.JobFailed, corev1.ConditionTrue, Reason(kind, ReasonFailed),
				fmt.Sprintf("%s has failed because %d %s replica(s) failed.", subject(job), rs.Failed, t), now)
		}
	}
	return fingerprint(st) != before
}

// fingerprint summarises a status for change detection.
func fingerprint(st *trainingv1.JobStatus) string {
	s := fmt.Sprint(len(st.Conditions))
	for _, c := range st.Conditions {
		s += "|" + string(c.Type) + string(c.Status) + c.Reason + c.Message + c.LastUpdateTime.String()
	}
	for _, t := range []trainingv1.ReplicaType{"Chief", "Master", "PS", "Worker", "Evaluator"} {
		if rs := st.ReplicaStatuses[t]; rs != nil {
			s += fmt.Sprintf("|%s%d/%d/%d", t, rs.Active, rs.Succeeded, rs.Failed)
		}
	}
	if st.StartTime != nil {
		s += "|s" + st.StartTime.String()
	}
	if st.CompletionTime != nil {
		s += "|c" + st.CompletionTime.String()
	}
	return s
}
