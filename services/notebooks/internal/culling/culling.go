// Package culling holds Kubeflow's idle-notebook culling rules as pure functions, per the kubeflow
// notebook-controller culler: a probe of the server's /api/kernels moves the last-activity time; a server
// idle for longer than CULL_IDLE_TIME is stopped.
package culling

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
)

// Kubeflow's defaults: culling off, 1440 minutes idle, checked every minute.
const (
	DefaultIdleTime    = 1440 * time.Minute
	DefaultCheckPeriod = time.Minute
)

// Kernel is one entry of Jupyter's GET /api/kernels answer.
type Kernel struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	LastActivity   time.Time `json:"last_activity"`
	ExecutionState string    `json:"execution_state"`
	Connections    int       `json:"connections"`
}

// NextActivity applies one probe to the last-activity time, per Kubeflow: a failed probe (probeErr != nil)
// or no kernels leaves it unchanged; any kernel whose execution_state is not "idle" makes it now; otherwise
// it becomes the newest kernel last_activity (never moving backwards).
func NextActivity(last, now time.Time, kernels []Kernel, probeErr error) time.Time {
	if probeErr != nil || len(kernels) == 0 {
		return last
	}
	var newest time.Time
	for _, k := range kernels {
		if k.ExecutionState != "idle" {
			return now
		}
		if k.LastActivity.After(newest) {
			newest = k.LastActivity
		}
	}
	if newest.After(last) {
		return newest
	}
	return last
}

// Idle reports whether a server whose last activity is last should be culled at now.
func Idle(p notebooksv1.CullingPolicy, last, now time.Time) bool {
	return p.Enabled && !last.IsZero() && now.Sub(last) > p.IdleTime
}

// ParseMinutes reads a period the way Kubeflow's controller does (an integer number of minutes, e.g. "1440")
// and also accepts a Go duration ("30s", "1h30m"). The result must be positive.
func ParseMinutes(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty")
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n <= 0 {
			return 0, fmt.Errorf("%q must be positive", s)
		}
		return time.Duration(n * float64(time.Minute)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither minutes (e.g. 1440) nor a duration (e.g. 30s)", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q must be positive", s)
	}
	return d, nil
}

// PolicyFromEnv builds the culling policy from the service variables SLUICE_NOTEBOOKS_ENABLE_CULLING
// (true/false, default false), SLUICE_NOTEBOOKS_CULL_IDLE_TIME (default 1440 minutes) and
// SLUICE_NOTEBOOKS_IDLENESS_CHECK_PERIOD (default 1 minute). Errors name the variable.
func PolicyFromEnv(getenv func(string) string) (notebooksv1.CullingPolicy, error) {
	p := notebooksv1.CullingPolicy{IdleTime: DefaultIdleTime, CheckPeriod: DefaultCheckPeriod}
	var errs []error
	if v := getenv("SLUICE_NOTEBOOKS_ENABLE_CULLING"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("SLUICE_NOTEBOOKS_ENABLE_CULLING: %q is not true or false", v))
		}
		p.Enabled = b
	}
	if v := getenv("SLUICE_NOTEBOOKS_CULL_IDLE_TIME"); v != "" {
		d, err := ParseMinutes(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("SLUICE_NOTEBOOKS_CULL_IDLE_TIME: %w", err))
		}
		p.IdleTime = d
	}
	if v := getenv("SLUICE_NOTEBOOKS_IDLENESS_CHECK_PERIOD"); v != "" {
		d, err := ParseMinutes(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("SLUICE_NOTEBOOKS_IDLENESS_CHECK_PERIOD: %w", err))
		} else if d < 100*time.Millisecond {
			errs = append(errs, fmt.Errorf("SLUICE_NOTEBOOKS_IDLENESS_CHECK_PERIOD: %s is below the 100ms minimum", d))
		}
		p.CheckPeriod = d
	}
	return p, errors.Join(errs...)
}
