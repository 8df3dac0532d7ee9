package report

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sieve-data/sieve/internal/browsercheck"
)

// chromium returns the Chromium binary, skipping the test without one.
func chromium(t *testing.T) string {
	t.Helper()
	bin := browsercheck.Binary()
	if bin == "" {
		t.Skip("no Chromium binary found (chromium, chromium-browser, google-chrome or $CHROMIUM): the report page is not checked in a browser; apt-get install chromium")
	}
	return bin
}

// CheckPage loads a report page in headless Chromium and checks what a
// reader sees: no console errors or failed loads, only file: and data:
// URLs asked for (it opens without network), the script ran, every chart
// decoded, the map drawn, the labels shown, a screenshot that is not
// blank. It returns the page's text.
func checkPage(t *testing.T, bin, index string, labels []string, minShapes int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := browsercheck.Check(ctx, bin, index, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Console) > 0 {
		t.Errorf("console errors: %q", r.Console)
	}
	if len(r.Failed) > 0 {
		t.Errorf("failed loads: %q", r.Failed)
	}
	for _, u := range r.Requests {
		if !strings.HasPrefix(u, "file:") && !strings.HasPrefix(u, "data:") {
			t.Errorf("the page asked the network for %s", u)
		}
	}
	if r.Ready != "1" {
		t.Errorf("the page's script did not run (data-ready %q)", r.Ready)
	}
	if r.Images < 3 || r.ImagesDecoded != r.Images {
		t.Errorf("%d of %d chart images decoded", r.ImagesDecoded, r.Images)
	}
	if r.SVGShapes < minShapes {
		t.Errorf("%d SVG shapes drawn, want at least %d", r.SVGShapes, minShapes)
	}
	for _, l := range labels {
		if !strings.Contains(r.Text, l) {
			t.Errorf("label %q not shown", l)
		}
	}
	img, err := png.Decode(bytes.NewReader(r.Screenshot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	n, total := inkedPixels(t, r.Screenshot)
	c := colouredPixels(img)
	t.Logf("%s: %d console errors, %d requests, %d/%d images, %d SVG shapes; screenshot %d×%d, %d of %d pixels drawn, %d coloured",
		filepath.Base(filepath.Dir(index)), len(r.Console), len(r.Requests), r.ImagesDecoded, r.Images, r.SVGShapes,
		img.Bounds().Dx(), img.Bounds().Dy(), n, total, c)
	if n < total/50 || c < 5000 {
		t.Errorf("screenshot looks blank: %d of %d pixels drawn, %d coloured", n, total, c)
	}
	if dir := os.Getenv("SIEVE_REPORT_SHOTS"); dir != "" {
		os.WriteFile(filepath.Join(dir, filepath.Base(filepath.Dir(filepath.Dir(index)))+".png"), r.Screenshot, 0o644)
	}
	return r.Text
}

func TestReportInChromium(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	testVersion(t, dir, 30, true, 1)
	index := filepath.Join(dir, Dir, IndexFile)
	// Before the report is written there is nothing to load.
	if _, err := browsercheck.Check(context.Background(), bin, index, 30*time.Second); err == nil {
		t.Fatalf("a version without its report loaded")
	}
	if _, err := Build(context.Background(), dir, "", "", Options{}); err != nil {
		t.Fatal(err)
	}
	tr, err := ReadTopics(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, tp := range tr.Topics {
		labels = append(labels, tp.Label)
	}
	text := checkPage(t, bin, index, labels, len(tr.Points))
	if !strings.Contains(text, hostile) {
		t.Errorf("the escaped sample text is not shown as text")
	}

	// Without topics: funnel, lengths and the note.
	plain := t.TempDir()
	testVersion(t, plain, 10, false, 2)
	if _, err := Build(context.Background(), plain, "", "", Options{}); err != nil {
		t.Fatal(err)
	}
	text = checkPage(t, bin, filepath.Join(plain, Dir, IndexFile), []string{"Topics were not computed", "fuzzy_dedup"}, 0)
	if strings.Contains(text, "Map as PNG") {
		t.Errorf("a map without topics")
	}
}

// TestBrowserCheckSeesErrors: the check is not blind to a broken page.
func TestBrowserCheckSeesErrors(t *testing.T) {
	bin := chromium(t)
	page := filepath.Join(t.TempDir(), "broken.html")
	os.WriteFile(page, []byte(`<!DOCTYPE html><html><body><p>broken</p><img src="missing.png"><script>notDefined();</script></body></html>`), 0o644)
	r, err := browsercheck.Check(context.Background(), bin, page, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(r.Console, "\n")
	if !strings.Contains(joined, "notDefined") {
		t.Errorf("the exception was not seen: %q", r.Console)
	}
	if r.ImagesDecoded != 0 || r.Images != 1 || len(r.Failed) == 0 {
		t.Errorf("the missing image was not seen: %d/%d decoded, failed %q", r.ImagesDecoded, r.Images, r.Failed)
	}
}
