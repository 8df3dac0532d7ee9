package topics

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/sieve-data/sieve/datasets"
)

// plantedVocab are distinct vocabularies, one per planted topic.
var plantedVocab = [][]string{
	strings.Fields("recipe chicken bake oven flour butter garlic onion simmer roast sauce pepper dough skillet marinade broth vinegar tomato basil oregano casserole saute knead yeast pastry"),
	strings.Fields("galaxy telescope orbit planet nebula comet asteroid supernova gravity quasar eclipse lunar solar spectrum redshift cosmos meteor satellite jupiter saturn pulsar astronomer constellation photon exoplanet"),
	strings.Fields("python function compile variable pointer recursion array struct debugger syntax runtime lambda iterator thread mutex compiler interface module package library refactor unittest exception integer boolean"),
	strings.Fields("contract lawsuit plaintiff defendant statute court verdict appeal attorney tenant landlord liability clause jurisdiction testimony evidence judge jury settlement negligence copyright trademark patent lease subpoena"),
	strings.Fields("garden soil compost seedling prune tulip fertilizer mulch perennial orchid greenhouse weeds irrigation sprout harvest shrub hedge pollinator trowel germinate bulb lawn cactus succulent hydrangea"),
	strings.Fields("guitar melody chord rhythm tempo piano violin symphony orchestra lyrics harmony drum bass chorus verse octave concert album singer composer jazz sonata cello trumpet metronome"),
	strings.Fields("marathon sprint muscle stretch workout cardio treadmill dumbbell squat protein stamina yoga pilates cycling swim endurance calorie pushup plank trainer gym jogging hamstring lunge kettlebell"),
	strings.Fields("invoice budget ledger revenue expense payroll audit dividend equity asset mortgage interest loan credit portfolio stock bond inflation pension tax deduction accountant spreadsheet profit liquidity"),
}

// commonWords appear in every topic.
var commonWords = strings.Fields("question help explain simple detail example quick short guide idea please best good new basic")

// plantedDoc is one text of topic t drawn from rng.
func plantedDoc(rng *rand.Rand, t int) string {
	v := plantedVocab[t]
	n := 6 + rng.IntN(5)
	var w []string
	for range n {
		w = append(w, v[rng.IntN(len(v))])
	}
	for range 2 + rng.IntN(3) {
		w = append(w, commonWords[rng.IntN(len(commonWords))])
	}
	rng.Shuffle(len(w), func(i, j int) { w[i], w[j] = w[j], w[i] })
	return "Can you " + strings.Join(w, " ") + "?"
}

func sampleOf(prompt, response string) datasets.Sample {
	m := []datasets.Message{{Role: datasets.RoleUser, Content: prompt}, {Role: datasets.RoleAssistant, Content: response}}
	return datasets.Sample{ID: datasets.ContentID(m), Messages: m}
}

// plantedCorpus has perTopic samples of each of the first k topics and
// their true topics.
func plantedCorpus(k, perTopic int, seed uint64) ([]datasets.Sample, []int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var ss []datasets.Sample
	var truth []int
	for i := range k * perTopic {
		t := i % k
		ss = append(ss, sampleOf(plantedDoc(rng, t), fmt.Sprintf("answer %d", i)))
		truth = append(truth, t)
	}
	return ss, truth
}

// purity is the share of points whose cluster's majority class is their
// class.
func purity(labels []int32, truth []int) float64 {
	counts := map[[2]int]int{}
	for i, l := range labels {
		counts[[2]int{int(l), truth[i]}]++
	}
	best := map[int]int{}
	for k, c := range counts {
		best[k[0]] = max(best[k[0]], c)
	}
	s := 0
	for _, c := range best {
		s += c
	}
	return float64(s) / float64(len(labels))
}

// ari is the adjusted Rand index of two labelings (Hubert and Arabie).
func ari(labels []int32, truth []int) float64 {
	comb := func(n int) float64 { return float64(n) * float64(n-1) / 2 }
	cells := map[[2]int]int{}
	a, b := map[int]int{}, map[int]int{}
	for i, l := range labels {
		cells[[2]int{int(l), truth[i]}]++
		a[int(l)]++
		b[truth[i]]++
	}
	var idx, sa, sb float64
	for _, c := range cells {
		idx += comb(c)
	}
	for _, c := range a {
		sa += comb(c)
	}
	for _, c := range b {
		sb += comb(c)
	}
	exp := sa * sb / comb(len(labels))
	maxIdx := (sa + sb) / 2
	if maxIdx == exp {
		return 1
	}
	return (idx - exp) / (maxIdx - exp)
}

// nmi is the normalised mutual information (arithmetic mean of the
// entropies).
func nmi(labels []int32, truth []int) float64 {
	n := float64(len(labels))
	cells := map[[2]int]float64{}
	a, b := map[int]float64{}, map[int]float64{}
	for i, l := range labels {
		cells[[2]int{int(l), truth[i]}]++
		a[int(l)]++
		b[truth[i]]++
	}
	var mi, ha, hb float64
	for k, c := range cells {
		mi += c / n * math.Log(c*n/(a[k[0]]*b[k[1]]))
	}
	for _, c := range a {
		ha -= c / n * math.Log(c/n)
	}
	for _, c := range b {
		hb -= c / n * math.Log(c/n)
	}
	if ha+hb == 0 {
		return 1
	}
	return 2 * mi / (ha + hb)
}

// randomLabels assigns n points uniformly to k clusters.
func randomLabels(n, k int, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, 2))
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(rng.IntN(k))
	}
	return out
}

func itoa(i int) string     { return fmt.Sprint(i) }
func ftoa(x float64) string { return fmt.Sprintf("%.3f", x) }
