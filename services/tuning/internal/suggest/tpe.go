package suggest

import (
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
)

// TPE defaults, as in hyperopt's tpe.suggest (which Katib's tpe runs).
const (
	defaultStartup    = 20
	defaultCandidates = 24
	defaultGamma      = 0.25
	defaultPrior      = 1.0
)

type tpeConfig struct {
	startup, candidates int
	gamma, prior        float64
}

func tpeSettings(req Request) tpeConfig {
	c := tpeConfig{defaultStartup, defaultCandidates, defaultGamma, defaultPrior}
	if v, ok := setting(req, "n_startup_trials"); ok {
		c.startup, _ = strconv.Atoi(v)
	}
	if v, ok := setting(req, "n_EI_candidates"); ok {
		c.candidates, _ = strconv.Atoi(v)
	}
	if v, ok := setting(req, "gamma"); ok {
		c.gamma, _ = strconv.ParseFloat(v, 64)
	}
	if v, ok := setting(req, "prior_weight"); ok {
		c.prior, _ = strconv.ParseFloat(v, 64)
	}
	return c
}

// tpe is the Tree-structured Parzen Estimator (Bergstra, Bardenet, Bengio, Kégl, "Algorithms for
// Hyper-Parameter Optimization", NIPS 2011). With fewer than n_startup_trials finished observations it
// samples at random. Otherwise it sorts the observations by loss (the objective, negated when
// maximizing), splits them at the gamma quantile into good (the ceil(gamma·n) best) and bad, fits per
// parameter a Parzen estimator l(x) to the good and g(x) to the bad ones (adaptive Gaussians truncated
// to [min, max] plus a prior component for numbers; smoothed frequencies for lists), draws
// n_EI_candidates from l and keeps the candidate maximising l(x)/g(x), which maximises expected
// improvement. Parameters are treated independently, as hyperopt does for a flat space.
func tpe(sp space, req Request) (Response, error) {
	cfg := tpeSettings(req)
	rng := newRNG(req, len(req.History))
	var pts []point
	var losses []float64
	for _, h := range req.History {
		if !h.Valid || math.IsNaN(h.Value) {
			continue
		}
		pt, ok := sp.parse(h.Assignments)
		if !ok {
			continue
		}
		loss := h.Value
		if req.Objective == "maximize" {
			loss = -loss
		}
		pts = append(pts, pt)
		losses = append(losses, loss)
	}
	var out Response
	for i := 0; i < req.Count; i++ {
		if len(pts) < max(cfg.startup, 2) {
			out.Assignments = append(out.Assignments, sp.assign(sp.sample(rng)))
			continue
		}
		out.Assignments = append(out.Assignments, sp.assign(tpePoint(sp, pts, losses, cfg, rng)))
	}
	return out, nil
}

// split returns the indices of the good and the bad observations (stable by loss, then by order).
func split(losses []float64, gamma float64) (good, bad []int) {
	idx := make([]int, len(losses))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return losses[idx[a]] < losses[idx[b]] })
	n := int(math.Ceil(gamma * float64(len(losses))))
	n = max(1, min(n, len(losses)-1))
	return idx[:n], idx[n:]
}

func tpePoint(sp space, pts []point, losses []float64, cfg tpeConfig, rng *rand.Rand) point {
	good, bad := split(losses, cfg.gamma)
	out := make(point, len(sp))
	for d, dm := range sp {
		col := func(ix []int) []float64 {
			xs := make([]float64, len(ix))
			for i, j := range ix {
				xs[i] = pts[j][d]
			}
			return xs
		}
		if dm.categorical() {
			l := newCategorical(col(good), len(dm.choices), cfg.prior)
			g := newCategorical(col(bad), len(dm.choices), cfg.prior)
			best, bestScore := 0.0, math.Inf(-1)
			for c := 0; c < cfg.candidates; c++ {
				x := l.sample(rng)
				if s := math.Log(l.p[int(x)]) - math.Log(g.p[int(x)]); s > bestScore {
					best, bestScore = x, s
				}
			}
			out[d] = best
			continue
		}
		l := newParzen(col(good), dm.lo, dm.hi, cfg.prior)
		g := newParzen(col(bad), dm.lo, dm.hi, cfg.prior)
		best, bestScore := 0.0, math.Inf(-1)
		for c := 0; c < cfg.candidates; c++ {
			x := l.sample(rng)
			if s := l.logPDF(x) - g.logPDF(x); s > bestScore {
				best, bestScore = x, s
			}
		}
		out[d] = best
	}
	return out
}

// parzen is hyperopt's adaptive Parzen estimator: a prior Gaussian centred on the range with sigma the
// range's width, plus one Gaussian per observation whose sigma is the larger distance to its sorted
// neighbours, clipped to [width/min(100, n+1), width]; every component is truncated to [lo, hi].
type parzen struct {
	mu, sigma, w []float64
	lo, hi       float64
}

func newParzen(xs []float64, lo, hi, prior float64) parzen {
	width := hi - lo
	if width <= 0 {
		width = 1
	}
	p := parzen{lo: lo, hi: hi}
	mus := append([]float64{(lo + hi) / 2}, xs...)
	order := make([]int, len(mus))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return mus[order[a]] < mus[order[b]] })
	minSigma := width / math.Min(100, float64(len(mus)))
	for k, i := range order {
		var sigma float64
		if i == 0 {
			sigma = width
		} else {
			left, right := 0.0, 0.0
			if k > 0 {
				left = mus[i] - mus[order[k-1]]
			} else {
				left = mus[i] - lo
			}
			if k < len(order)-1 {
				right = mus[order[k+1]] - mus[i]
			} else {
				right = hi - mus[i]
			}
			sigma = math.Max(minSigma, math.Min(width, math.Max(left, right)))
		}
		w := 1.0
		if i == 0 {
			w = prior
		}
		p.mu = append(p.mu, mus[i])
		p.sigma = append(p.sigma, sigma)
		p.w = append(p.w, w)
	}
	var sum float64
	for _, w := range p.w {
		sum += w
	}
	for i := range p.w {
		p.w[i] /= sum
	}
	return p
}

func normCDF(x float64) float64 { return 0.5 * (1 + math.Erf(x/math.Sqrt2)) }

func (p parzen) logPDF(x float64) float64 {
	var s float64
	for i := range p.mu {
		mass := normCDF((p.hi-p.mu[i])/p.sigma[i]) - normCDF((p.lo-p.mu[i])/p.sigma[i])
		if mass <= 0 {
			continue
		}
		z := (x - p.mu[i]) / p.sigma[i]
		s += p.w[i] * math.Exp(-z*z/2) / (p.sigma[i] * math.Sqrt(2*math.Pi) * mass)
	}
	return math.Log(s + 1e-300)
}

func (p parzen) sample(rng *rand.Rand) float64 {
	r, i := rng.Float64(), 0
	for ; i < len(p.w)-1; i++ {
		if r < p.w[i] {
			break
		}
		r -= p.w[i]
	}
	for try := 0; try < 100; try++ {
		x := p.mu[i] + rng.NormFloat64()*p.sigma[i]
		if x >= p.lo && x <= p.hi {
			return x
		}
	}
	return math.Max(p.lo, math.Min(p.hi, p.mu[i]))
}

// categoricalPDF is the frequency of each choice among the observations, smoothed by prior_weight
// spread uniformly over the choices.
type categoricalPDF struct{ p []float64 }

func newCategorical(xs []float64, k int, prior float64) categoricalPDF {
	p := make([]float64, k)
	for i := range p {
		p[i] = prior / float64(k)
	}
	for _, x := range xs {
		p[int(x)]++
	}
	sum := prior + float64(len(xs))
	for i := range p {
		p[i] /= sum
	}
	return categoricalPDF{p}
}

func (c categoricalPDF) sample(rng *rand.Rand) float64 {
	r := rng.Float64()
	for i, v := range c.p {
		if r < v {
			return float64(i)
		}
		r -= v
	}
	return float64(len(c.p) - 1)
}
