package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sieve-data/sieve/datasets"
)

// The demo's training runs on OpenBLAS, as `make run` builds sieve where
// libopenblas is installed: about 40 s here, against about 4 minutes with
// the pure-Go kernels of the plain test binary. These tests build that
// binary once and are skipped where OpenBLAS does not link.
var (
	blasOnce       sync.Once
	blasBin        string
	blasSkip       string
	blasBuildError error
)

// openBLASSieve returns sieve built with -tags openblas, or skips the test
// where the Makefile's HAVE_OPENBLAS check fails.
func openBLASSieve(t *testing.T) string {
	t.Helper()
	blasOnce.Do(func() {
		cc := os.Getenv("CC")
		if cc == "" {
			cc = "cc"
		}
		cgo, _ := exec.Command("go", "env", "CGO_ENABLED").Output()
		check := exec.Command(cc, "-x", "c", "-", "-lopenblas", "-o", os.DevNull)
		check.Stdin = strings.NewReader("#include <cblas.h>\nint main(void){openblas_set_num_threads(1);return 0;}\n")
		if strings.TrimSpace(string(cgo)) != "1" || check.Run() != nil {
			blasSkip = "no cgo or libopenblas does not link (apt-get install libopenblas-dev): the demo's training would take minutes on the pure-Go kernels"
			return
		}
		start := time.Now()
		blasBin = filepath.Join(filepath.Dir(sieveBin), "sieve-openblas")
		// -s -w: no symbol table or DWARF, a faster link (behaviour unchanged).
		build := exec.Command("go", "build", "-tags", "openblas", "-ldflags=-s -w", "-o", blasBin, ".")
		if out, err := build.CombinedOutput(); err != nil {
			blasBuildError = fmt.Errorf("go build -tags openblas: %v\n%s", err, out)
		}
		fmt.Fprintf(os.Stderr, "built sieve with OpenBLAS in %s\n", time.Since(start).Round(time.Second))
	})
	if blasBuildError != nil {
		t.Fatal(blasBuildError)
	}
	if blasSkip != "" {
		t.Skip(blasSkip)
	}
	return blasBin
}

// A makeRun is the Makefile's run target, run as written in a copy of the
// checkout's layout (pipelines, datasets and train linked; store and runs
// written there).
type makeRun struct {
	dir, bin string
	// cmds are the target's sieve commands (arguments after the binary),
	// outs their results, in order; train is the training command and
	// trainTime the time it took.
	cmds      [][]string
	outs      []result
	train     []string
	trainTime time.Duration
}

var (
	makeRunOnce sync.Once
	makeRunRes  *makeRun
	makeRunErr  error
)

// runMakeRun runs the Makefile's run target once for the package's tests.
func runMakeRun(t *testing.T) *makeRun {
	t.Helper()
	bin := openBLASSieve(t)
	makeRunOnce.Do(func() {
		makeRunRes, makeRunErr = doMakeRun(bin, "../../Makefile")
	})
	if makeRunErr != nil {
		t.Fatal(makeRunErr)
	}
	return makeRunRes
}

func doMakeRun(bin, makefile string) (*makeRun, error) {
	b, err := os.ReadFile(makefile)
	if err != nil {
		return nil, err
	}
	cmds, err := makeRunCommands(string(b))
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(sieveBin), "make-run")
	if err != nil {
		return nil, err
	}
	root, _ := filepath.Abs("../..")
	for _, d := range []string{"pipelines", "datasets", "train"} {
		if err := os.Symlink(filepath.Join(root, d), filepath.Join(dir, d)); err != nil {
			return nil, err
		}
	}
	m := &makeRun{dir: dir, bin: bin, cmds: cmds}
	for _, c := range cmds {
		start := time.Now()
		r, err := m.sieve("", c...)
		if err != nil {
			return nil, err
		}
		m.outs = append(m.outs, r)
		if r.code != 0 {
			return nil, fmt.Errorf("make run: sieve %s: exit %d\n%s%s", strings.Join(c, " "), r.code, r.stdout, r.stderr)
		}
		if c[0] == "train" {
			m.train, m.trainTime = c, time.Since(start)
		}
	}
	if m.train == nil {
		return nil, fmt.Errorf("make run trains nothing: %q", cmds)
	}
	return m, nil
}

// sieve runs the binary in the layout, with stdin.
func (m *makeRun) sieve(stdin string, args ...string) (result, error) {
	cmd := exec.Command(m.bin, args...)
	cmd.Dir = m.dir
	cmd.Stdin = strings.NewReader(stdin)
	return runCommand(cmd)
}

// makeRunCommands returns the sieve commands of the Makefile's run target
// (the arguments after ./$(BIN)), continuation lines joined, $(STORE) and
// $(RUNS) replaced by their defaults; @echo lines are left out and any
// other line is an error.
func makeRunCommands(makefile string) ([][]string, error) {
	vars := map[string]string{}
	for _, v := range []string{"STORE", "RUNS"} {
		m := regexp.MustCompile(`(?m)^` + v + `\s*\?=\s*(\S+)\s*$`).FindStringSubmatch(makefile)
		if m == nil {
			return nil, fmt.Errorf("Makefile: no default for %s", v)
		}
		vars["$("+v+")"] = m[1]
	}
	i := strings.Index(makefile, "\nrun:")
	if i < 0 {
		return nil, fmt.Errorf("Makefile: no run target")
	}
	lines := strings.Split(makefile[i+1:], "\n")[1:]
	var joined []string
	for j := 0; j < len(lines) && strings.HasPrefix(lines[j], "\t"); j++ {
		l := strings.TrimSpace(lines[j])
		for strings.HasSuffix(l, "\\") && j+1 < len(lines) {
			j++
			l = strings.TrimSpace(strings.TrimSuffix(l, "\\")) + " " + strings.TrimSpace(lines[j])
		}
		joined = append(joined, l)
	}
	var cmds [][]string
	for _, l := range joined {
		if strings.HasPrefix(l, "@echo ") {
			continue
		}
		for k, v := range vars {
			l = strings.ReplaceAll(l, k, v)
		}
		w, err := shellWords(l)
		if err != nil {
			return nil, fmt.Errorf("Makefile run: %q: %v", l, err)
		}
		if len(w) < 2 || w[0] != "./$(BIN)" {
			return nil, fmt.Errorf("Makefile run: %q is not a sieve command (teach TestMakeRunDemo what it does)", l)
		}
		cmds = append(cmds, w[1:])
	}
	if len(cmds) == 0 {
		return nil, fmt.Errorf("Makefile: the run target has no commands")
	}
	return cmds, nil
}

// shellWords splits a command line into words as sh does for lines
// without expansions: blanks separate words, single and double quotes
// group (a backslash escapes " and \ inside double quotes and any
// character outside quotes).
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	in := false // inside a word
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unclosed '")
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
			in = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				w.WriteByte(s[i])
			}
			if i == len(s) {
				return nil, fmt.Errorf("unclosed \"")
			}
			in = true
		case c == '\\' && i+1 < len(s):
			i++
			w.WriteByte(s[i])
			in = true
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words, nil
}

// flagValue returns the value of --name in args ("" if absent).
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// logRecord is a line of a run's log.jsonl.
type logRecord struct {
	Step     int      `json:"step"`
	Loss     *float64 `json:"loss"`
	EvalLoss *float64 `json:"eval_loss"`
}

func readLog(t *testing.T, dir string) []logRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "log.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []logRecord
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r logRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("log.jsonl: %v: %s", err, l)
		}
		out = append(out, r)
	}
	return out
}

func evalLosses(log []logRecord) []float64 {
	var out []float64
	for _, r := range log {
		if r.EvalLoss != nil {
			out = append(out, *r.EvalLoss)
		}
	}
	return out
}

// lastTrainLoss is the "train loss" of the summary's last eval line:
// the mean loss of the steps of the last epoch.
var lastTrainLoss = regexp.MustCompile(`train loss (\d+\.\d+)\s*\n[^\n]*saved `)

// words are the lower-cased runs of letters of s.
func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) })
}

// TestMakeRunDemo runs the Makefile's run target as written (its exact
// training settings and prompts, parsed from the Makefile so that they
// cannot drift) and checks that the model it trains says something
// recognisable, which the settings before this test did not (train loss
// 4.88 after 8 epochs; gibberish for a prompt of no training sample):
//
//   - the last epoch's train loss is below 0.5 (it memorises its data);
//   - the first prompt it is asked is a question of the train split, and
//     the reply starts with that sample's answer, its first 20 words
//     exactly, and at least 90% of the reply's letters are in words of
//     the train split's text (the settings before: 56-58%);
//   - the untrained model (the same command with --max-steps 1: the same
//     tokenizer and initial weights, and its one update has learning
//     rate 0 under the warmup, so its eval loss stays the initial one)
//     answers the same prompt with under half of its letters in words of
//     the train split's text (28% here), and not with the answer.
func TestMakeRunDemo(t *testing.T) {
	m := runMakeRun(t)
	t.Logf("make run trained in %s: sieve %s", m.trainTime.Round(time.Second), strings.Join(m.train, " "))
	var trainOut string
	var prompts []string
	for i, c := range m.cmds {
		switch c[0] {
		case "train":
			trainOut = m.outs[i].stdout
		case "generate":
			prompts = append(prompts, c[len(c)-1])
		}
	}
	if mm := lastTrainLoss.FindStringSubmatch(trainOut); mm == nil {
		t.Errorf("no final train loss in:\n%s", trainOut)
	} else if loss, _ := strconv.ParseFloat(mm[1], 64); loss > 0.5 {
		t.Errorf("make run's final train loss is %.4f, want below 0.5 (a model that has learnt its data):\n%s", loss, trainOut)
	}
	if len(prompts) == 0 {
		t.Fatal("make run generates nothing")
	}
	prompt := prompts[0]
	output := flagValue(m.train, "output")
	if output == "" || flagValue(m.train, "store") == "" || flagValue(m.train, "warmup-steps") == "" {
		t.Fatalf("make run's training needs --output, --store and --warmup-steps (the untrained model below relies on the warmup): %q", m.train)
	}

	// The train split's text and the answer to the prompt.
	shards, _ := filepath.Glob(filepath.Join(m.dir, flagValue(m.train, "store"), "demo", "v*", "data", "train-*.parquet"))
	if len(shards) == 0 {
		t.Fatal("no train shards of demo")
	}
	dict := map[string]bool{}
	answer := ""
	for _, f := range shards {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		samples, err := datasets.ReadShard(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range samples {
			for _, msg := range s.Messages {
				for _, w := range words(msg.Content) {
					dict[w] = true
				}
			}
			if len(s.Messages) >= 2 && s.Messages[0].Role == "user" && s.Messages[0].Content == prompt && s.Messages[1].Role == "assistant" {
				answer = s.Messages[1].Content
			}
		}
	}
	// share is the fraction of the letters of a reply that are in words
	// of the train split (by letters, so that a made-up word counts for
	// its length), and its number of words.
	share := func(reply string) (float64, int) {
		w := words(reply)
		in, all := 0, 0
		for _, x := range w {
			n := utf8.RuneCountInString(x)
			all += n
			if dict[x] {
				in += n
			}
		}
		return float64(in) / float64(max(1, all)), len(w)
	}

	// The untrained model: the same command, one update at learning rate 0.
	untrained := append(slices.Clone(m.train), "--max-steps", "1")
	untrained[slices.Index(untrained, output)] = output + "-untrained"
	if r, err := m.sieve("", untrained...); err != nil || r.code != 0 {
		t.Fatalf("untrained run: %v %+v", err, r)
	}
	full, zero := evalLosses(readLog(t, filepath.Join(m.dir, output))), evalLosses(readLog(t, filepath.Join(m.dir, output+"-untrained")))
	if len(zero) != 2 || zero[0] != full[0] || zero[1] != zero[0] {
		t.Errorf("untrained run's eval losses %v, want twice the trained run's initial %v (the same initial weights, left unchanged)", zero, full[0])
	}

	gen := slices.Clone(m.cmds[slices.IndexFunc(m.cmds, func(c []string) bool { return c[0] == "generate" })])
	reply := m.outs[slices.IndexFunc(m.cmds, func(c []string) bool { return c[0] == "generate" })].stdout
	gen[slices.Index(gen, flagValue(gen, "model"))] = output + "-untrained"
	r0, err := m.sieve("", gen...)
	if err != nil || r0.code != 0 {
		t.Fatalf("generate from the untrained model: %v %+v", err, r0)
	}
	s1, n1 := share(reply)
	s0, n0 := share(r0.stdout)
	t.Logf("prompt %q\ntrained (%d words, %.0f%% of the letters in words of the train split): %q\nuntrained (%d words, %.0f%%): %q", prompt, n1, 100*s1, reply, n0, 100*s0, r0.stdout)
	if answer == "" {
		t.Errorf("make run's first prompt %q is not the question of a train-split sample: the demo model memorises its data and answers only those (README.md)", prompt)
	} else if a, w := words(answer), words(reply); len(a) < 20 || len(w) < 20 || !slices.Equal(a[:20], w[:20]) {
		t.Errorf("make run's model does not reply with the training answer:\n got: %s\nwant: %s", reply, answer)
	}
	if s1 < 0.9 || n1 < 20 {
		t.Errorf("make run's model replied with %d words, %.0f%% of the letters in words of its data: want at least 20 words and 90%%", n1, 100*s1)
	}
	if s0 >= 0.5 || (answer != "" && strings.HasPrefix(strings.TrimSpace(r0.stdout), answer[:20])) {
		t.Errorf("the untrained model replied with %.0f%% of the letters in words of the data (want under 50%%): the test cannot tell training from none", 100*s0)
	}
}
