package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// trainExamplesNotRun are the training examples of README.md and
// docs/train.md that TestTrainingExamplesRun does not run, and why. Every
// other line of their sh blocks is run: a new example fails the test until
// it runs as written or is listed here.
var trainExamplesNotRun = map[string]string{
	"sieve train --data demo@v2 --model path/to/Qwen2.5-0.5B-Instruct --lr 2e-5 --epochs 3":           "needs a Hugging Face checkpoint (TestTrainFamilies fine-tunes tiny ones of each family)",
	"sieve train --data demo@v2 --model path/to/base --lora-r 16 --lora-alpha 32 --lr 2e-4 [--qlora]": "needs a base checkpoint (path/to/base); TestTrainSweepMergeEvalExport trains LoRA on a tiny one",
	"sieve train --data my-sft@v3 --model path/to/base --lora-r 16 --lora-alpha 32 --lr 2e-4 --qlora": "needs a base checkpoint and a dataset of the user's",
	"sieve train --data demo@latest --init my-config.json --tokenizer path/to/tokenizer-dir":          "the user's config and tokenizer (placeholders)",
	"sieve train ... --lr auto": "elided flags (TestTrainFindsItsSettings runs --lr auto)",
	"sieve train sweep --data my-sft@v3 --model path/to/base --lora-r 8,16,32 --lora-alpha 16,32 --lr 1e-4,2e-4 --random 4": "needs a base checkpoint and a dataset of the user's (TestSweepLoRARandom draws a LoRA grid)",
	"sieve train merge runs/x/adapter -o runs/x-merged":                                                                     "needs a LoRA run in runs/x (TestTrainSweepMergeEvalExport merges one)",
	"cd train/model/testdata && python3 families.py OUTDIR":                                                                 "transformers, peft and torch (the GPU machine)",
	"cp OUTDIR/families_* families/ && sha256sum $(cut -c67- SHA256SUMS) > SHA256SUMS":                                      "follows families.py",
	"python3 train/testdata/hf_check.py /tmp/hf":                                                                            "transformers and peft",
	"cd train/model/testdata && python3 parity.py --transformers hf_untied hf_tied > transformers_parity.jsonl":             "transformers and torch",
	"go run -tags openblas ./bench/train -modes full -reps 3 -steps 5 -warmup 1":                                            "a benchmark against PyTorch (make bench-train)",
}

// docShLines returns the lines of the sh code blocks of a Markdown text,
// comments removed: of the whole text, or of the section under heading
// ("## Name": up to the next heading of its level or above).
func docShLines(t *testing.T, doc, heading string) []string {
	t.Helper()
	level := strings.IndexByte(heading, ' ')
	in, found := heading == "", false
	open, sh := false, false
	var out []string
	for _, l := range strings.Split(doc, "\n") {
		switch {
		case strings.HasPrefix(l, "```"):
			open, sh = !open, !open && strings.TrimPrefix(l, "```") == "sh"
		case open:
			l = strings.TrimSpace(comment.ReplaceAllString(l, ""))
			if in && sh && l != "" && !strings.HasPrefix(l, "#") {
				out = append(out, l)
			}
		case heading != "" && l == heading:
			in, found = true, true
		case in && heading != "" && strings.HasPrefix(l, "#"):
			if n := len(l) - len(strings.TrimLeft(l, "#")); n <= level {
				in = false
			}
		}
	}
	if heading != "" && !found {
		t.Fatalf("no heading %q", heading)
	}
	return out
}

// sameTraining reports whether two 'sieve train' argument lists train the
// same run: the same flags and values, --store and --output defaulted
// (store, runs/NAME).
func sameTraining(a, b []string) bool {
	norm := func(args []string) map[string]string {
		m := map[string]string{}
		for i := 1; i+1 < len(args); i += 2 {
			m[strings.TrimPrefix(args[i], "--")] = args[i+1]
		}
		if m["store"] == "" {
			m["store"] = "store"
		}
		if m["output"] == "" {
			m["output"] = filepath.Join("runs", strings.SplitN(m["data"], "@", 2)[0])
		}
		return m
	}
	if len(a) == 0 || len(b) == 0 || a[0] != "train" || b[0] != "train" || len(a)%2 == 0 || len(b)%2 == 0 {
		return false
	}
	ma, mb := norm(a), norm(b)
	if len(ma) != len(mb) {
		return false
	}
	for k, v := range ma {
		if mb[k] != v {
			return false
		}
	}
	return true
}

var (
	testFunc  = regexp.MustCompile(`(?m)^func ((?:Test|Benchmark)\w*)\(`)
	envAssign = regexp.MustCompile(`^[A-Z_]+=`)
)

// checkGoTest checks that a 'go test PKG -run A|B [-bench C]' line names
// tests (or benchmarks) that PKG has: make test runs them.
func checkGoTest(t *testing.T, line string, w []string) {
	t.Helper()
	pkg, pattern := "", ""
	for i, a := range w {
		switch {
		case strings.HasPrefix(a, "./"):
			pkg = a
		case a == "-run" && i+1 < len(w) && pattern == "":
			pattern = w[i+1]
		case a == "-bench" && i+1 < len(w):
			pattern = w[i+1]
		}
	}
	if pkg == "" || pattern == "" {
		t.Errorf("%q: want go test ./PKG -run NAMES", line)
		return
	}
	files, _ := filepath.Glob(filepath.Join("../..", pkg, "*_test.go"))
	var names []string
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, m := range testFunc.FindAllStringSubmatch(string(b), -1) {
			names = append(names, m[1])
		}
	}
	for _, p := range strings.Split(pattern, "|") {
		found := false
		for _, n := range names {
			found = found || strings.HasPrefix(n, p)
		}
		if !found {
			t.Errorf("%q: %s has no test or benchmark %s", line, pkg, p)
		}
	}
}

// TestTrainingExamplesRun runs the training examples of README.md
// ("Training on a version") and docs/train.md as written, in order, where
// `make run` leaves them (the demo version in ./store, its model in
// ./runs/demo; TestMakeRunDemo checks what it says): each must exit 0.
// `make run` itself and a 'sieve train' identical to make run's are run by
// TestMakeRunDemo; 'go test' lines must name tests that exist (make test
// runs them); the examples listed in trainExamplesNotRun need what a test
// cannot have (a base checkpoint, the user's data, transformers).
func TestTrainingExamplesRun(t *testing.T) {
	m := runMakeRun(t)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/train.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := append(docShLines(t, string(readme), "## Training on a version"), docShLines(t, string(doc), "")...)
	done := map[string]bool{}
	var ran []string
	for _, l := range lines {
		if done[l] {
			continue
		}
		done[l] = true
		if _, ok := trainExamplesNotRun[l]; ok {
			continue
		}
		if l == "make run" {
			continue // TestMakeRunDemo
		}
		w, err := shellWords(l)
		if err != nil {
			t.Errorf("%q: %v", l, err)
			continue
		}
		for len(w) > 0 && envAssign.MatchString(w[0]) {
			w = w[1:] // an environment variable for go test
		}
		stdin := ""
		if len(w) > 2 && w[0] == "echo" && w[2] == "|" {
			stdin, w = w[1]+"\n", w[3:]
		}
		switch {
		case len(w) > 1 && w[0] == "go" && w[1] == "test":
			checkGoTest(t, l, w)
			continue
		case len(w) == 0 || w[0] != "sieve":
			t.Errorf("example %q is not a sieve command: run it here or list it in trainExamplesNotRun with the reason", l)
			continue
		case sameTraining(w[1:], m.train):
			continue // make run's training, run by TestMakeRunDemo
		}
		r, err := m.sieve(stdin, w[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		if r.code != 0 {
			t.Errorf("example %q: exit %d\n%s%s", l, r.code, r.stdout, r.stderr)
		}
		ran = append(ran, l)
	}
	t.Logf("ran %d of %d distinct example lines:\n%s", len(ran), len(done), strings.Join(ran, "\n"))
	for l := range trainExamplesNotRun {
		if !done[l] {
			t.Errorf("trainExamplesNotRun lists %q, which no longer is an example: remove it", l)
		}
	}
}
