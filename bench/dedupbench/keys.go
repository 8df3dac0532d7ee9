package main

// The -keys mode: which dedup key (conversation, prompt, response,
// turns) merges which planted pairs of SFT samples.
//
//	go run ./bench/dedupbench -keys -alpaca /work/shared/data/alpaca_eval
//
// Sets of pairs, built from alpaca_eval (805 instructions, each answered
// by every generator file) or, without -alpaca, from chatgen records:
//
//   - paraphrase (should be dropped): one generator's answer under the
//     instruction and under a paraphrase of it (1 to 3 seeded operations:
//     a prefix such as "Can you", a suffix such as " Thanks!" or
//     " (variant 3)", synonyms, clauses or sentences reordered);
//   - paraphrase_long (should be dropped): the same with a long prompt
//     (the instruction followed by a reference passage, another
//     generator's answer);
//   - one_prompt (should be kept): the generators' different answers to
//     one instruction, every pair;
//   - one_prompt_long (should be kept): the reported failure, a long
//     prompt (the instruction and a reference passage) with short
//     different answers (the first sentence of each other generator's
//     answer), every pair;
//   - one_answer (should be kept): pairs of different instructions with
//     one short answer ("Positive.", "Sports and Outdoors.", …), as
//     classification data has.
//
// Each set is one corpus run through the stage's own code: a
// dedup.Sketcher per key (signature and verification payload), band keys
// (OptimalBands at the threshold, default weights), then dedup.Cluster
// (through dedup.ClusterInMemory), the function the stage's local mode
// calls: candidate edges of each bucket, verification, union-find. A pair
// counts as merged when its two samples end in one
// component. Exact dedup is scored too (equal dedup.ExactKey).

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"

	"github.com/sieve-data/sieve/bench/chatgen"
	"github.com/sieve-data/sieve/bench/dedupbench/corpus"
	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/dedup"
)

// keySet is a corpus of samples and the planted pairs to score on it.
type keySet struct {
	name    string
	want    string // "dropped" or "kept"
	samples [][]datasets.Message
	pairs   [][2]int
}

func (s *keySet) add(prompt, answer string) int {
	s.samples = append(s.samples, []datasets.Message{{Role: datasets.RoleUser, Content: prompt}, {Role: datasets.RoleAssistant, Content: answer}})
	return len(s.samples) - 1
}

// keySource is instructions and, per instruction, several different
// answers.
type keySource struct {
	label        string
	instructions []string
	answers      [][]string
}

func loadKeySource(alpaca string, n int) (keySource, error) {
	if alpaca != "" {
		ins, outs, err := corpus.LoadAlpacaEvalByInstruction(alpaca)
		if err != nil {
			return keySource{}, err
		}
		return keySource{label: "alpaca_eval", instructions: ins, answers: outs}, nil
	}
	// chatgen: record i's user turn, answered by the assistant turns of
	// records 5i … 5i+4.
	gc := chatgen.Config{N: 1 << 30, Seed: 1}
	turn := func(i int, role string) string {
		msgs, _ := chatgen.Record(gc, i)
		var parts []string
		for _, m := range msgs {
			if m.Role == role {
				parts = append(parts, m.Content)
			}
		}
		return strings.Join(parts, "\n")
	}
	src := keySource{label: "chatgen"}
	for i := 0; i < n; i++ {
		src.instructions = append(src.instructions, turn(i, datasets.RoleUser))
		var as []string
		for g := 0; g < 5; g++ {
			as = append(as, turn(5*i+g, datasets.RoleAssistant))
		}
		src.answers = append(src.answers, as)
	}
	return src, nil
}

var (
	paraPrefixes = []string{"Please ", "Can you ", "Could you please ", "I'd like you to do this: ", "Help me with this. "}
	paraSuffixes = []string{" Thanks!", " Please be concise.", " Answer in plain English.", " (variant %d)"}
	paraSynonyms = map[string]string{
		"write": "compose", "explain": "describe", "describe": "explain", "give": "provide", "list": "enumerate",
		"make": "create", "create": "make", "best": "top", "good": "great", "short": "brief", "some": "a few",
		"help": "assist", "find": "identify", "use": "utilize", "example": "instance", "important": "essential",
		"different": "various", "simple": "easy", "tell": "let me know", "show": "demonstrate", "big": "large",
		"ways": "methods", "how": "in what way", "why": "for what reason", "people": "folks", "about": "regarding",
	}
	wordRE     = regexp.MustCompile(`[A-Za-z']+`)
	sentenceRE = regexp.MustCompile(`[^.?!]+[.?!]+\s*`)
)

// paraphrase rewrites a prompt by 1 to 3 of the operations prefix,
// suffix, synonyms and reorder, chosen by r.
func paraphrase(r *rand.Rand, p string, i int) (out string, ops []string) {
	orig := p
	defer func() {
		if out == orig { // no synonym found, nothing to reorder
			out += fmt.Sprintf(" (variant %d)", i)
		}
	}()
	ops = []string{"prefix", "suffix", "synonyms", "reorder"}
	r.Shuffle(len(ops), func(a, b int) { ops[a], ops[b] = ops[b], ops[a] })
	ops = ops[:1+r.IntN(3)]
	slices.Sort(ops)
	for _, op := range ops {
		switch op {
		case "prefix":
			w := paraPrefixes[r.IntN(len(paraPrefixes))]
			if p != "" {
				p = strings.ToLower(p[:1]) + p[1:]
			}
			p = w + p
		case "suffix":
			s := paraSuffixes[r.IntN(len(paraSuffixes))]
			if strings.Contains(s, "%d") {
				s = fmt.Sprintf(s, i)
			}
			p = strings.TrimRight(p, " ") + s
		case "synonyms":
			// Replace up to two words that have a synonym.
			left := 2
			p = wordRE.ReplaceAllStringFunc(p, func(w string) string {
				if s, ok := paraSynonyms[strings.ToLower(w)]; ok && left > 0 && r.IntN(2) == 0 {
					left--
					return s
				}
				return w
			})
		case "reorder":
			// Move the last sentence first; a single sentence swaps its
			// clauses at the first comma.
			if ss := sentenceRE.FindAllString(p, -1); len(ss) >= 2 && len(strings.Join(ss, "")) == len(p) {
				last := strings.TrimSpace(ss[len(ss)-1])
				p = last + " " + strings.TrimSpace(strings.Join(ss[:len(ss)-1], ""))
			} else if k := strings.Index(p, ", "); k > 0 {
				p = strings.TrimRight(p[k+2:], ".?! ") + ", " + p[:k] + "."
			}
		}
	}
	return p, ops
}

// firstSentence is the first sentence of s, at most 30 words.
func firstSentence(s string) string {
	s = strings.TrimSpace(s)
	if m := sentenceRE.FindString(s); m != "" {
		s = m
	}
	w := strings.Fields(s)
	if len(w) > 30 {
		w = w[:30]
	}
	return strings.Join(w, " ")
}

var shortLabels = []string{"Positive.", "Negative.", "Yes.", "No.", "Sports and Outdoors.", "Home and Kitchen.", "True", "False", "Neutral", "Spam"}

// buildKeySets makes the planted sets from src, seeded by seed.
func buildKeySets(src keySource, seed uint64) []*keySet {
	r := rand.New(rand.NewPCG(seed, 0x6b657973))
	para := &keySet{name: "paraphrase", want: "dropped"}
	paraLong := &keySet{name: "paraphrase_long", want: "dropped"}
	one := &keySet{name: "one_prompt", want: "kept"}
	oneLong := &keySet{name: "one_prompt_long", want: "kept"}
	oneAns := &keySet{name: "one_answer", want: "kept"}
	for i, in := range src.instructions {
		as := src.answers[i]
		g := i % len(as)
		p2, _ := paraphrase(r, in, i)
		para.pairs = append(para.pairs, [2]int{para.add(in, as[g]), para.add(p2, as[g])})

		// A long prompt: the instruction and, as a reference passage, the
		// answer of the generator after g.
		ref := as[(g+1)%len(as)]
		long := in + "\n\nReference:\n" + ref
		lp2, _ := paraphrase(r, in, i)
		paraLong.pairs = append(paraLong.pairs, [2]int{paraLong.add(long, as[g]), paraLong.add(lp2+"\n\nReference:\n"+ref, as[g])})

		idx := make([]int, len(as))
		for k, a := range as {
			idx[k] = one.add(in, a)
		}
		for x := 0; x < len(idx); x++ {
			for y := x + 1; y < len(idx); y++ {
				one.pairs = append(one.pairs, [2]int{idx[x], idx[y]})
			}
		}

		// Short different answers to one long prompt: the first sentence
		// of every generator's answer but the reference's.
		var short []int
		seen := map[string]bool{}
		for k, a := range as {
			if k == (g+1)%len(as) {
				continue
			}
			fs := firstSentence(a)
			if fs == "" || seen[strings.ToLower(fs)] {
				continue // identical answers are true duplicates, not a planted pair
			}
			seen[strings.ToLower(fs)] = true
			short = append(short, oneLong.add(in+"\n\nClassify or summarise the passage below in one sentence.\n\n"+ref, fs))
		}
		for x := 0; x < len(short); x++ {
			for y := x + 1; y < len(short); y++ {
				oneLong.pairs = append(oneLong.pairs, [2]int{short[x], short[y]})
			}
		}

		if i%2 == 1 {
			lab := shortLabels[r.IntN(len(shortLabels))]
			oneAns.pairs = append(oneAns.pairs, [2]int{oneAns.add(src.instructions[i-1], lab), oneAns.add(in, lab)})
		}
	}
	return []*keySet{para, paraLong, one, oneLong, oneAns}
}

// keyMerged returns, per pair of s, whether fuzzy dedup under mode and
// verify at threshold t puts both samples in one cluster, and the
// candidate edge count.
func keyMerged(s *keySet, tc dedup.TextConfig, mode dedup.KeyMode, verify string, t float64, edges string) ([]bool, int) {
	bands, rows := dedup.OptimalBands(t, tc.Perms(), dedup.DefaultFPWeight, dedup.DefaultFNWeight)
	// dedup.ClusterInMemory: the clustering the fuzzy_dedup stage runs
	// in local mode (dedup.Cluster), node keys in index order as ids sort.
	k := tc.NewSketcher(mode, verify)
	var nodes []dedup.Node
	for i, m := range s.samples {
		sig, pl, ok := k.Sketch(m)
		if !ok {
			continue
		}
		nodes = append(nodes, dedup.Node{Key: sampleName(i), Bands: dedup.AppendBandKeys(nil, sig, bands, rows), Payload: pl})
	}
	res, err := dedup.ClusterInMemory(nodes, dedup.ClusterConfig{Threshold: t, Verify: verify, Edges: edges, MaxBucketPairs: maxBucketPairs})
	if err != nil {
		fail(err)
	}
	label := func(i int) string {
		if l, ok := res.Roots[sampleName(i)]; ok {
			return l
		}
		return sampleName(i)
	}
	out := make([]bool, len(s.pairs))
	for i, p := range s.pairs {
		out[i] = label(p[0]) == label(p[1])
	}
	return out, len(res.Candidates)
}

func sampleName(i int) string { return fmt.Sprintf("s%07d", i) }

// exactMerged is keyMerged for exact dedup: equal dedup.ExactKey.
func exactMerged(s *keySet, mode dedup.KeyMode) []bool {
	out := make([]bool, len(s.pairs))
	for i, p := range s.pairs {
		out[i] = dedup.ExactKey(s.samples[p[0]], mode) == dedup.ExactKey(s.samples[p[1]], mode)
	}
	return out
}

// promptJaccard is the mean and the share ≥ t of the prompts' Jaccard
// over a set's pairs (how much the paraphrases changed).
func promptJaccard(s *keySet, tc dedup.TextConfig, t float64) (mean, atLeast float64) {
	for _, p := range s.pairs {
		a := dedup.SortedSet(tc.Shingles(dedup.SampleText(s.samples[p[0]], dedup.KeyPrompt)))
		b := dedup.SortedSet(tc.Shingles(dedup.SampleText(s.samples[p[1]], dedup.KeyPrompt)))
		j := dedup.SortedJaccard(a, b)
		mean += j
		if j >= t {
			atLeast++
		}
	}
	n := float64(max(len(s.pairs), 1))
	return mean / n, atLeast / n
}

// runKeys prints one dedup_keys line per set, stage, key and verification,
// and a dedup_keys_summary line per stage, key and verification.
func runKeys(alpaca string, tc dedup.TextConfig, thresholds []float64, edges string, seed uint64, n int) error {
	src, err := loadKeySource(alpaca, n)
	if err != nil {
		return err
	}
	sets := buildKeySets(src, seed)
	for _, s := range sets {
		line := map[string]any{"bench": "dedup_keys_set", "source": src.label, "set": s.name, "want": s.want,
			"samples": len(s.samples), "pairs": len(s.pairs), "seed": seed}
		if strings.HasPrefix(s.name, "paraphrase") {
			m, at := promptJaccard(s, tc, 0.7)
			line["prompt_jaccard_mean"], line["prompt_jaccard_ge_0.7"] = round4(m), round4(at)
		}
		emit(line)
	}
	type cell struct{ stage, verify string }
	cells := []cell{{"exact_dedup", ""}, {"fuzzy_dedup", dedup.VerifyExact}, {"fuzzy_dedup", dedup.VerifyEstimate}}
	for _, t := range thresholds {
		for _, c := range cells {
			if c.stage == "exact_dedup" && t != thresholds[0] {
				continue
			}
			for _, mode := range dedup.KeyModes {
				sum := map[string]any{"bench": "dedup_keys_summary", "source": src.label, "stage": c.stage, "key": string(mode), "seed": seed}
				if c.stage == "fuzzy_dedup" {
					sum["verify"], sum["threshold"], sum["edges"] = c.verify, t, edges
				}
				for _, s := range sets {
					var merged []bool
					cands := 0
					if c.stage == "exact_dedup" {
						merged = exactMerged(s, mode)
					} else {
						merged, cands = keyMerged(s, tc, mode, c.verify, t, edges)
					}
					nm := 0
					for _, m := range merged {
						if m {
							nm++
						}
					}
					rate := float64(nm) / float64(max(len(merged), 1))
					metric := "false_merge_rate"
					if s.want == "dropped" {
						metric = "recall"
					}
					line := map[string]any{"bench": "dedup_keys", "source": src.label, "stage": c.stage, "key": string(mode),
						"set": s.name, "want": s.want, "pairs": len(merged), "merged": nm, metric: round4(rate), "value": round4(rate), "unit": metric}
					if c.stage == "fuzzy_dedup" {
						line["verify"], line["threshold"], line["edges"], line["candidates"] = c.verify, t, edges, cands
					}
					emit(line)
					sum[s.name] = round4(rate)
				}
				emit(sum)
			}
		}
	}
	return nil
}
