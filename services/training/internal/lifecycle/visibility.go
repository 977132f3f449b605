package lifecycle

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
	corev1 "k8s.io/api/core/v1"

	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
)

// What a job looks like in the Temporal Web UI: the job workflow's static summary (`TFJob
// kubeflow/mnist-train`) and Markdown details, its search attributes (libs/workflow/visibility.go), and a
// summary on every activity and timer. User metadata is not part of what replay compares; the
// SluicePhase upserts are commands, behind versionSearchAttributes.

// versionSearchAttributes is the workflow.GetVersion change id of upserting SluicePhase as the job's
// conditions change (Created, Running, Restarting, Succeeded, Failed, Suspended).
const versionSearchAttributes = "ui-search-attributes"

// jobSummary is a job's one-line summary: `TFJob kubeflow/mnist-train`.
func jobSummary(job *trainingv1.Job) string {
	meta := job.Meta()
	return fmt.Sprintf("%s %s/%s", job.Kind(), meta.Namespace, meta.Name)
}

// jobDetails is a job's Markdown details: replica counts, images, run policy and links to its API
// resource and dashboard page.
func jobDetails(job *trainingv1.Job) string {
	meta := job.Meta()
	pairs := [][2]string{{"Kind", job.Kind()}, {"Namespace", meta.Namespace}, {"Name", meta.Name}}
	for _, t := range job.ReplicaTypes() {
		spec := job.ReplicaSpecs()[t]
		var images []string
		for _, c := range spec.Template.Spec.Containers {
			images = append(images, c.Image)
		}
		pairs = append(pairs, [2]string{"Replicas " + string(t),
			fmt.Sprintf("%d × %s, restartPolicy %s", job.Replicas(t), strings.Join(images, ", "), spec.RestartPolicy)})
	}
	if rp := job.RunPolicy(); rp != nil {
		if rp.BackoffLimit != nil {
			pairs = append(pairs, [2]string{"backoffLimit", strconv.Itoa(int(*rp.BackoffLimit))})
		}
		if rp.ActiveDeadlineSeconds != nil {
			pairs = append(pairs, [2]string{"activeDeadlineSeconds", strconv.FormatInt(*rp.ActiveDeadlineSeconds, 10)})
		}
		if rp.CleanPodPolicy != nil {
			pairs = append(pairs, [2]string{"cleanPodPolicy", string(*rp.CleanPodPolicy)})
		}
	}
	ns, name := url.PathEscape(meta.Namespace), url.PathEscape(meta.Name)
	return wf.Details(jobSummary(job), pairs,
		[2]string{"Job (Sluice API)", "/apis/training/v1/namespaces/" + ns + "/jobs/" + name + "?kind=" + job.Kind()},
		[2]string{"Job page (dashboard)", "/ui/jobs/" + ns + "/" + name})
}

// jobAttributes are a job's search attributes at start.
func jobAttributes(job *trainingv1.Job, owner string) temporal.SearchAttributes {
	meta := job.Meta()
	return wf.Attributes(job.Kind(), meta.Namespace, wf.Keyword(wf.SAJobName, meta.Name), wf.Keyword(wf.SAOwner, owner),
		wf.SAPhase.ValueSet(string(trainingv1.JobCreated)))
}

// withSummary returns ctx with its activity options' summary set.
func withSummary(ctx workflow.Context, summary string) workflow.Context {
	opts := workflow.GetActivityOptions(ctx)
	opts.Summary = summary
	return workflow.WithActivityOptions(ctx, opts)
}

// newTimer is workflow.NewTimer with a summary (the same StartTimer command).
func newTimer(ctx workflow.Context, d time.Duration, summary string) workflow.Future {
	return workflow.NewTimerWithOptions(ctx, d, workflow.TimerOptions{Summary: summary})
}

// watchSummary names a replica's watcher activity: `replica worker-1 start (attempt 2)`.
func watchSummary(run ReplicaRun) string {
	verb := "start"
	if run.Adopt {
		verb = "adopt"
	}
	return fmt.Sprintf("replica %s %s (attempt %d)", run.Name, verb, run.Attempt)
}

// upsertPhase records the job's latest phase as SluicePhase (executions at versionSearchAttributes >= 1).
func (l *lifecycle) upsertPhase(ctx workflow.Context, phase string) {
	if !l.sa || phase == "" || phase == l.phase {
		return
	}
	l.phase = phase
	if err := workflow.UpsertTypedSearchAttributes(ctx, wf.SAPhase.ValueSet(phase)); err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes", "error", err)
	}
}

// currentPhase is the type of the last true condition (the phase kubectl shows for a training-operator job).
func currentPhase(st *trainingv1.JobStatus) string {
	phase := ""
	for _, c := range st.Conditions {
		if c.Status == corev1.ConditionTrue {
			phase = string(c.Type)
		}
	}
	return phase
}
