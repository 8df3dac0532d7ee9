package transforms

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sieve-data/sieve/datasets"
)

// TestBeamFSRegistered: linking transforms gives package datasets
// Beam's file systems for paths with a scheme (gs:// in sieve, which
// links beam/runners); here file:// is absent from Beam's registry, so
// the error comes from Beam, not from datasets' missing registration.
func TestBeamFSRegistered(t *testing.T) {
	fs, err := datasets.FSFor("gs://bucket/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fs.(beamFS); !ok {
		t.Fatalf("remote FS %T", fs)
	}
	// Local paths stay datasets' own.
	if fs, _ := datasets.FSFor(filepath.Join(t.TempDir(), "x")); fs != (datasets.LocalFS{}) {
		t.Fatalf("local FS %T", fs)
	}
	if _, err := datasets.List(context.Background(), "nosuch://b/*"); err == nil {
		t.Fatal("listing an unregistered scheme succeeded")
	}
}
