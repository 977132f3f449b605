package suggest

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
)

// maxGridPoints bounds the grid Sluice enumerates.
const maxGridPoints = 1_000_000

// values lists a dimension's grid values, in order: min, min+step, ... ≤ max (int step defaults to 1),
// or the list of a discrete/categorical parameter.
func (d dim) values() ([]string, error) {
	if d.categorical() {
		return d.choices, nil
	}
	if d.step <= 0 {
		return nil, fmt.Errorf("suggest: parameter %s: the grid algorithm needs feasibleSpace.step", d.spec.Name)
	}
	lo, _ := strconv.ParseFloat(d.spec.FeasibleSpace.Min, 64)
	hi, _ := strconv.ParseFloat(d.spec.FeasibleSpace.Max, 64)
	n := int(math.Floor((hi-lo)/d.step+1e-9)) + 1
	if n > maxGridPoints {
		return nil, fmt.Errorf("suggest: parameter %s has more than %d grid points", d.spec.Name, maxGridPoints)
	}
	out := make([]string, n)
	for i := range out {
		v := lo + float64(i)*d.step
		if d.isInt {
			out[i] = strconv.FormatInt(int64(math.Round(v)), 10)
		} else {
			// Round away float noise (0.1+0.2) at a precision finer than the step.
			out[i] = strconv.FormatFloat(roundTo(v, d.step), 'g', -1, 64)
		}
	}
	return out, nil
}

func roundTo(v, step float64) float64 {
	digits := int(math.Max(0, -math.Floor(math.Log10(step)))) + 6
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// grid enumerates the Cartesian product in parameter order (the last parameter varies fastest) and
// returns the first Count points not yet in the history. Exhausted is set when no untried point is left
// after these.
func grid(sp space, req Request) (Response, error) {
	lists := make([][]string, len(sp))
	total := 1
	for i, d := range sp {
		vs, err := d.values()
		if err != nil {
			return Response{}, err
		}
		lists[i] = vs
		total *= len(vs)
		if total > maxGridPoints {
			return Response{}, fmt.Errorf("suggest: the grid has more than %d points", maxGridPoints)
		}
	}
	tried := map[string]bool{}
	for _, h := range req.History {
		tried[key(h.Assignments)] = true
	}
	var out Response
	idx := make([]int, len(sp))
	for n := 0; n < total; n++ {
		as := make([]tuningv1.ParameterAssignment, len(sp))
		for i, d := range sp {
			as[i] = tuningv1.ParameterAssignment{Name: d.spec.Name, Value: lists[i][idx[i]]}
		}
		if !tried[key(as)] {
			if len(out.Assignments) == req.Count {
				return out, nil
			}
			out.Assignments = append(out.Assignments, as)
		}
		for i := len(idx) - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < len(lists[i]) {
				break
			}
			idx[i] = 0
		}
	}
	out.Exhausted = true
	return out, nil
}

func key(as []tuningv1.ParameterAssignment) string {
	var b strings.Builder
	for _, a := range as {
		b.WriteString(a.Name)
		b.WriteByte('=')
		b.WriteString(a.Value)
		b.WriteByte(0)
	}
	return b.String()
}
