package synth

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"text/template"
)

//go:embed prompts/*.tmpl
var prompts embed.FS

// Template is one editable prompt: a Go text/template whose output is the
// user turn sent to the model. The defaults live in synth/prompts/ and
// are embedded; a task's config can point any of them at a file.
type Template struct {
	// Name is the template's name (the embedded file's base name without
	// .tmpl), e.g. "evol_deepen".
	Name string
	// Source is "embedded:prompts/NAME.tmpl" or the file path.
	Source string
	// Text is the template source; SHA256 its hex SHA-256, recorded in
	// each generated sample's provenance.
	Text   string
	SHA256 string

	t *template.Template
}

// Templates lists the names of the embedded templates.
func Templates() []string {
	ents, _ := fs.ReadDir(prompts, "prompts")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".tmpl"))
	}
	return out
}

// LoadTemplate reads template name from path, or the embedded default
// when path is "".
func LoadTemplate(name, path string) (*Template, error) {
	var b []byte
	var err error
	src := path
	if path == "" {
		src = "embedded:prompts/" + name + ".tmpl"
		b, err = prompts.ReadFile("prompts/" + name + ".tmpl")
		if err != nil {
			return nil, fmt.Errorf("synth: no embedded template %q (have %s)", name, strings.Join(Templates(), ", "))
		}
	} else if b, err = os.ReadFile(path); err != nil {
		return nil, fmt.Errorf("synth: template %s: %w", name, err)
	}
	t, err := template.New(name).Option("missingkey=error").Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("synth: template %s (%s): %w", name, src, err)
	}
	sum := sha256.Sum256(b)
	return &Template{Name: name, Source: src, Text: string(b), SHA256: hex.EncodeToString(sum[:]), t: t}, nil
}

// Render executes the template on data, trimming surrounding white space.
func (t *Template) Render(data any) (string, error) {
	var b bytes.Buffer
	if err := t.t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("synth: template %s (%s): %w", t.Name, t.Source, err)
	}
	return strings.TrimSpace(b.String()), nil
}

// probe is test data for a template: rendering it must succeed and its
// output must contain marker (the value of the field the task needs).
type probe struct {
	data   any
	marker string
	field  string
}

// loadTemplates loads the named templates, each from paths[name] or
// embedded, and checks that no unknown name is overridden and that each
// renders its probe and uses the field the task needs.
func loadTemplates(task string, paths map[string]string, probes map[string]probe) (map[string]*Template, error) {
	names := make([]string, 0, len(probes))
	for n := range probes {
		names = append(names, n)
	}
	slices.Sort(names)
	for n := range paths {
		if _, ok := probes[n]; !ok {
			return nil, fmt.Errorf("synth: %s: prompts.%s: unknown template (this task uses %s)", task, n, strings.Join(names, ", "))
		}
	}
	out := map[string]*Template{}
	for _, n := range names {
		t, err := LoadTemplate(n, paths[n])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", task, err)
		}
		p := probes[n]
		got, err := t.Render(p.data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", task, err)
		}
		if p.marker != "" && !strings.Contains(got, p.marker) {
			return nil, fmt.Errorf("synth: %s: template %s (%s) must use {{.%s}}", task, n, t.Source, p.field)
		}
		out[n] = t
	}
	return out, nil
}
