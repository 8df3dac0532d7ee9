package datasets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/local" // local paths; gs:// comes with package pipelines
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
// compression, any path Beam's filesystem package knows: local paths and
// gs:// among them), emitting each valid Sample and each dead letter. A
// file that breaks part way yields the records before the break and one
// dead letter for the break, with reason "unreadable file"; only errors of
// the callbacks or of opening the file are returned.
func ReadSamples(ctx context.Context, file string, opt ReadOptions, emit func(Sample) error, dead func(DeadLetter) error) (FileStats, error) {
	st := FileStats{File: file, Format: opt.Format}
	cont, comp, err := DetectContainer(file)
	if err != nil {
		return st, err
	}
	rc, err := Open(ctx, file)
	if err != nil {
		return st, err
	}
	defer rc.Close()
	r, release, err := Decompress(rc, comp)
	if err != nil {
		return st, fmt.Errorf("%s: %w", file, err)
	}
	defer release()

	dec := &Decoder{Format: opt.Format, Roles: opt.Roles, TextField: opt.TextField}
	var pending []Record // held until the format is known
	errStop := errors.New("limit reached")

	process := func(rec Record) error {
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
	// The container broke: account for it as one dead letter.
	st.Records++
	st.Dead++
	return st, dead(DeadLetter{Source: opt.Source, File: file, Index: st.Records - 1, Stage: "read",
		Reason: "unreadable file", Detail: fmt.Sprintf("reading stopped after %d records: %v", st.Records-1, readErr)})
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

// Open opens a file for reading through Beam's filesystem package, so any
// registered scheme works (local paths, gs://, and others the binary
// imports).
func Open(ctx context.Context, file string) (io.ReadCloser, error) {
	fs, err := filesystem.New(ctx, file)
	if err != nil {
		return nil, err
	}
	rc, err := fs.OpenRead(ctx, file)
	if err != nil {
		fs.Close()
		return nil, fmt.Errorf("open %s: %w", file, err)
	}
	return closeBoth{rc, fs}, nil
}

type closeBoth struct {
	io.ReadCloser
	fs io.Closer
}

func (c closeBoth) Close() error {
	err := c.ReadCloser.Close()
	c.fs.Close()
	return err
}

// Glob expands a path pattern through Beam's filesystem package and
// returns the matches sorted. A pattern without matches is an error that
// names it, so a typo never silently reads nothing.
func Glob(ctx context.Context, pattern string) ([]string, error) {
	fs, err := filesystem.New(ctx, pattern)
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	files, err := fs.List(ctx, pattern)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", pattern, err)
	}
	if len(files) == 0 {
		if strings.ContainsAny(pattern, "*?[") {
			return nil, fmt.Errorf("%s: no files match", pattern)
		}
		return nil, fmt.Errorf("%s: no such file", pattern)
	}
	sort.Strings(files)
	return files, nil
}
