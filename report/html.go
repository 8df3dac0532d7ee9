package report

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"math"
	"strings"

	"github.com/sieve-data/sieve/datasets"
)

//go:embed page.html.tmpl
var pageText string

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"pct": func(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) },
	"f1":  func(x float64) string { return fmt.Sprintf("%.1f", x) },
	"f3":  func(x float64) string { return fmt.Sprintf("%.3g", x) },
	"color": func(c int) string {
		return hexColor(topicColor(c))
	},
	"keywords": func(kw []string) string { return strings.Join(kw, ", ") },
	"sub":      func(a, b float64) float64 { return a - b },
}).Parse(pageText))

// view is what the template reads.
type view struct {
	*Data
	Charts   map[string]template.URL
	Map      *svgMap
	Funnel   []funnelRow
	Keywords map[int][]string
	Splits   []datasets.Split
}

type funnelRow struct {
	Stage    string
	In, Out  int64
	Gen      int64
	Dropped  string
	Modified string
}

type svgMap struct {
	W, H   int
	Points []svgPoint
	Cents  []svgPoint
}

type svgPoint struct {
	X, Y  string
	Topic int
	Title string
}

// HTML renders the page: charts are embedded as data: URLs, the map is
// inline SVG.
func HTML(d *Data, charts []Chart) ([]byte, error) {
	v := view{Data: d, Charts: map[string]template.URL{}, Keywords: map[int][]string{}, Splits: d.Manifest.Splits}
	for _, c := range charts {
		v.Charts[c.File] = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(c.PNG))
	}
	for _, s := range d.Manifest.Funnel.Stages {
		r := funnelRow{Stage: s.Stage, In: s.In, Out: s.Out, Gen: s.Generated}
		var parts []string
		for _, c := range s.Dropped {
			parts = append(parts, fmt.Sprintf("%s %d", c.Reason, c.Count))
		}
		r.Dropped = strings.Join(parts, ", ")
		parts = parts[:0]
		for _, c := range s.Modified {
			parts = append(parts, fmt.Sprintf("%s %d", c.Reason, c.Count))
		}
		r.Modified = strings.Join(parts, ", ")
		v.Funnel = append(v.Funnel, r)
	}
	if d.Topics != nil {
		v.Map = newSVGMap(d)
		for _, t := range d.Topics.Topics {
			for _, k := range t.Keywords {
				v.Keywords[t.ID] = append(v.Keywords[t.ID], k.Word)
			}
		}
	}
	var buf bytes.Buffer
	if err := page.Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("report: page: %w", err)
	}
	return buf.Bytes(), nil
}

// newSVGMap scales the sampled points into a 600×450 box (y up).
func newSVGMap(d *Data) *svgMap {
	m := &svgMap{W: 600, H: 450}
	lox, hix, loy, hiy := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, p := range d.Topics.Points {
		lox, hix = min(lox, p.X), max(hix, p.X)
		loy, hiy = min(loy, p.Y), max(hiy, p.Y)
	}
	for _, t := range d.Topics.Topics {
		lox, hix = min(lox, t.X), max(hix, t.X)
		loy, hiy = min(loy, t.Y), max(hiy, t.Y)
	}
	if math.IsInf(lox, 0) {
		return m
	}
	const pad = 20.0
	sx := (float64(m.W) - 2*pad) / math.Max(hix-lox, 1e-9)
	sy := (float64(m.H) - 2*pad) / math.Max(hiy-loy, 1e-9)
	at := func(x, y float64) (string, string) {
		return fmt.Sprintf("%.1f", pad+(x-lox)*sx), fmt.Sprintf("%.1f", float64(m.H)-pad-(y-loy)*sy)
	}
	labels := map[int32]string{}
	for _, t := range d.Topics.Topics {
		labels[int32(t.ID)] = displayName(t)
	}
	for _, p := range d.Topics.Points {
		x, y := at(p.X, p.Y)
		m.Points = append(m.Points, svgPoint{X: x, Y: y, Topic: int(p.Topic),
			Title: fmt.Sprintf("%s — topic %d: %s", p.ID, p.Topic, labels[p.Topic])})
	}
	for _, t := range d.Topics.Topics {
		x, y := at(t.X, t.Y)
		m.Cents = append(m.Cents, svgPoint{X: x, Y: y, Topic: t.ID, Title: fmt.Sprintf("topic %d: %s", t.ID, displayName(t))})
	}
	return m
}

// Written is a report written to a directory.
type Written struct {
	// Index is the page's path; Files are every file written (the page
	// and the PNGs), in order.
	Index string
	Files []string
}

// Write renders d into dir (local or remote): index.html and one PNG per
// chart. The same data gives the same bytes.
func Write(ctx context.Context, d *Data, dir string) (*Written, error) {
	charts, err := Charts(d)
	if err != nil {
		return nil, err
	}
	html, err := HTML(d, charts)
	if err != nil {
		return nil, err
	}
	w := &Written{Index: join(dir, IndexFile)}
	for _, c := range charts {
		f := join(dir, c.File)
		if err := datasets.WriteFile(ctx, f, c.PNG); err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		w.Files = append(w.Files, f)
	}
	if err := datasets.WriteFile(ctx, w.Index, html); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	w.Files = append(w.Files, w.Index)
	return w, nil
}

// Build collects the version in versionDir, compares it with the version
// in compareDir when that is not empty, and writes the report into
// outDir (versionDir/report when empty).
func Build(ctx context.Context, versionDir, compareDir, outDir string, opt Options) (*Written, error) {
	d, err := Collect(ctx, versionDir, opt)
	if err != nil {
		return nil, err
	}
	if compareDir != "" {
		if _, err := Compare(ctx, d, versionDir, compareDir); err != nil {
			return nil, err
		}
	}
	if outDir == "" {
		outDir = join(versionDir, Dir)
	}
	return Write(ctx, d, outDir)
}
