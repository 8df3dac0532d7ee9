package datasets

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// FS is what package datasets needs of a file system: reading, writing,
// listing, sizing and removing whole files. Local paths are served by
// LocalFS; paths with a scheme ("gs://…") by the FS registered with
// RegisterRemoteFS, so that datasets itself links no storage client
// (sieve's transforms registers one backed by Beam's filesystem
// package). Implementations must be safe for concurrent use.
type FS interface {
	OpenRead(ctx context.Context, path string) (io.ReadCloser, error)
	// OpenWrite creates or truncates path (and any missing parent
	// directories, where the file system has directories).
	OpenWrite(ctx context.Context, path string) (io.WriteCloser, error)
	// List returns the paths that match glob (path.Match syntax, as
	// filepath.Glob reads it), in any order; no match is no error.
	List(ctx context.Context, glob string) ([]string, error)
	Size(ctx context.Context, path string) (int64, error)
	Remove(ctx context.Context, path string) error
}

// LocalFS is the local file system.
type LocalFS struct{}

func (LocalFS) OpenRead(_ context.Context, path string) (io.ReadCloser, error) { return os.Open(path) }

func (LocalFS) OpenWrite(_ context.Context, path string) (io.WriteCloser, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
}

// CreateExclusive creates path only if no file of that name exists
// (O_EXCL), with any missing parent directories.
func (LocalFS) CreateExclusive(_ context.Context, path string) (io.WriteCloser, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
}

func (LocalFS) List(_ context.Context, glob string) ([]string, error) { return filepath.Glob(glob) }

func (LocalFS) Size(_ context.Context, path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return -1, err
	}
	return st.Size(), nil
}

func (LocalFS) Remove(_ context.Context, path string) error { return os.Remove(path) }

var (
	remoteMu sync.RWMutex
	remoteFS FS
)

// RegisterRemoteFS makes fs serve every path with a scheme
// ("scheme://…"); the last registration wins.
func RegisterRemoteFS(fs FS) {
	remoteMu.Lock()
	defer remoteMu.Unlock()
	remoteFS = fs
}

// ErrNoRemoteFS is returned for a path with a scheme when no FS for such
// paths is registered (see RegisterRemoteFS).
var ErrNoRemoteFS = errors.New("no file system registered for paths with a scheme")

// FSFor returns the file system that serves path: LocalFS for a local
// path, the registered remote FS for one with a scheme.
func FSFor(path string) (FS, error) {
	if !isURL(path) {
		return LocalFS{}, nil
	}
	remoteMu.RLock()
	defer remoteMu.RUnlock()
	if remoteFS == nil {
		return nil, fmt.Errorf("%s: %w (link package transforms, which registers Beam's)", path, ErrNoRemoteFS)
	}
	return remoteFS, nil
}

// List returns the paths that match glob, sorted: the one way datasets
// (Glob, the store's version scans) and the Beam stages list files.
func List(ctx context.Context, glob string) ([]string, error) {
	fs, err := FSFor(glob)
	if err != nil {
		return nil, err
	}
	files, err := fs.List(ctx, glob)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", glob, err)
	}
	sort.Strings(files)
	return files, nil
}

// Remove removes one file.
func Remove(ctx context.Context, path string) error {
	fs, err := FSFor(path)
	if err != nil {
		return err
	}
	return fs.Remove(ctx, path)
}

// Size returns a file's size in bytes.
func Size(ctx context.Context, path string) (int64, error) {
	fs, err := FSFor(path)
	if err != nil {
		return -1, err
	}
	return fs.Size(ctx, path)
}

// Create creates or truncates a file for writing.
func Create(ctx context.Context, path string) (io.WriteCloser, error) {
	fs, err := FSFor(path)
	if err != nil {
		return nil, err
	}
	w, err := fs.OpenWrite(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return w, nil
}

// ExclusiveCreator is implemented by a file system that can create a
// file only if none of that name exists, decided atomically by the file
// system: O_EXCL for local files, a create-only write (the object
// generation precondition ifGenerationMatch=0) on gs://. The store
// claims version numbers and takes its dataset lock with it. When the
// name exists, the error matches fs.ErrExist; it may come from
// CreateExclusive or only from the writer's Close (an object store
// decides when the upload completes), and then nothing was written.
type ExclusiveCreator interface {
	CreateExclusive(ctx context.Context, path string) (io.WriteCloser, error)
}

// WriteExclusive writes a whole file that must not exist yet (see
// ExclusiveCreator). The error matches fs.ErrExist when it does, and
// errors.ErrUnsupported when path's file system cannot create
// exclusively.
func WriteExclusive(ctx context.Context, path string, data []byte) error {
	fsys, err := FSFor(path)
	if err != nil {
		return err
	}
	ex, ok := fsys.(ExclusiveCreator)
	if !ok {
		return fmt.Errorf("create %s only if absent: %w", path, errors.ErrUnsupported)
	}
	w, err := ex.CreateExclusive(ctx, path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := w.Write(data); err != nil {
		w.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// exists tells whether an error says a file already exists.
func exists(err error) bool { return errors.Is(err, iofs.ErrExist) }
