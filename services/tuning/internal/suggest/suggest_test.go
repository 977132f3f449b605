package suggest_test

import (
	"math"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
	"github.com/sluice-ml/sluice/services/tuning/internal/suggest"
)

func double(name, lo, hi, dist string) tuningv1.ParameterSpec {
	return tuningv1.ParameterSpec{Name: name, ParameterType: tuningv1.ParameterDouble,
		FeasibleSpace: tuningv1.FeasibleSpace{Min: lo, Max: hi, Distribution: tuningv1.Distribution(dist)}}
}

func algo(name string, kv ...string) tuningv1.AlgorithmSpec {
	a := tuningv1.AlgorithmSpec{AlgorithmName: name}
	for i := 0; i+1 < len(kv); i += 2 {
		a.AlgorithmSettings = append(a.AlgorithmSettings, tuningv1.AlgorithmSetting{Name: kv[i], Value: kv[i+1]})
	}
	return a
}

func TestGridRespectsStepAndListAndReportsExhaustion(t *testing.T) {
	params := []tuningv1.ParameterSpec{
		{Name: "lr", ParameterType: tuningv1.ParameterDouble, FeasibleSpace: tuningv1.FeasibleSpace{Min: "0.1", Max: "0.3", Step: "0.1"}},
		{Name: "layers", ParameterType: tuningv1.ParameterInt, FeasibleSpace: tuningv1.FeasibleSpace{Min: "2", Max: "6", Step: "2"}},
		{Name: "opt", ParameterType: tuningv1.ParameterCategorical, FeasibleSpace: tuningv1.FeasibleSpace{List: []string{"sgd", "adam"}}},
	}
	var hist []suggest.Observation
	seen := map[string]bool{}
	for round := 0; ; round++ {
		resp, err := suggest.Suggest(suggest.Request{Parameters: params, Algorithm: algo("grid"), History: hist, Count: 5})
		require.NoError(t, err)
		for _, as := range resp.Assignments {
			k := as[0].Value + "/" + as[1].Value + "/" + as[2].Value
			require.False(t, seen[k], "grid proposed %s twice", k)
			seen[k] = true
			require.Contains(t, []string{"0.1", "0.2", "0.3"}, as[0].Value)
			require.Contains(t, []string{"2", "4", "6"}, as[1].Value)
			hist = append(hist, suggest.Observation{Assignments: as})
		}
		if resp.Exhausted {
			break
		}
		require.Less(t, round, 10)
	}
	require.Len(t, seen, 3*3*2)
	require.True(t, seen["0.1/2/sgd"] && seen["0.3/6/adam"])
}

func TestRandomIsSeededAndInBounds(t *testing.T) {
	params := []tuningv1.ParameterSpec{double("lr", "0.001", "0.1", "logUniform"),
		{Name: "n", ParameterType: tuningv1.ParameterInt, FeasibleSpace: tuningv1.FeasibleSpace{Min: "10", Max: "20", Step: "5"}},
		{Name: "d", ParameterType: tuningv1.ParameterDiscrete, FeasibleSpace: tuningv1.FeasibleSpace{List: []string{"1", "2.5"}}}}
	req := suggest.Request{Parameters: params, Algorithm: algo("random", "random_state", "7"), Count: 50}
	a, err := suggest.Suggest(req)
	require.NoError(t, err)
	b, _ := suggest.Suggest(req)
	require.Equal(t, a, b, "same seed and history, same proposals")
	var below float64
	for _, as := range a.Assignments {
		lr, _ := strconv.ParseFloat(as[0].Value, 64)
		require.True(t, lr >= 0.001 && lr <= 0.1, lr)
		if lr < 0.01 {
			below++
		}
		require.Contains(t, []string{"10", "15", "20"}, as[1].Value)
		require.Contains(t, []string{"1", "2.5"}, as[2].Value)
	}
	require.Greater(t, below, 10.0, "logUniform puts about half the mass below 0.01")
	req.History = []suggest.Observation{{}}
	c, _ := suggest.Suggest(req)
	require.NotEqual(t, a.Assignments[0], c.Assignments[0], "a longer history gives new proposals")
}

// TPE concentrates on the good region: on f(lr) = (log10 lr + 2)^2 (optimum at 0.01), after the random
// start-up its proposals have a much lower mean loss than random search's.
func TestTPEBeatsRandomOnAQuadratic(t *testing.T) {
	params := []tuningv1.ParameterSpec{double("lr", "0.0001", "1", "logUniform"),
		{Name: "opt", ParameterType: tuningv1.ParameterCategorical, FeasibleSpace: tuningv1.FeasibleSpace{List: []string{"sgd", "adam", "ftrl"}}}}
	f := func(as []tuningv1.ParameterAssignment) float64 {
		lr, _ := strconv.ParseFloat(as[0].Value, 64)
		v := math.Pow(math.Log10(lr)+2, 2)
		if as[1].Value != "adam" {
			v += 1
		}
		return v
	}
	run := func(a tuningv1.AlgorithmSpec, seed uint64) float64 {
		var hist []suggest.Observation
		var late float64
		for len(hist) < 40 {
			resp, err := suggest.Suggest(suggest.Request{Parameters: params, Algorithm: a, Objective: tuningv1.ObjectiveMinimize, History: hist, Count: 2, Seed: seed})
			require.NoError(t, err)
			for _, as := range resp.Assignments {
				v := f(as)
				if len(hist) >= 20 {
					late += v / 20
				}
				hist = append(hist, suggest.Observation{Assignments: as, Value: v, Valid: true})
			}
		}
		return late
	}
	var tpeSum, randSum float64
	for seed := uint64(1); seed <= 10; seed++ {
		tpeSum += run(algo("tpe", "n_startup_trials", "8"), seed)
		randSum += run(algo("random"), seed)
	}
	t.Logf("tpe %.4f random %.4f", tpeSum/10, randSum/10)
	require.Less(t, tpeSum, randSum*0.6, "mean loss of the last 20 proposals: tpe %.4f vs random %.4f", tpeSum/10, randSum/10)
	// Deterministic given seed + history.
	req := suggest.Request{Parameters: params, Algorithm: algo("tpe", "n_startup_trials", "2"), Objective: tuningv1.ObjectiveMinimize, Count: 3, Seed: 3,
		History: []suggest.Observation{{Assignments: []tuningv1.ParameterAssignment{{Name: "lr", Value: "0.01"}, {Name: "opt", Value: "adam"}}, Value: 0, Valid: true},
			{Assignments: []tuningv1.ParameterAssignment{{Name: "lr", Value: "0.5"}, {Name: "opt", Value: "sgd"}}, Value: 4, Valid: true},
			{Assignments: []tuningv1.ParameterAssignment{{Name: "lr", Value: "0.0002"}, {Name: "opt", Value: "ftrl"}}, Value: 3, Valid: true}}}
	a, _ := suggest.Suggest(req)
	b, _ := suggest.Suggest(req)
	require.Equal(t, a, b)
}

// For maximize, TPE treats higher values as better.
func TestTPEMaximize(t *testing.T) {
	params := []tuningv1.ParameterSpec{double("x", "0", "10", "")}
	var hist []suggest.Observation
	for len(hist) < 30 {
		resp, err := suggest.Suggest(suggest.Request{Parameters: params, Algorithm: algo("tpe", "n_startup_trials", "5", "random_state", "4"), Objective: tuningv1.ObjectiveMaximize, History: hist, Count: 1})
		require.NoError(t, err)
		x, _ := strconv.ParseFloat(resp.Assignments[0][0].Value, 64)
		hist = append(hist, suggest.Observation{Assignments: resp.Assignments[0], Value: x, Valid: true})
	}
	var late float64
	for _, h := range hist[20:] {
		late += h.Value
	}
	require.Greater(t, late/10, 7.0, "late proposals favour large x")
}
