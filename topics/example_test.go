package topics_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/topics"
)

// The flow a pipeline follows: fit on a bounded sample, save the model
// with the version, then per sample (in parallel, the model a side
// input) assign, annotate and gather stats; per topic, semantic dedup
// and a balancing plan; finally the report.
func Example() {
	var fitSample, all []datasets.Sample // read from the version
	ctx := context.Background()

	m, err := topics.Fit(ctx, fitSample, topics.Config{Field: topics.FieldPrompt, Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	var saved bytes.Buffer
	m.Save(&saved) // written next to the version's manifest
	m, _ = topics.Load(&saved)

	stats := make([]topics.TopicStats, m.K)
	byTopic := map[int32][]topics.DedupItem{}
	counts := make([]int64, m.K)
	for i := range all {
		s := &all[i]
		v := m.TFIDF.EmbedText(m.Field.Text(s), nil)
		a, _ := m.AssignVector(v) // = m.AssignSample(s)
		m.Annotate(s, a)
		stats[a.Topic].Add(s.ID, float64(a.Distance), 5)
		byTopic[a.Topic] = append(byTopic[a.Topic], topics.DedupItem{ID: s.ID, Vec: v, Quality: s.Quality})
		counts[a.Topic]++
	}
	for _, items := range byTopic {
		dups, _ := topics.SemDeDup(items, topics.DedupConfig{Threshold: 0.9, Keep: "quality"})
		for _, d := range dups {
			fmt.Println("drop", d.ID, "kept", d.Survivor)
		}
	}
	plan, _ := topics.NewPlan(counts, topics.BalanceConfig{Mode: "temperature", Temperature: 2, Fraction: 0.5, Seed: 1})
	for i := range all {
		if !plan.Keep(all[i].ID, *all[i].TopicID) {
			fmt.Println("balance drops", all[i].ID)
		}
	}
	report, _ := m.BuildReport(stats, nil)
	report.WriteJSON(&bytes.Buffer{})
}
