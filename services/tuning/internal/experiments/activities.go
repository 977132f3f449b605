package experiments

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"go.temporal.io/sdk/activity"

	"github.com/sluice-ml/sluice/libs/events"
	"github.com/sluice-ml/sluice/libs/tfevents"
	wf "github.com/sluice-ml/sluice/libs/workflow"
	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
	"github.com/sluice-ml/sluice/services/tuning/internal/collect"
	"github.com/sluice-ml/sluice/services/tuning/internal/expspec"
	"github.com/sluice-ml/sluice/services/tuning/internal/suggest"
)

// Source is the CloudEvents source of tuning events.
const Source = "/sluice/tuning"

// eventNamespace seeds the deterministic CE ids of tuning events.
var eventNamespace = uuid.MustParse("6f1c1f64-2b7e-4c55-8d0e-0b1f3b8f2a11")

// Activities are the experiment workflow's side effects. Register the pointer with the worker.
type Activities struct {
	// TrainingURL is the base URL of the training service's REST API (http://host:port).
	TrainingURL string
	HTTP        *http.Client
	// Bus receives io.sluice.tuning.* events; nil publishes nothing.
	Bus *events.Bus
	// S3 reads event files of s3:// TensorFlowEvent paths; nil refuses them.
	S3 *minio.Client
}

// SuggestInput asks the algorithm for new assignments.
type SuggestInput struct {
	Request suggest.Request `json:"request"`
}

// Suggest runs the suggestion algorithm (pure, so retries and replays agree).
func (a *Activities) Suggest(_ context.Context, in SuggestInput) (suggest.Response, error) {
	resp, err := suggest.Suggest(in.Request)
	if err != nil {
		return resp, wf.NonRetryable(wf.ErrTypeInvalidSpec, err)
	}
	return resp, nil
}

// RunTrialInput runs one trial.
type RunTrialInput struct {
	Experiment tuningv1.Experiment `json:"experiment"`
	Trial      tuningv1.Trial      `json:"trial"`
	// PollInterval between status reads of the training job (0: 1 s).
	PollInterval time.Duration `json:"pollInterval,omitempty"`
	// EarlyStopping, when set, is checked against the metrics collected at every poll while the job runs.
	EarlyStopping *tuningv1.EarlyStoppingRule `json:"earlyStopping,omitempty"`
}

// TrialOutcome is how the trial's job ended and what the collector observed.
type TrialOutcome struct {
	Succeeded bool `json:"succeeded"`
	// EarlyStopped: the early-stopping rule matched; the job was deleted.
	EarlyStopped bool                 `json:"earlyStopped,omitempty"`
	Message      string               `json:"message,omitempty"`
	Observation  tuningv1.Observation `json:"observation"`
}

func (a *Activities) client() *http.Client {
	if a.HTTP != nil {
		return a.HTTP
	}
	return http.DefaultClient
}

func (a *Activities) jobsURL(ns string) string {
	return strings.TrimRight(a.TrainingURL, "/") + "/apis/training/v1/namespaces/" + url.PathEscape(ns) + "/jobs"
}

// call does one request to the training service and returns the status and body.
func (a *Activities) call(ctx context.Context, method, u string, body []byte) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client().Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("training service: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, b, err
}

func errorText(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(body))
}

// RunTrial submits the trial's training job (201, or 409 when a retried attempt already did), watches
// it until the template's success or failure condition type is true, then collects the metrics. It
// heartbeats every poll; when cancelled it deletes the job. Idempotent: the job name is the trial's.
func (a *Activities) RunTrial(ctx context.Context, in RunTrialInput) (TrialOutcome, error) {
	e, t := in.Experiment, in.Trial
	ns := e.Metadata.Namespace
	job, err := expspec.RenderTrial(e, t.Name, t.ParameterAssignments)
	if err != nil {
		return TrialOutcome{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, err)
	}
	code, body, err := a.call(ctx, http.MethodPost, a.jobsURL(ns), job.Document)
	switch {
	case err != nil:
		return TrialOutcome{}, err
	case code == http.StatusCreated, code == http.StatusConflict:
	case code/100 == 4:
		return TrialOutcome{}, wf.NonRetryable(wf.ErrTypeInvalidSpec, fmt.Errorf("training service refused the trial job: %s", errorText(body)))
	default:
		return TrialOutcome{}, fmt.Errorf("training service: create job %s: HTTP %d: %s", t.Name, code, errorText(body))
	}
	okType, _ := expspec.ConditionTypeOf(e.Spec.TrialTemplate.SuccessCondition)
	failType, _ := expspec.ConditionTypeOf(e.Spec.TrialTemplate.FailureCondition)
	okType, failType = expspec.JobConditionType(job.Kind, okType), expspec.JobConditionType(job.Kind, failType)
	poll := in.PollInterval
	if poll <= 0 {
		poll = time.Second
	}
	jobURL := a.jobsURL(ns) + "/" + url.PathEscape(t.Name)
	var out TrialOutcome
	for {
		activity.RecordHeartbeat(ctx)
		code, body, err := a.call(ctx, http.MethodGet, jobURL, nil)
		if ctx.Err() != nil {
			a.deleteJob(ns, t.Name)
			return out, ctx.Err()
		}
		if err == nil && code == http.StatusNotFound {
			return TrialOutcome{Message: "training job " + t.Name + " no longer exists"}, nil
		}
		if err == nil && code == http.StatusOK {
			var v trainingv1.JobView
			if err := json.Unmarshal(body, &v); err != nil {
				return out, fmt.Errorf("training service: decode job %s: %w", t.Name, err)
			}
			if v.Deleted {
				return TrialOutcome{Message: "training job " + t.Name + " was deleted"}, nil
			}
			done := false
			for _, c := range v.Job.Status().Conditions {
				if c.Status != "True" {
					continue
				}
				if string(c.Type) == okType {
					out.Succeeded, done = true, true
				} else if string(c.Type) == failType {
					out.Message, done = fmt.Sprintf("training job %s: %s", c.Reason, c.Message), true
				}
			}
			if done {
				break
			}
			if r := in.EarlyStopping; r != nil {
				if obs, err := a.collect(ctx, e, t, job.PrimaryReplica); err == nil {
					if stop, msg := ShouldStop(*r, obs.Observation, len(obs.Series[r.Name])); stop {
						a.deleteJob(ns, t.Name)
						return TrialOutcome{EarlyStopped: true, Message: msg, Observation: obs.Observation}, nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			a.deleteJob(ns, t.Name)
			return out, ctx.Err()
		case <-time.After(poll):
		}
	}
	obs, err := a.collect(ctx, e, t, job.PrimaryReplica)
	if err != nil {
		out.Message = strings.TrimSpace(out.Message + "; metrics: " + err.Error())
		out.Message = strings.TrimPrefix(out.Message, "; ")
	}
	out.Observation = obs.Observation
	return out, nil
}

// collected is an observation with the raw series it summarises.
type collected struct {
	tuningv1.Observation
	Series collect.Series
}

// ShouldStop applies Katib's early-stopping rule to a running trial whose metric was reported reports
// times: once reports >= StartStep, a latest value "less" (maximize) / "greater" (minimize) than the
// rule's value stops it.
func ShouldStop(r tuningv1.EarlyStoppingRule, obs tuningv1.Observation, reports int) (bool, string) {
	if reports < r.StartStep {
		return false, ""
	}
	v, ok := collect.Value(obs, r.Name, tuningv1.StrategyLatest)
	if !ok {
		return false, ""
	}
	if (r.Comparison == "less" && v < r.Value) || (r.Comparison == "greater" && v > r.Value) {
		return true, fmt.Sprintf("early stopped by medianstop: %s=%g after %d reports is %s than the median %g of completed trials",
			r.Name, v, reports, map[string]string{"less": "worse (less)", "greater": "worse (greater)"}[r.Comparison], r.Value)
	}
	return false, ""
}

func (a *Activities) deleteJob(ns, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, _ = a.call(ctx, http.MethodDelete, a.jobsURL(ns)+"/"+url.PathEscape(name), nil)
}

// collect runs the experiment's metrics collector over the finished trial.
func (a *Activities) collect(ctx context.Context, e tuningv1.Experiment, t tuningv1.Trial, replica string) (collected, error) {
	o := *e.Spec.Objective
	names := collect.MetricNames(o)
	mc := e.Spec.MetricsCollectorSpec
	var s collect.Series
	switch mc.Collector.Kind {
	case tuningv1.CollectorTensorFlowEvent:
		p := strings.ReplaceAll(mc.Source.FileSystemPath.Path, "{trialName}", t.Name)
		var src tfevents.Source = tfevents.Dir(p)
		if rest, ok := strings.CutPrefix(p, "s3://"); ok {
			if a.S3 == nil {
				return collected{}, errors.New("no S3 store configured for " + p)
			}
			bucket, prefix, _ := strings.Cut(rest, "/")
			src = tfevents.S3{Client: a.S3, Bucket: bucket, Prefix: prefix}
		}
		var err error
		if s, err = collect.TFEvents(ctx, src, names); err != nil {
			return collected{}, err
		}
	default:
		u := a.jobsURL(e.Metadata.Namespace) + "/" + url.PathEscape(t.Name) + "/logs?replica=" + url.QueryEscape(replica)
		code, body, err := a.call(ctx, http.MethodGet, u, nil)
		if err != nil {
			return collected{}, err
		}
		if code != http.StatusOK {
			return collected{}, fmt.Errorf("log of %s/%s: HTTP %d: %s", t.Name, replica, code, errorText(body))
		}
		if s, err = collect.StdOut(body, mc.Source.Filter.MetricsFormat, names); err != nil {
			return collected{}, err
		}
	}
	return collected{Observation: collect.Observe(s, names), Series: s}, nil
}

// DeleteTrialsInput names the trial jobs to delete.
type DeleteTrialsInput struct {
	Namespace string   `json:"namespace"`
	Names     []string `json:"names"`
}

// DeleteTrials deletes each trial's training job; jobs already gone count as deleted.
func (a *Activities) DeleteTrials(ctx context.Context, in DeleteTrialsInput) error {
	for _, n := range in.Names {
		activity.RecordHeartbeat(ctx)
		code, body, err := a.call(ctx, http.MethodDelete, a.jobsURL(in.Namespace)+"/"+url.PathEscape(n), nil)
		if err != nil {
			return err
		}
		if code/100 != 2 && code != http.StatusNotFound && code != http.StatusConflict {
			return fmt.Errorf("training service: delete job %s: HTTP %d: %s", n, code, errorText(body))
		}
	}
	return nil
}

// PublishInput is one tuning event; Key makes its CE id deterministic within the experiment.
type PublishInput struct {
	Type  string                   `json:"type"`
	UID   string                   `json:"uid"`
	Key   string                   `json:"key"`
	Event tuningv1.ExperimentEvent `json:"event"`
}

// Publish sends the event with a CE id derived from the experiment uid and Key, so a retry is
// deduplicated by the stream.
func (a *Activities) Publish(ctx context.Context, in PublishInput) error {
	if a.Bus == nil {
		return nil
	}
	subject := "experiments/" + in.Event.Namespace + "/" + in.Event.Name
	if in.Event.Trial != nil {
		subject += "/trials/" + in.Event.Trial.Name
	}
	ev, err := events.New(Source, in.Type, subject, in.Event)
	if err != nil {
		return wf.NonRetryable(wf.ErrTypePermanent, err)
	}
	ev.SetID(uuid.NewSHA1(eventNamespace, []byte(in.UID+"/"+in.Key)).String())
	return a.Bus.Publish(ctx, ev)
}
