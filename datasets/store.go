package datasets

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
)

// Store is a root directory (local or any scheme of Beam's filesystem
// package) holding datasets as <root>/<name>/<version>/, each version
// with data/ shards and a manifest.json written last. A version directory
// without a manifest is not a version.
type Store struct {
	Root string
}

// Version directories are v1, v2, …; staging directories live under
// <root>/<name>/_staging/ until committed.
const (
	ManifestFile = "manifest.json"
	CardFile     = "README.md"
	stagingDir   = "_staging"
)

func (s Store) join(parts ...string) string {
	if isURL(s.Root) {
		return strings.TrimRight(s.Root, "/") + "/" + path.Join(parts...)
	}
	return filepath.Join(append([]string{s.Root}, parts...)...)
}

func isURL(p string) bool { return strings.Contains(p, "://") }

// DatasetDir is where a dataset's versions live.
func (s Store) DatasetDir(name string) string { return s.join(name) }

// VersionDir is a version's directory.
func (s Store) VersionDir(name, version string) string { return s.join(name, version) }

// NewStaging returns a fresh staging directory for a run of dataset name.
func (s Store) NewStaging(name string) string {
	var b [6]byte
	rand.Read(b[:])
	id := fmt.Sprintf("%s-%d-%s", time.Now().UTC().Format("20060102T150405Z"), os.Getpid(), hex.EncodeToString(b[:]))
	return s.join(name, stagingDir, id)
}

// Versions lists a dataset's committed versions (those with a manifest),
// oldest first.
func (s Store) Versions(ctx context.Context, name string) ([]string, error) {
	pattern := s.join(name, "v*", ManifestFile)
	fs, err := filesystem.New(ctx, pattern)
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	files, err := fs.List(ctx, pattern)
	if err != nil {
		return nil, fmt.Errorf("list versions of %s: %w", name, err)
	}
	var nums []int
	for _, f := range files {
		v := path.Base(path.Dir(filepath.ToSlash(f)))
		if n, ok := versionNumber(v); ok {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	out := make([]string, len(nums))
	for i, n := range nums {
		out[i] = "v" + strconv.Itoa(n)
	}
	return out, nil
}

func versionNumber(v string) (int, bool) {
	if !strings.HasPrefix(v, "v") {
		return 0, false
	}
	n, err := strconv.Atoi(v[1:])
	return n, err == nil && n > 0
}

// Commit turns a complete staging directory into the dataset's next
// version. The manifest's Version is set here and the manifest is written
// last: on a local store the whole directory then appears at once by a
// rename; elsewhere (gs://) every file is copied first and the manifest
// after them, so a reader that looks for the manifest never sees a
// partial version.
//
// The dataset card (README.md) is rendered by RenderCard once the version
// number is known and committed with the version.
func (s Store) Commit(ctx context.Context, staging string, m *Manifest) (string, error) {
	for attempt := 0; attempt < 100; attempt++ {
		versions, err := s.Versions(ctx, m.Name)
		if err != nil {
			return "", err
		}
		next := 1
		if len(versions) > 0 {
			n, _ := versionNumber(versions[len(versions)-1])
			next = n + 1
		}
		m.Version = "v" + strconv.Itoa(next)
		data, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return "", err
		}
		final := s.VersionDir(m.Name, m.Version)
		card := RenderCard(m)
		if !isURL(s.Root) {
			if err := os.WriteFile(filepath.Join(staging, CardFile), card, 0o644); err != nil {
				return "", fmt.Errorf("write card: %w", err)
			}
			if err := os.WriteFile(filepath.Join(staging, ManifestFile), append(data, '\n'), 0o644); err != nil {
				return "", fmt.Errorf("write manifest: %w", err)
			}
			if err := os.Rename(staging, final); err != nil {
				if _, statErr := os.Stat(final); statErr == nil {
					continue // another run took this number; try the next
				}
				return "", fmt.Errorf("commit %s: %w", final, err)
			}
			os.Remove(filepath.Dir(staging)) // the staging parent, if now empty
			return m.Version, nil
		}
		if err := WriteFile(ctx, staging+"/"+CardFile, card); err != nil {
			return "", fmt.Errorf("write card: %w", err)
		}
		if err := copyTree(ctx, staging, final); err != nil {
			return "", fmt.Errorf("commit %s: %w", final, err)
		}
		if err := WriteFile(ctx, final+"/"+ManifestFile, append(data, '\n')); err != nil {
			return "", fmt.Errorf("commit %s: %w", final, err)
		}
		return m.Version, nil
	}
	return "", errors.New("commit: could not allocate a version number")
}

// CleanStaging removes a dataset's stale staging directories, left by
// runs that crashed or were killed: those whose process (named in the
// directory) is gone from this machine, and any older than age. It returns
// how many it removed. Only local stores are cleaned.
func (s Store) CleanStaging(name string, age time.Duration) (int, error) {
	if isURL(s.Root) {
		return 0, nil
	}
	dir := s.join(name, stagingDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return 0, nil
		}
		return 0, err
	}
	n := 0
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue
		}
		if time.Since(info.ModTime()) < age && processAlive(e.Name()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err == nil {
			n++
		}
	}
	return n, nil
}

// processAlive tells whether the process that made a staging directory
// (named TIME-PID-RANDOM) still runs on this machine.
func processAlive(dir string) bool {
	parts := strings.Split(dir, "-")
	if len(parts) != 3 {
		return true // not ours to judge; only age removes it
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 {
		return true
	}
	if pid == os.Getpid() {
		return true
	}
	return syscall.Kill(pid, 0) == nil || errors.Is(syscall.Kill(pid, 0), syscall.EPERM)
}

// Datasets lists the names of datasets with at least one version.
func (s Store) Datasets(ctx context.Context) ([]string, error) {
	pattern := s.join("*", "v*", ManifestFile)
	fs, err := filesystem.New(ctx, pattern)
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	files, err := fs.List(ctx, pattern)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.Root, err)
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range files {
		name := path.Base(path.Dir(path.Dir(filepath.ToSlash(f))))
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// FindContent returns the version of dataset name whose manifest has the
// content id, if any.
func (s Store) FindContent(ctx context.Context, name, contentID string) (string, bool, error) {
	vs, err := s.Versions(ctx, name)
	if err != nil {
		return "", false, err
	}
	for i := len(vs) - 1; i >= 0; i-- {
		m, err := s.ReadManifest(ctx, name, vs[i])
		if err != nil {
			continue
		}
		if m.ContentID == contentID {
			return vs[i], true, nil
		}
	}
	return "", false, nil
}

// Children lists the versions (NAME@vN) of any dataset in the store that
// name ref as a parent.
func (s Store) Children(ctx context.Context, ref Ref) ([]string, error) {
	names, err := s.Datasets(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		vs, err := s.Versions(ctx, n)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			m, err := s.ReadManifest(ctx, n, v)
			if err != nil {
				continue
			}
			for _, p := range m.Parents {
				if p == ref.String() {
					out = append(out, n+"@"+v)
				}
			}
		}
	}
	return out, nil
}

// Remove deletes a committed version: its manifest first (so it stops
// being a version at once), then its files. It refuses when another
// version names it as a parent, unless force is set. Local stores only.
func (s Store) Remove(ctx context.Context, ref Ref, force bool) error {
	ref, err := s.Resolve(ctx, ref)
	if err != nil {
		return err
	}
	if _, err := s.ReadManifest(ctx, ref.Name, ref.Version); err != nil {
		return err
	}
	if !force {
		children, err := s.Children(ctx, ref)
		if err != nil {
			return err
		}
		if len(children) > 0 {
			return fmt.Errorf("%s is the parent of %s; --force removes it anyway", ref, strings.Join(children, ", "))
		}
	}
	if isURL(s.Root) {
		return fmt.Errorf("rm: only local stores are supported (got %s)", s.Root)
	}
	dir := s.VersionDir(ref.Name, ref.Version)
	if err := os.Remove(filepath.Join(dir, ManifestFile)); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// Discard removes a staging directory after a failed run.
func (s Store) Discard(staging string) {
	if !isURL(s.Root) {
		os.RemoveAll(staging)
	}
}

// ReadManifest reads a committed version's manifest.
func (s Store) ReadManifest(ctx context.Context, name, version string) (*Manifest, error) {
	file := s.VersionDir(name, version) + "/" + ManifestFile
	rc, err := Open(ctx, file)
	if err != nil {
		return nil, fmt.Errorf("%s@%s: no such version", name, version)
	}
	defer rc.Close()
	var m Manifest
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		return nil, fmt.Errorf("%s@%s: bad manifest: %w", name, version, err)
	}
	return &m, nil
}

func copyTree(ctx context.Context, from, to string) error {
	fs, err := filesystem.New(ctx, from)
	if err != nil {
		return err
	}
	defer fs.Close()
	files, err := fs.List(ctx, strings.TrimRight(from, "/")+"/**")
	if err != nil {
		return err
	}
	for _, f := range files {
		rel := strings.TrimPrefix(f, strings.TrimRight(from, "/")+"/")
		if err := filesystem.Copy(ctx, fs, f, to+"/"+rel); err != nil {
			return err
		}
	}
	return nil
}

func fsFor(ctx context.Context, file string) (filesystem.Interface, error) {
	return filesystem.New(ctx, file)
}

// WriteFile writes a whole file through Beam's filesystem package.
func WriteFile(ctx context.Context, file string, data []byte) error {
	fs, err := filesystem.New(ctx, file)
	if err != nil {
		return err
	}
	defer fs.Close()
	return filesystem.Write(ctx, fs, file, data)
}
