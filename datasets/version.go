package datasets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
)

// Ref names a dataset version: NAME, NAME@latest or NAME@vN.
type Ref struct {
	Name    string
	Version string // "latest" when not given
}

// ParseRef parses NAME[@VERSION].
func ParseRef(s string) (Ref, error) {
	name, version, _ := strings.Cut(s, "@")
	if name == "" || strings.ContainsAny(name, "/\\") {
		return Ref{}, fmt.Errorf("%q: want NAME[@VERSION]", s)
	}
	if version == "" {
		version = "latest"
	}
	if version != "latest" {
		if _, ok := versionNumber(version); !ok {
			return Ref{}, fmt.Errorf("%q: version must be vN or latest", s)
		}
	}
	return Ref{Name: name, Version: version}, nil
}

func (r Ref) String() string { return r.Name + "@" + r.Version }

// Resolve turns latest into the newest committed version.
func (s Store) Resolve(ctx context.Context, r Ref) (Ref, error) {
	if r.Version != "latest" {
		return r, nil
	}
	vs, err := s.Versions(ctx, r.Name)
	if err != nil {
		return r, err
	}
	if len(vs) == 0 {
		return r, fmt.Errorf("%s: no versions in store %s", r.Name, s.Root)
	}
	r.Version = vs[len(vs)-1]
	return r, nil
}

// Version is a committed dataset version opened for reading.
type Version struct {
	Store    Store
	Ref      Ref
	Dir      string
	Manifest *Manifest
}

// ShardPath is the full path of one of the version's shards.
func (v *Version) ShardPath(sh Shard) string { return v.Dir + "/" + sh.Path }

// ShardName names one of the version's shards in what a run that reads
// the version as a source writes (samples, dead letters, the manifest's
// inputs, the content id): "dataset:NAME@CONTENT_ID/PATH", by the
// version's content id (its number when it has none) and the shard's
// path inside the version, never by where the store is, so that two
// checkouts of a recipe and its store write the same bytes.
func (v *Version) ShardName(sh Shard) string {
	id := v.Ref.Version
	if v.Manifest != nil && v.Manifest.ContentID != "" {
		id = v.Manifest.ContentID
	}
	return "dataset:" + v.Ref.Name + "@" + id + "/" + sh.Path
}

// Shards lists the version's shards of every split, in manifest order.
func (v *Version) Shards() []Shard {
	var out []Shard
	for _, sp := range v.Manifest.Splits {
		out = append(out, sp.Shards...)
	}
	return out
}

// OpenVersion resolves a ref and checks, before anything reads it, that
// every shard the manifest lists exists with the listed size. It fails
// naming the first missing or resized shard.
func (s Store) OpenVersion(ctx context.Context, r Ref) (*Version, error) {
	r, err := s.Resolve(ctx, r)
	if err != nil {
		return nil, err
	}
	m, err := s.ReadManifest(ctx, r.Name, r.Version)
	if err != nil {
		return nil, err
	}
	v := &Version{Store: s, Ref: r, Dir: s.VersionDir(r.Name, r.Version), Manifest: m}
	if problems := v.checkFiles(ctx, true); len(problems) > 0 {
		return nil, fmt.Errorf("%s: shard %s %s", r, problems[0].Path, problems[0].Reason)
	}
	return v, nil
}

// CheckFiles checks that every shard the manifest lists exists with the
// listed size, without reading or hashing it (Verify does that). It
// returns every missing or resized shard.
func (v *Version) CheckFiles(ctx context.Context) []ShardProblem {
	return v.checkFiles(ctx, false)
}

func (v *Version) checkFiles(ctx context.Context, first bool) []ShardProblem {
	var problems []ShardProblem
	for _, sh := range v.Shards() {
		var size int64
		var err error
		if isURL(v.Dir) {
			size, err = fileSize(ctx, v.ShardPath(sh))
		} else {
			var info os.FileInfo
			if info, err = os.Stat(v.ShardPath(sh)); err == nil {
				size = info.Size()
			}
		}
		switch {
		case err != nil:
			problems = append(problems, ShardProblem{Path: sh.Path, Reason: fmt.Sprintf("is missing: %v", err)})
		case size != sh.Bytes:
			problems = append(problems, ShardProblem{Path: sh.Path, Reason: fmt.Sprintf("has %d bytes, the manifest says %d", size, sh.Bytes)})
		default:
			continue
		}
		if first {
			break
		}
	}
	return problems
}

// ShardProblem is one damaged shard found by Verify.
type ShardProblem struct {
	Path   string
	Reason string
}

// Verify re-reads every shard of a version: size and SHA-256 against the
// manifest, the Parquet footer's row count and schema, and each split's
// total. It returns the problems found (none for a sound version).
func (v *Version) Verify(ctx context.Context) ([]ShardProblem, error) {
	var problems []ShardProblem
	for _, sp := range v.Manifest.Splits {
		var rows int64
		for _, sh := range sp.Shards {
			p := v.verifyShard(ctx, sh)
			if p != "" {
				problems = append(problems, ShardProblem{Path: sh.Path, Reason: p})
			}
			rows += sh.Rows
		}
		if rows != sp.Rows {
			problems = append(problems, ShardProblem{Path: "manifest.json", Reason: fmt.Sprintf("split %s: shards hold %d rows, split says %d", sp.Name, rows, sp.Rows)})
		}
	}
	return problems, nil
}

func (v *Version) verifyShard(ctx context.Context, sh Shard) string {
	data, err := ReadFile(ctx, v.ShardPath(sh))
	if err != nil {
		return fmt.Sprintf("unreadable: %v", err)
	}
	if int64(len(data)) != sh.Bytes {
		return fmt.Sprintf("size %d, manifest says %d", len(data), sh.Bytes)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != sh.SHA256 {
		return fmt.Sprintf("sha256 %s…, manifest says %s…", got[:12], sh.SHA256[:min(12, len(sh.SHA256))])
	}
	sr, err := OpenShard(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return fmt.Sprintf("not a valid shard: %v", err)
	}
	defer sr.Close()
	if sr.NumRows() != sh.Rows {
		return fmt.Sprintf("%d rows, manifest says %d", sr.NumRows(), sh.Rows)
	}
	return ""
}

// ReadSamples reads every sample of the version, split by split, shard
// by shard.
func (v *Version) ReadSamples(ctx context.Context, fn func(split string, s *Sample) error) error {
	for _, sp := range v.Manifest.Splits {
		for _, sh := range sp.Shards {
			data, err := ReadFile(ctx, v.ShardPath(sh))
			if err != nil {
				return err
			}
			sr, err := OpenShard(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				return fmt.Errorf("%s: %w", sh.Path, err)
			}
			for {
				s, err := sr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					sr.Close()
					return fmt.Errorf("%s: %w", sh.Path, err)
				}
				if err := fn(sp.Name, &s); err != nil {
					sr.Close()
					return err
				}
			}
			sr.Close()
		}
	}
	return nil
}

// ReadFile reads a whole file through its file system (FSFor: local
// paths, and gs:// and other schemes where a remote FS is registered).
func ReadFile(ctx context.Context, file string) ([]byte, error) {
	rc, err := Open(ctx, file)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func fileSize(ctx context.Context, file string) (int64, error) {
	rc, err := Open(ctx, file)
	if err != nil {
		return 0, err
	}
	rc.Close()
	return Size(ctx, file)
}
