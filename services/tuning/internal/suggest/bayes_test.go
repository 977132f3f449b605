package suggest

import (
	"math"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
)

// Closed-form values of the acquisition functions for a Gaussian N(mu, sigma²) (minimization):
// EI(0,1; best 0) = φ(0); EI(0,1; best 1) = Φ(1) + φ(1); EI(1,2; best 0) = −Φ(−0.5) + 2φ(−0.5).
func TestAcquisitionReferenceValues(t *testing.T) {
	require.InDelta(t, 0.3989422804014327, ExpectedImprovement(0, 1, 0, 0), 1e-12)
	require.InDelta(t, 0.8413447460685429+0.24197072451914337, ExpectedImprovement(0, 1, 1, 0), 1e-12)
	require.InDelta(t, -0.3085375387259869+2*0.3520653267642995, ExpectedImprovement(1, 2, 0, 0), 1e-12)
	require.InDelta(t, 0.4, ExpectedImprovement(0, 0, 0.5, 0.1), 1e-12, "no uncertainty: the plain improvement")
	require.Zero(t, ExpectedImprovement(1, 0, 0.5, 0))
	require.InDelta(t, 0.5, ProbabilityOfImprovement(0, 1, 0, 0), 1e-12)
	require.InDelta(t, 0.8413447460685429, ProbabilityOfImprovement(0, 1, 1, 0), 1e-12)
}

// The posterior interpolates its observations (little noise is selected for a smooth noiseless
// function) and is uncertain away from them.
func TestGaussianProcessPosterior(t *testing.T) {
	var xs [][]float64
	var ys []float64
	for _, x := range []float64{0, 0.25, 0.5, 0.75, 1} {
		xs = append(xs, []float64{x})
		ys = append(ys, math.Sin(3*x))
	}
	gp := fitGP(xs, ys)
	for i, x := range xs {
		mu, sigma := gp.predict(x)
		require.InDelta(t, ys[i], mu, 0.02, "mean at an observation")
		require.Less(t, sigma, 0.05)
	}
	mu, sigma := gp.predict([]float64{0.375})
	t.Logf("ell %g noise %g sigma %g", gp.ell, gp.noise, sigma)
	require.InDelta(t, math.Sin(3*0.375), mu, 0.05, "smooth interpolation between observations")
	_, far := gp.predict([]float64{3})
	require.Greater(t, far, 2*sigma, "uncertain far from the data")
}

func quadratic(x float64) float64 { return (x - 0.3) * (x - 0.3) }

// runSearch tunes x in [-2, 2] for trials trials (one at a time) and returns the best loss found.
func runSearch(t *testing.T, algo tuningv1.AlgorithmSpec, seed uint64, trials int) float64 {
	params := []tuningv1.ParameterSpec{{Name: "x", ParameterType: tuningv1.ParameterDouble, FeasibleSpace: tuningv1.FeasibleSpace{Min: "-2", Max: "2"}}}
	var hist []Observation
	best := math.Inf(1)
	for range trials {
		resp, err := Suggest(Request{Parameters: params, Algorithm: algo, Objective: "minimize", History: hist, Count: 1, Seed: seed})
		require.NoError(t, err)
		x, err := strconv.ParseFloat(resp.Assignments[0][0].Value, 64)
		require.NoError(t, err)
		y := quadratic(x)
		best = math.Min(best, y)
		hist = append(hist, Observation{Assignments: resp.Assignments[0], Value: y, Valid: true})
	}
	return best
}

// On a 1-D quadratic, 15 trials of Bayesian optimization (5 random, then GP + EI, or gp_hedge) end much
// closer to the minimum than 15 random trials, over the same 8 seeds.
func TestBayesBeatsRandomOnQuadratic(t *testing.T) {
	var rnd, ei, hedge float64
	for seed := uint64(1); seed <= 8; seed++ {
		rnd += runSearch(t, tuningv1.AlgorithmSpec{AlgorithmName: "random"}, seed, 15)
		ei += runSearch(t, tuningv1.AlgorithmSpec{AlgorithmName: "bayesianoptimization", AlgorithmSettings: []tuningv1.AlgorithmSetting{
			{Name: "n_initial_points", Value: "5"}, {Name: "acq_func", Value: "EI"}}}, seed, 15)
		hedge += runSearch(t, tuningv1.AlgorithmSpec{AlgorithmName: "bayesianoptimization", AlgorithmSettings: []tuningv1.AlgorithmSetting{
			{Name: "n_initial_points", Value: "5"}}}, seed, 15)
	}
	t.Logf("mean best loss over 8 seeds: random %.2e, EI %.2e, gp_hedge %.2e", rnd/8, ei/8, hedge/8)
	require.Less(t, ei, rnd/10)
	require.Less(t, hedge, rnd/10)
	require.Less(t, ei/8, 1e-3, "EI finds the minimum 0.3 to within ~0.03")
}

// A parallel batch spreads out (constant liar): three different points, the same on a repeated call.
func TestBayesBatchIsDistinctAndDeterministic(t *testing.T) {
	params := []tuningv1.ParameterSpec{
		{Name: "lr", ParameterType: tuningv1.ParameterDouble, FeasibleSpace: tuningv1.FeasibleSpace{Min: "0.001", Max: "1", Distribution: tuningv1.DistributionLogUniform}},
		{Name: "hidden", ParameterType: tuningv1.ParameterInt, FeasibleSpace: tuningv1.FeasibleSpace{Min: "16", Max: "256", Step: "16"}},
		{Name: "opt", ParameterType: tuningv1.ParameterCategorical, FeasibleSpace: tuningv1.FeasibleSpace{List: []string{"sgd", "adam"}}},
	}
	algo := tuningv1.AlgorithmSpec{AlgorithmName: "bayesianoptimization", AlgorithmSettings: []tuningv1.AlgorithmSetting{{Name: "n_initial_points", Value: "4"}, {Name: "random_state", Value: "3"}}}
	var hist []Observation
	for i := range 6 {
		resp, err := Suggest(Request{Parameters: params, Algorithm: algo, Objective: "maximize", History: hist, Count: 1})
		require.NoError(t, err)
		lr, _ := strconv.ParseFloat(resp.Assignments[0][0].Value, 64)
		h, _ := strconv.Atoi(resp.Assignments[0][1].Value)
		require.Zero(t, h%16, "hidden on its step grid: %d", h)
		hist = append(hist, Observation{Assignments: resp.Assignments[0], Value: -math.Abs(math.Log10(lr)+1) + float64(h)/256, Valid: i != 2})
	}
	req := Request{Parameters: params, Algorithm: algo, Objective: "maximize", History: hist, Count: 3}
	a, err := Suggest(req)
	require.NoError(t, err)
	b, err := Suggest(req)
	require.NoError(t, err)
	require.Equal(t, a, b)
	seen := map[string]bool{}
	for _, as := range a.Assignments {
		k := as[0].Value + "/" + as[1].Value + "/" + as[2].Value
		require.False(t, seen[k], "batch proposed %s twice", k)
		seen[k] = true
	}
}
