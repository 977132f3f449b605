package culling_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/internal/culling"
)

func TestNextActivityFollowsKubeflow(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	now := t0.Add(time.Hour)
	idle := func(at time.Time) culling.Kernel { return culling.Kernel{ExecutionState: "idle", LastActivity: at} }
	cases := []struct {
		name    string
		kernels []culling.Kernel
		err     error
		want    time.Time
	}{
		{"failed probe leaves it unchanged", []culling.Kernel{idle(now)}, errors.New("refused"), t0},
		{"no kernels leaves it unchanged", nil, nil, t0},
		{"a busy kernel means activity now", []culling.Kernel{idle(t0.Add(time.Minute)), {ExecutionState: "busy"}}, nil, now},
		{"starting counts as not idle", []culling.Kernel{{ExecutionState: "starting"}}, nil, now},
		{"idle kernels give the newest last_activity", []culling.Kernel{idle(t0.Add(time.Minute)), idle(t0.Add(5 * time.Minute))}, nil, t0.Add(5 * time.Minute)},
		{"never moves backwards", []culling.Kernel{idle(t0.Add(-time.Minute))}, nil, t0},
	}
	for _, tc := range cases {
		if got := culling.NextActivity(t0, now, tc.kernels, tc.err); !got.Equal(tc.want) {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestIdle(t *testing.T) {
	p := notebooksv1.CullingPolicy{Enabled: true, IdleTime: 3 * time.Second}
	t0 := time.Now()
	if culling.Idle(p, t0, t0.Add(3*time.Second)) {
		t.Error("culled at exactly the idle time")
	}
	if !culling.Idle(p, t0, t0.Add(3*time.Second+time.Millisecond)) {
		t.Error("not culled past the idle time")
	}
	p.Enabled = false
	if culling.Idle(p, t0, t0.Add(time.Hour)) {
		t.Error("culled with culling disabled")
	}
}

func TestPolicyFromEnv(t *testing.T) {
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	p, err := culling.PolicyFromEnv(get)
	if err != nil || p.Enabled || p.IdleTime != 1440*time.Minute || p.CheckPeriod != time.Minute {
		t.Fatalf("defaults = %+v, %v", p, err)
	}
	env = map[string]string{"SLUICE_NOTEBOOKS_ENABLE_CULLING": "true", "SLUICE_NOTEBOOKS_CULL_IDLE_TIME": "30", "SLUICE_NOTEBOOKS_IDLENESS_CHECK_PERIOD": "1s"}
	p, err = culling.PolicyFromEnv(get)
	if err != nil || !p.Enabled || p.IdleTime != 30*time.Minute || p.CheckPeriod != time.Second {
		t.Fatalf("got %+v, %v", p, err)
	}
	env = map[string]string{"SLUICE_NOTEBOOKS_ENABLE_CULLING": "maybe", "SLUICE_NOTEBOOKS_CULL_IDLE_TIME": "-5", "SLUICE_NOTEBOOKS_IDLENESS_CHECK_PERIOD": "soon"}
	_, err = culling.PolicyFromEnv(get)
	for _, v := range []string{"SLUICE_NOTEBOOKS_ENABLE_CULLING", "SLUICE_NOTEBOOKS_CULL_IDLE_TIME", "SLUICE_NOTEBOOKS_IDLENESS_CHECK_PERIOD"} {
		if err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("error %v does not name %s", err, v)
		}
	}
}
