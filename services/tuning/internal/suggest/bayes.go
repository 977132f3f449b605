package suggest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Bayesian-optimization defaults: Katib's skopt service (base_estimator GP, n_initial_points 10,
// acq_func gp_hedge, acq_optimizer auto) and scikit-optimize's acquisition constants (xi 0.01 for EI and
// PI, kappa 1.96 for LCB).
const (
	defaultInitialPoints = 10
	bayesCandidates      = 2000
	bayesXi              = 0.01
	bayesKappa           = 1.96
)

// Acquisition functions accepted in acq_func (Katib's list; EIps and PIps, which weigh by the trial's
// run time, are refused at validation since trials do not report a duration metric).
const (
	AcqHedge = "gp_hedge"
	AcqEI    = "EI"
	AcqPI    = "PI"
	AcqLCB   = "LCB"
)

type bayesConfig struct {
	initial int
	acq     string
}

func bayesSettings(req Request) (bayesConfig, error) {
	c := bayesConfig{initial: defaultInitialPoints, acq: AcqHedge}
	for _, s := range req.Algorithm.AlgorithmSettings {
		switch s.Name {
		case "n_initial_points":
			n, err := strconv.Atoi(s.Value)
			if err != nil || n < 0 {
				return c, fmt.Errorf("suggest: n_initial_points must be a non-negative integer, got %q", s.Value)
			}
			c.initial = n
		case "acq_func":
			switch s.Value {
			case AcqHedge, AcqEI, AcqPI, AcqLCB:
				c.acq = s.Value
			default:
				return c, fmt.Errorf("suggest: acq_func %q is not supported (gp_hedge, EI, PI, LCB)", s.Value)
			}
		case "base_estimator":
			if s.Value != "GP" {
				return c, fmt.Errorf("suggest: base_estimator %q is not supported (GP)", s.Value)
			}
		}
	}
	return c, nil
}

// bayes is Gaussian-process Bayesian optimization in the manner of scikit-optimize's Optimizer, which
// Katib's bayesianoptimization runs: the first n_initial_points trials are random; afterwards a GP
// (Matérn ν=5/2 kernel over the search space mapped to the unit cube — log scale for logUniform,
// one-hot for lists — observations standardised, length scale and noise chosen by maximum marginal
// likelihood over a fixed grid) models the loss (the objective, negated when maximizing), and each new
// point maximises the acquisition function over bayesCandidates random candidates. With gp_hedge
// (Hoffman, Brochu, de Freitas 2011) EI, PI and LCB each nominate a point and one is drawn with
// probability softmax(gains); the gains are replayed from the history (each nominee's gain is minus the
// GP mean at it after the next observation), so the function stays pure. Points of a batch, and trials
// created but without a value (running or failed), are told to the GP with the best loss seen ("constant
// liar", skopt's cl_min), so parallel trials spread out.
func bayes(sp space, req Request) (Response, error) {
	cfg, err := bayesSettings(req)
	if err != nil {
		return Response{}, err
	}
	rng := newRNG(req, len(req.History))
	var xs [][]float64
	var ys []float64
	var pending [][]float64
	for _, h := range req.History {
		pt, ok := sp.parse(h.Assignments)
		if !ok {
			continue
		}
		if !h.Valid || math.IsNaN(h.Value) || math.IsInf(h.Value, 0) {
			pending = append(pending, sp.unit(pt))
			continue
		}
		loss := h.Value
		if req.Objective == "maximize" {
			loss = -loss
		}
		xs = append(xs, sp.unit(pt))
		ys = append(ys, loss)
	}
	var out Response
	if len(req.History) < cfg.initial || len(xs) < 2 {
		for i := 0; i < req.Count; i++ {
			out.Assignments = append(out.Assignments, sp.assign(sp.sample(rng)))
		}
		return out, nil
	}
	var gains []float64
	if cfg.acq == AcqHedge {
		gains = hedgeGains(sp, xs, ys, cfg.initial, req)
	}
	liar := ys[0]
	for _, y := range ys {
		liar = math.Min(liar, y)
	}
	for i := 0; i < req.Count; i++ {
		fx := append(append([][]float64{}, xs...), pending...)
		fy := append([]float64{}, ys...)
		for range pending {
			fy = append(fy, liar)
		}
		gp := fitGP(fx, fy)
		cands := sp.candidates(rng, bayesCandidates)
		var best []float64
		if cfg.acq == AcqHedge {
			best = nominate(gp, cands, ys, AcqEI, AcqPI, AcqLCB)[drawSoftmax(gains, rng)]
		} else {
			best = nominate(gp, cands, ys, cfg.acq)[0]
		}
		out.Assignments = append(out.Assignments, sp.assign(sp.fromUnit(best)))
		pending = append(pending, best)
	}
	return out, nil
}

// hedgeGains replays gp_hedge over the observations after the first initial ones: at each step the
// three acquisitions nominate their best candidate under the GP of the observations so far, and after
// the next observation each gain decreases by the GP mean at its nominee (lower predicted loss, higher
// gain), as skopt's Optimizer.tell does.
func hedgeGains(sp space, xs [][]float64, ys []float64, initial int, req Request) []float64 {
	gains := make([]float64, 3)
	start := max(initial, 2)
	for j := start; j < len(xs); j++ {
		rng := newRNG(req, j)
		gp := fitGP(xs[:j], ys[:j])
		cands := sp.candidates(rng, bayesCandidates/4)
		noms := nominate(gp, cands, ys[:j], AcqEI, AcqPI, AcqLCB)
		next := fitGP(xs[:j+1], ys[:j+1])
		for k, x := range noms {
			mu, _ := next.predict(x)
			gains[k] -= mu
		}
	}
	return gains
}

// drawSoftmax draws an index with probability exp(g_i)/Σexp(g_j) (skopt's eta = 1).
func drawSoftmax(g []float64, rng *rand.Rand) int {
	m := g[0]
	for _, v := range g {
		m = math.Max(m, v)
	}
	p := make([]float64, len(g))
	var sum float64
	for i, v := range g {
		p[i] = math.Exp(v - m)
		sum += p[i]
	}
	r := rng.Float64() * sum
	for i, v := range p {
		if r < v {
			return i
		}
		r -= v
	}
	return len(p) - 1
}

// nominate returns, for each acquisition function, the candidate maximising it under gp.
func nominate(gp *gaussianProcess, cands [][]float64, ys []float64, acqs ...string) [][]float64 {
	ybest := math.Inf(1)
	for _, y := range ys {
		ybest = math.Min(ybest, y)
	}
	out := make([][]float64, len(acqs))
	scores := make([]float64, len(acqs))
	for i := range scores {
		scores[i] = math.Inf(-1)
	}
	for _, c := range cands {
		mu, sigma := gp.predict(c)
		for i, acq := range acqs {
			var s float64
			switch acq {
			case AcqEI:
				s = ExpectedImprovement(mu, sigma, ybest, bayesXi)
			case AcqPI:
				s = ProbabilityOfImprovement(mu, sigma, ybest, bayesXi)
			default:
				s = -(mu - bayesKappa*sigma) // LCB: the lower bound, lower is better
			}
			if s > scores[i] {
				out[i], scores[i] = c, s
			}
		}
	}
	return out
}

var stdNormal = distuv.UnitNormal

// ExpectedImprovement is E[max(ybest − xi − Y, 0)] for Y ~ N(mu, sigma²) (minimization; Mockus 1978,
// Jones et al. 1998): (ybest−mu−xi)·Φ(z) + sigma·φ(z) with z = (ybest−mu−xi)/sigma; max(ybest−mu−xi, 0)
// when sigma is 0.
func ExpectedImprovement(mu, sigma, ybest, xi float64) float64 {
	d := ybest - mu - xi
	if sigma <= 0 {
		return math.Max(d, 0)
	}
	z := d / sigma
	return d*stdNormal.CDF(z) + sigma*stdNormal.Prob(z)
}

// ProbabilityOfImprovement is P(Y < ybest − xi) for Y ~ N(mu, sigma²) (Kushner 1964).
func ProbabilityOfImprovement(mu, sigma, ybest, xi float64) float64 {
	d := ybest - mu - xi
	if sigma <= 0 {
		if d > 0 {
			return 1
		}
		return 0
	}
	return stdNormal.CDF(d / sigma)
}

// unit maps an internal point to GP inputs: each number scaled to [0, 1] over its (log) range, each list
// parameter one-hot.
func (sp space) unit(pt point) []float64 {
	var u []float64
	for i, d := range sp {
		if d.categorical() {
			oh := make([]float64, len(d.choices))
			oh[int(pt[i])] = 1
			u = append(u, oh...)
			continue
		}
		w := d.hi - d.lo
		if w <= 0 {
			u = append(u, 0)
			continue
		}
		u = append(u, (pt[i]-d.lo)/w)
	}
	return u
}

// fromUnit inverts unit (a one-hot block becomes its largest entry's index).
func (sp space) fromUnit(u []float64) point {
	pt := make(point, len(sp))
	k := 0
	for i, d := range sp {
		if d.categorical() {
			best := 0
			for j := range d.choices {
				if u[k+j] > u[k+best] {
					best = j
				}
			}
			pt[i] = float64(best)
			k += len(d.choices)
			continue
		}
		pt[i] = d.lo + u[k]*(d.hi-d.lo)
		k++
	}
	return pt
}

// candidates draws n random points of the space in unit form, snapped to what the trial would really
// get (steps, integers), so the GP scores the points that will run.
func (sp space) candidates(rng *rand.Rand, n int) [][]float64 {
	out := make([][]float64, n)
	for i := range out {
		pt := sp.sample(rng)
		for j, d := range sp {
			if !d.categorical() && (d.step > 0 || d.isInt) {
				v := d.value(pt[j])
				if d.log {
					v = math.Log(v)
				}
				pt[j] = v
			}
		}
		out[i] = sp.unit(pt)
	}
	return out
}

// gaussianProcess is a GP regression posterior with an amplitude times a Matérn ν=5/2 kernel on
// standardised targets plus white noise.
type gaussianProcess struct {
	xs              [][]float64
	alpha           []float64 // K⁻¹ (y − mean)/std
	chol            mat.Cholesky
	ell, noise, amp float64
	mean, scale     float64
}

// GP hyperparameter grids: isotropic length scale (inputs are in the unit cube), amplitude and noise
// variance (of the standardised targets).
var (
	gpLengthScales = []float64{0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2.5}
	gpAmplitudes   = []float64{0.5, 1, 2, 5}
	gpNoises       = []float64{1e-6, 1e-3, 1e-2, 1e-1}
)

func matern52(a, b []float64, ell float64) float64 {
	var d2 float64
	for i := range a {
		d := a[i] - b[i]
		d2 += d * d
	}
	r := math.Sqrt(5*d2) / ell
	return (1 + r + r*r/3) * math.Exp(-r)
}

// fitGP standardises ys and keeps the (length scale, amplitude, noise) of the grids with the highest
// log marginal likelihood.
func fitGP(xs [][]float64, ys []float64) *gaussianProcess {
	n := len(ys)
	var mean, sd float64
	for _, y := range ys {
		mean += y
	}
	mean /= float64(n)
	for _, y := range ys {
		sd += (y - mean) * (y - mean)
	}
	sd = math.Sqrt(sd / float64(n))
	if sd == 0 || math.IsNaN(sd) {
		sd = 1
	}
	z := mat.NewVecDense(n, nil)
	for i, y := range ys {
		z.SetVec(i, (y-mean)/sd)
	}
	var best *gaussianProcess
	bestLL := math.Inf(-1)
	base := mat.NewSymDense(n, nil)
	k := mat.NewSymDense(n, nil)
	for _, ell := range gpLengthScales {
		for i := 0; i < n; i++ {
			for j := i; j < n; j++ {
				base.SetSym(i, j, matern52(xs[i], xs[j], ell))
			}
		}
		for _, amp := range gpAmplitudes {
			for _, noise := range gpNoises {
				for i := 0; i < n; i++ {
					for j := i; j < n; j++ {
						v := amp * base.At(i, j)
						if i == j {
							v += noise
						}
						k.SetSym(i, j, v)
					}
				}
				gp := &gaussianProcess{xs: xs, ell: ell, noise: noise, amp: amp, mean: mean, scale: sd}
				if !gp.chol.Factorize(k) {
					continue
				}
				var a mat.VecDense
				if err := gp.chol.SolveVecTo(&a, z); err != nil {
					continue
				}
				// log p(z) = −½ zᵀK⁻¹z − ½ log|K| − n/2 log 2π
				ll := -0.5*mat.Dot(z, &a) - 0.5*gp.chol.LogDet() - float64(n)/2*math.Log(2*math.Pi)
				if ll > bestLL {
					gp.alpha = a.RawVector().Data
					best, bestLL = gp, ll
				}
			}
		}
	}
	if best == nil { // every grid point singular (cannot happen with noise 0.1 on a PSD kernel)
		best = &gaussianProcess{xs: xs, ell: 1, noise: 1, amp: 1, mean: mean, scale: sd, alpha: make([]float64, n)}
		k := mat.NewSymDense(n, nil)
		for i := 0; i < n; i++ {
			k.SetSym(i, i, 2)
		}
		best.chol.Factorize(k)
	}
	return best
}

// predict returns the posterior mean and standard deviation of the loss at x (original units).
func (gp *gaussianProcess) predict(x []float64) (mu, sigma float64) {
	n := len(gp.xs)
	k := mat.NewVecDense(n, nil)
	for i, xi := range gp.xs {
		k.SetVec(i, gp.amp*matern52(x, xi, gp.ell))
	}
	m := mat.Dot(k, mat.NewVecDense(n, gp.alpha))
	var v mat.VecDense
	if err := gp.chol.SolveVecTo(&v, k); err != nil {
		return gp.mean + m*gp.scale, 0
	}
	variance := math.Max(gp.amp-mat.Dot(k, &v), 0)
	return gp.mean + m*gp.scale, math.Sqrt(variance) * gp.scale
}
