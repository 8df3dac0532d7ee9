package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEExamplesRun runs the README's command examples as written,
// in order, where `make run` leaves them (the demo committed into
// ./store): the short tour's inspect commands and the Versions block.
// Each must exit 0. (The recipe example is parsed as written by
// pipelines/recipe's TestREADMERecipeParses; the runner, training,
// Python and SQL examples need what this test cannot assume.)
func TestREADMEExamplesRun(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cmds := readmeCommands(t, string(b), "## A short tour", "### Versions")
	if len(cmds) < 8 {
		t.Fatalf("found %d README commands: %q", len(cmds), cmds)
	}
	// The layout of the checkout, where the README's paths start.
	dir := t.TempDir()
	root, _ := filepath.Abs("../..")
	for _, d := range []string{"pipelines", "datasets"} {
		if err := os.Symlink(filepath.Join(root, d), filepath.Join(dir, d)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) result {
		t.Helper()
		cmd := exec.Command(sieveBin, args...)
		cmd.Dir = dir
		r, err := runCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := run("run", "pipelines/recipes/demo.yaml"); r.code != 0 { // what make run does
		t.Fatalf("demo run: exit %d: %s", r.code, r.stderr)
	}
	firstRun := -1 // the Versions block's first command: the demo again
	for i, c := range cmds {
		if c[1] == "run" && firstRun < 0 {
			firstRun = i
		}
	}
	for i, c := range cmds {
		r := run(c[1:]...)
		if r.code != 0 {
			t.Fatalf("README command %q: exit %d: %s%s", strings.Join(c, " "), r.code, r.stdout, r.stderr)
		}
		if c[1] == "report" && !strings.Contains(r.stdout, "report: store/demo/v1/report/index.html") {
			t.Errorf("%q printed %q, want the report's path", strings.Join(c, " "), r.stdout)
		}
		if i == firstRun && !strings.Contains(r.stdout, "demo@v1 is up to date") {
			t.Errorf("%q printed %q, want demo@v1 up to date", strings.Join(c, " "), r.stdout)
		}
	}
}

var comment = regexp.MustCompile(`\s+#.*$`)

// readmeCommands returns the sieve command lines of the sh blocks
// following each heading (up to the next heading), split into words.
func readmeCommands(t *testing.T, readme string, headings ...string) [][]string {
	var out [][]string
	for _, h := range headings {
		i := strings.Index(readme, "\n"+h+"\n")
		if i < 0 {
			t.Fatalf("README has no heading %q", h)
		}
		sec := readme[i+len(h)+2:]
		if j := strings.Index(sec, "\n#"); j >= 0 {
			sec = sec[:j]
		}
		for _, blk := range strings.Split(sec, "```sh\n")[1:] {
			blk = blk[:strings.Index(blk, "```")]
			for _, line := range strings.Split(blk, "\n") {
				line = strings.TrimSpace(comment.ReplaceAllString(line, ""))
				if line == "" {
					continue
				}
				w := strings.Fields(line)
				if w[0] != "sieve" {
					t.Fatalf("README line %q is not a sieve command", line)
				}
				out = append(out, w)
			}
		}
	}
	return out
}
