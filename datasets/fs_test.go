package datasets

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path"
	"strings"
	"sync"
	"testing"
)

// memFS is a remote FS in memory, for paths "mem://…".
type memFS struct {
	mu    sync.Mutex
	files map[string][]byte
}

type memWriter struct {
	bytes.Buffer
	fs   *memFS
	path string
}

func (w *memWriter) Close() error {
	w.fs.mu.Lock()
	defer w.fs.mu.Unlock()
	w.fs.files[w.path] = w.Bytes()
	return nil
}

func (m *memFS) OpenRead(_ context.Context, p string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[p]
	if !ok {
		return nil, errors.New("not found")
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memFS) OpenWrite(_ context.Context, p string) (io.WriteCloser, error) {
	return &memWriter{fs: m, path: p}, nil
}

func (m *memFS) List(_ context.Context, glob string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for p := range m.files {
		if ok, _ := path.Match(strings.TrimPrefix(glob, "mem://"), strings.TrimPrefix(p, "mem://")); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

func (m *memFS) Size(_ context.Context, p string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[p]
	if !ok {
		return -1, errors.New("not found")
	}
	return int64(len(b)), nil
}

func (m *memFS) Remove(_ context.Context, p string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.files, p)
	return nil
}

// TestRemoteFS: paths with a scheme go to the registered remote FS (an
// error naming the path without one); reads, writes, globs and the
// store's version listing go through it.
func TestRemoteFS(t *testing.T) {
	ctx := context.Background()
	RegisterRemoteFS(nil)
	if _, err := Open(ctx, "mem://b/x"); !errors.Is(err, ErrNoRemoteFS) || !strings.Contains(err.Error(), "mem://b/x") {
		t.Fatalf("no remote FS: %v", err)
	}
	m := &memFS{files: map[string][]byte{}}
	RegisterRemoteFS(m)
	defer RegisterRemoteFS(nil)
	s := Store{Root: "mem://b/store"}
	for _, v := range []string{"v2", "v10", "v1"} {
		if err := WriteFile(ctx, s.VersionDir("d", v)+"/"+ManifestFile, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := s.Versions(ctx, "d")
	if err != nil || strings.Join(vs, ",") != "v1,v2,v10" {
		t.Fatalf("versions %v, %v", vs, err)
	}
	files, err := Glob(ctx, "mem://b/store/d/v1*/"+ManifestFile)
	if err != nil || len(files) != 2 || files[0] != "mem://b/store/d/v1/"+ManifestFile {
		t.Fatalf("glob %v, %v", files, err)
	}
	b, err := ReadFile(ctx, files[0])
	if err != nil || string(b) != "{}" {
		t.Fatalf("read %q, %v", b, err)
	}
	if n, err := Size(ctx, files[0]); n != 2 || err != nil {
		t.Fatalf("size %d, %v", n, err)
	}
	if err := Remove(ctx, files[0]); err != nil || len(m.files) != 2 {
		t.Fatalf("remove: %v, %d files left", err, len(m.files))
	}
}
