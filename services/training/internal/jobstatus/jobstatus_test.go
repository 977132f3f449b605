package jobstatus_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-ml/sluice/services/training/api/jobspec"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/training/internal/jobstatus"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

type cond struct {
	Type       trainingv1.JobConditionType
	Status     corev1.ConditionStatus
	Reason     string
	Transition time.Time
	Update     time.Time
}

func conds(st *trainingv1.JobStatus) []cond {
	out := make([]cond, len(st.Conditions))
	for i, c := range st.Conditions {
		out[i] = cond{c.Type, c.Status, c.Reason, c.LastTransitionTime.Time.UTC(), c.LastUpdateTime.Time.UTC()}
	}
	return out
}

func TestSetCondition(t *testing.T) {
	t.Parallel()
	type step struct {
		typ    trainingv1.JobConditionType
		status corev1.ConditionStatus
		reason string
		at     int
	}
	T, F := corev1.ConditionTrue, corev1.ConditionFalse
	tests := map[string]struct {
		steps []step
		want  []cond
	}{
		"same type, status and reason is a no-op": {
			steps: []step{{"Created", T, "TFJobCreated", 0}, {"Created", T, "TFJobCreated", 5}},
			want:  []cond{{"Created", T, "TFJobCreated", at(0), at(0)}},
		},
		"reason change keeps lastTransitionTime": {
			steps: []step{{"Suspended", T, "TFJobSuspended", 0}, {"Suspended", T, "Other", 5}},
			want:  []cond{{"Suspended", T, "Other", at(0), at(5)}},
		},
		"status change moves lastTransitionTime and the condition to the end": {
			steps: []step{{"Suspended", T, "TFJobSuspended", 0}, {"Created", T, "TFJobCreated", 1}, {"Suspended", F, "TFJobResumed", 5}},
			want:  []cond{{"Created", T, "TFJobCreated", at(1), at(1)}, {"Suspended", F, "TFJobResumed", at(5), at(5)}},
		},
		"running and restarting are mutually exclusive": {
			steps: []step{{"Created", T, "TFJobCreated", 0}, {"Running", T, "TFJobRunning", 1}, {"Restarting", T, "TFJobRestarting", 2}, {"Running", T, "TFJobRunning", 3}},
			want:  []cond{{"Created", T, "TFJobCreated", at(0), at(0)}, {"Running", T, "TFJobRunning", at(3), at(3)}},
		},
		"succeeded flips running to false": {
			steps: []step{{"Running", T, "TFJobRunning", 1}, {"Succeeded", T, "TFJobSucceeded", 2}},
			want:  []cond{{"Running", F, "TFJobRunning", at(1), at(1)}, {"Succeeded", T, "TFJobSucceeded", at(2), at(2)}},
		},
		"frozen after failed": {
			steps: []step{{"Running", T, "TFJobRunning", 1}, {"Failed", T, "TFJobFailed", 2}, {"Succeeded", T, "TFJobSucceeded", 3}, {"Running", T, "TFJobRunning", 4}},
			want:  []cond{{"Running", F, "TFJobRunning", at(1), at(1)}, {"Failed", T, "TFJobFailed", at(2), at(2)}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var st trainingv1.JobStatus
			for _, s := range tc.steps {
				jobstatus.SetCondition(&st, s.typ, s.status, s.reason, "m", at(s.at))
			}
			if diff := cmp.Diff(tc.want, conds(&st)); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReasonAndState(t *testing.T) {
	t.Parallel()
	if got := jobstatus.Reason("PyTorchJob", jobstatus.ReasonRunning); got != "PyTorchJobRunning" {
		t.Errorf("Reason = %q", got)
	}
	var st trainingv1.JobStatus
	if jobstatus.State(&st) != "" {
		t.Error("empty state")
	}
	jobstatus.SetCondition(&st, "Created", corev1.ConditionTrue, "TFJobCreated", "", t0)
	jobstatus.SetCondition(&st, "Running", corev1.ConditionTrue, "TFJobRunning", "", t0)
	if jobstatus.State(&st) != "Running" || !jobstatus.IsRunning(&st) || jobstatus.IsFinished(&st) {
		t.Errorf("state = %q", jobstatus.State(&st))
	}
}

func TestOnExit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		policy trainingv1.RestartPolicy
		code   int32
		want   jobstatus.ExitAction
	}{
		{"Always", 0, jobstatus.ExitRestart},
		{"Always", 1, jobstatus.ExitRestart},
		{"OnFailure", 0, jobstatus.ExitSucceeded},
		{"OnFailure", 1, jobstatus.ExitRestart},
		{"OnFailure", 137, jobstatus.ExitRestart},
		{"Never", 0, jobstatus.ExitSucceeded},
		{"Never", 1, jobstatus.ExitFailed},
		{"Never", 137, jobstatus.ExitFailed},
		{"ExitCode", 0, jobstatus.ExitSucceeded},
		{"ExitCode", 1, jobstatus.ExitFailed},
		{"ExitCode", 127, jobstatus.ExitFailed},
		{"ExitCode", 128, jobstatus.ExitRestart},
		{"ExitCode", 137, jobstatus.ExitRestart},
		{"ExitCode", 143, jobstatus.ExitRestart},
		{"ExitCode", -1, jobstatus.ExitRestart},
	}
	for _, tc := range tests {
		if got := jobstatus.OnExit(tc.policy, tc.code); got != tc.want {
			t.Errorf("OnExit(%s, %d) = %s, want %s", tc.policy, tc.code, got, tc.want)
		}
	}
}

func i32(v int32) *int32 { return &v }

func TestPastBackoffLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		limit    *int32
		restarts int32
		want     bool
	}{
		{nil, 100, false},
		{i32(0), 0, false},
		{i32(0), 1, true},
		{i32(3), 2, false},
		{i32(3), 3, true},
		{i32(3), 4, true},
	}
	for _, tc := range tests {
		if got := jobstatus.PastBackoffLimit(&trainingv1.RunPolicy{BackoffLimit: tc.limit}, tc.restarts); got != tc.want {
			t.Errorf("limit %v restarts %d = %v", tc.limit, tc.restarts, got)
		}
	}
	for p, want := range map[trainingv1.RestartPolicy]bool{"Never": false, "OnFailure": true, "Always": true, "ExitCode": true} {
		if jobstatus.CountsTowardBackoff(p) != want {
			t.Errorf("CountsTowardBackoff(%s) != %v", p, want)
		}
	}
}

func parse(t *testing.T, doc string) *trainingv1.Job {
	t.Helper()
	job, err := jobspec.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return job
}

const c = `"template":{"spec":{"containers":[{"name":"tensorflow","image":"i"}]}}`

func tf(t *testing.T, extra, specs string) *trainingv1.Job {
	return parse(t, `{"apiVersion":"kubeflow.org/v1","kind":"TFJob","metadata":{"name":"mnist","namespace":"ns"},"spec":{`+extra+`"tfReplicaSpecs":{`+specs+`}}}`)
}

type P = jobstatus.ReplicaPhase

const (
	pend = jobstatus.PhasePending
	run  = jobstatus.PhaseRunning
	ok   = jobstatus.PhaseSucceeded
	fail = jobstatus.PhaseFailed
)

func TestUpdate(t *testing.T) {
	t.Parallel()
	chiefJob := `"Chief":{` + c + `},"PS":{` + c + `},"Worker":{"replicas":2,` + c + `}`
	workersOnly := `"PS":{` + c + `},"Worker":{"replicas":2,` + c + `}`
	tests := map[string]struct {
		extra, specs string
		obs          []jobstatus.Observation
		wantState    trainingv1.JobConditionType
		wantReason   string
		wantMessage  string
		wantDone     bool
	}{
		"chief running": {
			specs:     chiefJob,
			obs:       []jobstatus.Observation{{Phases: map[trainingv1.ReplicaType][]P{"Chief": {run}, "PS": {run}, "Worker": {run, pend}}}},
			wantState: "Running", wantReason: "TFJobRunning", wantMessage: "TFJob ns/mnist is running.",
		},
		"chief succeeded while PS never exits": {
			specs: chiefJob,
			obs: []jobstatus.Observation{
				{Phases: map[trainingv1.ReplicaType][]P{"Chief": {run}, "PS": {run}, "Worker": {run, run}}},
				{Phases: map[trainingv1.ReplicaType][]P{"Chief": {ok}, "PS": {run}, "Worker": {ok, run}}},
			},
			wantState: "Succeeded", wantReason: "TFJobSucceeded", wantMessage: "TFJob ns/mnist successfully completed.", wantDone: true,
		},
		"worker 0 decides without chief": {
			specs:     workersOnly,
			obs:       []jobstatus.Observation{{Phases: map[trainingv1.ReplicaType][]P{"PS": {run}, "Worker": {ok, run}}}},
			wantState: "Succeeded", wantReason: "TFJobSucceeded", wantDone: true,
		},
		"AllWorkers waits for every worker": {
			extra: `"successPolicy":"AllWorkers",`, specs: workersOnly,
			obs:       []jobstatus.Observation{{Phases: map[trainingv1.ReplicaType][]P{"PS": {run}, "Worker": {ok, run}}}},
			wantState: "Running", wantReason: "TFJobRunning",
		},
		"AllWorkers succeeded": {
			extra: `"successPolicy":"AllWorkers",`, specs: workersOnly,
			obs:       []jobstatus.Observation{{Phases: map[trainingv1.ReplicaType][]P{"PS": {run}, "Worker": {ok, ok}}}},
			wantState: "Succeeded", wantDone: true, wantReason: "TFJobSucceeded",
		},
		"failed worker fails the job": {
			specs: chiefJob,
			obs: []jobstatus.Observation{
				{Phases: map[trainingv1.ReplicaType][]P{"Chief": {run}, "PS": {run}, "Worker": {run, run}}},
				{Phases: map[trainingv1.ReplicaType][]P{"Chief": {run}, "PS": {run}, "Worker": {run, fail}}},
			},
			wantState: "Failed", wantReason: "TFJobFailed", wantMessage: "TFJob ns/mnist has failed because 1 Worker replica(s) failed.", wantDone: true,
		},
		"dynamic workers may fail": {
			extra: `"enableDynamicWorker":true,`, specs: chiefJob,
			obs:       []jobstatus.Observation{{Phases: map[trainingv1.ReplicaType][]P{"Chief": {run}, "PS": {run}, "Worker": {run, fail}}}},
			wantState: "Running", wantReason: "TFJobRunning",
		},
		"restart is visible until the next observation": {
			specs: chiefJob,
			obs: []jobstatus.Observation{
				{Phases: map[trainingv1.ReplicaType][]P{"Chief": {run}, "PS": {run}, "Worker": {run, run}}},
				{Phases: map[trainingv1.ReplicaType][]P{"Chief": {run}, "PS": {run}, "Worker": {run, pend}}, Restarting: []trainingv1.ReplicaType{"Worker"}},
			},
			wantState: "Restarting", wantReason: "TFJobRestarting", wantMessage: "TFJob ns/mnist is restarting because 1 Worker replica(s) failed.",
		},
		"running again after restart": {
			specs: chiefJob,
			obs: []jobstatus.Observation{
				{Phases: map[trainingv1.ReplicaType][]P{"Chief": {run}, "PS": {run}, "Worker": {run, pend}}, Restarting: []trainingv1.ReplicaType{"Worker"}},
				{Phases: map[trainingv1.ReplicaType][]P{"Chief": {run}, "PS": {run}, "Worker": {run, run}}},
			},
			wantState: "Running", wantReason: "TFJobRunning",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			job := tf(t, tc.extra, tc.specs)
			jobstatus.MarkCreated(job, t0)
			for i, o := range tc.obs {
				jobstatus.Update(job, o, at(i+1))
			}
			st := job.Status()
			if got := jobstatus.State(st); got != tc.wantState {
				t.Fatalf("state = %q, want %q (%+v)", got, tc.wantState, st.Conditions)
			}
			last := st.Conditions[len(st.Conditions)-1]
			if last.Reason != tc.wantReason || (tc.wantMessage != "" && last.Message != tc.wantMessage) {
				t.Errorf("last = %s %q", last.Reason, last.Message)
			}
			if done := st.CompletionTime != nil; done != tc.wantDone {
				t.Errorf("completionTime set = %v", done)
			}
			if st.StartTime == nil || !st.StartTime.Time.Equal(at(1)) {
				t.Errorf("startTime = %v", st.StartTime)
			}
			if tc.wantDone {
				if r, ok := jobstatus.Condition(st, "Running"); ok && r.Status != corev1.ConditionFalse {
					t.Errorf("Running must be False once finished: %+v", r)
				}
			}
		})
	}
}

func TestUpdateReplicaStatusesAndFinishedIsFrozen(t *testing.T) {
	t.Parallel()
	job := tf(t, "", `"Chief":{`+c+`},"PS":{"replicas":0,`+c+`},"Worker":{"replicas":2,`+c+`}`)
	jobstatus.Update(job, jobstatus.Observation{Phases: map[trainingv1.ReplicaType][]P{"Chief": {ok}, "Worker": {ok, fail}}}, t0)
	want := map[trainingv1.ReplicaType]*trainingv1.ReplicaStatus{"Chief": {Succeeded: 1}, "PS": {}, "Worker": {Succeeded: 1, Failed: 1}}
	if diff := cmp.Diff(want, job.Status().ReplicaStatuses); diff != "" {
		t.Errorf("replicaStatuses (-want +got):\n%s", diff)
	}
	if changed := jobstatus.Update(job, jobstatus.Observation{}, at(9)); changed {
		t.Error("a finished job's status must not change")
	}
}

func TestPyTorchSuccess(t *testing.T) {
	t.Parallel()
	pc := `"template":{"spec":{"containers":[{"name":"pytorch","image":"i"}]}}`
	job := parse(t, `{"apiVersion":"kubeflow.org/v1","kind":"PyTorchJob","metadata":{"name":"pt"},"spec":{"pytorchReplicaSpecs":{"Worker":{"replicas":2,`+pc+`}}}}`)
	jobstatus.Update(job, jobstatus.Observation{Phases: map[trainingv1.ReplicaType][]P{"Worker": {ok, run}}}, t0)
	if jobstatus.State(job.Status()) != "Running" {
		t.Fatalf("PyTorchJob without master needs all workers: %v", job.Status().Conditions)
	}
	jobstatus.Update(job, jobstatus.Observation{Phases: map[trainingv1.ReplicaType][]P{"Worker": {ok, ok}}}, at(1))
	if c, _ := jobstatus.Condition(job.Status(), "Succeeded"); c.Reason != "PyTorchJobSucceeded" {
		t.Fatalf("conditions = %v", job.Status().Conditions)
	}
}

func TestSuspendResume(t *testing.T) {
	t.Parallel()
	job := tf(t, "", `"Worker":{"replicas":2,`+c+`}`)
	jobstatus.MarkCreated(job, t0)
	jobstatus.Update(job, jobstatus.Observation{Phases: map[trainingv1.ReplicaType][]P{"Worker": {run, run}}}, at(1))
	jobstatus.MarkSuspended(job, at(2))
	st := job.Status()
	if !jobstatus.IsSuspended(st) || jobstatus.IsRunning(st) || st.StartTime != nil {
		t.Fatalf("suspended: %+v", st)
	}
	if r, _ := jobstatus.Condition(st, "Running"); r.Reason != "TFJobSuspended" {
		t.Errorf("running reason = %q", r.Reason)
	}
	jobstatus.MarkResumed(job, at(3))
	if s, _ := jobstatus.Condition(st, "Suspended"); s.Status != corev1.ConditionFalse || s.Reason != "TFJobResumed" {
		t.Errorf("resumed = %+v", s)
	}
}

func TestDeadlineTTLAndClean(t *testing.T) {
	t.Parallel()
	job := tf(t, `"runPolicy":{"activeDeadlineSeconds":60,"ttlSecondsAfterFinished":30,"cleanPodPolicy":"Running"},`, `"Worker":{`+c+`}`)
	if _, ok := jobstatus.ActiveDeadline(job); ok {
		t.Error("no deadline before start")
	}
	start := metav1.NewTime(t0)
	job.Status().StartTime = &start
	if d, ok := jobstatus.ActiveDeadline(job); !ok || !d.Equal(at(60)) {
		t.Errorf("deadline = %v", d)
	}
	if jobstatus.PastActiveDeadline(job, at(59)) || !jobstatus.PastActiveDeadline(job, at(60)) {
		t.Error("deadline boundary")
	}
	jobstatus.MarkFailed(job, jobstatus.ActiveDeadlineMessage(job), at(60))
	if c, _ := jobstatus.Condition(job.Status(), "Failed"); c.Message != "TFJob ns/mnist has failed because it was active longer than specified deadline" {
		t.Errorf("message = %q", c.Message)
	}
	if at, ok := jobstatus.TTLExpiry(job); !ok || !at.Equal(t0.Add(90*time.Second)) {
		t.Errorf("ttl = %v", at)
	}
	rp := job.RunPolicy()
	for phase, want := range map[jobstatus.ReplicaPhase]bool{pend: true, run: true, ok: false, fail: false} {
		if jobstatus.ShouldClean(rp, phase) != want {
			t.Errorf("Running policy, %s", phase)
		}
	}
	all, none := trainingv1.CleanPodPolicyAll, trainingv1.CleanPodPolicyNone
	if !jobstatus.ShouldClean(&trainingv1.RunPolicy{CleanPodPolicy: &all}, ok) || jobstatus.ShouldClean(&trainingv1.RunPolicy{CleanPodPolicy: &none}, run) {
		t.Error("All/None")
	}
}

// TestPyTorchElasticSuccessAnyWorker: an elastic PyTorchJob without a
// Master succeeds as soon as any worker succeeded, whichever index, while a
// non-elastic one waits for all (case pt-elastic-success-any-worker).
func TestPyTorchElasticSuccessAnyWorker(t *testing.T) {
	t.Parallel()
	pc := `"template":{"spec":{"containers":[{"name":"pytorch","image":"i"}]}}`
	tests := map[string]struct {
		elastic string
		phases  []P
		want    trainingv1.JobConditionType
	}{
		"elastic, worker-0 succeeded, worker-1 running":     {elastic: `"elasticPolicy":{"minReplicas":1,"maxReplicas":2,"rdzvBackend":"c10d"},`, phases: []P{ok, run}, want: "Succeeded"},
		"elastic, worker-1 succeeded, worker-0 running":     {elastic: `"elasticPolicy":{"minReplicas":1,"maxReplicas":2},`, phases: []P{run, ok}, want: "Succeeded"},
		"elastic, both running":                             {elastic: `"elasticPolicy":{},`, phases: []P{run, run}, want: "Running"},
		"not elastic, worker-1 succeeded, worker-0 running": {phases: []P{run, ok}, want: "Running"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			job := parse(t, `{"apiVersion":"kubeflow.org/v1","kind":"PyTorchJob","metadata":{"name":"lc-l3"},"spec":{`+tc.elastic+
				`"pytorchReplicaSpecs":{"Worker":{"replicas":2,`+pc+`}}}}`)
			jobstatus.Update(job, jobstatus.Observation{Phases: map[trainingv1.ReplicaType][]P{"Worker": tc.phases}}, t0)
			if got := jobstatus.State(job.Status()); got != tc.want {
				t.Fatalf("state = %s, want %s (%v)", got, tc.want, job.Status().Conditions)
			}
		})
	}
}
