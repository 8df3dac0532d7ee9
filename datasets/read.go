package datasets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// DeadLetter is a record that could not become a Sample, kept with enough
// context to find and fix it: the source, file, record index and line, the
// reason and the record itself (truncated to MaxDeadLetterRaw bytes).
type DeadLetter struct {
	Source string `json:"source"`
	File   string `json:"file"`
	Index  int64  `json:"index"`
	Line   int64  `json:"line,omitempty"`
	Stage  string `json:"stage"`
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
	Raw    string `json:"raw,omitempty"`
}

// MaxDeadLetterRaw bounds the bytes of a record kept in a dead letter.
const MaxDeadLetterRaw = 8 << 10

// ReadOptions say how to read one source's files.
type ReadOptions struct {
	Source    string            // the recipe's source name
	Format    Format            // FormatAuto detects per file
	Roles     map[string]string // extra role aliases (lower-case keys)
	TextField string            // field for FormatText ("text")
	License   string
	// Limit stops after this many records (0: no limit). Records, not
	// samples: dead letters count towards it.
	Limit int64
	// Alias, when set, names the file in samples and dead letters
	// instead of its path (a Hub file read from the local cache is named
	// by its commit-pinned hf:// URL, the same on every machine).
	Alias string `json:"alias,omitempty"`
	// Workers > 1 decodes records on that many goroutines (the callbacks
	// still run on the caller's goroutine, in no particular order). Used
	// only when the format is known.
	Workers int `json:"workers,omitempty"`
	// Range, when End > 0, reads only bytes [Start, End) of an
	// uncompressed JSONL file; Start must be a line start (see
	// SplitJSONL) and FirstIndex and FirstLine the record index and line
	// number of the first record there.
	Range ByteRange
}

// ByteRange is a slice of a JSONL file made of whole lines.
type ByteRange struct {
	Start      int64 `json:"start,omitempty"`
	End        int64 `json:"end,omitempty"`
	FirstIndex int64 `json:"first_index,omitempty"`
	FirstLine  int64 `json:"first_line,omitempty"`
}

// FileStats summarise one file read.
type FileStats struct {
	File    string
	Format  Format
	Records int64 // every record seen: Samples + DeadLetters
	Samples int64
	Dead    int64
}

// maxDetect bounds how many leading records format detection may look at.
const maxDetect = 100

// ReadSamples reads every record of one file (any supported container and
// compression, any path FSFor serves: local paths, and gs:// among others
// where a remote FS is registered), emitting each valid Sample and each dead letter. A
// file that breaks part way yields the records before the break and one
// dead letter for the break, with reason "unreadable file"; only errors of
// the callbacks or of opening the file are returned.
func ReadSamples(ctx context.Context, file string, opt ReadOptions, emit func(Sample) error, dead func(DeadLetter) error) (FileStats, error) {
	path := file
	if opt.Alias != "" {
		file = opt.Alias
	}
	st := FileStats{File: file, Format: opt.Format}
	cont, comp, err := DetectContainer(path)
	if err != nil {
		return st, err
	}
	if opt.Format == FormatSieve {
		return readSieveShard(ctx, path, file, opt, st, emit, dead)
	}
	rc, err := Open(ctx, path)
	if err != nil {
		return st, err
	}
	defer rc.Close()
	var in io.Reader = rc
	rg := opt.Range
	if rg.End > 0 {
		if cont != ContainerJSONL || comp != CompressionNone {
			return st, fmt.Errorf("%s: byte ranges need uncompressed JSONL", file)
		}
		if err := skipTo(rc, rg.Start); err != nil {
			return st, fmt.Errorf("%s: seek to %d: %w", file, rg.Start, err)
		}
		in = io.LimitReader(rc, rg.End-rg.Start)
	}
	r, release, err := Decompress(in, comp)
	var ce *ContainerError
	if errors.As(err, &ce) {
		return unreadable(st, opt, file, comp, err, dead)
	}
	if err != nil {
		return st, fmt.Errorf("%s: %w", file, err)
	}
	defer release()

	dec := &Decoder{Format: opt.Format, Roles: opt.Roles, TextField: opt.TextField}
	var pending []Record // held until the format is known
	errStop := errors.New("limit reached")

	process := func(rec Record) error {
		rec.Index += rg.FirstIndex
		if rec.Line > 0 {
			rec.Line += rg.FirstLine
		}
		src := Source{Dataset: opt.Source, File: file, Index: rec.Index}
		s, err := dec.SampleFromRecord(rec, src, opt.License)
		if err != nil {
			st.Dead++
			return dead(deadLetter(opt.Source, file, rec, err))
		}
		st.Samples++
		return emit(s)
	}
	handle := func(rec Record) error {
		if dec.Format != FormatAuto {
			return process(rec)
		}
		if rec.Err == nil {
			if f, err := DetectFormat(rec.Raw); err == nil {
				dec.Format, st.Format = f, f
				for _, p := range pending {
					if err := process(p); err != nil {
						return err
					}
				}
				pending = nil
				return process(rec)
			}
		}
		rec.Raw = append([]byte(nil), rec.Raw...)
		pending = append(pending, rec)
		if len(pending) >= maxDetect {
			return flushUndetected(&st, opt, file, &pending, dead)
		}
		return nil
	}
	if opt.Workers > 1 && dec.Format != FormatAuto {
		return readParallel(cont, comp, r, opt, file, dec, st, emit, dead)
	}
	readErr := ReadRecords(cont, r, func(rec Record) error {
		if opt.Limit > 0 && st.Records >= opt.Limit {
			return errStop
		}
		st.Records++
		if err := handle(rec); err != nil {
			return callbackError{err}
		}
		return nil
	})
	if err := flushUndetected(&st, opt, file, &pending, dead); err != nil {
		return st, err
	}
	switch {
	case readErr == nil || errors.Is(readErr, errStop):
		return st, nil
	case isCallbackErr(readErr):
		return st, errors.Unwrap(readErr)
	}
	return unreadable(st, opt, file, comp, readErr, dead)
}

// UnreadableReason is the dead-letter reason of a file that cannot be
// read, or that broke part way: one dead letter for the rest of the file,
// after the records read before the break.
const UnreadableReason = "unreadable file"

// unreadable accounts for a container that broke part way (or could not
// be read at all) as one dead letter after the records read so far.
func unreadable(st FileStats, opt ReadOptions, file string, comp Compression, readErr error, dead func(DeadLetter) error) (FileStats, error) {
	read := st.Records
	st.Records++
	st.Dead++
	return st, dead(DeadLetter{Source: opt.Source, File: file, Index: opt.Range.FirstIndex + read, Stage: "read",
		Reason: UnreadableReason, Detail: unreadableDetail(comp, readErr, read)})
}

// unreadableDetail says in a phrase what broke a file after read records.
func unreadableDetail(comp Compression, err error, read int64) string {
	var ce *ContainerError
	switch {
	case errors.As(err, &ce):
		return ce.Detail
	case comp != CompressionNone && errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("truncated %s stream after %d records", comp, read)
	case comp != CompressionNone && !errors.Is(err, io.EOF) && !isJSONError(err):
		return fmt.Sprintf("corrupt %s stream after %d records: %v", comp, read, err)
	}
	return fmt.Sprintf("%v; the %d records before it were read", err, read)
}

// isJSONError reports errors of the JSON array reader.
func isJSONError(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se) || strings.HasPrefix(err.Error(), "JSON array")
}

// readSieveShard reads one of sieve's own shards: every column is kept
// (license, scores, topics, meta) except the source, which becomes this
// read's; rows that fail validation are dead letters like any record.
func readSieveShard(ctx context.Context, path, file string, opt ReadOptions, st FileStats,
	emit func(Sample) error, dead func(DeadLetter) error) (FileStats, error) {
	data, err := ReadFile(ctx, path)
	if err != nil {
		return st, err
	}
	sr, err := OpenShard(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return st, fmt.Errorf("%s: %w", file, err)
	}
	defer sr.Close()
	for i := int64(0); opt.Limit == 0 || i < opt.Limit; i++ {
		s, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, fmt.Errorf("%s: row %d: %w", file, i, err)
		}
		st.Records++
		s.Source = Source{Dataset: opt.Source, File: file, Index: i}
		if s.License == "" {
			s.License = opt.License
		}
		if err := s.Validate(); err != nil {
			st.Dead++
			if err := dead(deadLetter(opt.Source, file, Record{Index: i}, err)); err != nil {
				return st, err
			}
			continue
		}
		st.Samples++
		if err := emit(s); err != nil {
			return st, err
		}
	}
	return st, nil
}

// decodedBatch is one batch of records decoded by a worker.
type decodedBatch struct {
	samples []Sample
	dead    []DeadLetter
}

// readParallel reads records on one goroutine, decodes batches of them on
// opt.Workers goroutines and runs the callbacks on the caller's.
func readParallel(cont Container, comp Compression, r io.Reader, opt ReadOptions, file string, dec *Decoder, st FileStats,
	emit func(Sample) error, dead func(DeadLetter) error) (FileStats, error) {
	const batchSize = 128
	rg := opt.Range
	batches := make(chan []Record, opt.Workers*2)
	results := make(chan decodedBatch, opt.Workers*2)
	stop := make(chan struct{})
	errStop := errors.New("stopped")
	var readErr error
	var records int64
	go func() {
		defer close(batches)
		batch := make([]Record, 0, batchSize)
		send := func() bool {
			select {
			case batches <- batch:
				batch = make([]Record, 0, batchSize)
				return true
			case <-stop:
				return false
			}
		}
		readErr = ReadRecords(cont, r, func(rec Record) error {
			if opt.Limit > 0 && records >= opt.Limit {
				return errStop
			}
			records++
			rec.Raw = append([]byte(nil), rec.Raw...)
			batch = append(batch, rec)
			if len(batch) == batchSize && !send() {
				return errStop
			}
			return nil
		})
		if len(batch) > 0 {
			send()
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < opt.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				var out decodedBatch
				for _, rec := range b {
					rec.Index += rg.FirstIndex
					if rec.Line > 0 {
						rec.Line += rg.FirstLine
					}
					s, err := dec.SampleFromRecord(rec, Source{Dataset: opt.Source, File: file, Index: rec.Index}, opt.License)
					if err != nil {
						out.dead = append(out.dead, deadLetter(opt.Source, file, rec, err))
						continue
					}
					out.samples = append(out.samples, s)
				}
				select {
				case results <- out:
				case <-stop:
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()
	var cbErr error
	for b := range results {
		if cbErr != nil {
			continue
		}
		for _, s := range b.samples {
			st.Samples++
			if cbErr = emit(s); cbErr != nil {
				break
			}
		}
		for _, d := range b.dead {
			if cbErr != nil {
				break
			}
			st.Dead++
			cbErr = dead(d)
		}
		if cbErr != nil {
			close(stop)
		}
	}
	st.Records = records
	if cbErr != nil {
		return st, cbErr
	}
	if readErr == nil || errors.Is(readErr, errStop) {
		return st, nil
	}
	return unreadable(st, opt, file, comp, readErr, dead)
}

// skipTo advances a fresh reader to offset, seeking where it can.
func skipTo(r io.Reader, offset int64) error {
	if offset == 0 {
		return nil
	}
	if sk, ok := r.(io.Seeker); ok {
		_, err := sk.Seek(offset, io.SeekStart)
		return err
	}
	n, err := io.CopyN(io.Discard, r, offset)
	if err == nil && n != offset {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// callbackError marks errors that came from the emit/dead callbacks.
type callbackError struct{ error }

func (e callbackError) Unwrap() error { return e.error }

func isCallbackErr(err error) bool {
	var ce callbackError
	return errors.As(err, &ce)
}

func flushUndetected(st *FileStats, opt ReadOptions, file string, pending *[]Record, dead func(DeadLetter) error) error {
	for _, rec := range *pending {
		st.Dead++
		var err error = rec.Err
		if err == nil {
			_, err = DetectFormat(rec.Raw)
		}
		var de *DecodeError
		if !errors.As(err, &de) {
			err = &DecodeError{Reason: "bad json", Detail: err.Error()}
		}
		if derr := dead(deadLetter(opt.Source, file, rec, err)); derr != nil {
			return callbackError{derr}
		}
	}
	*pending = nil
	return nil
}

func deadLetter(source, file string, rec Record, err error) DeadLetter {
	dl := DeadLetter{Source: source, File: file, Index: rec.Index, Line: rec.Line, Stage: "read"}
	var de *DecodeError
	if errors.As(err, &de) {
		dl.Reason, dl.Detail = de.Reason, de.Detail
	} else {
		dl.Reason, dl.Detail = "invalid record", err.Error()
	}
	raw := rec.Raw
	if len(raw) > MaxDeadLetterRaw {
		raw = raw[:MaxDeadLetterRaw]
	}
	dl.Raw = strings.ToValidUTF8(string(raw), "\uFFFD")
	return dl
}

// Open opens a file for reading through its file system (FSFor): local
// paths, and gs:// and other schemes where a remote FS is registered.
func Open(ctx context.Context, file string) (io.ReadCloser, error) {
	fs, err := FSFor(file)
	if err != nil {
		return nil, err
	}
	rc, err := fs.OpenRead(ctx, file)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", file, err)
	}
	return rc, nil
}

// Glob expands a path pattern (List) and returns the matches sorted. A
// pattern without matches is an error that names it, so a typo never
// silently reads nothing.
func Glob(ctx context.Context, pattern string) ([]string, error) {
	files, err := List(ctx, pattern)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		if strings.ContainsAny(pattern, "*?[") {
			return nil, fmt.Errorf("%s: no files match", pattern)
		}
		return nil, fmt.Errorf("%s: no such file", pattern)
	}
	return files, nil
}

// DetectFileFormat reads a file's first records (up to 100) and returns
// the format of the first one whose fields identify it.
func DetectFileFormat(ctx context.Context, file string) (Format, error) {
	cont, comp, err := DetectContainer(file)
	if err != nil {
		return "", err
	}
	rc, err := Open(ctx, file)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	r, release, err := Decompress(rc, comp)
	if err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	defer release()
	found := errors.New("found")
	var format Format
	n := 0
	err = ReadRecords(cont, r, func(rec Record) error {
		if rec.Err == nil {
			if f, err := DetectFormat(rec.Raw); err == nil {
				format = f
				return found
			}
		}
		if n++; n >= maxDetect {
			return found
		}
		return nil
	})
	if format != "" {
		return format, nil
	}
	if err != nil && err != found {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	return "", fmt.Errorf("%s: no record of a known format in the first %d", file, maxDetect)
}
