package datasets

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// ShardSchemaVersion is the value of the sieve.schema_version key-value
// metadata entry written to every shard footer. Readers reject shards that
// carry a different version.
const ShardSchemaVersion = "1"

// ShardSchemaVersionKey is the footer key-value metadata key holding
// ShardSchemaVersion.
const ShardSchemaVersionKey = "sieve.schema_version"

// ShardCreatedBy is the created_by string of every shard footer. It is a
// constant so shard bytes do not depend on how the writing binary was
// built.
const ShardCreatedBy = "sieve (parquet-go)"

// DefaultRowGroupRows is the row-group size used when ShardOptions leaves
// RowGroupRows at zero.
const DefaultRowGroupRows = 10_000

// shardBatch is how many rows the writer buffers before handing them to
// parquet-go, and how many rows the reader decodes at a time.
const shardBatch = 256

// shardRow is the on-disk layout of a Sample. Column order follows field
// order. Every optional column is a pointer: nil is null, a non-nil pointer
// is a value (zero included). parquet-go's own "optional" tag on value
// types is avoided on purpose: whether it writes a zero value as null has
// changed between releases, and v0.32.0 writes some zero values as
// non-null values depending on the null pattern of the batch (see
// TestShardArrowIndependentReader).
type shardRow struct {
	ID          string    `parquet:"id"`
	Messages    []Message `parquet:"messages,list"`
	Source      string    `parquet:"source,dict"`
	SourceFile  string    `parquet:"source_file,dict"`
	SourceIndex int64     `parquet:"source_index"`
	License     string    `parquet:"license,dict"`
	DupCluster  *string   `parquet:"dup_cluster"`
	Quality     *float64  `parquet:"quality"`
	JudgeScore  *float64  `parquet:"judge_score"`
	Judge       *string   `parquet:"judge"`
	TopicID     *int32    `parquet:"topic_id"`
	TopicLabel  *string   `parquet:"topic_label"`
	TopicDist   *float32  `parquet:"topic_distance"`
	Meta        *string   `parquet:"meta"`
}

// shardSchema is the Parquet schema of a shard. The root is named "schema",
// as Arrow names it.
var shardSchema = parquet.NewSchema("schema", parquet.SchemaOf(shardRow{}))

// shardColumn describes one top-level column for validation on read.
type shardColumn struct {
	path     []string
	kind     parquet.Kind
	required bool
}

// shardColumns lists the leaf columns a reader checks. Required columns must
// be present; optional ones, when present, must have the right type (a
// missing optional column reads as null).
var shardColumns = []shardColumn{
	{[]string{"id"}, parquet.ByteArray, true},
	{[]string{"messages", "list", "element", "role"}, parquet.ByteArray, true},
	{[]string{"messages", "list", "element", "content"}, parquet.ByteArray, true},
	{[]string{"source"}, parquet.ByteArray, true},
	{[]string{"source_file"}, parquet.ByteArray, true},
	{[]string{"source_index"}, parquet.Int64, true},
	{[]string{"license"}, parquet.ByteArray, true},
	{[]string{"dup_cluster"}, parquet.ByteArray, false},
	{[]string{"quality"}, parquet.Double, false},
	{[]string{"judge_score"}, parquet.Double, false},
	{[]string{"judge"}, parquet.ByteArray, false},
	{[]string{"topic_id"}, parquet.Int32, false},
	{[]string{"topic_label"}, parquet.ByteArray, false},
	{[]string{"topic_distance"}, parquet.Float, false},
	{[]string{"meta"}, parquet.ByteArray, false},
}

// ShardOptions configures a ShardWriter.
type ShardOptions struct {
	// Compression is the codec of every column chunk: "zstd" (the default
	// when empty), "snappy", "gzip" or "none".
	Compression string
	// RowGroupRows is the number of rows per row group; 0 means
	// DefaultRowGroupRows.
	RowGroupRows int
}

// ShardStats describes a finished shard file.
type ShardStats struct {
	// Rows is the number of samples written.
	Rows int64
	// Bytes is the size of the file in bytes.
	Bytes int64
	// SHA256 is the hex-encoded SHA-256 of the file bytes.
	SHA256 string
}

// shardCountingWriter forwards writes to w while counting and hashing the bytes.
type shardCountingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
	// tail, while set, holds back what is written (see finishTail).
	tail *bytes.Buffer
}

func (c *shardCountingWriter) Write(p []byte) (int, error) {
	if c.tail != nil {
		return c.tail.Write(p)
	}
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// MaxStatisticsValue bounds the bytes of each min and max value of the
// column chunk statistics in a shard's footer. parquet-go truncates the
// page index (to 16 bytes) but copies the column chunk's extreme values
// whole, so one 50 MB message made a 50 MB footer. Longer values are
// truncated as parquet-java and parquet-go's column index do: the minimum
// to its prefix, the maximum to its prefix with the last byte
// incremented (still an upper bound).
const MaxStatisticsValue = 1024

// finishTail writes what the writer held back since capture began (the
// end of the file: the last row group, the page indexes and the footer)
// with the footer's statistics truncated to MaxStatisticsValue.
func (c *shardCountingWriter) finishTail() error {
	data := c.tail.Bytes()
	c.tail = nil
	if fixed, ok := truncateFooterStatistics(data); ok {
		data = fixed
	}
	_, err := c.Write(data)
	return err
}

// truncateFooterStatistics rewrites the footer at the end of data (a
// Parquet file's tail) when a column chunk's statistics hold a value
// longer than MaxStatisticsValue; ok is false when nothing needed it (the
// bytes are then left exactly as parquet-go wrote them).
func truncateFooterStatistics(data []byte) ([]byte, bool) {
	n := len(data)
	if n < 8 || string(data[n-4:]) != "PAR1" {
		return nil, false
	}
	size := int(binary.LittleEndian.Uint32(data[n-8 : n-4]))
	if size > n-8 {
		return nil, false
	}
	var md format.FileMetaData
	var proto thrift.CompactProtocol
	if err := thrift.Unmarshal(&proto, data[n-8-size:n-8], &md); err != nil {
		return nil, false
	}
	changed := false
	for i := range md.RowGroups {
		for j := range md.RowGroups[i].Columns {
			st := &md.RowGroups[i].Columns[j].MetaData.Statistics
			if len(st.MinValue) > MaxStatisticsValue {
				st.MinValue, changed = st.MinValue[:MaxStatisticsValue], true
			}
			if len(st.Min) > MaxStatisticsValue {
				st.Min, changed = st.Min[:MaxStatisticsValue], true
			}
			if len(st.MaxValue) > MaxStatisticsValue {
				st.MaxValue, changed = truncateMax(st.MaxValue), true
			}
			if len(st.Max) > MaxStatisticsValue {
				st.Max, changed = truncateMax(st.Max), true
			}
		}
	}
	if !changed {
		return nil, false
	}
	footer, err := thrift.Marshal(&proto, &md)
	if err != nil {
		return nil, false
	}
	out := append([]byte(nil), data[:n-8-size]...)
	out = append(out, footer...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(footer)))
	return append(out, "PAR1"...), true
}

// truncateMax cuts a maximum to MaxStatisticsValue bytes and increments
// the last byte that can be, so the result stays an upper bound; nil (no
// maximum recorded) when every byte is 0xff.
func truncateMax(v []byte) []byte {
	out := append([]byte(nil), v[:MaxStatisticsValue]...)
	for i := len(out) - 1; i >= 0; i-- {
		if out[i] != 0xff {
			out[i]++
			return out[:i+1]
		}
	}
	return nil
}

// ShardWriter streams Samples into a Parquet shard. It is not safe for
// concurrent use.
type ShardWriter struct {
	out    *shardCountingWriter
	pw     *parquet.GenericWriter[shardRow]
	batch  []shardRow
	vals   []shardVals
	msgs   []Message
	rows   int64
	err    error
	closed bool
}

// shardVals holds copies of a buffered row's pointed-to values, so a caller
// may reuse a Sample (and its pointers) as soon as Write returns.
type shardVals struct {
	dupCluster, judge, topicLabel, meta string
	quality, judgeScore                 float64
	topicID                             int32
	topicDist                           float32
}

// shardCodec maps a ShardOptions.Compression name to a codec.
func shardCodec(name string) (parquet.WriterOption, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "zstd":
		return parquet.Compression(&parquet.Zstd), nil
	case "snappy":
		return parquet.Compression(&parquet.Snappy), nil
	case "gzip":
		return parquet.Compression(&parquet.Gzip), nil
	case "none", "uncompressed":
		return parquet.Compression(&parquet.Uncompressed), nil
	default:
		return nil, fmt.Errorf("datasets: unknown shard compression %q (want zstd, snappy, gzip or none)", name)
	}
}

// NewShardWriter returns a writer that encodes Samples as a Parquet shard
// onto w. Nothing is written until the first row group is flushed or Close
// is called; Close writes the footer but does not close w.
func NewShardWriter(w io.Writer, opt ShardOptions) (*ShardWriter, error) {
	if w == nil {
		return nil, errors.New("datasets: nil shard output")
	}
	codec, err := shardCodec(opt.Compression)
	if err != nil {
		return nil, err
	}
	rgRows := opt.RowGroupRows
	if rgRows < 0 {
		return nil, fmt.Errorf("datasets: negative RowGroupRows %d", rgRows)
	}
	if rgRows == 0 {
		rgRows = DefaultRowGroupRows
	}
	out := &shardCountingWriter{w: w, h: sha256.New()}
	pw := parquet.NewGenericWriter[shardRow](out,
		// parquet-go's default created_by comes from the binary's build
		// info, so a test binary and the sieve binary would write
		// different bytes for the same samples; pin it.
		&parquet.WriterConfig{CreatedBy: ShardCreatedBy},
		shardSchema,
		codec,
		parquet.MaxRowsPerRowGroup(int64(rgRows)),
		// Version 1 data pages are what every reader (older Spark, Hive,
		// Presto included) understands; pyarrow writes them by default.
		parquet.DataPageVersion(1),
		parquet.KeyValueMetadata(ShardSchemaVersionKey, ShardSchemaVersion),
		// Page headers would otherwise carry four full copies (min, max
		// and their deprecated twins) of the extreme values of each page
		// of the free-text columns. SkipPageBounds is not used: in
		// parquet-go it records "" as both bounds in the column index,
		// which would let page-index readers prune pages wrongly.
		parquet.SkipPageStatistics("messages", "list", "element", "content"),
		parquet.SkipPageStatistics("judge"),
		parquet.SkipPageStatistics("meta"),
		// parquet-go's default for strings is DELTA_LENGTH_BYTE_ARRAY;
		// PLAIN is readable everywhere and compressed slightly smaller on
		// chat text.
		parquet.DefaultEncodingFor(parquet.ByteArray, &parquet.Plain),
	)
	return &ShardWriter{
		out:   out,
		pw:    pw,
		batch: make([]shardRow, 0, shardBatch),
		vals:  make([]shardVals, shardBatch),
	}, nil
}

// Write appends one sample to the shard. The writer copies what it keeps,
// so s may be modified or reused once Write returns.
func (w *ShardWriter) Write(s *Sample) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("datasets: write to closed shard writer")
	}
	i := len(w.batch)
	start := len(w.msgs)
	w.msgs = append(w.msgs, s.Messages...)
	w.batch = append(w.batch, shardRow{
		ID:          s.ID,
		Messages:    w.msgs[start:len(w.msgs):len(w.msgs)],
		Source:      s.Source.Dataset,
		SourceFile:  s.Source.File,
		SourceIndex: s.Source.Index,
		License:     s.License,
	})
	row, v := &w.batch[i], &w.vals[i]
	*v = shardVals{}
	if s.DupCluster != "" {
		v.dupCluster = s.DupCluster
		row.DupCluster = &v.dupCluster
	}
	if s.Judge != "" {
		v.judge = s.Judge
		row.Judge = &v.judge
	}
	if s.TopicLabel != "" {
		v.topicLabel = s.TopicLabel
		row.TopicLabel = &v.topicLabel
	}
	if s.Meta != "" {
		v.meta = s.Meta
		row.Meta = &v.meta
	}
	if s.Quality != nil {
		v.quality = *s.Quality
		row.Quality = &v.quality
	}
	if s.JudgeScore != nil {
		v.judgeScore = *s.JudgeScore
		row.JudgeScore = &v.judgeScore
	}
	if s.TopicID != nil {
		v.topicID = *s.TopicID
		row.TopicID = &v.topicID
	}
	if s.TopicDistance != nil {
		v.topicDist = *s.TopicDistance
		row.TopicDist = &v.topicDist
	}
	if len(w.batch) == cap(w.batch) {
		return w.flushBatch()
	}
	return nil
}

// flushBatch hands the buffered rows to parquet-go, which copies them into
// its column buffers, and resets the batch for reuse.
func (w *ShardWriter) flushBatch() error {
	if len(w.batch) == 0 {
		return nil
	}
	n, err := w.pw.Write(w.batch)
	w.rows += int64(n)
	if err == nil && n != len(w.batch) {
		err = io.ErrShortWrite
	}
	clear(w.batch)
	w.batch = w.batch[:0]
	clear(w.msgs)
	w.msgs = w.msgs[:0]
	if err != nil {
		w.err = fmt.Errorf("datasets: writing shard rows: %w", err)
	}
	return w.err
}

// Close flushes buffered rows, writes the footer and returns the shard's
// statistics. It does not close the underlying io.Writer. Calling Close
// again returns the same statistics.
func (w *ShardWriter) Close() (ShardStats, error) {
	if !w.closed {
		w.closed = true
		if err := w.flushBatch(); err == nil {
			w.out.tail = new(bytes.Buffer)
			if err := w.pw.Close(); err != nil {
				w.err = fmt.Errorf("datasets: closing shard: %w", err)
			} else if err := w.out.finishTail(); err != nil {
				w.err = fmt.Errorf("datasets: closing shard: %w", err)
			}
			w.out.tail = nil
		}
	}
	if w.err != nil {
		return ShardStats{}, w.err
	}
	return ShardStats{
		Rows:   w.rows,
		Bytes:  w.out.n,
		SHA256: hex.EncodeToString(w.out.h.Sum(nil)),
	}, nil
}

// ShardReader streams Samples out of a Parquet shard. It is not safe for
// concurrent use.
type ShardReader struct {
	file *parquet.File
	r    *parquet.GenericReader[shardRow]
	buf  []shardRow
	pos  int
	n    int
	err  error
}

// OpenShard opens a Parquet shard of the given size for streaming. It fails
// if the data is not Parquet, lacks a required column, has a column of the
// wrong type, or carries a sieve.schema_version other than
// ShardSchemaVersion.
func OpenShard(r io.ReaderAt, size int64) (*ShardReader, error) {
	f, err := parquet.OpenFile(r, size, parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("datasets: not a readable Parquet file: %w", err)
	}
	if err := checkShardSchema(f); err != nil {
		return nil, err
	}
	var pr *parquet.GenericReader[shardRow]
	if err := recoverShardPanic(func() {
		pr = parquet.NewGenericReader[shardRow](f, shardSchema)
	}); err != nil {
		return nil, fmt.Errorf("datasets: opening shard reader: %w", err)
	}
	return &ShardReader{file: f, r: pr}, nil
}

// recoverShardPanic runs fn and turns a panic into an error. parquet-go's
// NewGenericReader reports schema conversion problems by panicking, and a
// damaged file must not take a pipeline worker down.
func recoverShardPanic(fn func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if e, ok := p.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("%v", p)
			}
		}
	}()
	fn()
	return nil
}

// checkShardSchema verifies the file's schema against shardColumns and the
// schema version metadata.
func checkShardSchema(f *parquet.File) error {
	if v, ok := f.Lookup(ShardSchemaVersionKey); ok && v != ShardSchemaVersion {
		return fmt.Errorf("datasets: shard has %s %q, this reader supports %q", ShardSchemaVersionKey, v, ShardSchemaVersion)
	}
	schema := f.Schema()
	var missing []string
	for _, c := range shardColumns {
		name := strings.Join(c.path, ".")
		leaf, ok := schema.Lookup(c.path...)
		if !ok {
			if c.required {
				missing = append(missing, name)
			}
			continue
		}
		if got := leaf.Node.Type().Kind(); got != c.kind {
			return fmt.Errorf("datasets: shard column %s has type %s, want %s", name, got, c.kind)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("datasets: not a sieve shard: missing required column(s) %s", strings.Join(missing, ", "))
	}
	return nil
}

// NumRows returns the number of rows in the shard.
func (r *ShardReader) NumRows() int64 { return r.file.NumRows() }

// Schema returns the shard's Parquet schema in the Parquet message-type
// notation, one field per line, for display (sieve inspect).
func (r *ShardReader) Schema() string { return r.file.Schema().String() }

// Next returns the next sample, or io.EOF after the last one.
func (r *ShardReader) Next() (Sample, error) {
	if r.pos == r.n {
		if err := r.fill(); err != nil {
			return Sample{}, err
		}
	}
	row := &r.buf[r.pos]
	r.pos++
	return Sample{
		ID:       row.ID,
		Messages: row.Messages,
		Source: Source{
			Dataset: row.Source,
			File:    row.SourceFile,
			Index:   row.SourceIndex,
		},
		License:       row.License,
		DupCluster:    shardString(row.DupCluster),
		Quality:       row.Quality,
		JudgeScore:    row.JudgeScore,
		Judge:         shardString(row.Judge),
		TopicID:       row.TopicID,
		TopicLabel:    shardString(row.TopicLabel),
		TopicDistance: row.TopicDist,
		Meta:          shardString(row.Meta),
	}, nil
}

// shardString returns *p, or "" for nil.
func shardString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// fill decodes the next batch of rows into r.buf.
func (r *ShardReader) fill() error {
	if r.err != nil {
		return r.err
	}
	if r.buf == nil {
		r.buf = make([]shardRow, shardBatch)
	}
	// Zero the rows so parquet-go allocates fresh message slices and
	// pointers instead of reusing those handed out with earlier samples.
	clear(r.buf)
	var n int
	var err error
	if perr := recoverShardPanic(func() { n, err = r.r.Read(r.buf) }); perr != nil {
		err = perr
	}
	r.pos, r.n = 0, n
	if err != nil && !errors.Is(err, io.EOF) {
		r.err = fmt.Errorf("datasets: reading shard rows: %w", err)
		r.n = 0
		return r.err
	}
	if n == 0 {
		r.err = io.EOF
		return io.EOF
	}
	return nil
}

// Close releases the reader's buffers. It does not close the underlying
// io.ReaderAt.
func (r *ShardReader) Close() error { return r.r.Close() }

// ReadShard reads every sample of a Parquet shard of the given size.
func ReadShard(r io.ReaderAt, size int64) ([]Sample, error) {
	sr, err := OpenShard(r, size)
	if err != nil {
		return nil, err
	}
	defer sr.Close()
	out := make([]Sample, 0, sr.NumRows())
	for {
		s, err := sr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
}
