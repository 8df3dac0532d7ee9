package datasets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// RenderCard writes a version's dataset card: a README.md in the Hugging
// Face format, YAML front matter declaring the train and test data files
// and features (so `datasets.load_dataset` on the directory finds them),
// then a human summary of sources, licenses and the funnel.
func RenderCard(m *Manifest) []byte {
	var b bytes.Buffer
	b.WriteString("---\n")
	licenses := map[string]bool{}
	var sources []string
	seenSrc := map[string]bool{}
	for _, in := range m.Inputs {
		if !seenSrc[in.Source] {
			seenSrc[in.Source] = true
			sources = append(sources, in.Source)
		}
	}
	for _, src := range recipeSources(m) {
		if src.License != "" {
			licenses[src.License] = true
		}
	}
	if len(licenses) == 1 {
		for l := range licenses {
			fmt.Fprintf(&b, "license: %s\n", yamlString(l))
		}
	} else if len(licenses) > 1 {
		b.WriteString("license: other\n")
	}
	fmt.Fprintf(&b, "pretty_name: %s\n", yamlString(m.Name))
	b.WriteString("tags:\n- sieve\n- sft\n- conversational\n")
	b.WriteString("task_categories:\n- text-generation\n")
	b.WriteString("configs:\n- config_name: default\n  data_files:\n")
	for _, sp := range m.Splits {
		fmt.Fprintf(&b, "  - split: %s\n    path: data/%s-*\n", sp.Name, sp.Name)
	}
	b.WriteString("dataset_info:\n  features:\n")
	b.WriteString("  - name: id\n    dtype: string\n")
	b.WriteString("  - name: messages\n    list:\n    - name: role\n      dtype: string\n    - name: content\n      dtype: string\n")
	for _, f := range [][2]string{{"source", "string"}, {"source_file", "string"}, {"source_index", "int64"}, {"license", "string"},
		{"dup_cluster", "string"}, {"quality", "float64"}, {"judge_score", "float64"}, {"judge", "string"},
		{"topic_id", "int32"}, {"topic_label", "string"}, {"topic_distance", "float32"}, {"meta", "string"}} {
		fmt.Fprintf(&b, "  - name: %s\n    dtype: %s\n", f[0], f[1])
	}
	b.WriteString("  splits:\n")
	for _, sp := range m.Splits {
		fmt.Fprintf(&b, "  - name: %s\n    num_bytes: %d\n    num_examples: %d\n", sp.Name, sp.Bytes, sp.Rows)
	}
	fmt.Fprintf(&b, "  download_size: %d\n  dataset_size: %d\n", m.Totals.Bytes, m.Totals.Bytes)
	b.WriteString("---\n\n")

	fmt.Fprintf(&b, "# %s %s\n\n", m.Name, m.Version)
	fmt.Fprintf(&b, "Supervised fine-tuning conversations curated by [sieve](https://github.com/sieve-data/sieve) %s on %s (runner: %s).\n\n", m.Sieve, m.CreatedAt, m.Runner)
	if m.ContentID != "" {
		fmt.Fprintf(&b, "Content id: `%s`.\n\n", m.ContentID)
	}
	b.WriteString("## Splits\n\n| split | rows | shards | bytes |\n|---|---:|---:|---:|\n")
	for _, sp := range m.Splits {
		fmt.Fprintf(&b, "| %s | %d | %d | %d |\n", sp.Name, sp.Rows, len(sp.Shards), sp.Bytes)
	}
	b.WriteString("\n## Lengths\n\nIn characters; p50 and p90 are estimated from power-of-two histograms.\n\n| split | part | mean | min | p50 | p90 | max |\n|---|---|---:|---:|---:|---:|---:|\n")
	for _, sp := range m.Splits {
		for _, part := range []struct {
			name string
			h    *Histogram
		}{{"conversation", &sp.Stats.Total}, {"prompt", &sp.Stats.Prompt}, {"response", &sp.Stats.Response}} {
			h := part.h
			fmt.Fprintf(&b, "| %s | %s | %.0f | %d | %.0f | %.0f | %d |\n", sp.Name, part.name, h.Mean(), h.Min, h.Quantile(0.5), h.Quantile(0.9), h.Max)
		}
		if sp.Stats.Samples > 0 {
			fmt.Fprintf(&b, "| %s | messages per sample | %.2f | | | | |\n", sp.Name, float64(sp.Stats.Messages)/float64(sp.Stats.Samples))
		}
	}
	b.WriteString("\n## Sources\n\n| source | license | files | records read | samples | dead letters |\n|---|---|---:|---:|---:|---:|\n")
	type agg struct{ files, rec, samples, dead int64 }
	per := map[string]*agg{}
	for _, in := range m.Inputs {
		a := per[in.Source]
		if a == nil {
			a = &agg{}
			per[in.Source] = a
		}
		a.files++
		a.rec += in.Records
		a.samples += in.Samples
		a.dead += in.Dead
	}
	lic := map[string]string{}
	for _, src := range recipeSources(m) {
		lic[src.Name] = src.License
	}
	for _, s := range sources {
		a := per[s]
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d |\n", s, orDash(lic[s]), a.files, a.rec, a.samples, a.dead)
	}
	b.WriteString("\n## Funnel\n\n```\n")
	m.Funnel.WriteTable(&b)
	b.WriteString("```\n\n")
	fmt.Fprintf(&b, "Dead letters (records that could not be read) are in `%s`; samples dropped by a stage, with the stage, reason and detail, in `%s`.\n\n", m.DeadLetters, m.Rejected)
	b.WriteString("## Load it\n\n```python\nfrom datasets import load_dataset\nds = load_dataset(\"parquet\", data_dir=\"data\")  # or load_dataset(\"path/to/this/directory\")\n```\n\n")
	b.WriteString("```sql\n-- DuckDB\nSELECT count(*) FROM 'data/train-*.parquet';\n```\n\n")
	fmt.Fprintf(&b, "```sh\nsieve train --data %s@%s\n```\n", m.Name, m.Version)
	return b.Bytes()
}

type cardSource struct {
	Name    string `json:"name"`
	License string `json:"license"`
}

func recipeSources(m *Manifest) []cardSource {
	var r struct {
		Sources []cardSource `json:"sources"`
	}
	_ = json.Unmarshal(m.Recipe, &r)
	return r.Sources
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// yamlString quotes s for YAML when it is not a plain safe scalar.
func yamlString(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '.' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0 {
		return s
	}
	return fmt.Sprintf("%q", s)
}
