package report

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Chart is one PNG plot of the report.
type Chart struct {
	// File is its name in the report directory (map.png, …).
	File  string
	Title string
	PNG   []byte
}

// palette is Tableau's 20 colours; topic c gets palette[c % 20].
var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xd6, 0x27, 0x28, 0xff},
	{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff},
	{0xbc, 0xbd, 0x22, 0xff}, {0x17, 0xbe, 0xcf, 0xff}, {0xae, 0xc7, 0xe8, 0xff}, {0xff, 0xbb, 0x78, 0xff},
	{0x98, 0xdf, 0x8a, 0xff}, {0xff, 0x98, 0x96, 0xff}, {0xc5, 0xb0, 0xd5, 0xff}, {0xc4, 0x9c, 0x94, 0xff},
	{0xf7, 0xb6, 0xd2, 0xff}, {0xc7, 0xc7, 0xc7, 0xff}, {0xdb, 0xdb, 0x8d, 0xff}, {0x9e, 0xda, 0xe5, 0xff},
}

// topicColor is topic c's colour (grey for −1).
func topicColor(c int) color.RGBA {
	if c < 0 {
		return color.RGBA{0x99, 0x99, 0x99, 0xff}
	}
	return palette[c%len(palette)]
}

func hexColor(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

// Charts draws the report's PNG plots: map.png and topics.png (with
// topics), funnel.png, lengths.png, quality.png and judge.png (where the
// column holds values), compare.png (with a comparison).
func Charts(d *Data) ([]Chart, error) {
	var out []Chart
	add := func(file, title string, p *plot.Plot, w, h vg.Length, err error) error {
		if err != nil {
			return fmt.Errorf("report: %s: %w", file, err)
		}
		if p == nil {
			return nil
		}
		png, err := render(p, w, h)
		if err != nil {
			return fmt.Errorf("report: %s: %w", file, err)
		}
		out = append(out, Chart{File: file, Title: title, PNG: png})
		return nil
	}
	if d.Topics != nil {
		p, err := mapPlot(d)
		if err := add("map.png", "Map of samples by topic", p, 16*vg.Centimeter, 13*vg.Centimeter, err); err != nil {
			return nil, err
		}
		p, h, err := topicsPlot(d)
		if err := add("topics.png", "Topic sizes", p, 18*vg.Centimeter, h, err); err != nil {
			return nil, err
		}
	}
	p, h, err := funnelPlot(d)
	if err := add("funnel.png", "Stage funnel", p, 18*vg.Centimeter, h, err); err != nil {
		return nil, err
	}
	p, err = lengthsPlot(d)
	if err := add("lengths.png", "Lengths per role", p, 16*vg.Centimeter, 9*vg.Centimeter, err); err != nil {
		return nil, err
	}
	for _, s := range []Scores{d.Quality, d.Judge} {
		if len(s.Sample) == 0 {
			continue
		}
		p, err := scorePlot(s)
		file := strings.TrimSuffix(s.Column, "_score") + ".png"
		if err := add(file, s.Column+" distribution", p, 14*vg.Centimeter, 8*vg.Centimeter, err); err != nil {
			return nil, err
		}
	}
	if d.Compare != nil {
		p, h, err := comparePlot(d.Compare)
		if err := add("compare.png", "Topic mix: "+d.Compare.Base+" vs "+d.Compare.Other, p, 18*vg.Centimeter, h, err); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func render(p *plot.Plot, w, h vg.Length) ([]byte, error) {
	wt, err := p.WriterTo(w, h, "png")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func mapPlot(d *Data) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: %d sampled points, %d topics", d.Ref, len(d.Topics.Points), d.Topics.K)
	p.X.Label.Text = "PC 1"
	p.Y.Label.Text = "PC 2"
	byTopic := map[int32]plotter.XYs{}
	for _, pt := range d.Topics.Points {
		byTopic[pt.Topic] = append(byTopic[pt.Topic], plotter.XY{X: pt.X, Y: pt.Y})
	}
	for c := range d.Topics.Topics {
		xys := byTopic[int32(c)]
		if len(xys) == 0 {
			continue
		}
		s, err := plotter.NewScatter(xys)
		if err != nil {
			return nil, err
		}
		s.GlyphStyle.Color = topicColor(c)
		s.GlyphStyle.Radius = vg.Points(2)
		s.GlyphStyle.Shape = draw.CircleGlyph{}
		p.Add(s)
	}
	// Centroids as their topic numbers.
	var xys plotter.XYs
	var labels []string
	for _, t := range d.Topics.Topics {
		xys = append(xys, plotter.XY{X: t.X, Y: t.Y})
		labels = append(labels, fmt.Sprint(t.ID))
	}
	if len(xys) > 0 {
		l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
		if err != nil {
			return nil, err
		}
		for i := range l.TextStyle {
			l.TextStyle[i].Font.Size = vg.Points(11)
		}
		p.Add(l)
	}
	p.Add(plotter.NewGrid())
	return p, nil
}

// barHeight sizes a horizontal bar chart of n bars.
func barHeight(n int) vg.Length {
	return vg.Length(max(n, 3))*0.6*vg.Centimeter + 3*vg.Centimeter
}

func horizontalBars(title, xlabel string, names []string, values []float64, colors []color.RGBA) (*plot.Plot, vg.Length, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	n := len(values)
	// Bars are drawn bottom-up; the first name goes on top.
	for i := range values {
		v := make(plotter.Values, n)
		v[n-1-i] = values[i]
		b, err := plotter.NewBarChart(v, vg.Points(11))
		if err != nil {
			return nil, 0, err
		}
		b.Horizontal = true
		b.Color = colors[i%len(colors)]
		b.LineStyle.Width = 0
		p.Add(b)
	}
	rev := make([]string, n)
	for i, s := range names {
		rev[n-1-i] = s
	}
	p.NominalY(rev...)
	p.Add(plotter.NewGrid())
	return p, barHeight(n), nil
}

func topicsPlot(d *Data) (*plot.Plot, vg.Length, error) {
	var names []string
	var values []float64
	var colors []color.RGBA
	for _, t := range d.Topics.Topics {
		names = append(names, clip(fmt.Sprintf("%d %s", t.ID, displayName(t)), 42))
		values = append(values, float64(t.Size))
		colors = append(colors, topicColor(t.ID))
	}
	return horizontalBars(fmt.Sprintf("%d samples in %d topics", d.Topics.Total, d.Topics.K), "samples", names, values, colors)
}

func funnelPlot(d *Data) (*plot.Plot, vg.Length, error) {
	f := d.Manifest.Funnel
	names := []string{"read"}
	values := []float64{float64(f.Read)}
	if f.DeadLettered > 0 {
		names = append(names, "parsed")
		values = append(values, float64(f.Read-f.DeadLettered))
	}
	for _, s := range f.Stages {
		names = append(names, s.Stage)
		values = append(values, float64(s.Out))
	}
	names = append(names, "written")
	values = append(values, float64(f.Written))
	return horizontalBars(fmt.Sprintf("%s: records after each stage", d.Ref), "records", names, values,
		[]color.RGBA{{0x4c, 0x72, 0xb0, 0xff}})
}

// logBins counts values in bins of equal width in log10(1+x).
func logBins(v []float64, lo, hi float64, n int) plotter.XYs {
	xys := make(plotter.XYs, n)
	w := (hi - lo) / float64(n)
	for i := range xys {
		xys[i].X = lo + (float64(i)+0.5)*w
	}
	for _, x := range v {
		b := int((math.Log10(1+x) - lo) / w)
		xys[min(max(b, 0), n-1)].Y++
	}
	return xys
}

func lengthsPlot(d *Data) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Characters per sample and role (sampled rows)"
	p.X.Label.Text = "characters (log scale)"
	p.Y.Label.Text = "samples"
	hi := 1.0
	for _, l := range d.Lengths {
		if len(l.Sample) > 0 {
			hi = max(hi, math.Log10(1+l.Sample[len(l.Sample)-1]))
		}
	}
	hi = math.Ceil(hi*2) / 2
	colors := map[string]color.RGBA{"system": {0x7f, 0x7f, 0x7f, 0xff}, "user": {0x1f, 0x77, 0xb4, 0xff}, "assistant": {0xff, 0x7f, 0x0e, 0xff}}
	for _, l := range d.Lengths {
		if len(l.Sample) == 0 {
			continue
		}
		line, err := plotter.NewLine(logBins(l.Sample, 0, hi, 30))
		if err != nil {
			return nil, err
		}
		line.LineStyle.Color = colors[l.Role]
		line.LineStyle.Width = vg.Points(2)
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("%s (%d)", l.Role, l.Count), line)
	}
	p.Legend.Top = true
	p.X.Tick.Marker = powerTicks{}
	p.Add(plotter.NewGrid())
	return p, nil
}

// powerTicks labels log10(1+x) axes with x at powers of ten.
type powerTicks struct{}

func (powerTicks) Ticks(lo, hi float64) []plot.Tick {
	var t []plot.Tick
	for e := math.Floor(lo); e <= hi; e++ {
		t = append(t, plot.Tick{Value: e, Label: fmt.Sprintf("%g", math.Pow(10, e))})
	}
	return t
}

func scorePlot(s Scores) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: %d rows with a value, mean %.3g", s.Column, s.Present, s.Mean())
	p.X.Label.Text = s.Column
	p.Y.Label.Text = "samples (sampled rows)"
	h, err := plotter.NewHist(plotter.Values(s.Sample), 20)
	if err != nil {
		return nil, err
	}
	h.FillColor = color.RGBA{0x4c, 0x72, 0xb0, 0xff}
	p.Add(h, plotter.NewGrid())
	return p, nil
}

func comparePlot(c *Comparison) (*plot.Plot, vg.Length, error) {
	p := plot.New()
	p.Title.Text = "Topic shares"
	p.X.Label.Text = "share of samples"
	n := len(c.Rows)
	base, other := make(plotter.Values, n), make(plotter.Values, n)
	var names []string
	for i, r := range c.Rows {
		base[n-1-i], other[n-1-i] = r.BaseShare, r.OtherShare
		names = append(names, clip(fmt.Sprintf("%d %s", r.Topic, r.Label), 42))
	}
	rev := make([]string, n)
	for i, s := range names {
		rev[n-1-i] = s
	}
	w := vg.Points(8)
	b1, err := plotter.NewBarChart(base, w)
	if err != nil {
		return nil, 0, err
	}
	b2, err := plotter.NewBarChart(other, w)
	if err != nil {
		return nil, 0, err
	}
	b1.Horizontal, b2.Horizontal = true, true
	b1.Color, b2.Color = color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xff, 0x7f, 0x0e, 0xff}
	b1.LineStyle.Width, b2.LineStyle.Width = 0, 0
	b1.Offset, b2.Offset = w/2, -w/2
	p.Add(b1, b2, plotter.NewGrid())
	p.Legend.Add(c.Base, b1)
	p.Legend.Add(c.Other, b2)
	p.Legend.Top = true
	p.NominalY(rev...)
	return p, barHeight(n) + vg.Centimeter, nil
}
