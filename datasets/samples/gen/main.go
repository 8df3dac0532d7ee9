// Command gen regenerates sieve's bundled sample dataset in
// datasets/samples: one small instruction dataset written by the sieve
// authors, spread over every input format sieve reads (alpaca JSONL,
// sharegpt JSON array, gzip-compressed OpenAI messages JSONL,
// zstd-compressed dolly JSONL, TRL prompt/completion Parquet and JSONL,
// plain text JSONL), with planted exact duplicates, near duplicates and
// malformed records that datasets/samples/README.md documents.
//
// Usage, from anywhere inside the module:
//
//	go run ./datasets/samples/gen            # rewrite the files
//	go run ./datasets/samples/gen -readme    # also print the defect tables
//
// It also rewrites the generated section of datasets/samples/README.md
// (between its BEGIN/END GENERATED markers): the funnel counts and the
// list of every planted defect.
//
// The output is byte-identical from run to run: records are encoded with
// fixed field order, the gzip header carries no name and no time stamp,
// the zstd frame is made by a single-threaded encoder and the Parquet file
// carries a fixed created_by.
//
// The records themselves live in authored/*.txt, one file per output file,
// in a small line-based markup:
//
//	%%% id=LABEL [near=FILE/LABEL] [cat=CATEGORY] [tags=USER,ASSISTANT] [bad=KIND]
//	@@system
//	text…
//	@@user
//	text…
//	@@input
//	text…
//	@@assistant
//	text…
//
// A line starting with %%% opens a record; a line that is exactly @@NAME
// opens one of its sections (system, user, input, context, assistant,
// text, raw, or any other name, written out as an unknown role). Section
// text is trimmed of surrounding blank space. Lines before the first
// record are comments. A record "%%% dup=FILE/LABEL v=VARIANT" is no text
// of its own but a copy of the labelled record, re-encoded in the
// target file's format, with VARIANT one of verbatim, lower, lower-user,
// ws, ws-lower-user. A record with bad=KIND is written as it stands and
// counted as malformed; in bad=utf8 records the token {{latin1-e9}} turns
// into the single byte 0xE9 (Latin-1 "é", invalid UTF-8).
//
// Before writing, the generator checks its own plan: every valid record
// passes sieve's Sample invariants, the only groups of records sharing
// sieve's exact-dedup key (lowercased, whitespace-collapsed content
// joined with roles) are exactly the planted duplicate clusters, and
// every near duplicate differs from its original by a few words.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"

	"github.com/sieve-data/sieve/datasets"
)

//go:embed authored/*.txt
var authored embed.FS

// outFile describes one generated file.
type outFile struct {
	key    string // authored/<key>.txt and the FILE part of references
	name   string // file name under datasets/samples
	format string // alpaca, sharegpt, openai, dolly, pc, pcconv, text
	// lineBased is true for JSONL files, where the index is line-1.
	lineBased bool
}

var files = []outFile{
	{"alpaca", "alpaca.jsonl", "alpaca", true},
	{"sharegpt", "sharegpt.json", "sharegpt", false},
	{"openai", "openai_messages.jsonl.gz", "openai", true},
	{"dolly", "dolly.jsonl.zst", "dolly", true},
	{"pc", "prompt_completion.parquet", "pc", false},
	{"pcconv", "prompt_completion_conv.jsonl", "pcconv", true},
	{"text", "text.jsonl", "text", true},
}

type section struct {
	name string
	text string
}

type record struct {
	file    *outFile
	index   int // zero-based position in its output file
	line    int // authored line, for error messages
	attrs   map[string]string
	secs    []section
	encoded []byte // the record as written (a JSON value, one line)

	// Filled by analysis.
	msgs    []datasets.Message
	key     string
	id      string
	srcRef  *record // dup=: the record copied
	nearRef *record // near=: the record edited
}

func (r *record) ref() string {
	if l := r.attrs["id"]; l != "" {
		return r.file.key + "/" + l
	}
	return fmt.Sprintf("%s[%d]", r.file.key, r.index)
}

func (r *record) where() string {
	if r.file.lineBased {
		return fmt.Sprintf("index %d (line %d)", r.index, r.index+1)
	}
	return fmt.Sprintf("index %d", r.index)
}

func (r *record) sec(name string) (string, bool) {
	for _, s := range r.secs {
		if s.name == name {
			return s.text, true
		}
	}
	return "", false
}

func main() {
	out := flag.String("out", "", "output folder (default: datasets/samples of the enclosing module)")
	readme := flag.Bool("readme", false, "print the README defect tables to stdout")
	flag.Parse()
	if err := run(*out, *readme); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(out string, readme bool) error {
	if out == "" {
		root, err := moduleRoot()
		if err != nil {
			return err
		}
		out = filepath.Join(root, "datasets", "samples")
	}
	byFile := map[string][]*record{}
	labels := map[string]*record{}
	for i := range files {
		f := &files[i]
		src, err := authored.ReadFile("authored/" + f.key + ".txt")
		if err != nil {
			return err
		}
		recs, err := parse(f, string(src))
		if err != nil {
			return fmt.Errorf("authored/%s.txt: %w", f.key, err)
		}
		for _, r := range recs {
			if l := r.attrs["id"]; l != "" {
				if labels[r.ref()] != nil {
					return fmt.Errorf("authored/%s.txt:%d: duplicate id %q", f.key, r.line, l)
				}
				labels[r.ref()] = r
			}
		}
		byFile[f.key] = recs
	}
	// Resolve references and materialise copies.
	for _, f := range files {
		for _, r := range byFile[f.key] {
			if ref := r.attrs["dup"]; ref != "" {
				src := labels[ref]
				if src == nil {
					return fmt.Errorf("authored/%s.txt:%d: unknown dup=%s", f.key, r.line, ref)
				}
				if src.attrs["dup"] != "" || src.attrs["bad"] != "" {
					return fmt.Errorf("authored/%s.txt:%d: dup of a copy or a bad record", f.key, r.line)
				}
				v := r.attrs["v"]
				secs, err := variant(src.secs, v)
				if err != nil {
					return fmt.Errorf("authored/%s.txt:%d: %w", f.key, r.line, err)
				}
				r.secs = secs
				r.srcRef = src
				for _, k := range []string{"cat", "tags"} {
					if r.attrs[k] == "" && src.attrs[k] != "" && src.file == r.file {
						r.attrs[k] = src.attrs[k]
					}
				}
			}
			if ref := r.attrs["near"]; ref != "" {
				if r.nearRef = labels[ref]; r.nearRef == nil {
					return fmt.Errorf("authored/%s.txt:%d: unknown near=%s", f.key, r.line, ref)
				}
			}
		}
	}
	// Encode, compute messages and keys.
	for _, f := range files {
		for _, r := range byFile[f.key] {
			enc, err := encode(r)
			if err != nil {
				return fmt.Errorf("authored/%s.txt:%d: %w", f.key, r.line, err)
			}
			r.encoded = enc
			if r.attrs["bad"] != "" {
				if err := checkBad(r); err != nil {
					return fmt.Errorf("authored/%s.txt:%d: %w", f.key, r.line, err)
				}
				continue
			}
			r.msgs = messages(r)
			s := datasets.Sample{Messages: r.msgs, ID: datasets.ContentID(r.msgs)}
			if err := s.Validate(); err != nil {
				return fmt.Errorf("authored/%s.txt:%d: invalid record: %w", f.key, r.line, err)
			}
			r.id = s.ID
			r.key = dedupKey(r.msgs)
		}
	}
	a, err := analyse(byFile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if err := write(out, &f, byFile[f.key]); err != nil {
			return err
		}
	}
	a.summary(os.Stderr)
	var tables bytes.Buffer
	a.markdown(&tables)
	if readme {
		os.Stdout.Write(tables.Bytes())
	}
	return updateReadme(filepath.Join(out, "README.md"), tables.Bytes())
}

// Markers around the generated part of README.md.
const (
	beginMark = "<!-- BEGIN GENERATED by datasets/samples/gen: do not edit -->\n"
	endMark   = "<!-- END GENERATED -->\n"
)

// updateReadme replaces the generated section of README.md, if the file
// and its markers exist.
func updateReadme(path string, tables []byte) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	i := bytes.Index(b, []byte(beginMark))
	j := bytes.Index(b, []byte(endMark))
	if i < 0 || j < i {
		return fmt.Errorf("%s: generated-section markers missing", path)
	}
	var nb bytes.Buffer
	nb.Write(b[:i+len(beginMark)])
	nb.WriteByte('\n')
	nb.Write(tables)
	nb.WriteByte('\n')
	nb.Write(b[j:])
	if bytes.Equal(nb.Bytes(), b) {
		return nil
	}
	return os.WriteFile(path, nb.Bytes(), 0o644)
}

// moduleRoot walks up from the working directory to the folder holding
// sieve's go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/sieve-data/sieve\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the sieve module; pass -out")
		}
		dir = parent
	}
}

// parse reads the markup of one authored file.
func parse(f *outFile, src string) ([]*record, error) {
	var recs []*record
	var cur *record
	var secName string
	var buf []string
	flush := func() {
		if cur != nil && secName != "" {
			cur.secs = append(cur.secs, section{secName, strings.TrimSpace(strings.Join(buf, "\n"))})
		}
		secName, buf = "", nil
	}
	for n, line := range strings.Split(src, "\n") {
		switch {
		case strings.HasPrefix(line, "%%%"):
			flush()
			cur = &record{file: f, index: len(recs), line: n + 1, attrs: map[string]string{}}
			for _, kv := range strings.Fields(line[3:]) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return nil, fmt.Errorf("line %d: bad attribute %q", n+1, kv)
				}
				cur.attrs[k] = v
			}
			recs = append(recs, cur)
		case strings.HasPrefix(line, "@@") && len(line) > 2 && !strings.ContainsAny(line, " \t"):
			if cur == nil {
				return nil, fmt.Errorf("line %d: section outside a record", n+1)
			}
			flush()
			secName = line[2:]
		default:
			if cur == nil {
				continue // header comment
			}
			if secName == "" {
				if strings.TrimSpace(line) != "" {
					return nil, fmt.Errorf("line %d: text outside a section", n+1)
				}
				continue
			}
			buf = append(buf, strings.TrimRight(line, " \t"))
		}
	}
	flush()
	return recs, nil
}

// variant applies a duplicate variant to every section.
func variant(in []section, v string) ([]section, error) {
	out := make([]section, len(in))
	copy(out, in)
	changed := false
	for i := range out {
		s := &out[i]
		old := s.text
		userSide := s.name == "user" || s.name == "input"
		switch v {
		case "verbatim":
		case "lower":
			s.text = strings.ToLower(s.text)
		case "lower-user":
			if userSide {
				s.text = strings.ToLower(s.text)
			}
		case "ws":
			s.text = respace(s.text)
		case "ws-lower-user":
			s.text = respace(s.text)
			if userSide {
				s.text = strings.ToLower(s.text)
			}
		default:
			return nil, fmt.Errorf("unknown variant %q", v)
		}
		changed = changed || s.text != old
	}
	if v != "verbatim" && !changed {
		return nil, fmt.Errorf("variant %q changes nothing", v)
	}
	return out, nil
}

// respace changes inner whitespace only: a double space after sentence
// ends and a third newline in blank-line breaks, or, where neither
// occurs, three spaces for the first one; the text keeps its ends, so
// readers that trim see the same change.
func respace(s string) string {
	orig := s
	s = strings.ReplaceAll(s, ". ", ".  ")
	s = strings.ReplaceAll(s, "\n\n", "\n\n\n")
	if s == orig {
		s = strings.Replace(s, " ", "   ", 1)
	}
	return s
}

// dedupKey is sieve's exact-dedup key: for each message its role and its
// content lowercased with whitespace runs collapsed to one space and
// trimmed.
func dedupKey(msgs []datasets.Message) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(m.Role)
		b.WriteByte(0)
		b.WriteString(strings.Join(strings.Fields(strings.ToLower(m.Content)), " "))
		b.WriteByte(0xff)
	}
	return b.String()
}

// messages maps a valid record onto canonical messages the way sieve's
// readers do: user turns carry their input (alpaca) or context (dolly)
// after a blank line, custom sharegpt tags are mapped by the recipe.
func messages(r *record) []datasets.Message {
	var msgs []datasets.Message
	for _, s := range r.secs {
		switch s.name {
		case "system", "user", "assistant":
			msgs = append(msgs, datasets.Message{Role: s.name, Content: s.text})
		case "input", "context":
			if s.text != "" {
				last := &msgs[len(msgs)-1]
				last.Content += "\n\n" + s.text
			}
		case "text":
			msgs = append(msgs, datasets.Message{Role: datasets.RoleAssistant, Content: s.text})
		default:
			msgs = append(msgs, datasets.Message{Role: s.name, Content: s.text})
		}
	}
	return msgs
}

// Output shapes, with the field order of the published formats.
type (
	alpacaRec struct {
		Instruction string      `json:"instruction"`
		Input       string      `json:"input"`
		Output      *string     `json:"output,omitempty"`
		System      string      `json:"system,omitempty"`
		History     [][2]string `json:"history,omitempty"`
	}
	turn struct {
		From  string `json:"from"`
		Value string `json:"value"`
	}
	sharegptRec struct {
		ID            string `json:"id"`
		Conversations []turn `json:"conversations"`
	}
	msg struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	openaiRec struct {
		Messages []msg `json:"messages"`
	}
	dollyRec struct {
		Instruction string  `json:"instruction"`
		Context     string  `json:"context"`
		Response    *string `json:"response,omitempty"`
		Category    string  `json:"category"`
	}
	pcConvRec struct {
		Prompt     []msg `json:"prompt"`
		Completion []msg `json:"completion"`
	}
	textRec struct {
		Text string `json:"text"`
	}
	pcRow struct {
		Prompt     string `parquet:"prompt"`
		Completion string `parquet:"completion"`
	}
)

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// encode renders one record in its file's format.
func encode(r *record) ([]byte, error) {
	if raw, ok := r.sec("raw"); ok {
		if strings.Contains(raw, "\n") {
			return nil, errors.New("raw record spans lines")
		}
		return []byte(raw), nil
	}
	var v any
	switch r.file.format {
	case "alpaca":
		a := alpacaRec{}
		var pairs [][2]string
		var u string
		haveU := false
		for _, s := range r.secs {
			switch s.name {
			case "system":
				a.System = s.text
			case "user":
				if haveU {
					return nil, errors.New("alpaca: two user turns in a row")
				}
				u, haveU = s.text, true
				a.Input = ""
			case "input":
				a.Input = s.text
			case "assistant":
				if !haveU {
					return nil, errors.New("alpaca: assistant without user")
				}
				pairs = append(pairs, [2]string{u, s.text})
				haveU = false
			default:
				return nil, fmt.Errorf("alpaca: section %q", s.name)
			}
		}
		switch {
		case haveU: // missing output
			a.Instruction = u
		case len(pairs) > 0:
			last := pairs[len(pairs)-1]
			a.Instruction, a.Output = last[0], &last[1]
			a.History = pairs[:len(pairs)-1]
		default:
			return nil, errors.New("alpaca: no turns")
		}
		if len(a.History) > 0 {
			if _, in := r.sec("input"); in && a.Input == "" {
				return nil, errors.New("alpaca: input on a history turn")
			}
		}
		v = a
	case "sharegpt":
		user, asst := "human", "gpt"
		if t := r.attrs["tags"]; t != "" {
			var ok bool
			if user, asst, ok = strings.Cut(t, ","); !ok {
				return nil, fmt.Errorf("bad tags=%s", t)
			}
		}
		s := sharegptRec{ID: fmt.Sprintf("sg-%04d", r.index+1), Conversations: []turn{}}
		for _, sec := range r.secs {
			from := sec.name
			switch sec.name {
			case "user":
				from = user
			case "assistant":
				from = asst
			case "input", "context", "text":
				return nil, fmt.Errorf("sharegpt: section %q", sec.name)
			}
			s.Conversations = append(s.Conversations, turn{from, sec.text})
		}
		v = s
	case "openai":
		o := openaiRec{Messages: []msg{}}
		for _, sec := range r.secs {
			switch sec.name {
			case "input", "context", "text":
				return nil, fmt.Errorf("openai: section %q", sec.name)
			}
			o.Messages = append(o.Messages, msg{sec.name, sec.text})
		}
		v = o
	case "dolly":
		d := dollyRec{Category: r.attrs["cat"]}
		if d.Category == "" {
			return nil, errors.New("dolly: no cat=")
		}
		for _, sec := range r.secs {
			switch sec.name {
			case "user":
				d.Instruction = sec.text
			case "context":
				d.Context = sec.text
			case "assistant":
				t := sec.text
				d.Response = &t
			default:
				return nil, fmt.Errorf("dolly: section %q", sec.name)
			}
		}
		v = d
	case "pc":
		if len(r.secs) != 2 || r.secs[0].name != "user" || r.secs[1].name != "assistant" {
			return nil, errors.New("prompt/completion: want exactly @@user and @@assistant")
		}
		return nil, nil // rows are written by write
	case "pcconv":
		p := pcConvRec{}
		n := len(r.secs)
		if n < 2 || r.secs[n-1].name != "assistant" {
			return nil, errors.New("prompt/completion conv: last section must be @@assistant")
		}
		for _, sec := range r.secs[:n-1] {
			if sec.name != "system" && sec.name != "user" && sec.name != "assistant" {
				return nil, fmt.Errorf("prompt/completion conv: section %q", sec.name)
			}
			p.Prompt = append(p.Prompt, msg{sec.name, sec.text})
		}
		p.Completion = []msg{{"assistant", r.secs[n-1].text}}
		v = p
	case "text":
		t, ok := r.sec("text")
		if !ok || len(r.secs) != 1 {
			return nil, errors.New("text: want exactly @@text")
		}
		v = textRec{t}
	}
	b, err := marshal(v)
	if err != nil {
		return nil, err
	}
	if r.attrs["bad"] == "utf8" {
		b = bytes.ReplaceAll(b, []byte("{{latin1-e9}}"), []byte{0xe9})
	}
	return b, nil
}

// checkBad makes sure a record planted as malformed is malformed in the
// way it claims.
func checkBad(r *record) error {
	kind := r.attrs["bad"]
	switch kind {
	case "json-truncated", "json-repr":
		var v any
		if json.Unmarshal(r.encoded, &v) == nil {
			return errors.New("bad=json record parses")
		}
	case "utf8":
		if utf8.Valid(r.encoded) {
			return errors.New("bad=utf8 record is valid UTF-8")
		}
	case "missing-field":
		if _, ok := r.sec("assistant"); ok {
			return errors.New("bad=missing-field record has an answer")
		}
	case "empty-conversation":
		if len(r.secs) != 0 {
			return errors.New("bad=empty-conversation record has turns")
		}
	case "unknown-role":
		for _, s := range r.secs {
			switch s.name {
			case "system", "user", "assistant":
			default:
				return nil
			}
		}
		return errors.New("bad=unknown-role record has only known roles")
	case "empty-response", "empty-text":
		for _, s := range r.secs {
			if (s.name == "assistant" || s.name == "text") && s.text == "" {
				return nil
			}
		}
		return fmt.Errorf("bad=%s record has no empty answer", kind)
	default:
		return fmt.Errorf("unknown bad=%s", kind)
	}
	return nil
}

// write writes one output file.
func write(dir string, f *outFile, recs []*record) error {
	var data []byte
	switch f.format {
	case "pc":
		var b bytes.Buffer
		w := parquet.NewGenericWriter[pcRow](&b,
			parquet.NewSchema("schema", parquet.SchemaOf(pcRow{})),
			parquet.Compression(&parquet.Snappy),
			parquet.CreatedBy("sieve-samples-gen", "1", "none"))
		rows := make([]pcRow, len(recs))
		for i, r := range recs {
			u, _ := r.sec("user")
			a, _ := r.sec("assistant")
			rows[i] = pcRow{u, a}
		}
		if _, err := w.Write(rows); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		data = b.Bytes()
	case "sharegpt":
		var b bytes.Buffer
		b.WriteString("[\n")
		for i, r := range recs {
			var ind bytes.Buffer
			if err := json.Indent(&ind, r.encoded, "  ", "  "); err != nil {
				return fmt.Errorf("%s: %w", r.ref(), err)
			}
			b.WriteString("  ")
			b.Write(ind.Bytes())
			if i < len(recs)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString("]\n")
		data = b.Bytes()
	default:
		var b bytes.Buffer
		for _, r := range recs {
			b.Write(r.encoded)
			b.WriteByte('\n')
		}
		data = b.Bytes()
	}
	switch {
	case strings.HasSuffix(f.name, ".gz"):
		var b bytes.Buffer
		zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
		if err != nil {
			return err
		}
		// The zero Header: no name, no comment, ModTime 0.
		if _, err := zw.Write(data); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		data = b.Bytes()
	case strings.HasSuffix(f.name, ".zst"):
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
		if err != nil {
			return err
		}
		data = enc.EncodeAll(data, nil)
		enc.Close()
	}
	return os.WriteFile(filepath.Join(dir, f.name), data, 0o644)
}

// analysis is the plan's funnel: per file counts and the defect list.
type analysis struct {
	perFile  map[string]*counts
	clusters [][]*record // planted duplicate clusters, survivor first
	near     []*record
	bad      []*record
}

type counts struct {
	records, malformed, dupRemoved, dupPlanted, near int
}

func analyse(byFile map[string][]*record) (*analysis, error) {
	a := &analysis{perFile: map[string]*counts{}}
	groups := map[string][]*record{}
	var order []string
	for _, f := range files {
		c := &counts{}
		a.perFile[f.key] = c
		for _, r := range byFile[f.key] {
			c.records++
			if r.attrs["bad"] != "" {
				c.malformed++
				a.bad = append(a.bad, r)
				continue
			}
			if r.srcRef != nil {
				c.dupPlanted++
			}
			if r.nearRef != nil {
				c.near++
				a.near = append(a.near, r)
			}
			if groups[r.key] == nil {
				order = append(order, r.key)
			}
			groups[r.key] = append(groups[r.key], r)
		}
	}
	for _, k := range order {
		g := groups[k]
		if len(g) == 1 {
			if g[0].srcRef != nil {
				return nil, fmt.Errorf("%s: planted duplicate of %s has its own key", g[0].ref(), g[0].srcRef.ref())
			}
			continue
		}
		var orig *record
		for _, r := range g {
			if r.srcRef == nil {
				if orig != nil {
					return nil, fmt.Errorf("unplanted duplicates: %s at %s and %s at %s",
						orig.ref(), orig.where(), r.ref(), r.where())
				}
				orig = r
			}
		}
		for _, r := range g {
			if r.srcRef != nil && r.srcRef != orig {
				return nil, fmt.Errorf("%s: copy of %s landed in the cluster of %s", r.ref(), r.srcRef.ref(), orig.ref())
			}
		}
		// Survivor: sieve's Less with source names equal to file keys'
		// order (the file names sort the same way).
		sort.SliceStable(g, func(i, j int) bool {
			x, y := g[i], g[j]
			if x.id != y.id {
				return x.id < y.id
			}
			if x.file.name != y.file.name {
				return x.file.name < y.file.name
			}
			return x.index < y.index
		})
		for _, r := range g[1:] {
			a.perFile[r.file.key].dupRemoved++
		}
		a.clusters = append(a.clusters, g)
	}
	for _, r := range a.near {
		d := wordDiff(r.nearRef.msgs, r.msgs)
		if d == 0 || d > 12 {
			return nil, fmt.Errorf("%s: near duplicate of %s differs by %d words", r.ref(), r.nearRef.ref(), d)
		}
	}
	return a, nil
}

// wordDiff counts the words of b not matched in order in a (a cheap
// stand-in for an edit distance, enough to keep near duplicates near).
func wordDiff(a, b []datasets.Message) int {
	wa := strings.Fields(dedupKey(a))
	wb := strings.Fields(dedupKey(b))
	// LCS over words.
	prev := make([]int, len(wb)+1)
	cur := make([]int, len(wb)+1)
	for i := 1; i <= len(wa); i++ {
		for j := 1; j <= len(wb); j++ {
			switch {
			case wa[i-1] == wb[j-1]:
				cur[j] = prev[j-1] + 1
			case prev[j] >= cur[j-1]:
				cur[j] = prev[j]
			default:
				cur[j] = cur[j-1]
			}
		}
		prev, cur = cur, prev
	}
	l := prev[len(wb)]
	return max(len(wa), len(wb)) - l
}

func (a *analysis) totals() counts {
	var t counts
	for _, c := range a.perFile {
		t.records += c.records
		t.malformed += c.malformed
		t.dupRemoved += c.dupRemoved
		t.dupPlanted += c.dupPlanted
		t.near += c.near
	}
	return t
}

func (a *analysis) summary(w io.Writer) {
	t := a.totals()
	fmt.Fprintf(w, "gen: %d records, %d malformed (%.1f%%), %d exact duplicates removed (%.1f%%) in %d clusters, %d near duplicates, %d out\n",
		t.records, t.malformed, 100*float64(t.malformed)/float64(t.records),
		t.dupRemoved, 100*float64(t.dupRemoved)/float64(t.records), len(a.clusters),
		t.near, t.records-t.malformed-t.dupRemoved)
}

// markdown prints the README tables.
func (a *analysis) markdown(w io.Writer) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	fmt.Fprintln(bw, "| file | records | malformed | valid | exact dups removed | after exact dedup | near dups (kept) |")
	fmt.Fprintln(bw, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, f := range files {
		c := a.perFile[f.key]
		fmt.Fprintf(bw, "| `%s` | %d | %d | %d | %d | %d | %d |\n", f.name, c.records, c.malformed,
			c.records-c.malformed, c.dupRemoved, c.records-c.malformed-c.dupRemoved, c.near)
	}
	t := a.totals()
	fmt.Fprintf(bw, "| **total** | %d | %d | %d | %d | %d | %d |\n\n", t.records, t.malformed,
		t.records-t.malformed, t.dupRemoved, t.records-t.malformed-t.dupRemoved, t.near)

	fmt.Fprintln(bw, "### Malformed records")
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, "| file | where | defect |")
	fmt.Fprintln(bw, "| --- | --- | --- |")
	for _, r := range a.bad {
		fmt.Fprintf(bw, "| `%s` | %s | %s |\n", r.file.name, r.where(), badText(r))
	}
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, "### Exact duplicate clusters")
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, "Survivor first (smallest content ID); every other member is removed by exact dedup.")
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, "| # | survivor | removed (variant) | content ID of survivor |")
	fmt.Fprintln(bw, "| ---: | --- | --- | --- |")
	for i, g := range a.clusters {
		var rm []string
		for _, r := range g[1:] {
			v := r.attrs["v"]
			if r.srcRef == nil {
				v = "original"
			}
			rm = append(rm, fmt.Sprintf("`%s` %s (%s)", r.file.name, r.where(), v))
		}
		s := g[0]
		sv := "original"
		if s.srcRef != nil {
			sv = s.attrs["v"]
		}
		tie := ""
		for _, r := range g[1:] {
			if r.id == s.id && r.file != s.file {
				tie = " †"
			}
		}
		fmt.Fprintf(bw, "| %d | `%s` %s (%s)%s | %s | `%s` |\n", i+1, s.file.name, s.where(), sv, tie,
			strings.Join(rm, "; "), s.id)
	}
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, "† Byte-identical copies in two files share a content ID; the survivor is then the")
	fmt.Fprintln(bw, "one whose recipe source name sorts first (listed here for source names that sort")
	fmt.Fprintln(bw, "like the file names, e.g. the file stems).")
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, "### Near duplicates (must survive exact dedup)")
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, "| file | where | near copy of | words changed |")
	fmt.Fprintln(bw, "| --- | --- | --- | ---: |")
	for _, r := range a.near {
		o := r.nearRef
		fmt.Fprintf(bw, "| `%s` | %s | `%s` %s | %d |\n", r.file.name, r.where(), o.file.name, o.where(),
			wordDiff(o.msgs, r.msgs))
	}
}

// badText describes a malformed record for the README.
func badText(r *record) string {
	answer := map[string]string{"alpaca": "`output`", "dolly": "`response`",
		"openai": "the assistant message's `content`", "sharegpt": "the gpt turn's `value`"}[r.file.format]
	switch r.attrs["bad"] {
	case "json-truncated":
		return "bad JSON: the line is truncated"
	case "json-repr":
		return "bad JSON: a Python dict repr with single quotes"
	case "utf8":
		return "invalid UTF-8: a raw Latin-1 byte 0xE9 inside a JSON string"
	case "missing-field":
		return "missing required field: no " + answer
	case "empty-conversation":
		return "empty conversation: `conversations` is `[]`"
	case "unknown-role":
		for _, s := range r.secs {
			switch s.name {
			case "system", "user", "assistant":
			default:
				return fmt.Sprintf("unknown role: a turn from `%s`, which the recipe does not map", s.name)
			}
		}
	case "empty-response":
		return "empty response: " + answer + " is `\"\"`"
	case "empty-text":
		return "empty text: `text` is `\"\"`"
	}
	return r.attrs["bad"]
}
