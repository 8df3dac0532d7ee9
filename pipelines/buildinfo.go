package pipelines

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"
)

// readBuildInfo is debug.ReadBuildInfo; tests replace it.
var readBuildInfo = debug.ReadBuildInfo

// CodeVersion identifies the code that produces a version, for the
// content id and the manifest's sieve_build: sieve's Version, the VCS
// revision the binary was built from (Go's VCS stamping: vcs.revision,
// vcs.modified; `make build` enables it), and for a build from a
// modified tree the binary's own build id, since the revision alone does
// not say what changed. A binary without VCS information (go run, go
// test, -buildvcs=false, a build outside a checkout) is identified by
// sieve's Version and the module version only ("(devel)" in a work tree):
// code changes then do not change content ids, and the result says so.
func CodeVersion() string {
	bi, ok := readBuildInfo()
	if !ok {
		return Version + " (no build information)"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return Version + " " + bi.Main.Version + " (no VCS revision: code changes are not part of content ids)"
	}
	v := Version + " " + rev
	if modified == "true" {
		v += " modified, build " + executableID()
	}
	return v
}

var executableID = sync.OnceValue(func() string {
	exe, err := os.Executable()
	if err != nil {
		return "unknown"
	}
	// The Go build id (a hash of the build's inputs) is a few bytes in
	// an ELF note: reading it costs nothing, unlike hashing a large
	// binary.
	if f, err := elf.Open(exe); err == nil {
		defer f.Close()
		if sec := f.Section(".note.go.buildid"); sec != nil {
			if data, err := sec.Data(); err == nil && len(data) > 16 {
				if id := strings.TrimRight(string(data[16:]), "\x00"); id != "" {
					return id
				}
			}
		}
	}
	fh, err := os.Open(exe)
	if err != nil {
		return "unknown"
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "unknown"
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)[:16])
})
