package app

import (
	"bytes"
	"encoding/base64"
	"html/template"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// series is one line of a chart: points (X[i], Y[i]); NaN and ±Inf points are left out (they cannot be
// drawn). Points marks each point as well as the line; Scatter marks the points without a line; Dashes
// draws the line dashed.
type series struct {
	Name    string
	X, Y    []float64
	Points  bool
	Scatter bool
	Dashes  bool
}

// chart is a server-side chart: an SVG drawn by gonum.org/v1/plot, embedded as a data: URI of an <img>
// (an image cannot run script, so labels taken from user data need no escaping of their own), with its
// text alternative.
type chart struct {
	Title string
	Alt   string
	Src   template.URL
}

// lineChart draws series as lines (6 × 3.5 in). fixed, when set, pins both axes to [0, 1] (a ROC curve).
func lineChart(title, xLabel, yLabel string, ss []series, fixed bool) (chart, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Legend.Top = !fixed // a ROC curve keeps the top left: its legend goes bottom right
	p.Add(plotter.NewGrid())
	if fixed {
		p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	}
	for i, s := range ss {
		xys := make(plotter.XYs, 0, len(s.X))
		for j := range s.X {
			if j >= len(s.Y) || bad(s.X[j]) || bad(s.Y[j]) {
				continue
			}
			xys = append(xys, plotter.XY{X: s.X[j], Y: s.Y[j]})
		}
		if len(xys) == 0 {
			continue
		}
		if s.Scatter {
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return chart{}, err
			}
			sc.Color = plotutil.Color(i)
			sc.Shape = draw.CircleGlyph{}
			sc.Radius = vg.Points(3)
			p.Add(sc)
			p.Legend.Add(s.Name, sc)
			continue
		}
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return chart{}, err
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		if s.Dashes {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		if s.Points {
			pts.Color = plotutil.Color(i)
			pts.Shape = draw.CircleGlyph{}
			pts.Radius = vg.Points(2.5)
			p.Add(pts)
			p.Legend.Add(s.Name, l, pts)
		} else {
			p.Legend.Add(s.Name, l)
		}
	}
	c := vgsvg.New(6*vg.Inch, 3.5*vg.Inch)
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return chart{}, err
	}
	return chart{Title: title, Src: template.URL("data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()))}, nil
}

func bad(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }
