package report

import (
	"bytes"
	"context"
	"fmt"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/topics"
)

// Comparison is two versions' topic mixes on the first version's topics.
type Comparison struct {
	// Base is the reported version, Other the one compared with it
	// (NAME@vN each).
	Base, Other string
	// Method says how Other's samples were put on Base's topics.
	Method string
	// BaseTotal and OtherTotal are the rows counted in each version.
	BaseTotal, OtherTotal int64
	Rows                  []CompareRow
}

// CompareRow is one topic of Base in both versions.
type CompareRow struct {
	Topic                 int
	Label                 string
	BaseSize, OtherSize   int64
	BaseShare, OtherShare float64
}

// Compare puts a second version (dir: its directory) on the topics of
// the version d was collected from (baseDir): each of its samples is
// assigned with baseDir's topic model (topics/model.json, built-in
// embedder), or, for a model of another embedder, counted by its
// topic_label against the base's labels. The base needs a topics stage.
func Compare(ctx context.Context, d *Data, baseDir, otherDir string) (*Comparison, error) {
	if d.Topics == nil {
		return nil, fmt.Errorf("report: %s has no topics (no topics stage ran): nothing to compare topic mixes on", d.Ref)
	}
	om, err := ReadVersion(ctx, otherDir)
	if err != nil {
		return nil, err
	}
	c := &Comparison{Base: d.Ref, Other: om.Name + "@" + om.Version}
	counts := make([]int64, len(d.Topics.Topics))
	var model *topics.Model
	if raw, err := datasets.ReadFile(ctx, join(baseDir, TopicsModelFile)); err == nil {
		model, err = topics.Load(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("report: %s: %w", join(baseDir, TopicsModelFile), err)
		}
		if model.TFIDF == nil || model.K != len(counts) {
			model = nil
		}
	}
	byLabel := map[string]int{}
	for i, t := range d.Topics.Topics {
		byLabel[displayName(t)] = i
	}
	var unmatched int64
	if model != nil {
		c.Method = "each sample of " + c.Other + " assigned with the topic model of " + c.Base
	} else {
		c.Method = "samples of " + c.Other + " counted by topic_label against the labels of " + c.Base
	}
	err = eachSample(ctx, otherDir, om, func(s *datasets.Sample) error {
		c.OtherTotal++
		if model != nil {
			a, err := model.AssignSample(s)
			if err != nil {
				return fmt.Errorf("report: compare: %w", err)
			}
			counts[a.Topic]++
			return nil
		}
		if i, ok := byLabel[s.TopicLabel]; ok && s.TopicLabel != "" {
			counts[i]++
		} else {
			unmatched++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.BaseTotal = d.Topics.Total
	for i, t := range d.Topics.Topics {
		r := CompareRow{Topic: t.ID, Label: displayName(t), BaseSize: t.Size, BaseShare: t.Share, OtherSize: counts[i]}
		if c.OtherTotal > 0 {
			r.OtherShare = float64(counts[i]) / float64(c.OtherTotal)
		}
		c.Rows = append(c.Rows, r)
	}
	if unmatched > 0 {
		r := CompareRow{Topic: -1, Label: "(no matching topic)", OtherSize: unmatched}
		if c.OtherTotal > 0 {
			r.OtherShare = float64(unmatched) / float64(c.OtherTotal)
		}
		c.Rows = append(c.Rows, r)
	}
	d.Compare = c
	return c, nil
}
