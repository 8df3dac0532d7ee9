package pipelines

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/pipelines/recipe"
)

// TestLineageContentIDFollowsTheCode: a binary built from another
// revision (an upgrade that may change results) gives other content ids,
// so `sieve run` rebuilds instead of calling the old version up to date.
func TestLineageContentIDFollowsTheCode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.yaml")
	os.WriteFile(path, []byte("name: d\nsources:\n  - {name: a, path: a.jsonl, license: mit}\n"), 0o644)
	r, err := recipe.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p := &Plan{Recipe: r}
	id := func() string {
		t.Helper()
		cid, err := p.contentID()
		if err != nil {
			t.Fatal(err)
		}
		return cid
	}
	// Without VCS information (go test) the id is stable.
	plain := id()
	if again := id(); again != plain {
		t.Fatalf("content id not stable: %s, %s", plain, again)
	}
	if v := CodeVersion(); !strings.Contains(v, Version) {
		t.Errorf("CodeVersion %q lacks %s", v, Version)
	}
	defer func(f func() (*debug.BuildInfo, bool)) { readBuildInfo = f }(readBuildInfo)
	build := func(rev, modified string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Path: "github.com/sieve-data/sieve", Version: "(devel)"},
				Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}, true
		}
	}
	readBuildInfo = build("1111111111111111111111111111111111111111", "false")
	a := id()
	readBuildInfo = build("2222222222222222222222222222222222222222", "false")
	b := id()
	readBuildInfo = build("2222222222222222222222222222222222222222", "true")
	dirty := id()
	if a == b || a == plain || dirty == b {
		t.Errorf("content ids: revision 1 %s, revision 2 %s, revision 2 modified %s, no VCS %s; want all different", a, b, dirty, plain)
	}
	if v := CodeVersion(); !strings.Contains(v, "2222222") || !strings.Contains(v, "modified") {
		t.Errorf("CodeVersion %q", v)
	}
}
