package report

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/topics"
)

// Files of a version the report reads, relative to the version directory
// (the same paths as transforms.TopicsModelFile and TopicsReportFile).
const (
	TopicsReportFile = "topics/report.json"
	TopicsModelFile  = "topics/model.json"
	// Dir is the directory of a version that holds its report.
	Dir = "report"
	// IndexFile is the page's name inside the report directory.
	IndexFile = "index.html"
)

// Options bound what a report keeps in memory.
type Options struct {
	// Rows is how many rows the length and score distributions are drawn
	// from (those of smallest hash of id and source); 0 means 20000.
	Rows int
	// Examples is how many example samples each topic shows; 0 means 3.
	Examples int
	// MaxChars clips each shown message to this many characters; 0 means
	// 400.
	MaxChars int
}

func (o Options) withDefaults() Options {
	if o.Rows <= 0 {
		o.Rows = 20000
	}
	if o.Examples <= 0 {
		o.Examples = 3
	}
	if o.MaxChars <= 0 {
		o.MaxChars = 400
	}
	return o
}

// Roles are the roles whose lengths are shown, in order.
var Roles = []string{datasets.RoleSystem, datasets.RoleUser, datasets.RoleAssistant}

// Data is everything a report page shows, gathered from one version.
type Data struct {
	// Ref is NAME@vN.
	Ref       string
	ContentID string
	Manifest  *datasets.Manifest
	// Topics is the version's topics report, nil when the version has
	// none (no topics stage).
	Topics *topics.Report
	// Rows is the number of rows read from the shards.
	Rows int64
	// Lengths has one entry per role of Roles: characters of that role's
	// turns in a sample (samples without the role are not counted).
	Lengths []RoleLengths
	// Quality and Judge are the quality_score and judge_score columns.
	Quality, Judge Scores
	// Examples are the example samples, one group per topic (topic order)
	// or a single group (Topic −1) without topics.
	Examples []ExampleGroup
	// Compare is a second version's topic mix, when asked for.
	Compare *Comparison
}

// RoleLengths is the length distribution of one role's turns.
type RoleLengths struct {
	Role string
	// Count, Sum and Max are over every row holding the role.
	Count, Sum, Max int64
	// Sample holds the lengths of the rows in the bounded row sample,
	// ascending.
	Sample []float64
}

// Mean is the mean length over every row holding the role.
func (r RoleLengths) Mean() float64 {
	if r.Count == 0 {
		return 0
	}
	return float64(r.Sum) / float64(r.Count)
}

// Quantile of the sampled lengths (q in [0, 1]).
func (r RoleLengths) Quantile(q float64) float64 { return quantile(r.Sample, q) }

// Scores is the distribution of one score column.
type Scores struct {
	Column string
	// Present counts the rows with a value, of every row read.
	Present int64
	// Sum is the sum of every present value.
	Sum float64
	// Sample holds the values of the rows in the bounded row sample,
	// ascending.
	Sample []float64
}

// Mean over every present value.
func (s Scores) Mean() float64 {
	if s.Present == 0 {
		return 0
	}
	return s.Sum / float64(s.Present)
}

// Quantile of the sampled values.
func (s Scores) Quantile(q float64) float64 { return quantile(s.Sample, q) }

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	i := int(q * float64(len(v)-1))
	return v[i]
}

// ExampleGroup is the examples shown for one topic.
type ExampleGroup struct {
	Topic   int // −1: no topics
	Label   string
	Samples []Example
}

// Example is one sample as shown: its messages clipped.
type Example struct {
	ID string
	// Source is "dataset file#index" (the file's base name).
	Source   string
	Messages []datasets.Message
}

// ReadVersion reads a committed version's manifest: dir is a version
// directory (local or remote).
func ReadVersion(ctx context.Context, dir string) (*datasets.Manifest, error) {
	data, err := datasets.ReadFile(ctx, join(dir, datasets.ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("report: %s has no %s: not a committed version", dir, datasets.ManifestFile)
	}
	var m datasets.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("report: %s: bad manifest: %w", dir, err)
	}
	return &m, nil
}

// ReadTopics reads a version's topics report; nil, nil when it has none.
func ReadTopics(ctx context.Context, dir string) (*topics.Report, error) {
	data, err := datasets.ReadFile(ctx, join(dir, TopicsReportFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, os.ErrNotExist) || notFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("report: %w", err)
	}
	var r topics.Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("report: %s: %w", join(dir, TopicsReportFile), err)
	}
	return &r, nil
}

// notFound recognises a remote file system's "no such object".
func notFound(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "not exist") || strings.Contains(s, "not found")
}

// Collect reads a committed version (dir: its directory) into the data
// of its report, streaming its shards.
func Collect(ctx context.Context, dir string, opt Options) (*Data, error) {
	opt = opt.withDefaults()
	m, err := ReadVersion(ctx, dir)
	if err != nil {
		return nil, err
	}
	tr, err := ReadTopics(ctx, dir)
	if err != nil {
		return nil, err
	}
	d := &Data{Ref: m.Name + "@" + m.Version, ContentID: m.ContentID, Manifest: m, Topics: tr,
		Quality: Scores{Column: "quality_score"}, Judge: Scores{Column: "judge_score"}}

	// Shards are read on up to GOMAXPROCS goroutines, each into a part
	// of its own; the parts are merged in manifest order, so the report
	// is the same whatever the parallelism (the bounded samples keep the
	// rows of smallest hash, which no order changes, and the sums add up
	// shard by shard).
	var files []string
	for _, sp := range m.Splits {
		for _, sh := range sp.Shards {
			files = append(files, join(dir, sh.Path))
		}
	}
	parts := make([]*part, len(files))
	errs := make([]error, len(files))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				p := newPart(tr, opt)
				if errs[i] = eachInShard(ctx, files[i], p.add); errs[i] == nil {
					parts[i] = p
				}
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	all := newPart(tr, opt)
	for _, p := range parts {
		all.merge(p)
	}
	rows, lengths := &all.rows, all.lengths
	d.Rows = all.n
	d.Quality.Present, d.Quality.Sum = all.quality.Present, all.quality.Sum
	d.Judge.Present, d.Judge.Sum = all.judge.Present, all.judge.Sum
	ex := all.ex
	for _, r := range rows.rows {
		for i := range Roles {
			if r.len[i] >= 0 {
				lengths[i].Sample = append(lengths[i].Sample, float64(r.len[i]))
			}
		}
		if r.quality != nil {
			d.Quality.Sample = append(d.Quality.Sample, *r.quality)
		}
		if r.judge != nil {
			d.Judge.Sample = append(d.Judge.Sample, *r.judge)
		}
	}
	for i := range lengths {
		slices.Sort(lengths[i].Sample)
	}
	slices.Sort(d.Quality.Sample)
	slices.Sort(d.Judge.Sample)
	d.Lengths = lengths
	d.Examples = ex.groups()
	return d, nil
}

// part is what Collect gathers from some of the shards.
type part struct {
	opt            Options
	n              int64
	lengths        []RoleLengths // Count, Sum and Max
	quality, judge Scores        // Present and Sum
	rows           rowHeap
	ex             *examples
}

func newPart(tr *topics.Report, opt Options) *part {
	p := &part{opt: opt, ex: newExamples(tr, opt), lengths: make([]RoleLengths, len(Roles))}
	for i, r := range Roles {
		p.lengths[i].Role = r
	}
	return p
}

func (p *part) add(s *datasets.Sample) error {
	p.n++
	var per [3]int64
	var has [3]bool
	for _, msg := range s.Messages {
		if i := slices.Index(Roles, msg.Role); i >= 0 {
			per[i] += int64(utf8.RuneCountInString(msg.Content))
			has[i] = true
		}
	}
	for i := range Roles {
		if has[i] {
			l := &p.lengths[i]
			l.Count++
			l.Sum += per[i]
			l.Max = max(l.Max, per[i])
		}
	}
	if s.Quality != nil {
		p.quality.Present++
		p.quality.Sum += *s.Quality
	}
	if s.JudgeScore != nil {
		p.judge.Present++
		p.judge.Sum += *s.JudgeScore
	}
	key := rowKey(s)
	h := hash64(key)
	r := row{hash: h, key: key, quality: s.Quality, judge: s.JudgeScore}
	for i := range Roles {
		r.len[i] = -1
		if has[i] {
			r.len[i] = per[i]
		}
	}
	p.rows.offer(r, p.opt.Rows)
	p.ex.offer(s, h, key)
	return nil
}

// merge adds o's rows to p's.
func (p *part) merge(o *part) {
	p.n += o.n
	for i := range p.lengths {
		l, ol := &p.lengths[i], o.lengths[i]
		l.Count += ol.Count
		l.Sum += ol.Sum
		l.Max = max(l.Max, ol.Max)
	}
	p.quality.Present += o.quality.Present
	p.quality.Sum += o.quality.Sum
	p.judge.Present += o.judge.Present
	p.judge.Sum += o.judge.Sum
	for _, r := range o.rows.rows {
		p.rows.offer(r, p.opt.Rows)
	}
	p.ex.merge(o.ex)
}

// eachSample streams every sample of every split's shards, in manifest
// order, one shard in memory at a time.
func eachSample(ctx context.Context, dir string, m *datasets.Manifest, fn func(*datasets.Sample) error) error {
	for _, sp := range m.Splits {
		for _, sh := range sp.Shards {
			if err := eachInShard(ctx, join(dir, sh.Path), fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func eachInShard(ctx context.Context, file string, fn func(*datasets.Sample) error) error {
	var r io.ReaderAt
	var size int64
	if fs, err := datasets.FSFor(file); err == nil && fs == (datasets.LocalFS{}) {
		// A local shard is read where it lies, page by page: a
		// gigabyte shard need not be in memory.
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		r, size = f, st.Size()
	} else {
		data, err := datasets.ReadFile(ctx, file)
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		r, size = bytes.NewReader(data), int64(len(data))
	}
	sr, err := datasets.OpenShard(r, size)
	if err != nil {
		return fmt.Errorf("report: %s: %w", file, err)
	}
	defer sr.Close()
	for {
		s, err := sr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("report: %s: %w", file, err)
		}
		if err := fn(&s); err != nil {
			return err
		}
	}
}

// rowKey identifies a row: its id and source (two rows may share an id).
func rowKey(s *datasets.Sample) string {
	return s.ID + "\x00" + s.Source.Dataset + "\x00" + s.Source.File + "\x00" + strconv.FormatInt(s.Source.Index, 10)
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// row is what the bounded row sample keeps of a row.
type row struct {
	hash           uint64
	key            string
	len            [3]int64 // −1: role absent
	quality, judge *float64
}

// before orders rows by hash, then key: the sample keeps the smallest.
func before(a, b *row) bool {
	if a.hash != b.hash {
		return a.hash < b.hash
	}
	return a.key < b.key
}

// rowHeap is a max-heap of the smallest rows seen.
type rowHeap struct{ rows []row }

func (h *rowHeap) Len() int           { return len(h.rows) }
func (h *rowHeap) Less(i, j int) bool { return before(&h.rows[j], &h.rows[i]) }
func (h *rowHeap) Swap(i, j int)      { h.rows[i], h.rows[j] = h.rows[j], h.rows[i] }
func (h *rowHeap) Push(x any)         { h.rows = append(h.rows, x.(row)) }
func (h *rowHeap) Pop() any {
	r := h.rows[len(h.rows)-1]
	h.rows = h.rows[:len(h.rows)-1]
	return r
}

func (h *rowHeap) offer(r row, k int) {
	if len(h.rows) < k {
		heap.Push(h, r)
		return
	}
	if before(&r, &h.rows[0]) {
		h.rows[0] = r
		heap.Fix(h, 0)
	}
}

// examples picks the examples of each topic: its representatives (from
// the topics report) first, then the rows of smallest hash.
type examples struct {
	opt    Options
	tr     *topics.Report
	reps   map[string]int // representative id → its rank in its topic
	byRep  map[string]Example
	lowest map[int][]exampleRow // topic → up to Examples rows of smallest hash
}

type exampleRow struct {
	hash uint64
	key  string
	ex   Example
}

func newExamples(tr *topics.Report, opt Options) *examples {
	e := &examples{opt: opt, tr: tr, reps: map[string]int{}, byRep: map[string]Example{}, lowest: map[int][]exampleRow{}}
	if tr != nil {
		for _, t := range tr.Topics {
			for i, id := range t.Representatives {
				if i < opt.Examples {
					e.reps[id] = i
				}
			}
		}
	}
	return e
}

func (e *examples) topicOf(s *datasets.Sample) int {
	if e.tr == nil || s.TopicID == nil {
		return -1
	}
	return int(*s.TopicID)
}

func (e *examples) offer(s *datasets.Sample, h uint64, key string) {
	t := e.topicOf(s)
	if _, ok := e.reps[s.ID]; ok {
		if old, seen := e.byRep[s.ID]; !seen || key < old.Source {
			e.byRep[s.ID] = e.example(s, key)
		}
	}
	if e.wants(t, h, key) {
		e.insert(t, exampleRow{hash: h, key: key, ex: e.example(s, key)})
	}
}

// wants reports whether a row of topic t with hash h and key would be
// among the topic's rows of smallest hash.
func (e *examples) wants(t int, h uint64, key string) bool {
	n := e.keep(t)
	l := e.lowest[t]
	return len(l) < n || h < l[n-1].hash || h == l[n-1].hash && key < l[n-1].key
}

// keep is how many rows of smallest hash topic t keeps.
func (e *examples) keep(t int) int {
	if t < 0 {
		return 2 * e.opt.Examples
	}
	return e.opt.Examples
}

// insert puts r among topic t's rows of smallest hash (wants said so).
func (e *examples) insert(t int, r exampleRow) {
	l := e.lowest[t]
	i, found := slices.BinarySearchFunc(l, r, func(a, b exampleRow) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	})
	if found {
		return // the same row, from another part
	}
	l = slices.Insert(l, i, r)
	if n := e.keep(t); len(l) > n {
		l = l[:n]
	}
	e.lowest[t] = l
}

// merge adds o's examples to e's: the same choice as offering e every
// row o was offered.
func (e *examples) merge(o *examples) {
	for id, ex := range o.byRep {
		if old, seen := e.byRep[id]; !seen || ex.Source < old.Source {
			e.byRep[id] = ex
		}
	}
	for t, l := range o.lowest {
		for _, r := range l {
			if e.wants(t, r.hash, r.key) {
				e.insert(t, r)
			}
		}
	}
}

func (e *examples) example(s *datasets.Sample, key string) Example {
	ex := Example{ID: s.ID, Source: key}
	for i, msg := range s.Messages {
		if i == 6 {
			ex.Messages = append(ex.Messages, datasets.Message{Role: "…", Content: fmt.Sprintf("%d more turns", len(s.Messages)-i)})
			break
		}
		ex.Messages = append(ex.Messages, datasets.Message{Role: msg.Role, Content: clip(msg.Content, e.opt.MaxChars)})
	}
	return ex
}

// sourceOf turns a row key back into "dataset file#index".
func sourceOf(key string) string {
	p := strings.Split(key, "\x00")
	if len(p) != 4 {
		return ""
	}
	file := p[2]
	if i := strings.LastIndexAny(file, "/\\"); i >= 0 {
		file = file[i+1:]
	}
	return p[1] + " " + file + "#" + p[3]
}

func (e *examples) groups() []ExampleGroup {
	fix := func(ex Example) Example { ex.Source = sourceOf(ex.Source); return ex }
	if e.tr == nil {
		g := ExampleGroup{Topic: -1}
		for _, r := range e.lowest[-1] {
			g.Samples = append(g.Samples, fix(r.ex))
		}
		return []ExampleGroup{g}
	}
	var out []ExampleGroup
	for _, t := range e.tr.Topics {
		g := ExampleGroup{Topic: t.ID, Label: displayName(t)}
		seen := map[string]bool{}
		for i, id := range t.Representatives {
			if i >= e.opt.Examples {
				break
			}
			if ex, ok := e.byRep[id]; ok {
				g.Samples = append(g.Samples, fix(ex))
				seen[id] = true
			}
		}
		for _, r := range e.lowest[t.ID] {
			if len(g.Samples) >= e.opt.Examples {
				break
			}
			if !seen[r.ex.ID] {
				g.Samples = append(g.Samples, fix(r.ex))
				seen[r.ex.ID] = true
			}
		}
		out = append(out, g)
	}
	return out
}

func displayName(t topics.TopicReport) string {
	if t.Name != "" {
		return t.Name
	}
	return t.Label
}

// clip shortens s to n characters (runes), marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

// join joins a directory and a relative path, local or remote.
func join(dir, rel string) string {
	if strings.Contains(dir, "://") {
		return strings.TrimSuffix(dir, "/") + "/" + rel
	}
	return strings.TrimSuffix(dir, string(os.PathSeparator)) + string(os.PathSeparator) + rel
}
