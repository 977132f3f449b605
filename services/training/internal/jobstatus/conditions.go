// Package jobstatus holds the pure status rules of a training job, per
// training-operator v1: condition updates, reasons, the restart decision for
// an exited replica, backoffLimit and activeDeadlineSeconds accounting, the
// success policy and cleanPodPolicy.
//
// Every function is deterministic and takes the current time as an
// argument, so the lifecycle workflow can call them directly.
package jobstatus

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// Reasons, combined with the job kind by Reason ("TFJob"+"Running").
const (
	ReasonCreated          = "Created"
	ReasonRunning          = "Running"
	ReasonRestarting       = "Restarting"
	ReasonSucceeded        = "Succeeded"
	ReasonFailed           = "Failed"
	ReasonSuspended        = "Suspended"
	ReasonResumed          = "Resumed"
	ReasonFailedValidation = "FailedValidation"
)

// Reason returns the condition reason "<Kind><reason>", e.g. TFJobCreated,
// PyTorchJobRunning.
func Reason(kind, reason string) string { return kind + reason }

// SetCondition records a condition on st with training-operator's rules:
//   - once any Failed=True condition exists the list is frozen;
//   - a condition of the same type, status and reason is a no-op (its
//     message and times are kept);
//   - lastTransitionTime is kept when only reason/message change;
//   - the updated condition moves to the end of the list;
//   - Running and Restarting are mutually exclusive (setting one removes
//     the other);
//   - setting Succeeded or Failed flips an existing Running to False.
//
// It reports whether st changed.
func SetCondition(st *trainingv1.JobStatus, typ trainingv1.JobConditionType, status corev1.ConditionStatus, reason, message string, now time.Time) bool {
	if IsFailed(st) {
		return false
	}
	t := metav1.NewTime(now)
	cond := trainingv1.JobCondition{Type: typ, Status: status, Reason: reason, Message: message, LastUpdateTime: t, LastTransitionTime: t}
	if cur, ok := Condition(st, typ); ok {
		if cur.Status == status && cur.Reason == reason {
			return false
		}
		if cur.Status == status {
			cond.LastTransitionTime = cur.LastTransitionTime
		}
	}
	kept := make([]trainingv1.JobCondition, 0, len(st.Conditions)+1)
	for _, c := range st.Conditions {
		switch {
		case c.Type == typ:
			continue
		case typ == trainingv1.JobRestarting && c.Type == trainingv1.JobRunning,
			typ == trainingv1.JobRunning && c.Type == trainingv1.JobRestarting:
			continue
		case (typ == trainingv1.JobFailed || typ == trainingv1.JobSucceeded) && c.Type == trainingv1.JobRunning:
			c.Status = corev1.ConditionFalse
		}
		kept = append(kept, c)
	}
	st.Conditions = append(kept, cond)
	return true
}

// Condition returns the condition of type typ.
func Condition(st *trainingv1.JobStatus, typ trainingv1.JobConditionType) (trainingv1.JobCondition, bool) {
	for _, c := range st.Conditions {
		if c.Type == typ {
			return c, true
		}
	}
	return trainingv1.JobCondition{}, false
}

func isTrue(st *trainingv1.JobStatus, typ trainingv1.JobConditionType) bool {
	c, ok := Condition(st, typ)
	return ok && c.Status == corev1.ConditionTrue
}

// IsFailed reports whether Failed=True.
func IsFailed(st *trainingv1.JobStatus) bool { return isTrue(st, trainingv1.JobFailed) }

// IsSucceeded reports whether Succeeded=True.
func IsSucceeded(st *trainingv1.JobStatus) bool { return isTrue(st, trainingv1.JobSucceeded) }

// IsFinished reports whether the job succeeded or failed.
func IsFinished(st *trainingv1.JobStatus) bool { return IsSucceeded(st) || IsFailed(st) }

// IsRunning reports whether Running=True.
func IsRunning(st *trainingv1.JobStatus) bool { return isTrue(st, trainingv1.JobRunning) }

// IsSuspended reports whether Suspended=True.
func IsSuspended(st *trainingv1.JobStatus) bool { return isTrue(st, trainingv1.JobSuspended) }

// State returns the type of the last condition (kubectl's "State" column),
// or "" when there is none.
func State(st *trainingv1.JobStatus) trainingv1.JobConditionType {
	if len(st.Conditions) == 0 {
		return ""
	}
	return st.Conditions[len(st.Conditions)-1].Type
}

func subject(job *trainingv1.Job) string {
	return job.Kind() + " " + job.Meta().Namespace + "/" + job.Meta().Name
}

// MarkCreated sets Created=True with reason <Kind>Created.
func MarkCreated(job *trainingv1.Job, now time.Time) bool {
	return SetCondition(job.Status(), trainingv1.JobCreated, corev1.ConditionTrue,
		Reason(job.Kind(), ReasonCreated), subject(job)+" is created.", now)
}

// MarkSuspended sets Suspended=True (reason <Kind>Suspended) and Running=False
// (reason <Kind>Suspended), as training-operator does when
// runPolicy.suspend becomes true. startTime is cleared so the active
// deadline restarts on resume.
func MarkSuspended(job *trainingv1.Job, now time.Time) bool {
	st := job.Status()
	reason := Reason(job.Kind(), ReasonSuspended)
	changed := false
	if IsRunning(st) {
		changed = SetCondition(st, trainingv1.JobRunning, corev1.ConditionFalse, reason, subject(job)+" is suspended.", now)
	}
	if SetCondition(st, trainingv1.JobSuspended, corev1.ConditionTrue, reason, subject(job)+" is suspended.", now) {
		changed = true
	}
	if changed {
		st.StartTime = nil
	}
	return changed
}

// MarkResumed sets Suspended=False with reason <Kind>Resumed.
func MarkResumed(job *trainingv1.Job, now time.Time) bool {
	if !IsSuspended(job.Status()) {
		return false
	}
	return SetCondition(job.Status(), trainingv1.JobSuspended, corev1.ConditionFalse,
		Reason(job.Kind(), ReasonResumed), subject(job)+" is resumed.", now)
}

// MarkFailed sets Failed=True with reason <Kind>Failed and the given
// message, and completionTime if unset. Used for backoffLimit and
// activeDeadlineSeconds failures.
func MarkFailed(job *trainingv1.Job, message string, now time.Time) bool {
	st := job.Status()
	changed := SetCondition(st, trainingv1.JobFailed, corev1.ConditionTrue, Reason(job.Kind(), ReasonFailed), message, now)
	if changed && st.CompletionTime == nil {
		t := metav1.NewTime(now)
		st.CompletionTime = &t
	}
	return changed
}
