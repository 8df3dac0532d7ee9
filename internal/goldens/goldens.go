// Package goldens checks a test data directory against its SHA256SUMS
// file (the format of sha256sum: "<hex>  <path>" per line, paths
// relative to the directory), so that a golden file that changes or goes
// missing fails a test instead of passing or skipping unseen.
//
// After regenerating goldens on purpose, rewrite the list with
//
//	cd <dir> && sha256sum $(cut -c67- SHA256SUMS) > SHA256SUMS
package goldens

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// SumsFile is the name of the list in a test data directory.
const SumsFile = "SHA256SUMS"

// Sums reads dir's SHA256SUMS: path (slash-separated, relative to dir) to
// lower-case hex digest.
func Sums(t testing.TB, dir string) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, SumsFile))
	if err != nil {
		t.Fatalf("goldens: %v (the golden files' checksums must be recorded)", err)
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		sum, path, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 64 || path == "" {
			t.Fatalf("goldens: %s line %d malformed: %q", filepath.Join(dir, SumsFile), n, line)
		}
		sums[path] = sum
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(sums) == 0 {
		t.Fatalf("goldens: %s lists nothing", filepath.Join(dir, SumsFile))
	}
	return sums
}

// FileSum is the hex SHA-256 of a file.
func FileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Check fails t for every file of dir's SHA256SUMS that is missing or
// whose checksum differs, and returns the list.
func Check(t testing.TB, dir string) map[string]string {
	t.Helper()
	sums := Sums(t, dir)
	for path, want := range sums {
		got, err := FileSum(filepath.Join(dir, filepath.FromSlash(path)))
		switch {
		case err != nil:
			t.Errorf("golden %s: %v", path, err)
		case got != want:
			t.Errorf("golden %s changed: sha256 %s, %s records %s (regenerated on purpose? update %s)", path, got, SumsFile, want, SumsFile)
		}
	}
	return sums
}
