package datasets

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
)

// Container is the file layout records are stored in.
type Container string

// Supported containers.
const (
	ContainerJSONL   Container = "jsonl"   // one JSON object a line (.jsonl, .ndjson)
	ContainerJSON    Container = "json"    // a JSON array of objects, or JSONL named .json
	ContainerParquet Container = "parquet" // one record a row
)

// Compression of a whole file, from its suffix.
type Compression string

// Supported whole-file compressions.
const (
	CompressionNone Compression = ""
	CompressionGzip Compression = "gzip" // .gz
	CompressionZstd Compression = "zstd" // .zst, .zstd
)

// DetectContainer reads a file's container and compression from its name,
// e.g. "x.jsonl.zst" is zstd-compressed JSONL.
func DetectContainer(name string) (Container, Compression, error) {
	base := strings.ToLower(path.Base(name))
	comp := CompressionNone
	switch {
	case strings.HasSuffix(base, ".gz"):
		comp, base = CompressionGzip, strings.TrimSuffix(base, ".gz")
	case strings.HasSuffix(base, ".zst"):
		comp, base = CompressionZstd, strings.TrimSuffix(base, ".zst")
	case strings.HasSuffix(base, ".zstd"):
		comp, base = CompressionZstd, strings.TrimSuffix(base, ".zstd")
	}
	switch path.Ext(base) {
	case ".jsonl", ".ndjson":
		return ContainerJSONL, comp, nil
	case ".json":
		return ContainerJSON, comp, nil
	case ".parquet":
		if comp != CompressionNone {
			return "", "", fmt.Errorf("%s: compressed Parquet files are not supported (Parquet compresses its own pages)", name)
		}
		return ContainerParquet, comp, nil
	}
	return "", "", fmt.Errorf("%s: unknown file type (want .jsonl, .ndjson, .json or .parquet, optionally .gz or .zst)", name)
}

// Magic numbers of the compressed containers.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// ContainerError is a whole file that cannot be read as its name says
// (a .gz that is not gzip data, a .zst that is not zstd). Readers turn it
// into one dead letter for the file, like a container that breaks part
// way.
type ContainerError struct{ Detail string }

func (e *ContainerError) Error() string { return e.Detail }

// Decompress wraps r according to c. The returned closer releases the
// decompressor (it does not close r). A stream that does not start with
// its compression's magic number is a *ContainerError; an empty stream
// reads as empty.
func Decompress(r io.Reader, c Compression) (io.Reader, func(), error) {
	if c == CompressionNone {
		return r, func() {}, nil
	}
	magic, name := gzipMagic, "gzip"
	if c == CompressionZstd {
		magic, name = zstdMagic, "zstd"
	} else if c != CompressionGzip {
		return nil, nil, fmt.Errorf("unknown compression %q", c)
	}
	br := bufio.NewReader(r)
	head, err := br.Peek(len(magic))
	if len(head) == 0 && err == io.EOF {
		return br, func() {}, nil
	}
	if !bytes.Equal(head, magic) {
		return nil, nil, &ContainerError{Detail: fmt.Sprintf("not %s data (the file starts with % x)", name, head)}
	}
	if c == CompressionGzip {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, &ContainerError{Detail: fmt.Sprintf("not gzip data: %v", err)}
		}
		return zr, func() { zr.Close() }, nil
	}
	zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, nil, fmt.Errorf("zstd: %w", err)
	}
	return zr, zr.Close, nil
}

// Record is one raw record read from a container.
type Record struct {
	// Index is the zero-based record number inside the file.
	Index int64
	// Line is the 1-based line the record starts on (JSONL), or 0 where
	// lines mean nothing (JSON arrays, Parquet).
	Line int64
	// Raw is the record as a JSON object. It is only valid during the
	// callback.
	Raw []byte
	// Err is set when the record could not be read at all (for example a
	// JSON array element that is not valid JSON); Raw then holds what was
	// read, if anything.
	Err error
}

// ReadRecords calls fn for every record of an uncompressed container
// stream (use Decompress first). Blank JSONL lines are skipped and not
// counted. An error from fn stops reading and is returned. A container
// that breaks part way (truncated JSON array, corrupt Parquet) returns an
// error after the records read so far.
func ReadRecords(c Container, r io.Reader, fn func(Record) error) error {
	switch c {
	case ContainerJSONL:
		return readJSONL(bufio.NewReaderSize(r, 1<<20), fn)
	case ContainerJSON:
		br := bufio.NewReaderSize(r, 1<<20)
		first, err := peekNonSpace(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if first == '[' {
			return readJSONArray(br, fn)
		}
		return readJSONL(br, fn)
	case ContainerParquet:
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		return readParquet(bytes.NewReader(data), int64(len(data)), fn)
	}
	return fmt.Errorf("unknown container %q", c)
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case 0xEF: // UTF-8 byte order mark
			if rest, err := br.Peek(2); err == nil && rest[0] == 0xBB && rest[1] == 0xBF {
				br.Discard(2)
				continue
			}
		}
		return b, br.UnreadByte()
	}
}

func readJSONL(br *bufio.Reader, fn func(Record) error) error {
	var index, line int64
	var buf []byte
	for {
		buf = buf[:0]
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			buf = append(buf, chunk...)
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("line %d: %w", line+1, err)
		}
		if len(buf) == 0 && err == io.EOF {
			return nil
		}
		line++
		rec := bytes.TrimSpace(buf)
		if line == 1 {
			rec = bytes.TrimPrefix(rec, []byte{0xEF, 0xBB, 0xBF})
		}
		if len(rec) > 0 {
			if ferr := fn(Record{Index: index, Line: line, Raw: rec}); ferr != nil {
				return ferr
			}
			index++
		}
		if err == io.EOF {
			return nil
		}
	}
}

func readJSONArray(br *bufio.Reader, fn func(Record) error) error {
	dec := json.NewDecoder(br)
	if _, err := dec.Token(); err != nil { // '['
		return fmt.Errorf("JSON array: %w", err)
	}
	var index int64
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			// The decoder cannot resynchronise inside an array: stop with
			// an error naming where.
			return fmt.Errorf("JSON array broken at element %d (byte %d): %w", index, dec.InputOffset(), err)
		}
		if err := fn(Record{Index: index, Raw: raw}); err != nil {
			return err
		}
		index++
	}
	if _, err := dec.Token(); err != nil { // ']'
		return fmt.Errorf("JSON array: after element %d: %w", index, err)
	}
	return nil
}

func readParquet(r io.ReaderAt, size int64, fn func(Record) error) error {
	f, err := parquet.OpenFile(r, size)
	if err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	pr := parquet.NewReader(f)
	defer pr.Close()
	for index := int64(0); ; index++ {
		row := map[string]any{}
		if err := pr.Read(&row); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("parquet row %d: %w", index, err)
		}
		raw, err := json.Marshal(jsonable(row))
		rec := Record{Index: index, Raw: raw}
		if err != nil {
			rec.Err = fmt.Errorf("parquet row %d: %w", index, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

// jsonable turns Parquet byte arrays that hold UTF-8 into strings so they
// encode as JSON strings rather than base64.
func jsonable(v any) any {
	switch x := v.(type) {
	case []byte:
		if utf8.Valid(x) {
			return string(x)
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
		return x
	}
	return v
}

// SampleFromRecord decodes and validates one record into a Sample. Every
// failure is a *DecodeError whose Reason is suitable for the dead-letter
// funnel.
func (d *Decoder) SampleFromRecord(rec Record, src Source, license string) (Sample, error) {
	if rec.Err != nil {
		return Sample{}, &DecodeError{Reason: "bad json", Detail: rec.Err.Error()}
	}
	if !utf8.Valid(rec.Raw) {
		return Sample{}, decErr("invalid utf-8", "record bytes are not valid UTF-8")
	}
	msgs, meta, err := d.Decode(rec.Raw)
	if err != nil {
		return Sample{}, err
	}
	s := Sample{Messages: msgs, Source: src, License: license, Meta: meta}
	if err := s.validateContent(); err != nil {
		return Sample{}, err
	}
	s.ID = ContentID(msgs)
	return s, nil
}
