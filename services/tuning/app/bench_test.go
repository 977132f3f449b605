package app_test

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
	"github.com/sluice-ml/sluice/services/tuning/app"
)

// BenchmarkExperimentOverhead: one random-search experiment of 12 trials, 3 at a time, each a one-Worker
// TFJob of the test trainer (3 epochs of 150 ms), through the tuning and training services with their
// production settings (1 s status poll, 50 trials per workflow run), against the same 12 programs with
// the same arguments run by hand as processes, 3 at a time. Reports trials/min of both, and the
// controller's overhead per trial: (experiment wall time − by-hand wall time) × parallelism / trials,
// i.e. the time each trial slot spends on orchestration (suggestion, job submission and start, status
// polling, log collection, bookkeeping) beyond running the program.
func BenchmarkExperimentOverhead(b *testing.B) {
	const trials, parallel = 12, 3
	e := newEnvConfig(b, nil, func(c *app.Config) {
		def, _ := app.ConfigFromEnv(func(string) string { return "" })
		c.PollInterval, c.TrialsPerRun = def.PollInterval, def.TrialsPerRun
	})
	trainer := buildTrainer(b)
	var expWall, handWall time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("bench-%d", i)
		doc := strings.Replace(experiment(name, "random", "", trainer, trials), "parallelTrialCount: 2", fmt.Sprintf("parallelTrialCount: %d", parallel), 1)
		doc = strings.Replace(doc, `- "--optimizer=${trialParameters.optimizer}"`, `- "--optimizer=${trialParameters.optimizer}"`+"\n                      - \"--epoch-delay=150ms\"", 1)
		start := time.Now()
		code, body := e.do(http.MethodPost, e.experiments(), doc, nil)
		require.Equal(b, http.StatusCreated, code, body)
		var v tuningv1.ExperimentView
		for {
			code, body = e.do(http.MethodGet, e.experiments()+"/"+name, "", &v)
			require.Equal(b, http.StatusOK, code, body)
			if s := v.State(); s == tuningv1.ConditionSucceeded || s == tuningv1.ConditionFailed {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		expWall += time.Since(start)
		require.Equal(b, tuningv1.ConditionSucceeded, v.State())
		require.Len(b, v.TrialsView, trials)

		// The same trials by hand: the same program and arguments, three at a time.
		start = time.Now()
		sem := make(chan struct{}, parallel)
		var wg sync.WaitGroup
		errs := make(chan error, trials)
		for _, tr := range v.TrialsView {
			args := []string{"--lr=" + tr.ParameterAssignments[0].Value, "--optimizer=" + tr.ParameterAssignments[1].Value, "--epoch-delay=150ms"}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if out, err := exec.Command(trainer, args...).CombinedOutput(); err != nil {
					errs <- fmt.Errorf("%v: %w: %s", args, err, out)
				}
			}()
		}
		wg.Wait()
		handWall += time.Since(start)
		close(errs)
		for err := range errs {
			require.NoError(b, err)
		}
		code, body = e.do(http.MethodDelete, e.experiments()+"/"+name, "", nil)
		require.Equal(b, http.StatusAccepted, code, body)
	}
	n := float64(b.N)
	exp, hand := expWall.Seconds()/n, handWall.Seconds()/n
	b.ReportMetric(trials/exp*60, "trials/min")
	b.ReportMetric(trials/hand*60, "by-hand-trials/min")
	b.ReportMetric((exp-hand)*parallel/trials*1000, "overhead-ms/trial")
	b.ReportMetric(exp/hand, "wall-ratio")
}
