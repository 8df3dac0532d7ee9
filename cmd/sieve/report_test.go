package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sieve-data/sieve/internal/browsercheck"
	"github.com/sieve-data/sieve/topics"
)

// topicsRecipe writes the demo recipe with a topics stage (and its own
// name) into dir, its sources' paths made absolute.
func topicsRecipe(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(demo)
	if err != nil {
		t.Fatal(err)
	}
	samples, err := filepath.Abs("../../datasets")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(data), "path: ../../datasets", "path: "+samples)
	s = strings.Replace(s, "name: demo\n", "name: "+name+"\n", 1)
	s = strings.Replace(s, "\noutput:\n", "\n  - topics: {k: 0, field: conversation, seed: 1, max_fit_samples: 20000}\noutput:\n", 1)
	if !strings.Contains(s, "- topics:") {
		t.Fatal("demo recipe: no output: section to put a topics stage before")
	}
	file := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func oneSieveLine(t *testing.T, what string, r result) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if r.code == 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], "sieve: ") {
		t.Errorf("%s: exit %d, want non-zero and one sieve: line; stderr %q", what, r.code, r.stderr)
	}
}

// TestReportCommand: 'sieve run' writes the report of every version it
// commits (the demo with a topics stage); 'sieve report' rewrites the
// same bytes, compares two versions' topic mixes, renders a version
// without topics, and refuses a bad reference in one line; the page
// loads in headless Chromium without console errors, its charts and map
// drawn and the topic labels shown.
func TestReportCommand(t *testing.T) {
	store := t.TempDir()
	recipe := topicsRecipe(t, t.TempDir(), "demotopics")
	run := sieve(t, "run", recipe, "--store", store)
	if run.code != 0 {
		t.Fatalf("run: exit %d: %s", run.code, run.stderr)
	}
	vdir := filepath.Join(store, "demotopics", "v1")
	index := filepath.Join(vdir, "report", "index.html")
	if !strings.Contains(run.stdout, "report: "+index+"\n") {
		t.Errorf("run does not print the report's path %s:\n%s", index, run.stdout)
	}
	written, err := os.ReadFile(index)
	if err != nil {
		t.Fatalf("sieve run wrote no report: %v", err)
	}
	pngs, _ := filepath.Glob(filepath.Join(vdir, "report", "*.png"))
	if len(pngs) < 4 {
		t.Errorf("report PNGs: %v", pngs)
	}
	// The page holds every topic label and the manifest's funnel.
	var tr topics.Report
	data, err := os.ReadFile(filepath.Join(vdir, "topics", "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &tr); err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, tp := range tr.Topics {
		labels = append(labels, tp.Label)
		if !strings.Contains(string(written), strings.ReplaceAll(tp.Label, "&", "&amp;")) {
			t.Errorf("page lacks topic label %q", tp.Label)
		}
	}
	m := readManifest(t, vdir)
	for _, want := range []string{">319<", "exact_duplicate 29", ">276<", "demotopics@v1"} {
		if !strings.Contains(string(written), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if m.Funnel.Read != 319 || m.Funnel.Written != 276 {
		t.Errorf("demo funnel changed: %+v", m.Funnel)
	}

	// sieve report writes the same bytes again.
	rep := sieve(t, "report", "demotopics@v1", "--store", store)
	if rep.code != 0 || !strings.Contains(rep.stdout, "report: "+index) || !strings.Contains(rep.stdout, "open file://") {
		t.Fatalf("report: exit %d, stdout %q, stderr %s", rep.code, rep.stdout, rep.stderr)
	}
	again, _ := os.ReadFile(index)
	if !bytes.Equal(written, again) {
		t.Errorf("sieve report wrote other bytes than sieve run")
	}

	// A version without topics, committed without a report.
	plain := sieve(t, "run", demo, "--store", store, "--no-report")
	if plain.code != 0 || strings.Contains(plain.stdout, "report:") {
		t.Fatalf("run --no-report: exit %d, stdout %s, stderr %s", plain.code, plain.stdout, plain.stderr)
	}
	if _, err := os.Stat(filepath.Join(store, "demo", "v1", "report")); err == nil {
		t.Errorf("--no-report wrote a report")
	}
	// output.report: false in the recipe, likewise.
	off := topicsRecipe(t, t.TempDir(), "noreport")
	if b, err := os.ReadFile(off); err != nil || !strings.HasSuffix(string(b), "\n") {
		t.Fatalf("recipe %s: %v", off, err)
	}
	f, err := os.OpenFile(off, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("  report: false\n")
	f.Close()
	if r := sieve(t, "run", off, "--store", store); r.code != 0 || strings.Contains(r.stdout, "report:") {
		t.Fatalf("run with output.report false: exit %d, stdout %s, stderr %s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(store, "noreport", "v1", "report")); err == nil {
		t.Errorf("output.report: false wrote a report")
	}
	out := filepath.Join(t.TempDir(), "plain")
	rep = sieve(t, "report", "demo", "--store", store, "-o", out)
	if rep.code != 0 {
		t.Fatalf("report demo: exit %d: %s", rep.code, rep.stderr)
	}
	page, _ := os.ReadFile(filepath.Join(out, "index.html"))
	if !strings.Contains(string(page), "Topics were not computed") || !strings.Contains(string(page), "fuzzy_dedup") {
		t.Errorf("report of a version without topics lacks its note or funnel")
	}

	// The topic mix of demo@v1 on demotopics@v1's topics.
	rep = sieve(t, "report", "demotopics@v1", "--store", store, "--compare", "demo@v1")
	cmpIndex := filepath.Join(vdir, "report", "compare-demo-v1", "index.html")
	if rep.code != 0 || !strings.Contains(rep.stdout, cmpIndex) {
		t.Fatalf("compare: exit %d, stdout %q, stderr %s", rep.code, rep.stdout, rep.stderr)
	}
	page, _ = os.ReadFile(cmpIndex)
	if !strings.Contains(string(page), "Topic mix: demotopics@v1 vs demo@v1") {
		t.Errorf("compare page lacks the comparison")
	}
	if b, _ := os.ReadFile(index); !bytes.Equal(b, written) {
		t.Errorf("--compare changed the version's own report")
	}

	// Bad references: one sieve: line, non-zero exit.
	oneSieveLine(t, "no such dataset", sieve(t, "report", "nosuch@v1", "--store", store))
	oneSieveLine(t, "no such version", sieve(t, "report", "demotopics@v9", "--store", store))
	oneSieveLine(t, "bad ref", sieve(t, "report", "demotopics@x", "--store", store))
	oneSieveLine(t, "compare without topics", sieve(t, "report", "demo@v1", "--store", store, "--compare", "demotopics@v1"))

	// In a browser.
	bin := browsercheck.Binary()
	if bin == "" {
		t.Skip("no Chromium binary found (apt-get install chromium, or set $CHROMIUM): the report page is not checked in a browser")
	}
	for _, c := range []struct {
		index  string
		labels []string
	}{{index, labels}, {cmpIndex, labels}, {filepath.Join(out, "index.html"), []string{"Topics were not computed"}}} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		r, err := browsercheck.Check(ctx, bin, c.index, 90*time.Second)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Console) > 0 || len(r.Failed) > 0 || r.Ready != "1" || r.Images < 2 || r.ImagesDecoded != r.Images {
			t.Errorf("%s: console %q, failed %q, ready %q, %d/%d images", c.index, r.Console, r.Failed, r.Ready, r.ImagesDecoded, r.Images)
		}
		for _, u := range r.Requests {
			if !strings.HasPrefix(u, "file:") && !strings.HasPrefix(u, "data:") {
				t.Errorf("%s asked the network for %s", c.index, u)
			}
		}
		for _, l := range c.labels {
			if !strings.Contains(r.Text, l) {
				t.Errorf("%s: label %q not shown", c.index, l)
			}
		}
		if c.index == index && r.SVGShapes < len(tr.Points) {
			t.Errorf("map: %d SVG shapes for %d points", r.SVGShapes, len(tr.Points))
		}
		if len(r.Screenshot) < 10000 {
			t.Errorf("%s: screenshot of %d bytes", c.index, len(r.Screenshot))
		}
	}
}
