package app

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/sluice-ml/sluice/libs/platform"
)

// Recurring-run states (KFP v2 RecurringRun.Status names).
const (
	RecurringEnabled  = "ENABLED"
	RecurringDisabled = "DISABLED"
)

var (
	kfpCron      = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	standardCron = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
)

// temporalCron turns a recurring run's cron expression into the cron string of a Temporal Schedule.
// Accepted: KFP's 6-field form with seconds first ("0 0 * * * *" = hourly at second 0), the classic
// 5-field form ("*/5 * * * *"), and the descriptors @hourly, @daily, @weekly, @monthly, @yearly and
// "@every <duration>". Temporal reads 6 fields as minute..day_of_week + year, so a KFP expression is
// given to it as 7 fields (seconds first, year "*"). Errors name the field.
func temporalCron(expr string) (string, error) {
	expr = strings.TrimSpace(expr)
	fields := strings.Fields(expr)
	switch {
	case strings.HasPrefix(expr, "@"):
		if _, err := standardCron.Parse(expr); err != nil {
			return "", fmt.Errorf("cron: %q: %v", expr, err)
		}
		return expr, nil
	case len(fields) == 6:
		if _, err := kfpCron.Parse(expr); err != nil {
			return "", fmt.Errorf("cron: %q: %v (6 fields are second minute hour day-of-month month day-of-week, as in KFP)", expr, err)
		}
		return expr + " *", nil
	case len(fields) == 5:
		if _, err := standardCron.Parse(expr); err != nil {
			return "", fmt.Errorf("cron: %q: %v", expr, err)
		}
		return expr, nil
	}
	return "", fmt.Errorf("cron: %q is not a cron expression: want KFP's 6 fields with seconds first (\"0 0 * * * *\"), 5 fields (\"*/5 * * * *\") or @every <duration>", expr)
}

// RecurringRun is one row of GET /apis/v1/recurringruns and the answer of GET .../{id}.
type RecurringRun struct {
	ID          string `json:"recurring_run_id"`
	DisplayName string `json:"display_name,omitempty"`
	Cron        string `json:"cron,omitempty"`
	// Status is ENABLED or DISABLED (paused); Paused is the same as a boolean.
	Status string `json:"status"`
	Paused bool   `json:"paused"`
	// NextRunTime is when the schedule starts its next run; absent while disabled.
	NextRunTime *time.Time `json:"next_run_time,omitempty"`
	// PipelineName is the pipeline each scheduled run runs.
	PipelineName string `json:"pipeline_name,omitempty"`
	// Namespace is the recurring run's namespace, its runs' ("default" for one created before namespaces).
	Namespace string `json:"namespace"`
}

func (a *App) describeRecurringRun(r *http.Request, id string) (RecurringRun, error) {
	if !strings.HasPrefix(id, "recurring-") {
		return RecurringRun{}, fmt.Errorf("recurring run %q: %w", id, errNoRecurringRun)
	}
	d, err := a.tc.ScheduleClient().GetHandle(r.Context(), id).Describe(r.Context())
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return RecurringRun{}, fmt.Errorf("recurring run %q: %w", id, errNoRecurringRun)
	}
	if err != nil {
		return RecurringRun{}, err
	}
	out := RecurringRun{ID: id, Status: RecurringEnabled}
	if d.Memo != nil {
		out.DisplayName = memoString(d.Memo, "display_name")
		out.Cron = memoString(d.Memo, "cron")
		out.PipelineName = memoString(d.Memo, "pipeline_name")
		out.Namespace = memoString(d.Memo, "namespace")
	}
	out.Namespace = orDefault(out.Namespace)
	if d.Schedule.State != nil && d.Schedule.State.Paused {
		out.Status, out.Paused = RecurringDisabled, true
	} else if len(d.Info.NextActionTimes) > 0 {
		t := d.Info.NextActionTimes[0].UTC()
		out.NextRunTime = &t
	}
	if out.Cron == "" && d.Schedule.Spec != nil && len(d.Schedule.Spec.CronExpressions) > 0 {
		out.Cron = d.Schedule.Spec.CronExpressions[0]
	}
	return out, nil
}

var errNoRecurringRun = errors.New("no such recurring run")

// recurringRun describes recurring run id once the caller of r is authorised for r's route in its
// namespace; one the caller may not read is answered as one that does not exist.
func (a *App) recurringRun(r *http.Request, id string) (RecurringRun, error) {
	rr, err := a.describeRecurringRun(r, id)
	if err != nil {
		return rr, err
	}
	return rr, platform.Authorize(r, rr.Namespace, fmt.Errorf("recurring run %q: %w", id, errNoRecurringRun))
}

func (a *App) getRecurringRun(w http.ResponseWriter, r *http.Request) {
	rr, err := a.recurringRun(r, r.PathValue("id"))
	if err != nil {
		httpError(w, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, rr)
}

// recurringRunVerb serves KFP's POST /recurringruns/{id}:enable and {id}:disable (and the same verbs
// as a path segment, .../{id}/enable), resuming or pausing the schedule; both are idempotent.
func (a *App) recurringRunVerb(w http.ResponseWriter, r *http.Request) {
	id, verb, _ := strings.Cut(r.PathValue("idverb"), ":")
	if v := r.PathValue("verb"); v != "" {
		verb = v
	}
	if _, err := a.recurringRun(r, id); err != nil {
		httpError(w, err)
		return
	}
	h := a.tc.ScheduleClient().GetHandle(r.Context(), id)
	var err error
	switch verb {
	case "enable", "resume":
		err = h.Unpause(r.Context(), client.ScheduleUnpauseOptions{Note: "enabled through the Sluice API"})
	case "disable", "pause":
		err = h.Pause(r.Context(), client.SchedulePauseOptions{Note: "disabled through the Sluice API"})
	default:
		httpError(w, &invalidError{problems: []string{fmt.Sprintf("recurring run verb %q: want enable or disable", verb)}})
		return
	}
	if err != nil {
		httpError(w, err)
		return
	}
	a.getRecurringRun(w, withID(r, id))
}

func withID(r *http.Request, id string) *http.Request {
	r2 := r.Clone(r.Context())
	r2.SetPathValue("id", id)
	return r2
}
