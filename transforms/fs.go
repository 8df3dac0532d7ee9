package transforms

import (
	"context"
	"fmt"
	"io"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/local" // local paths for the stages' own runs and shards

	"github.com/sieve-data/sieve/datasets"
)

// Package datasets reads and writes local files itself and paths with a
// scheme (gs:// and whatever else the binary links into Beam's
// filesystem registry, e.g. through beam/runners) through beamFS,
// registered here: datasets links no Beam, and any binary that runs the
// Beam stages has remote stores.
func init() { datasets.RegisterRemoteFS(beamFS{}) }

// beamFS is datasets.FS on Beam's filesystem package: one file system
// instance per call, closed with the call (or with the reader or writer
// it returned).
type beamFS struct{}

func (beamFS) open(ctx context.Context, path string) (filesystem.Interface, error) {
	return filesystem.New(ctx, path)
}

func (b beamFS) OpenRead(ctx context.Context, path string) (io.ReadCloser, error) {
	fs, err := b.open(ctx, path)
	if err != nil {
		return nil, err
	}
	rc, err := fs.OpenRead(ctx, path)
	if err != nil {
		fs.Close()
		return nil, err
	}
	return &readCloser{rc, fs}, nil
}

func (b beamFS) OpenWrite(ctx context.Context, path string) (io.WriteCloser, error) {
	fs, err := b.open(ctx, path)
	if err != nil {
		return nil, err
	}
	wc, err := fs.OpenWrite(ctx, path)
	if err != nil {
		fs.Close()
		return nil, err
	}
	return &writeCloser{wc, fs}, nil
}

func (b beamFS) List(ctx context.Context, glob string) ([]string, error) {
	fs, err := b.open(ctx, glob)
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	return fs.List(ctx, glob)
}

func (b beamFS) Size(ctx context.Context, path string) (int64, error) {
	fs, err := b.open(ctx, path)
	if err != nil {
		return -1, err
	}
	defer fs.Close()
	return fs.Size(ctx, path)
}

func (b beamFS) Remove(ctx context.Context, path string) error {
	fs, err := b.open(ctx, path)
	if err != nil {
		return err
	}
	defer fs.Close()
	rm, ok := fs.(filesystem.Remover)
	if !ok {
		return fmt.Errorf("remove %s: the file system cannot remove files", path)
	}
	return rm.Remove(ctx, path)
}

// readCloser and writeCloser close a reader or writer, then its file
// system.
type readCloser struct {
	io.ReadCloser
	fs io.Closer
}

func (c *readCloser) Close() error { return closeBoth(c.ReadCloser, c.fs) }

type writeCloser struct {
	io.WriteCloser
	fs io.Closer
}

func (c *writeCloser) Close() error { return closeBoth(c.WriteCloser, c.fs) }

func closeBoth(f, fs io.Closer) error {
	err := f.Close()
	if e := fs.Close(); err == nil {
		err = e
	}
	return err
}
