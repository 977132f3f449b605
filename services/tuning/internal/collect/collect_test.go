package collect_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/tfevents"
	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
	"github.com/sluice-ml/sluice/services/tuning/internal/collect"
)

func TestStdOutDefaultFormat(t *testing.T) {
	log := []byte("epoch 1\nloss=0.9 accuracy = 0.5\nTrain-accuracy=0.61\nloss=4.5e-1 unrelated=3\nloss=abc\nloss=0.6\n")
	s, err := collect.StdOut(log, []string{tuningv1.DefaultMetricsFormat}, []string{"loss", "accuracy", "Train-accuracy"})
	require.NoError(t, err)
	require.Equal(t, collect.Series{"loss": {0.9, 0.45, 0.6}, "accuracy": {0.5}, "Train-accuracy": {0.61}}, s)
	obs := collect.Observe(s, []string{"loss", "accuracy", "missing"})
	require.Equal(t, []tuningv1.Metric{{Name: "loss", Min: "0.45", Max: "0.9", Latest: "0.6"}, {Name: "accuracy", Min: "0.5", Max: "0.5", Latest: "0.5"}}, obs.Metrics)

	o := tuningv1.ObjectiveSpec{Type: tuningv1.ObjectiveMinimize, ObjectiveMetricName: "loss"}
	v, ok := collect.Objective(o, obs)
	require.True(t, ok)
	require.Equal(t, 0.45, v, "minimize defaults to the min strategy")
	o.MetricStrategies = []tuningv1.MetricStrategy{{Name: "loss", Value: tuningv1.StrategyLatest}}
	v, _ = collect.Objective(o, obs)
	require.Equal(t, 0.6, v)
}

// A custom metricsFormat (Katib's example: "{metricName: loss, metricValue: 0.3}").
func TestStdOutCustomFormat(t *testing.T) {
	log := []byte("{metricName: loss, metricValue: 0.3}\nloss=9\n")
	s, err := collect.StdOut(log, []string{`{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}`}, []string{"loss"})
	require.NoError(t, err)
	require.Equal(t, collect.Series{"loss": {0.3}}, s)
}

func TestTFEvents(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "test"), 0o755))
	w, err := tfevents.Create(filepath.Join(dir, "test", tfevents.FileName(time.Unix(1700000000, 0), "h", 1, 0)))
	require.NoError(t, err)
	for step, v := range []float32{0.5, 0.25, 0.375} {
		require.NoError(t, w.AddScalar("loss", int64(step), v, time.Unix(1700000000+int64(step), 0)))
	}
	require.NoError(t, w.Close())
	s, err := collect.TFEvents(t.Context(), tfevents.Dir(dir), []string{"loss", "test/loss", "accuracy"})
	require.NoError(t, err)
	require.Equal(t, []float64{0.5, 0.25, 0.375}, s["loss"])
	require.Equal(t, []float64{0.5, 0.25, 0.375}, s["test/loss"])
	require.Empty(t, s["accuracy"])
}
