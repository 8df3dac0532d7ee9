package datasets

import (
	"github.com/sieve-data/sieve/internal/arrowcheck"

	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/parquet-go/parquet-go"
)

func shardF64(v float64) *float64 { return &v }
func shardI32(v int32) *int32     { return &v }
func shardF32(v float32) *float32 { return &v }

// sample builds a valid Sample with a content-derived ID.
func shardTestSample(dataset, file string, index int64, msgs ...Message) Sample {
	return Sample{
		ID:       ContentID(msgs),
		Messages: msgs,
		Source:   Source{Dataset: dataset, File: file, Index: index},
		License:  "apache-2.0",
	}
}

// variedShardSamples covers unicode, unset and set optional fields (zero values
// included), long and many-turn conversations, and empty strings.
func variedShardSamples() []Sample {
	var out []Sample

	s := shardTestSample("alpaca", "data/train.jsonl", 0,
		Message{RoleUser, "What is 2+2?"}, Message{RoleAssistant, "4"})
	out = append(out, s)

	s = shardTestSample("sharegpt", "sg/part-00.json", 17,
		Message{RoleSystem, "Tu es un assistant. 你好, мир! 🚀 \u00e9\u0301"},
		Message{RoleUser, "Écris un haïku — sur l'été ☀️"},
		Message{RoleAssistant, "日差し強く\n蝉の声\n風鈴の音"})
	s.License = "cc-by-nc-4.0"
	s.DupCluster = "0123456789abcdef0123456789abcdef"
	s.Quality = shardF64(0.0) // zero, not null
	s.JudgeScore = shardF64(0)
	s.TopicID = shardI32(0)
	s.Judge = `{"rubric":"helpful","score":0}`
	s.TopicLabel = "poetry"
	s.TopicDistance = shardF32(0) // zero, not null
	s.Meta = `{"task":"haiku","model":"m"}`
	out = append(out, s)

	s = shardTestSample("dolly", "dolly.jsonl", 1<<40,
		Message{RoleUser, strings.Repeat("long prompt ", 5000)},
		Message{RoleAssistant, strings.Repeat("long answer ", 7000)})
	s.Quality = shardF64(0.875)
	s.JudgeScore = shardF64(-1.5)
	s.TopicID = shardI32(-7)
	s.TopicDistance = shardF32(0.4375)
	out = append(out, s)

	var many []Message
	for i := range 300 {
		role := RoleUser
		if i%2 == 1 {
			role = RoleAssistant
		}
		many = append(many, Message{role, fmt.Sprintf("turn %d ✓", i)})
	}
	s = shardTestSample("oai", "", -1, many...)
	s.License = ""
	s.TopicID = shardI32(2147483647)
	s.TopicLabel = "long-chat"
	out = append(out, s)

	// Not a valid Sample, but the codec must not care: an empty
	// conversation, empty required strings and an empty content.
	out = append(out, Sample{Messages: nil})
	out = append(out, Sample{ID: "x", Messages: []Message{{RoleAssistant, ""}}, Meta: "{}"})
	return out
}

// normalized maps nil message slices to empty ones: Parquet stores both as
// an empty list.
func shardNormalized(in []Sample) []Sample {
	out := make([]Sample, len(in))
	for i, s := range in {
		if s.Messages == nil {
			s.Messages = []Message{}
		}
		out[i] = s
	}
	return out
}

func writeShardBytes(t testing.TB, samples []Sample, opt ShardOptions) ([]byte, ShardStats) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewShardWriter(&buf, opt)
	if err != nil {
		t.Fatal(err)
	}
	for i := range samples {
		if err := w.Write(&samples[i]); err != nil {
			t.Fatal(err)
		}
	}
	st, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), st
}

func readShardBytes(t testing.TB, data []byte) []Sample {
	t.Helper()
	got, err := ReadShard(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func assertShardSamples(t *testing.T, got, want []Sample) {
	t.Helper()
	want = shardNormalized(want)
	if len(got) != len(want) {
		t.Fatalf("got %d samples, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("sample %d differs:\n got %s\nwant %s", i, shardBrief(got[i]), shardBrief(want[i]))
		}
	}
}

func shardBrief(s Sample) string {
	str := func(p *float64) string {
		if p == nil {
			return "nil"
		}
		return fmt.Sprint(*p)
	}
	tid := "nil"
	if s.TopicID != nil {
		tid = fmt.Sprint(*s.TopicID)
	}
	msgs := fmt.Sprintf("%d msgs", len(s.Messages))
	if len(s.Messages) > 0 {
		c := s.Messages[0].Content
		if len(c) > 40 {
			c = c[:40]
		}
		msgs += fmt.Sprintf(" first %s:%q", s.Messages[0].Role, c)
	}
	return fmt.Sprintf("{ID:%q %s src:%+v lic:%q dup:%q q:%s js:%s judge:%q topic:%s/%q meta:%q}",
		s.ID, msgs, s.Source, s.License, s.DupCluster, str(s.Quality), str(s.JudgeScore), s.Judge, tid, s.TopicLabel, s.Meta)
}

func TestShardRoundTrip(t *testing.T) {
	want := variedShardSamples()
	for _, codec := range []string{"", "zstd", "snappy", "gzip", "none", "ZSTD"} {
		t.Run("codec="+codec, func(t *testing.T) {
			data, st := writeShardBytes(t, want, ShardOptions{Compression: codec})
			if st.Rows != int64(len(want)) {
				t.Errorf("Stats.Rows = %d, want %d", st.Rows, len(want))
			}
			assertShardSamples(t, readShardBytes(t, data), want)
		})
	}
}

func TestShardRoundTripOptionalFields(t *testing.T) {
	got := readShardBytes(t, mustWriteShard(t, variedShardSamples()))
	if got[0].Quality != nil || got[0].JudgeScore != nil || got[0].TopicID != nil || got[0].TopicDistance != nil {
		t.Errorf("unset pointers should read back nil: %s", shardBrief(got[0]))
	}
	if got[0].DupCluster != "" || got[0].Judge != "" || got[0].Meta != "" || got[0].TopicLabel != "" {
		t.Errorf("unset strings should read back empty: %s", shardBrief(got[0]))
	}
	if got[1].Quality == nil || *got[1].Quality != 0 || got[1].TopicID == nil || *got[1].TopicID != 0 ||
		got[1].TopicDistance == nil || *got[1].TopicDistance != 0 {
		t.Errorf("zero-valued pointers should read back as pointers to zero: %s", shardBrief(got[1]))
	}
	// Pointers handed out must not alias each other.
	if got[1].Quality == got[1].JudgeScore || got[1].Quality == got[2].Quality {
		t.Error("returned pointers alias")
	}
}

func mustWriteShard(t testing.TB, samples []Sample) []byte {
	data, _ := writeShardBytes(t, samples, ShardOptions{})
	return data
}

// TestShardManyRowsAndRowGroups spans several writer batches, reader
// batches and row groups, and checks returned samples are not overwritten by
// later reads.
func TestShardManyRowsAndRowGroups(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	want := make([]Sample, 2_345)
	for i := range want {
		want[i] = shardBenchSample(rng, i)
		if i%3 == 0 {
			want[i].Quality = shardF64(float64(i) / 10)
		}
		if i%5 == 0 {
			want[i].TopicID = shardI32(int32(i))
			want[i].TopicLabel = fmt.Sprint("t", i)
		}
	}
	data, st := writeShardBytes(t, want, ShardOptions{RowGroupRows: 1000})
	if st.Rows != int64(len(want)) {
		t.Fatalf("Rows = %d", st.Rows)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.RowGroups()); n != 3 {
		t.Errorf("row groups = %d, want 3", n)
	}

	// Streaming read.
	r, err := OpenShard(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if r.NumRows() != int64(len(want)) {
		t.Errorf("NumRows = %d", r.NumRows())
	}
	var got []Sample
	for {
		s, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Next after EOF = %v, want io.EOF", err)
	}
	assertShardSamples(t, got, want)
	if err := r.Close(); err != nil {
		t.Error(err)
	}
}

// TestShardWriterCopies checks that a caller may reuse a Sample (its message
// array and pointers) right after Write.
func TestShardWriterCopies(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewShardWriter(&buf, ShardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var want []Sample
	s := Sample{Messages: make([]Message, 2), Quality: new(float64), TopicID: new(int32)}
	for i := range 10 {
		s.ID = fmt.Sprint("id", i)
		s.Messages[0] = Message{RoleUser, fmt.Sprint("q", i)}
		s.Messages[1] = Message{RoleAssistant, fmt.Sprint("a", i)}
		*s.Quality = float64(i)
		*s.TopicID = int32(i)
		if err := w.Write(&s); err != nil {
			t.Fatal(err)
		}
		c := s
		c.Messages = append([]Message(nil), s.Messages...)
		c.Quality, c.TopicID = shardF64(float64(i)), shardI32(int32(i))
		want = append(want, c)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	assertShardSamples(t, readShardBytes(t, buf.Bytes()), want)
}

func TestShardDeterministicAndStats(t *testing.T) {
	samples := variedShardSamples()
	for _, codec := range []string{"zstd", "snappy", "gzip", "none"} {
		a, sa := writeShardBytes(t, samples, ShardOptions{Compression: codec, RowGroupRows: 2})
		b, sb := writeShardBytes(t, samples, ShardOptions{Compression: codec, RowGroupRows: 2})
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two writes of the same samples differ", codec)
		}
		sum := sha256.Sum256(a)
		if want := hex.EncodeToString(sum[:]); sa.SHA256 != want || sb.SHA256 != want {
			t.Errorf("%s: SHA256 = %s / %s, want %s", codec, sa.SHA256, sb.SHA256, want)
		}
		if sa.Bytes != int64(len(a)) {
			t.Errorf("%s: Bytes = %d, want %d", codec, sa.Bytes, len(a))
		}
		if sa.Rows != int64(len(samples)) {
			t.Errorf("%s: Rows = %d, want %d", codec, sa.Rows, len(samples))
		}
		if string(a[:4]) != "PAR1" || string(a[len(a)-4:]) != "PAR1" {
			t.Errorf("%s: missing PAR1 magic", codec)
		}
	}
	// Different content must give different bytes (the check above is
	// not vacuous).
	c, _ := writeShardBytes(t, samples[:2], ShardOptions{})
	a, _ := writeShardBytes(t, samples, ShardOptions{})
	if bytes.Equal(a, c) {
		t.Error("different samples gave identical shards")
	}
}

// TestShardGolden pins the exact bytes of a shard. Determinism inside one
// process is checked above; this catches what varies across processes or
// builds (map order, build info, timestamps). A parquet-go or
// klauspost/compress upgrade or a new column (topic_distance, #15) may
// legitimately change the bytes: then check
// TestShardDeterministicAndStats still passes and update the values here.
func TestShardGolden(t *testing.T) {
	for codec, want := range map[string]ShardStats{
		"none": {Rows: 6, Bytes: 156399, SHA256: "6ccbbfc7244ff9b7f0685feee6f9b290515aa38671f2881ef95ef8886fd74475"},
		"zstd": {Rows: 6, Bytes: 4928, SHA256: "90babde50e7b92e495601923ebc804a2b6e522b594699c192ee64cebb8771a8a"},
	} {
		if _, got := writeShardBytes(t, variedShardSamples(), ShardOptions{Compression: codec}); got != want {
			t.Errorf("%s: stats = %+v, want %+v (see the comment if a dependency was upgraded)", codec, got, want)
		}
	}
}

func TestShardEmpty(t *testing.T) {
	data, st := writeShardBytes(t, nil, ShardOptions{})
	if st.Rows != 0 || st.Bytes != int64(len(data)) || st.Bytes == 0 {
		t.Errorf("stats = %+v for %d bytes", st, len(data))
	}
	if got := readShardBytes(t, data); len(got) != 0 {
		t.Errorf("got %d samples from an empty shard", len(got))
	}
	info, err := arrowcheck.Inspect(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if info.Rows != 0 || info.MessagesType == "" {
		t.Errorf("arrow: %+v", info)
	}
}

func TestShardWriterOptionsAndMisuse(t *testing.T) {
	_, err := NewShardWriter(io.Discard, ShardOptions{Compression: "lzma"})
	if err == nil || !strings.Contains(err.Error(), `"lzma"`) {
		t.Errorf("bad codec error = %v, want one naming \"lzma\"", err)
	}
	if _, err := NewShardWriter(io.Discard, ShardOptions{RowGroupRows: -1}); err == nil {
		t.Error("negative RowGroupRows accepted")
	}

	var buf bytes.Buffer
	w, err := NewShardWriter(&buf, ShardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := variedShardSamples()[0]
	if err := w.Write(&s); err != nil {
		t.Fatal(err)
	}
	st1, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	n := buf.Len()
	st2, err := w.Close()
	if err != nil || st2 != st1 || buf.Len() != n {
		t.Errorf("second Close = %+v, %v (first %+v); wrote %d more bytes", st2, err, st1, buf.Len()-n)
	}
	if err := w.Write(&s); err == nil {
		t.Error("Write after Close succeeded")
	}
}

type shardFailingWriter struct{ after int }

func (f *shardFailingWriter) Write(p []byte) (int, error) {
	if f.after < len(p) {
		return 0, errors.New("disk full")
	}
	f.after -= len(p)
	return len(p), nil
}

func TestShardWriterPropagatesWriteErrors(t *testing.T) {
	w, err := NewShardWriter(&shardFailingWriter{after: 10}, ShardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range variedShardSamples() {
		if err := w.Write(&s); err != nil {
			break
		}
	}
	if _, err := w.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Close = %v, want the disk full error", err)
	}
}

func TestShardFooterMetadata(t *testing.T) {
	data := mustWriteShard(t, variedShardSamples())
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Metadata().CreatedBy; got != ShardCreatedBy {
		t.Errorf("created_by = %q, want %q", got, ShardCreatedBy)
	}
	if v, ok := f.Lookup("sieve.schema_version"); !ok || v != "1" {
		t.Errorf("sieve.schema_version = %q, %v", v, ok)
	}
	// Nothing variable (a timestamp, a host) in the footer.
	for _, kv := range f.Metadata().KeyValueMetadata {
		if kv.Key != "sieve.schema_version" {
			t.Errorf("unexpected footer metadata %q=%q", kv.Key, kv.Value)
		}
	}
}

func TestShardSchemaString(t *testing.T) {
	data := mustWriteShard(t, variedShardSamples())
	r, err := OpenShard(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	schema := r.Schema()
	for _, want := range []string{
		"required binary id (STRING)",
		"required group messages (LIST)",
		"repeated group list",
		"required binary content (STRING)",
		"required int64 source_index",
		"optional double quality",
		"optional int32 topic_id",
		"optional float topic_distance",
		"optional binary meta (STRING)",
	} {
		if !strings.Contains(schema, want) {
			t.Errorf("Schema() lacks %q:\n%s", want, schema)
		}
	}
	// Column order is the documented one.
	order := []string{" id ", " messages ", " source ", " source_file ", " source_index ", " license ",
		" dup_cluster", " quality", " judge_score", " judge ", " topic_id ", " topic_label ", " topic_distance;", " meta "}
	last := -1
	for _, name := range order {
		i := strings.Index(schema, name)
		if i < last {
			t.Errorf("column %q out of order in:\n%s", name, schema)
		}
		last = i
	}
}

// writeRawParquet writes rows of an arbitrary struct type with parquet-go, to
// build files that are Parquet but not (quite) sieve shards.
func writeRawParquet[T any](t *testing.T, rows []T, opts ...parquet.WriterOption) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[T](&buf, opts...)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReadShardRejects(t *testing.T) {
	open := func(data []byte) error {
		_, err := ReadShard(bytes.NewReader(data), int64(len(data)))
		return err
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "Parquet"},
		{"jsonl", []byte(`{"messages":[{"role":"user","content":"hi"}]}` + "\n"), "Parquet"},
		{"truncated", mustWriteShard(t, variedShardSamples())[:100], "Parquet"},
		{"no messages", writeRawParquet(t, []struct {
			ID          string `parquet:"id"`
			Source      string `parquet:"source"`
			SourceFile  string `parquet:"source_file"`
			SourceIndex int64  `parquet:"source_index"`
			License     string `parquet:"license"`
		}{{ID: "a"}}), "messages.list.element.role"},
		{"unrelated columns", writeRawParquet(t, []struct {
			X int `parquet:"x"`
		}{{1}}), "missing required column"},
		{"wrong type", writeRawParquet(t, []struct {
			ID          string    `parquet:"id"`
			Messages    []Message `parquet:"messages,list"`
			Source      string    `parquet:"source"`
			SourceFile  string    `parquet:"source_file"`
			SourceIndex string    `parquet:"source_index"`
			License     string    `parquet:"license"`
		}{{ID: "a"}}), "source_index"},
		{"future version", writeRawParquet(t, []shardRow{{ID: "a"}},
			parquet.KeyValueMetadata("sieve.schema_version", "2")), `"2"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := open(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// TestReadShardMissingOptionalColumns reads a file with only the required
// columns: the optional ones read as null.
func TestReadShardMissingOptionalColumns(t *testing.T) {
	type minimal struct {
		ID          string    `parquet:"id"`
		Messages    []Message `parquet:"messages,list"`
		Source      string    `parquet:"source"`
		SourceFile  string    `parquet:"source_file"`
		SourceIndex int64     `parquet:"source_index"`
		License     string    `parquet:"license"`
		Quality     *float64  `parquet:"quality"`
	}
	msgs := []Message{{RoleUser, "hi"}, {RoleAssistant, "hello"}}
	data := writeRawParquet(t, []minimal{
		{ID: "a", Messages: msgs, Source: "s", SourceFile: "f", SourceIndex: 3, License: "mit", Quality: shardF64(0.5)},
		{ID: "b", Messages: msgs[:1]},
	})
	got := readShardBytes(t, data)
	want := []Sample{
		{ID: "a", Messages: msgs, Source: Source{"s", "f", 3}, License: "mit", Quality: shardF64(0.5)},
		{ID: "b", Messages: msgs[:1]},
	}
	assertShardSamples(t, got, want)
}

// TestShardArrowIndependentReader reads a shard with Apache arrow-go, which
// shares no code with parquet-go, and checks the schema Hugging Face
// datasets and pyarrow will see.
func TestShardArrowIndependentReader(t *testing.T) {
	samples := variedShardSamples()
	data := mustWriteShard(t, samples)

	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	schema, err := fr.Schema()
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, schema.NumFields())
	for i, f := range schema.Fields() {
		names[i] = f.Name
	}
	wantNames := []string{"id", "messages", "source", "source_file", "source_index", "license",
		"dup_cluster", "quality", "judge_score", "judge", "topic_id", "topic_label", "topic_distance", "meta"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("columns = %v, want %v", names, wantNames)
	}
	field := func(name string) arrow.Field {
		fs, ok := schema.FieldsByName(name)
		if !ok {
			t.Fatalf("no field %q in %s", name, schema)
		}
		return fs[0]
	}

	msgType, ok := field("messages").Type.(*arrow.ListType)
	if !ok {
		t.Fatalf("messages is %s, want a list", field("messages").Type)
	}
	elem := msgType.ElemField()
	if elem.Name != "element" && elem.Name != "item" {
		t.Errorf("list element named %q", elem.Name)
	}
	st, ok := elem.Type.(*arrow.StructType)
	if !ok || st.NumFields() != 2 ||
		st.Field(0).Name != "role" || st.Field(0).Type.ID() != arrow.STRING ||
		st.Field(1).Name != "content" || st.Field(1).Type.ID() != arrow.STRING {
		t.Errorf("messages element = %s, want struct<role: utf8, content: utf8>", elem.Type)
	}
	if got, want := msgType.String(), "list<element: struct<role: utf8, content: utf8>>"; got != want {
		t.Errorf("messages type = %s, want %s", got, want)
	}
	for _, c := range []struct {
		name     string
		id       arrow.Type
		nullable bool
	}{
		{"id", arrow.STRING, false},
		{"source", arrow.STRING, false},
		{"source_file", arrow.STRING, false},
		{"source_index", arrow.INT64, false},
		{"license", arrow.STRING, false},
		{"dup_cluster", arrow.STRING, true},
		{"quality", arrow.FLOAT64, true},
		{"judge_score", arrow.FLOAT64, true},
		{"judge", arrow.STRING, true},
		{"topic_id", arrow.INT32, true},
		{"topic_label", arrow.STRING, true},
		{"topic_distance", arrow.FLOAT32, true},
		{"meta", arrow.STRING, true},
	} {
		f := field(c.name)
		if f.Type.ID() != c.id || f.Nullable != c.nullable {
			t.Errorf("%s: %s nullable=%v, want %s nullable=%v", c.name, f.Type, f.Nullable, c.id, c.nullable)
		}
	}

	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if tbl.NumRows() != int64(len(samples)) {
		t.Fatalf("arrow rows = %d, want %d", tbl.NumRows(), len(samples))
	}
	col := func(name string) arrow.Array {
		idx := schema.FieldIndices(name)
		chunks := tbl.Column(idx[0]).Data().Chunks()
		if len(chunks) != 1 {
			t.Fatalf("%s: %d chunks", name, len(chunks))
		}
		return chunks[0]
	}

	ids := col("id").(*array.String)
	srcIdx := col("source_index").(*array.Int64)
	quality := col("quality").(*array.Float64)
	topic := col("topic_id").(*array.Int32)
	dist := col("topic_distance").(*array.Float32)
	for i, s := range samples {
		if ids.Value(i) != s.ID {
			t.Errorf("row %d id = %q, want %q", i, ids.Value(i), s.ID)
		}
		if srcIdx.Value(i) != s.Source.Index {
			t.Errorf("row %d source_index = %d", i, srcIdx.Value(i))
		}
		if (s.Quality == nil) != quality.IsNull(i) || (s.Quality != nil && quality.Value(i) != *s.Quality) {
			t.Errorf("row %d quality null=%v value=%v, want %v", i, quality.IsNull(i), quality.Value(i), s.Quality)
		}
		if (s.TopicID == nil) != topic.IsNull(i) || (s.TopicID != nil && topic.Value(i) != *s.TopicID) {
			t.Errorf("row %d topic_id null=%v value=%v", i, topic.IsNull(i), topic.Value(i))
		}
		if (s.TopicDistance == nil) != dist.IsNull(i) || (s.TopicDistance != nil && dist.Value(i) != *s.TopicDistance) {
			t.Errorf("row %d topic_distance null=%v value=%v", i, dist.IsNull(i), dist.Value(i))
		}
		for name, want := range map[string]string{
			"dup_cluster": s.DupCluster, "judge": s.Judge, "topic_label": s.TopicLabel, "meta": s.Meta,
		} {
			// "" must be null, anything else the value.
			a := col(name).(*array.String)
			if (want == "") != a.IsNull(i) || a.Value(i) != want {
				t.Errorf("row %d %s null=%v value=%q, want %q", i, name, a.IsNull(i), a.Value(i), want)
			}
		}
	}

	// The messages of row 1 (three turns, unicode) through Arrow's list
	// and struct arrays.
	list := col("messages").(*array.List)
	structs := list.ListValues().(*array.Struct)
	roles := structs.Field(0).(*array.String)
	contents := structs.Field(1).(*array.String)
	start, end := list.ValueOffsets(1)
	var got []Message
	for j := start; j < end; j++ {
		got = append(got, Message{roles.Value(int(j)), contents.Value(int(j))})
	}
	if !reflect.DeepEqual(got, samples[1].Messages) {
		t.Errorf("arrow messages of row 1 = %q, want %q", got, samples[1].Messages)
	}
	if start, end := list.ValueOffsets(3); end-start != 300 {
		t.Errorf("row 3 has %d messages in arrow, want 300", end-start)
	}

	// Compression is recorded per column chunk in the footer.
	md := pf.MetaData()
	for i := 0; i < md.NumRowGroups(); i++ {
		rg := md.RowGroup(i)
		for j := 0; j < rg.NumColumns(); j++ {
			cc, err := rg.ColumnChunk(j)
			if err != nil {
				t.Fatal(err)
			}
			if cc.Compression() != compress.Codecs.Zstd {
				t.Errorf("column %s codec = %s, want ZSTD", cc.PathInSchema(), cc.Compression())
			}
		}
	}
	if v := md.KeyValueMetadata().FindValue("sieve.schema_version"); v == nil || *v != "1" {
		t.Errorf("arrow sees sieve.schema_version = %v", v)
	}
}

func TestArrowInspect(t *testing.T) {
	samples := variedShardSamples()
	for _, tc := range []struct{ codec, want string }{
		{"", "ZSTD"}, {"snappy", "SNAPPY"}, {"gzip", "GZIP"}, {"none", "UNCOMPRESSED"},
	} {
		data, _ := writeShardBytes(t, samples, ShardOptions{Compression: tc.codec})
		info, err := arrowcheck.Inspect(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if info.Rows != int64(len(samples)) {
			t.Errorf("%s: Rows = %d", tc.codec, info.Rows)
		}
		if !reflect.DeepEqual(info.Codecs, []string{tc.want}) {
			t.Errorf("%s: Codecs = %v, want [%s]", tc.codec, info.Codecs, tc.want)
		}
		if info.MessagesType != "list<element: struct<role: utf8, content: utf8>>" {
			t.Errorf("MessagesType = %s", info.MessagesType)
		}
		for _, want := range []string{"- id: type=utf8\n", "- source_index: type=int64\n", "- quality: type=float64, nullable\n", "- topic_id: type=int32, nullable\n"} {
			if !strings.Contains(info.Schema, want) {
				t.Errorf("Schema lacks %q:\n%s", want, info.Schema)
			}
		}
		if strings.Contains(info.Schema, "PARQUET:field_id") {
			t.Errorf("Schema still has field ids:\n%s", info.Schema)
		}
		if info.Metadata["sieve.schema_version"] != "1" {
			t.Errorf("Metadata = %v", info.Metadata)
		}
	}
	if _, err := arrowcheck.Inspect(bytes.NewReader([]byte("not parquet")), 11); err == nil {
		t.Error("ArrowInspect accepted garbage")
	}
}

// shardBenchWords is the vocabulary of benchmark texts, so they compress like
// prose rather than like random bytes.
var shardBenchWords = strings.Fields(`the of and to a in is you that it he was for on are as with his they
at be this have from or one had by word but not what all were we when your can said there use an each
which she do how their if will up other about out many then them these so some her would make like him
into time has look two more write go see number no way could people my than first water been call who
oil its now find long down day did get come made may part function return value error data model train
python code example explain answer question because however therefore result list string table`)

// shardBenchText returns about n bytes of pseudo-prose.
func shardBenchText(rng *rand.Rand, n int) string {
	var b strings.Builder
	b.Grow(n + 16)
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(shardBenchWords[rng.IntN(len(shardBenchWords))])
		if rng.IntN(12) == 0 {
			b.WriteByte('.')
		}
	}
	return b.String()
}

// shardBenchSample returns a ~1.5 KB three-turn sample.
func shardBenchSample(rng *rand.Rand, i int) Sample {
	msgs := []Message{
		{RoleSystem, shardBenchText(rng, 100+rng.IntN(50))},
		{RoleUser, shardBenchText(rng, 300+rng.IntN(200))},
		{RoleAssistant, shardBenchText(rng, 800+rng.IntN(400))},
	}
	s := shardTestSample("bench", fmt.Sprintf("bench/part-%03d.jsonl", i/5000), int64(i), msgs...)
	if i%2 == 0 {
		s.Quality = shardF64(rng.Float64())
	}
	return s
}

// shardBenchRows is the number of samples per benchmark operation.
const shardBenchRows = 50_000

func shardBenchSamples() ([]Sample, int64) {
	rng := rand.New(rand.NewPCG(42, 42))
	samples := make([]Sample, shardBenchRows)
	var n int64
	for i := range samples {
		samples[i] = shardBenchSample(rng, i)
		for _, m := range samples[i].Messages {
			n += int64(len(m.Role) + len(m.Content))
		}
		n += int64(len(samples[i].ID))
	}
	return samples, n
}

type shardDiscard struct{ n int64 }

func (d *shardDiscard) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }

// BenchmarkShardWrite writes shardBenchRows ~1.5 KB samples per op with zstd;
// MB/s is of sample text (IDs, roles, contents) in.
func BenchmarkShardWrite(b *testing.B) {
	samples, size := shardBenchSamples()
	b.SetBytes(size)
	b.ReportAllocs()
	var out shardDiscard
	b.ResetTimer()
	for b.Loop() {
		out.n = 0
		w, err := NewShardWriter(&out, ShardOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for i := range samples {
			if err := w.Write(&samples[i]); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(out.n)/float64(shardBenchRows), "file-B/row")
}

// BenchmarkShardRead streams shardBenchRows ~1.5 KB samples per op out of a zstd
// shard; MB/s is of sample text out.
func BenchmarkShardRead(b *testing.B) {
	samples, size := shardBenchSamples()
	var buf bytes.Buffer
	w, err := NewShardWriter(&buf, ShardOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range samples {
		if err := w.Write(&samples[i]); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		b.Fatal(err)
	}
	samples = nil
	data := buf.Bytes()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, err := OpenShard(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != shardBenchRows {
			b.Fatalf("read %d rows", n)
		}
	}
}
