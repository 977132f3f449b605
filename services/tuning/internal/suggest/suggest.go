// Package suggest proposes parameter assignments for new trials: random search, grid search, TPE
// (Bergstra et al. 2011) and Gaussian-process Bayesian optimization. Every algorithm is a pure function of the experiment's search space, its
// settings, the seed and the observed history, so a workflow may call it from an activity and get the
// same answer on retry.
package suggest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
)

// ErrUnknownAlgorithm: the algorithm name is not random, grid or tpe.
var ErrUnknownAlgorithm = errors.New("suggest: unknown algorithm")

// Observation is a finished trial: its assignments and, when it produced the objective metric, its
// objective value (Valid false for failed trials or trials without metrics).
type Observation struct {
	Assignments []tuningv1.ParameterAssignment `json:"assignments"`
	Value       float64                        `json:"value"`
	Valid       bool                           `json:"valid"`
}

// Request asks for Count new assignments. History holds every trial created so far (finished or not,
// in creation order): grid skips points already tried, random and TPE advance their RNG by its length.
type Request struct {
	Parameters []tuningv1.ParameterSpec `json:"parameters"`
	Algorithm  tuningv1.AlgorithmSpec   `json:"algorithm"`
	Objective  tuningv1.ObjectiveType   `json:"objective"`
	History    []Observation            `json:"history"`
	Count      int                      `json:"count"`
	// Seed is used when the algorithm has no random_state setting.
	Seed uint64 `json:"seed"`
}

// Response holds up to Count assignments; Exhausted is true when the algorithm can propose nothing
// more (grid: every point was tried).
type Response struct {
	Assignments [][]tuningv1.ParameterAssignment `json:"assignments"`
	Exhausted   bool                             `json:"exhausted"`
}

// Suggest runs the request's algorithm.
func Suggest(req Request) (Response, error) {
	sp, err := newSpace(req.Parameters)
	if err != nil {
		return Response{}, err
	}
	switch req.Algorithm.AlgorithmName {
	case "random":
		rng := newRNG(req, len(req.History))
		var out Response
		for i := 0; i < req.Count; i++ {
			out.Assignments = append(out.Assignments, sp.assign(sp.sample(rng)))
		}
		return out, nil
	case "grid":
		return grid(sp, req)
	case "tpe":
		return tpe(sp, req)
	case "bayesianoptimization":
		return bayes(sp, req)
	}
	return Response{}, fmt.Errorf("%w: %q", ErrUnknownAlgorithm, req.Algorithm.AlgorithmName)
}

func setting(req Request, name string) (string, bool) {
	for _, s := range req.Algorithm.AlgorithmSettings {
		if s.Name == name {
			return s.Value, true
		}
	}
	return "", false
}

// newRNG is seeded by random_state (or Seed) and the history length, so the same history always gives
// the same proposals and a longer history new ones.
func newRNG(req Request, n int) *rand.Rand {
	seed := req.Seed
	if v, ok := setting(req, "random_state"); ok {
		if s, err := strconv.ParseUint(v, 10, 64); err == nil {
			seed = s
		}
	}
	return rand.New(rand.NewPCG(seed, uint64(n)*0x9E3779B97F4A7C15+1))
}

// dim is one parameter in the internal representation: a real number x (log-scaled for logUniform),
// or a category index.
type dim struct {
	spec     tuningv1.ParameterSpec
	lo, hi   float64 // in internal (possibly log) scale
	step     float64 // in the original scale; 0 = continuous
	log      bool
	isInt    bool
	choices  []string // discrete/categorical
	discrete bool     // discrete list (numbers) vs categorical
}

type space []dim

func newSpace(params []tuningv1.ParameterSpec) (space, error) {
	sp := make(space, len(params))
	for i, p := range params {
		d := dim{spec: p}
		fs := p.FeasibleSpace
		switch p.ParameterType {
		case tuningv1.ParameterInt, tuningv1.ParameterDouble:
			lo, err1 := strconv.ParseFloat(fs.Min, 64)
			hi, err2 := strconv.ParseFloat(fs.Max, 64)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("suggest: parameter %s: bad bounds %q..%q", p.Name, fs.Min, fs.Max)
			}
			d.isInt = p.ParameterType == tuningv1.ParameterInt
			if fs.Step != "" {
				d.step, _ = strconv.ParseFloat(fs.Step, 64)
			}
			d.log = fs.Distribution == tuningv1.DistributionLogUniform
			if d.log {
				lo, hi = math.Log(lo), math.Log(hi)
			}
			d.lo, d.hi = lo, hi
		default:
			d.choices = fs.List
			d.discrete = p.ParameterType == tuningv1.ParameterDiscrete
		}
		sp[i] = d
	}
	return sp, nil
}

func (d dim) categorical() bool { return d.choices != nil }

// point is one assignment in internal form: x for numeric dims, the category index for list dims.
type point []float64

func (sp space) sample(rng *rand.Rand) point {
	pt := make(point, len(sp))
	for i, d := range sp {
		if d.categorical() {
			pt[i] = float64(rng.IntN(len(d.choices)))
		} else {
			pt[i] = d.lo + rng.Float64()*(d.hi-d.lo)
		}
	}
	return pt
}

// value turns an internal x into the parameter's value: exp for log scale, snapped to the step grid
// anchored at min, clamped to [min, max].
func (d dim) value(x float64) float64 {
	if d.log {
		x = math.Exp(x)
	}
	lo, hi := d.lo, d.hi
	if d.log {
		lo, hi = math.Exp(lo), math.Exp(hi)
	}
	if d.step > 0 {
		x = lo + math.Round((x-lo)/d.step)*d.step
		for x > hi+1e-12 {
			x -= d.step
		}
	}
	if d.isInt {
		x = math.Round(x)
	}
	return math.Max(lo, math.Min(hi, x))
}

func (d dim) format(x float64) string {
	if d.categorical() {
		return d.choices[int(x)]
	}
	v := d.value(x)
	if d.isInt {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func (sp space) assign(pt point) []tuningv1.ParameterAssignment {
	out := make([]tuningv1.ParameterAssignment, len(sp))
	for i, d := range sp {
		out[i] = tuningv1.ParameterAssignment{Name: d.spec.Name, Value: d.format(pt[i])}
	}
	return out
}

// parse turns recorded assignments back into internal form; ok false when one does not fit the space.
func (sp space) parse(as []tuningv1.ParameterAssignment) (point, bool) {
	byName := map[string]string{}
	for _, a := range as {
		byName[a.Name] = a.Value
	}
	pt := make(point, len(sp))
	for i, d := range sp {
		v, ok := byName[d.spec.Name]
		if !ok {
			return nil, false
		}
		if d.categorical() {
			idx := -1
			for j, c := range d.choices {
				if c == v {
					idx = j
				}
			}
			if idx < 0 {
				return nil, false
			}
			pt[i] = float64(idx)
			continue
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, false
		}
		if d.log {
			if x <= 0 {
				return nil, false
			}
			x = math.Log(x)
		}
		pt[i] = x
	}
	return pt, true
}
