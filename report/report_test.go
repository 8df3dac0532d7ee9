package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/topics"
)

// vocab are four planted topics' words.
var vocab = [][]string{
	strings.Fields("recipe chicken bake oven flour butter garlic onion simmer roast sauce pepper dough skillet marinade broth"),
	strings.Fields("galaxy telescope orbit planet nebula comet asteroid supernova gravity quasar eclipse lunar solar spectrum"),
	strings.Fields("python function compile variable pointer recursion array struct debugger syntax runtime lambda iterator"),
	strings.Fields("guitar melody chord rhythm tempo piano violin symphony orchestra lyrics harmony drum bass chorus"),
}

// hostile is in every assistant turn: the page must show it as text.
const hostile = `<script>alert("pwned")</script> & <b>bold</b>`

// testVersion writes a committed version by hand into dir: two real
// Parquet shards of 4×perTopic planted samples (every third with a
// quality score), a manifest with a funnel, and with withTopics a topic
// model fitted on them and its report, as the topics stage writes them;
// without topics every fourth sample has a judge score.
func testVersion(t *testing.T, dir string, perTopic int, withTopics bool, seed uint64) *datasets.Manifest {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	var ss []datasets.Sample
	for i := range 4 * perTopic {
		v := vocab[i%4]
		var w []string
		for range 8 {
			w = append(w, v[rng.IntN(len(v))])
		}
		msgs := []datasets.Message{
			{Role: datasets.RoleUser, Content: "Tell me about " + strings.Join(w, " ")},
			{Role: datasets.RoleAssistant, Content: fmt.Sprintf("Answer %d: %s %s", i, hostile, strings.Repeat("x", rng.IntN(300)))},
		}
		if i%5 == 0 {
			msgs = append([]datasets.Message{{Role: datasets.RoleSystem, Content: "Be brief."}}, msgs...)
		}
		s := datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs, Source: datasets.Source{Dataset: "planted", File: "/abs/planted.jsonl", Index: int64(i)}}
		if i%3 == 0 {
			q := float64(i%10) / 10
			s.Quality = &q
		}
		if !withTopics && i%4 == 0 {
			j := float64(1 + i%5)
			s.JudgeScore = &j
		}
		ss = append(ss, s)
	}
	ctx := context.Background()
	if withTopics {
		m, err := topics.Fit(ctx, ss, topics.Config{KMeans: topics.KMeansConfig{K: 4}, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		stats := make([]topics.TopicStats, m.K)
		var points []topics.Point
		for i := range ss {
			v := m.TFIDF.EmbedText(topics.FieldPrompt.Text(&ss[i]), nil)
			a, err := m.AssignVector(v)
			if err != nil {
				t.Fatal(err)
			}
			m.Annotate(&ss[i], a)
			stats[a.Topic].Add(ss[i].ID, float64(a.Distance), 5)
			points = append(points, m.NewPoint(ss[i].ID, v, a))
		}
		r, err := m.BuildReport(stats, points)
		if err != nil {
			t.Fatal(err)
		}
		var mb, rb bytes.Buffer
		if err := m.Save(&mb); err != nil {
			t.Fatal(err)
		}
		if err := r.WriteJSON(&rb); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, TopicsModelFile), mb.Bytes())
		writeFile(t, filepath.Join(dir, TopicsReportFile), rb.Bytes())
	}
	man := &datasets.Manifest{Format: datasets.ManifestFormat, Name: "planted", Version: "v3", ContentID: "c0ffee",
		CreatedAt: "2026-01-02T03:04:05Z", Runner: "direct"}
	half := len(ss) / 2
	split := datasets.Split{Name: "train"}
	for i, part := range [][]datasets.Sample{ss[:half], ss[half:]} {
		var buf bytes.Buffer
		w, err := datasets.NewShardWriter(&buf, datasets.ShardOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for j := range part {
			if err := w.Write(&part[j]); err != nil {
				t.Fatal(err)
			}
		}
		st, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		path := fmt.Sprintf("data/train-%05d-of-00002.parquet", i)
		writeFile(t, filepath.Join(dir, path), buf.Bytes())
		split.Shards = append(split.Shards, datasets.Shard{Path: path, Rows: st.Rows, Bytes: st.Bytes, SHA256: st.SHA256})
		split.Rows += st.Rows
		split.Bytes += st.Bytes
	}
	n := int64(len(ss))
	man.Splits = []datasets.Split{split}
	man.Totals = datasets.Totals{Rows: n, Bytes: split.Bytes, Shards: 2}
	man.Funnel = datasets.Funnel{Read: n + 17 + 5, DeadLettered: 5, DeadReasons: []datasets.Count{{Reason: "bad_json", Count: 5}},
		Stages: []datasets.StageFunnel{
			{Stage: "exact_dedup", In: n + 17, Out: n + 4, Dropped: []datasets.Count{{Reason: "exact_duplicate", Count: 13}}},
			{Stage: "fuzzy_dedup", In: n + 4, Out: n, Dropped: []datasets.Count{{Reason: "near_duplicate", Count: 4}}},
		}, Written: n}
	if err := man.Funnel.Check(); err != nil {
		t.Fatal(err)
	}
	data, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, datasets.ManifestFile), data)
	return man
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// inkedPixels counts the pixels of a PNG that are not the background
// (its top-left pixel's colour).
func inkedPixels(t *testing.T, data []byte) (n, total int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	b := img.Bounds()
	bg := img.At(b.Min.X, b.Min.Y)
	br, bgc, bb, ba := bg.RGBA()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			if r != br || g != bgc || bl != bb || a != ba {
				n++
			}
		}
	}
	return n, b.Dx() * b.Dy()
}

// colouredPixels counts pixels of a chart that are neither grey nor
// white: bars, points and lines (axes and text are black or grey).
func colouredPixels(img image.Image) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			hi, lo := max(r, g, bl), min(r, g, bl)
			if hi-lo > 0x2000 {
				n++
			}
		}
	}
	return n
}

func TestReportPage(t *testing.T) {
	dir := t.TempDir()
	man := testVersion(t, dir, 30, true, 1)
	w, err := Build(context.Background(), dir, "", "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if w.Index != filepath.Join(dir, "report", "index.html") {
		t.Errorf("index at %s", w.Index)
	}
	html, err := os.ReadFile(w.Index)
	if err != nil {
		t.Fatal(err)
	}
	page := string(html)
	tr, err := ReadTopics(context.Background(), dir)
	if err != nil || tr == nil {
		t.Fatalf("topics report: %v", err)
	}
	// Every topic label, and the funnel's numbers from the manifest.
	for _, tp := range tr.Topics {
		if !strings.Contains(page, escape(tp.Label)) {
			t.Errorf("page lacks topic label %q", tp.Label)
		}
	}
	for _, want := range []string{"planted@v3", "exact_dedup", "exact_duplicate 13", "near_duplicate 4",
		fmt.Sprintf(">%d<", man.Funnel.Read), fmt.Sprintf(">%d<", man.Funnel.Stages[0].In), fmt.Sprintf(">%d<", man.Funnel.Written),
		"dead letters 5", `id="map"`, "<circle", "data:image/png;base64,", "quality_score: 40 of 120 rows"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Sample text is escaped: the hostile text is shown, never run.
	if strings.Contains(page, hostile) || strings.Contains(page, `<script>alert`) {
		t.Errorf("sample text is not escaped")
	}
	if !strings.Contains(page, `&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;`) {
		t.Errorf("escaped sample text missing")
	}
	// Nothing that differs between runs or machines: no time, runner or path.
	for _, bad := range []string{man.CreatedAt, "direct", dir, "/abs/"} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds %q", bad)
		}
	}
	if strings.Contains(page, "ZgotmplZ") {
		t.Errorf("template refused a value (ZgotmplZ)")
	}
	// PNGs decode and are not blank.
	want := []string{"map.png", "topics.png", "funnel.png", "lengths.png", "quality.png"}
	for _, f := range want {
		data, err := os.ReadFile(filepath.Join(dir, "report", f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		n, total := inkedPixels(t, data)
		img, _ := png.Decode(bytes.NewReader(data))
		c := colouredPixels(img)
		t.Logf("%s: %d×%d, %d of %d pixels drawn, %d coloured", f, img.Bounds().Dx(), img.Bounds().Dy(), n, total, c)
		if n < total/100 || c < 200 {
			t.Errorf("%s looks blank: %d of %d pixels drawn, %d coloured", f, n, total, c)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "report", "judge.png")); err == nil {
		t.Errorf("judge.png written for a version without judge scores")
	}
	// Deterministic: a second build writes the same bytes.
	again := t.TempDir()
	w2, err := Build(context.Background(), dir, "", again, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range w.Files {
		a, _ := os.ReadFile(f)
		b, _ := os.ReadFile(w2.Files[i])
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds", filepath.Base(f))
		}
	}
}

func escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestReportWithoutTopics(t *testing.T) {
	dir := t.TempDir()
	man := testVersion(t, dir, 10, false, 2)
	w, err := Build(context.Background(), dir, "", "", Options{Rows: 7})
	if err != nil {
		t.Fatal(err)
	}
	html, _ := os.ReadFile(w.Index)
	page := string(html)
	for _, want := range []string{"Topics were not computed", "fuzzy_dedup", fmt.Sprintf(">%d<", man.Funnel.Written), "lengths-table", "assistant"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, `id="map"`) {
		t.Errorf("a map without topics")
	}
	if !strings.Contains(page, "judge_score: 10 of 40 rows judged, mean 3") || !strings.Contains(page, `id="chart-judge"`) {
		t.Errorf("judge scores missing from the page")
	}
	if data, err := os.ReadFile(filepath.Join(dir, "report", "judge.png")); err != nil {
		t.Error(err)
	} else if n, total := inkedPixels(t, data); n < total/100 {
		t.Errorf("judge.png looks blank: %d of %d pixels drawn", n, total)
	}
	for _, f := range []string{"map.png", "topics.png"} {
		if _, err := os.Stat(filepath.Join(dir, "report", f)); err == nil {
			t.Errorf("%s written without topics", f)
		}
	}
	// The row sample is bounded; counts are over every row.
	d, err := Collect(context.Background(), dir, Options{Rows: 7})
	if err != nil {
		t.Fatal(err)
	}
	if d.Rows != 40 || len(d.Lengths[2].Sample) != 7 || d.Lengths[2].Count != 40 || d.Lengths[0].Count != 8 {
		t.Errorf("rows %d, assistant sample %d count %d, system count %d", d.Rows, len(d.Lengths[2].Sample), d.Lengths[2].Count, d.Lengths[0].Count)
	}
}

func TestCompare(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	testVersion(t, a, 30, true, 1)
	// b: the same four topics, without the third planted topic (python).
	testVersion(t, b, 20, false, 5)
	d, err := Collect(context.Background(), a, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compare(context.Background(), d, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if c.OtherTotal != 80 || c.BaseTotal != 120 || len(c.Rows) != 4 {
		t.Fatalf("comparison %+v", c)
	}
	var sum int64
	for _, r := range c.Rows {
		sum += r.OtherSize
		// Planted evenly: each topic about a quarter in both.
		if r.OtherShare < 0.15 || r.OtherShare > 0.35 {
			t.Errorf("topic %d %q: other share %.2f", r.Topic, r.Label, r.OtherShare)
		}
	}
	if sum != 80 {
		t.Errorf("assigned %d of 80", sum)
	}
	w, err := Write(context.Background(), d, filepath.Join(t.TempDir(), "cmp"))
	if err != nil {
		t.Fatal(err)
	}
	html, _ := os.ReadFile(w.Index)
	if !strings.Contains(string(html), "Topic mix: planted@v3 vs planted@v3") || !strings.Contains(string(html), "compare-table") {
		t.Errorf("comparison missing from the page")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(w.Index), "compare.png")); err != nil {
		t.Error(err)
	}
	// A base without topics cannot be compared on.
	d2, _ := Collect(context.Background(), b, Options{})
	if _, err := Compare(context.Background(), d2, b, a); err == nil || !strings.Contains(err.Error(), "no topics") {
		t.Errorf("compare on a version without topics: %v", err)
	}
}
