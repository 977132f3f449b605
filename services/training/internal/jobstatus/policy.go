package jobstatus

import (
	"fmt"
	"time"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// ExitAction is what happens to a replica whose process exited.
type ExitAction string

const (
	// ExitSucceeded: the replica completed.
	ExitSucceeded ExitAction = "Succeeded"
	// ExitRestart: start the replica again.
	ExitRestart ExitAction = "Restart"
	// ExitFailed: the replica failed permanently.
	ExitFailed ExitAction = "Failed"
)

// IsRetryableExitCode reports whether an ExitCode-policy replica that exited
// with code is restarted: codes of 128 and above (killed by a signal,
// 128+signal, e.g. 137 for SIGKILL) are retryable, 1-127 are permanent.
// A negative code (exit status unknown, e.g. the process was killed before
// reporting) counts as retryable.
func IsRetryableExitCode(code int32) bool { return code >= 128 || code < 0 }

// OnExit decides the fate of a replica with restart policy p that exited
// with code (as a shell reports it: 128+signal for a signal):
// Always restarts whatever the code; OnFailure restarts on non-zero; Never
// fails on non-zero; ExitCode fails on 1-127 and restarts on the rest.
// Code 0 succeeds under every policy but Always.
func OnExit(p trainingv1.RestartPolicy, code int32) ExitAction {
	switch p {
	case trainingv1.RestartPolicyAlways:
		return ExitRestart
	case trainingv1.RestartPolicyOnFailure:
		if code == 0 {
			return ExitSucceeded
		}
		return ExitRestart
	case trainingv1.RestartPolicyExitCode:
		switch {
		case code == 0:
			return ExitSucceeded
		case IsRetryableExitCode(code):
			return ExitRestart
		}
		return ExitFailed
	default: // Never
		if code == 0 {
			return ExitSucceeded
		}
		return ExitFailed
	}
}

// CountsTowardBackoff reports whether restarts under policy p count toward
// runPolicy.backoffLimit (OnFailure, Always and ExitCode do; Never never
// restarts).
func CountsTowardBackoff(p trainingv1.RestartPolicy) bool {
	return p == trainingv1.RestartPolicyOnFailure || p == trainingv1.RestartPolicyAlways || p == trainingv1.RestartPolicyExitCode
}

// PastBackoffLimit reports whether restarts (the total restarts of the
// job's replicas whose policy CountsTowardBackoff, including the one being
// decided) reach runPolicy.backoffLimit: with a limit of 0 any restart fails
// the job, otherwise restarts >= limit does. No limit never fails.
func PastBackoffLimit(rp *trainingv1.RunPolicy, restarts int32) bool {
	if rp.BackoffLimit == nil {
		return false
	}
	if *rp.BackoffLimit == 0 {
		return restarts > 0
	}
	return restarts >= *rp.BackoffLimit
}

// BackoffLimitMessage is the Failed message for an exhausted backoffLimit.
func BackoffLimitMessage(job *trainingv1.Job) string {
	return fmt.Sprintf("%s has failed because it has reached the specified backoff limit", subject(job))
}

// ActiveDeadline returns when the job must be failed for running longer
// than runPolicy.activeDeadlineSeconds, measured from status.startTime; ok
// is false when there is no deadline or no start time.
func ActiveDeadline(job *trainingv1.Job) (deadline time.Time, ok bool) {
	rp, st := job.RunPolicy(), job.Status()
	if rp.ActiveDeadlineSeconds == nil || st.StartTime == nil {
		return time.Time{}, false
	}
	return st.StartTime.Add(time.Duration(*rp.ActiveDeadlineSeconds) * time.Second), true
}

// PastActiveDeadline reports whether now is at or past ActiveDeadline.
func PastActiveDeadline(job *trainingv1.Job, now time.Time) bool {
	d, ok := ActiveDeadline(job)
	return ok && !now.Before(d)
}

// ActiveDeadlineMessage is the Failed message for a passed deadline.
func ActiveDeadlineMessage(job *trainingv1.Job) string {
	return fmt.Sprintf("%s has failed because it was active longer than specified deadline", subject(job))
}

// TTLExpiry returns when a finished job is deleted:
// completionTime + runPolicy.ttlSecondsAfterFinished; ok is false without a
// TTL or before completion.
func TTLExpiry(job *trainingv1.Job) (at time.Time, ok bool) {
	rp, st := job.RunPolicy(), job.Status()
	if rp.TTLSecondsAfterFinished == nil || st.CompletionTime == nil {
		return time.Time{}, false
	}
	return st.CompletionTime.Add(time.Duration(*rp.TTLSecondsAfterFinished) * time.Second), true
}

// ShouldClean reports whether, after the job finished, a replica in phase
// is deleted under runPolicy.cleanPodPolicy: All deletes every replica,
// Running deletes those still Pending or Running, None deletes nothing.
func ShouldClean(rp *trainingv1.RunPolicy, phase ReplicaPhase) bool {
	p := trainingv1.CleanPodPolicyNone
	if rp.CleanPodPolicy != nil {
		p = *rp.CleanPodPolicy
	}
	switch p {
	case trainingv1.CleanPodPolicyAll:
		return true
	case trainingv1.CleanPodPolicyRunning:
		return phase == PhasePending || phase == PhaseRunning
	}
	return false
}
