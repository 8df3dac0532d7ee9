package train

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/train/model"
	"github.com/sieve-data/sieve/train/tokenizer"
)

// writeVersion commits a dataset version with the given splits to a
// store under root, through the datasets API, and returns its ref.
func writeVersion(t *testing.T, root, name string, splits map[string][][]datasets.Message) string {
	t.Helper()
	ctx := context.Background()
	st := datasets.Store{Root: root}
	staging := st.NewStaging(name)
	if err := os.MkdirAll(filepath.Join(staging, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := &datasets.Manifest{Format: datasets.ManifestFormat, Name: name, Recipe: []byte("{}")}
	for _, split := range []string{"train", "test"} {
		convs, ok := splits[split]
		if !ok {
			continue
		}
		path := fmt.Sprintf("data/%s-00000-of-00001.parquet", split)
		var buf bytes.Buffer
		w, err := datasets.NewShardWriter(&buf, datasets.ShardOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i, msgs := range convs {
			s := datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs, Source: datasets.Source{Dataset: "test", File: "t.jsonl", Index: int64(i)}}
			if err := w.Write(&s); err != nil {
				t.Fatal(err)
			}
		}
		ss, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(staging, path), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		m.Splits = append(m.Splits, datasets.Split{Name: split, Rows: ss.Rows, Bytes: ss.Bytes,
			Shards: []datasets.Shard{{Path: path, Rows: ss.Rows, Bytes: ss.Bytes, SHA256: ss.SHA256}}})
	}
	v, err := st.Commit(ctx, staging, m)
	if err != nil {
		t.Fatal(err)
	}
	return name + "@" + v
}

// arithmetic returns n small conversations a tiny model learns fast:
// "a+b" answered with its sum spelled out, under a fixed system prompt.
func arithmetic(n, offset int) [][]datasets.Message {
	words := []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
	out := make([][]datasets.Message, n)
	for i := range out {
		a, b := (i+offset)%10, (i*7+offset)%10
		ans := fmt.Sprintf("%s plus %s is %d.", words[a], words[b], a+b)
		out[i] = []datasets.Message{
			{Role: datasets.RoleSystem, Content: "You add numbers."},
			{Role: datasets.RoleUser, Content: fmt.Sprintf("What is %d + %d?", a, b)},
			{Role: datasets.RoleAssistant, Content: ans},
		}
	}
	return out
}

// tinyConfig writes a config.json for a very small Llama.
func tinyConfig(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "tiny.json")
	cfg := `{"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
"num_key_value_heads": 2, "vocab_size": 1, "rms_norm_eps": 1e-5, "max_position_embeddings": 128, "tie_word_embeddings": true}`
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func tinyData(t *testing.T) (datasets.Store, string) {
	t.Helper()
	root := t.TempDir()
	ref := writeVersion(t, root, "sums", map[string][][]datasets.Message{"train": arithmetic(96, 0), "test": arithmetic(16, 3)})
	return datasets.Store{Root: root}, ref
}

func TestPackFitsEverySampleOnce(t *testing.T) {
	lens := []int{5, 17, 3, 16, 9, 1, 12, 20, 7, 8, 4, 13, 11, 2, 19, 6}
	var samples []model.Sample
	total := 0
	for _, n := range lens {
		samples = append(samples, model.Sample{IDs: make([]int, n)})
		total += n
	}
	rows := Pack(samples, 20)
	seen := map[int]bool{}
	for _, r := range rows {
		n := 0
		for _, i := range r {
			if seen[i] {
				t.Fatalf("sample %d packed twice", i)
			}
			seen[i] = true
			n += lens[i]
		}
		if n > 20 {
			t.Fatalf("row %v has %d tokens", r, n)
		}
	}
	if len(seen) != len(lens) {
		t.Fatalf("%d of %d samples packed", len(seen), len(lens))
	}
	// 153 tokens fit in 8 rows of 20 at best; best fit decreasing gets there.
	if want := (total + 19) / 20; len(rows) != want {
		t.Errorf("%d rows, want %d: %v", len(rows), want, rows)
	}
}

func TestEncodeTruncatesAndSkips(t *testing.T) {
	tok, err := tokenizer.Train(func(yield func(string) bool) { yield("hello world, hello there") }, tokenizer.TrainConfig{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("hello world ", 50)
	convs := [][]datasets.Message{
		{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "hello"}},
		{{Role: "user", Content: "hi"}, {Role: "assistant", Content: long}},    // truncated, kept
		{{Role: "user", Content: long}, {Role: "assistant", Content: "hello"}}, // truncated, nothing left to learn
		{{Role: "user", Content: "only a question"}},                           // nothing to learn
	}
	samples, st := Encode(tok, convs, 32)
	if st.Samples != 4 || st.Used != 2 || st.Truncated != 2 || st.Skipped != 2 || len(samples) != 2 {
		t.Fatalf("stats %+v, %d samples", st, len(samples))
	}
	for _, s := range samples {
		if len(s.IDs) > 32 || len(s.LossMask) != len(s.IDs) {
			t.Errorf("sample of %d ids, %d mask values", len(s.IDs), len(s.LossMask))
		}
	}
	if int64(lossTokens(samples[0])+lossTokens(samples[1])) != st.LossTokens {
		t.Errorf("loss tokens %d", st.LossTokens)
	}
}

// TestTrainFromScratch trains a tiny model with a tokenizer trained on
// the data: the eval loss falls, and the final model loads back with its
// tokenizer and config (vocabulary and special token ids set from the
// tokenizer).
func TestTrainFromScratch(t *testing.T) {
	store, ref := tinyData(t)
	out := t.TempDir()
	var logged bytes.Buffer
	res, err := Run(context.Background(), Options{
		Store: store, Data: ref, Init: tinyConfig(t, t.TempDir()), VocabSize: 320, Output: out, Log: &logged,
		Config: Config{LearningRate: 1e-2, WarmupSteps: 2, Epochs: 4, SeqLen: 128, BatchSize: 2, LogEvery: 2, Seed: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Train.Samples != 96 || res.Train.Used != 96 || res.Test.Samples != 16 || res.Train.Rows >= 96 {
		t.Errorf("data: train %+v test %+v", res.Train, res.Test)
	}
	if len(res.Evals) != 5 { // before training and after each epoch
		t.Fatalf("%d evaluations", len(res.Evals))
	}
	first, last := *res.Evals[0].EvalLoss, *res.Evals[len(res.Evals)-1].EvalLoss
	t.Logf("eval loss %.3f → %.3f in %d steps, %.0f tokens/s", first, last, res.Steps, res.TokensPerS)
	if !(last < first-2) || last > 2 {
		t.Errorf("eval loss %.3f → %.3f: did not learn", first, last)
	}
	lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
	if !strings.Contains(lines[0], `"eval_loss"`) || !strings.Contains(lines[1], `"tokens_per_s"`) || !strings.Contains(lines[1], `"grad_norm"`) {
		t.Errorf("log starts\n%s\n%s", lines[0], lines[1])
	}
	file, _ := os.ReadFile(filepath.Join(out, LogFile))
	if string(file) != logged.String() {
		t.Error("log.jsonl differs from the lines written to Log")
	}
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", TrainerStateFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	g, err := LoadGenerator(out)
	if err != nil {
		t.Fatal(err)
	}
	if g.P.Config.VocabSize != g.Tok.VocabSize() || g.P.Config.MaxPositionEmbeddings != 128 {
		t.Errorf("config vocab %d, tokenizer %d", g.P.Config.VocabSize, g.Tok.VocabSize())
	}
	eos, _ := g.Tok.TokenID("<|im_end|>")
	if string(g.P.Config.Extra["eos_token_id"]) != fmt.Sprint(eos) {
		t.Errorf("eos_token_id %s, want %d", g.P.Config.Extra["eos_token_id"], eos)
	}
	reply, err := g.Chat([]datasets.Message{{Role: "system", Content: "You add numbers."}, {Role: "user", Content: "What is 2 + 3?"}}, SampleConfig{MaxNewTokens: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reply: %q", reply)
	if !strings.Contains(reply, "plus") {
		t.Errorf("reply %q does not look learnt", reply)
	}
}

// TestResumeContinuesIdentically interrupts a run after step 3 (which
// saves a checkpoint), resumes it from that checkpoint, and checks that
// the losses and final weights equal those of an uninterrupted run.
func TestResumeContinuesIdentically(t *testing.T) {
	store, ref := tinyData(t)
	cfgPath := tinyConfig(t, t.TempDir())
	cfg := Config{LearningRate: 5e-3, WarmupSteps: 1, MaxSteps: 6, SeqLen: 128, BatchSize: 2, GradAccum: 2, LogEvery: 1, EvalEvery: 2, WeightDecay: 0.1, Seed: 7}
	opts := func(out string) Options {
		return Options{Store: store, Data: ref, Init: cfgPath, VocabSize: 300, Output: out, Config: cfg}
	}
	full := opts(t.TempDir())
	var want []Record
	full.OnRecord = func(r Record) { want = append(want, r) }
	if _, err := Run(context.Background(), full); err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	first := opts(out)
	first.OnStep = func(p Progress) {
		if p.Step == 3 {
			cancel()
		}
	}
	if _, err := Run(ctx, first); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	ck, err := LatestCheckpoint(out)
	if err != nil || filepath.Base(ck) != "checkpoint-3" {
		t.Fatalf("latest checkpoint %q, %v", ck, err)
	}
	second := opts(out)
	second.Resume = ck
	var got []Record
	second.OnRecord = func(r Record) { got = append(got, r) }
	if _, err := Run(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	// The resumed run logs steps 4..6; the uninterrupted one logged the
	// same lines after its step-3 lines.
	var tail []Record
	for _, r := range want {
		if r.Step > 3 {
			tail = append(tail, r)
		}
	}
	if len(got) != len(tail) || len(got) == 0 {
		t.Fatalf("resumed run logged %d lines, want %d", len(got), len(tail))
	}
	for i := range got {
		if !sameFloat(got[i].Loss, tail[i].Loss) || !sameFloat(got[i].EvalLoss, tail[i].EvalLoss) ||
			!sameFloat(got[i].GradNorm, tail[i].GradNorm) || !sameFloat(got[i].LR, tail[i].LR) || got[i].Tokens != tail[i].Tokens {
			t.Errorf("line %d: resumed %s, uninterrupted %s", i, show(got[i]), show(tail[i]))
		}
	}
	a, err := model.Load(full.Output)
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Data {
		if a.Data[i] != b.Data[i] {
			t.Fatalf("weight %d: %g after resuming, %g uninterrupted", i, b.Data[i], a.Data[i])
		}
	}
	// The resumed run's log holds the whole history, once.
	log, _ := os.ReadFile(filepath.Join(out, LogFile))
	if n := strings.Count(string(log), "\n"); n != len(want) {
		t.Errorf("log.jsonl has %d lines, want %d", n, len(want))
	}
	// Other settings are refused.
	bad := opts(out)
	bad.Resume = ck
	bad.Config.LearningRate = 1e-3
	if _, err := Run(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "differ") {
		t.Errorf("resume with another learning rate: %v", err)
	}
}

func sameFloat(a, b *float64) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

func show(r Record) string {
	f := func(p *float64) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%.9g", *p)
	}
	return fmt.Sprintf("step %d loss %s eval %s norm %s lr %s tokens %d", r.Step, f(r.Loss), f(r.EvalLoss), f(r.GradNorm), f(r.LR), r.Tokens)
}

// TestGradAccumWeighsByTokens checks that the gradient of 4 rows in one
// micro-batch equals that of 2 micro-batches of 2 rows, with padded rows
// of unequal lengths (so the micro-batches count different numbers of
// tokens), and that the loss is the mean per counted token.
func TestGradAccumWeighsByTokens(t *testing.T) {
	c := model.DefaultConfig()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.VocabSize = 32, 64, 2, 4, 50
	p, err := model.NewParams(c)
	if err != nil {
		t.Fatal(err)
	}
	p.Init(4, 0.1)
	var samples []model.Sample
	for i, n := range []int{30, 5, 12, 3} {
		s := model.Sample{IDs: make([]int, n), LossMask: make([]bool, n)}
		for j := range s.IDs {
			s.IDs[j] = (i*7 + j*3) % 50
			s.LossMask[j] = j >= n/3
		}
		samples = append(samples, s)
	}
	bt := newBatcher(samples, OnePerRow(samples), 4, 32)
	grad := func(b int) ([]float32, float64) {
		m, err := model.New(p, b, 32)
		if err != nil {
			t.Fatal(err)
		}
		loss, count, tokens, err := accumulate(m, bt, []int{0, 1, 2, 3}, b)
		if err != nil {
			t.Fatal(err)
		}
		if tokens != 50 || count != 20+4+8+2 {
			t.Fatalf("tokens %d, counted %d", tokens, count)
		}
		return append([]float32(nil), m.G.Data...), loss / float64(count)
	}
	g4, l4 := grad(4)
	g2, l2 := grad(2)
	if math.Abs(l4-l2) > 1e-6*l4 {
		t.Errorf("loss %g in one batch, %g in two", l4, l2)
	}
	var scale, worst float64
	for i := range g4 {
		scale = math.Max(scale, math.Abs(float64(g4[i])))
		worst = math.Max(worst, math.Abs(float64(g4[i]-g2[i])))
	}
	if worst > 1e-5*scale {
		t.Errorf("gradients differ by up to %g (largest %g) between one batch of 4 and two of 2", worst, scale)
	}
}

// TestGreedyIsArgmaxOfFullForward generates greedily from a random model
// and checks each new token against the argmax of one forward pass over
// the whole generated sequence; and that sampling repeats with its seed.
func TestGreedyIsArgmaxOfFullForward(t *testing.T) {
	c := model.DefaultConfig()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.VocabSize = 32, 64, 2, 4, 300
	p, err := model.NewParams(c)
	if err != nil {
		t.Fatal(err)
	}
	p.Init(5, 0.5) // large weights: peaked, varied predictions
	tok, err := tokenizer.Train(func(yield func(string) bool) { yield("the cat sat on the mat") }, tokenizer.TrainConfig{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	g := NewGenerator(p, tok)
	g.stop = map[int]bool{} // run the full length
	prompt := []int{5, 17, 42, 99}
	out, err := g.Generate(prompt, SampleConfig{MaxNewTokens: 12}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 12 {
		t.Fatalf("%d new tokens", len(out))
	}
	seq := append(append([]int{}, prompt...), out...)
	m, err := model.New(p, 1, len(seq))
	if err != nil {
		t.Fatal(err)
	}
	x := model.NewBatch(1, len(seq))
	if err := x.SetRow(0, model.Sample{IDs: seq}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Forward(x); err != nil {
		t.Fatal(err)
	}
	logits := m.Logits()
	for i := len(prompt); i < len(seq); i++ {
		if want := argmax(logits[(i-1)*c.VocabSize : i*c.VocabSize]); seq[i] != want {
			t.Errorf("token %d: generated %d, argmax of the full forward %d", i, seq[i], want)
		}
	}
	distinct := map[int]bool{}
	for _, id := range out {
		distinct[id] = true
	}
	if len(distinct) < 2 {
		t.Logf("greedy output is one token repeated: %v", out)
	}

	s1, _ := g.Generate(prompt, SampleConfig{MaxNewTokens: 12, Temperature: 1, TopP: 0.9, Seed: 9}, nil)
	s2, _ := g.Generate(prompt, SampleConfig{MaxNewTokens: 12, Temperature: 1, TopP: 0.9, Seed: 9}, nil)
	if fmt.Sprint(s1) != fmt.Sprint(s2) {
		t.Errorf("same seed, different samples: %v, %v", s1, s2)
	}
	// A nucleus of one token is greedy decoding.
	s3, _ := g.Generate(prompt, SampleConfig{MaxNewTokens: 12, Temperature: 0.7, TopP: 1e-9, Seed: 9}, nil)
	if fmt.Sprint(s3) != fmt.Sprint(out) {
		t.Errorf("top-p 1e-9 gave %v, greedy %v", s3, out)
	}
}

func TestPickTopP(t *testing.T) {
	logits := []float32{float32(math.Log(0.5)), float32(math.Log(0.3)), float32(math.Log(0.15)), float32(math.Log(0.05))}
	probs, idx := make([]float64, 4), make([]int, 4)
	counts := make([]int, 4)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		counts[pick(logits, SampleConfig{Temperature: 1, TopP: 0.8}, rng, probs, idx)]++
	}
	// Top-p 0.8 keeps {0.5, 0.3}: renormalised to 0.625, 0.375.
	if counts[2] != 0 || counts[3] != 0 {
		t.Errorf("tokens outside the nucleus drawn: %v", counts)
	}
	if f := float64(counts[0]) / 20000; math.Abs(f-0.625) > 0.02 {
		t.Errorf("token 0 drawn %.3f of the time, want 0.625", f)
	}
}

// TestLoRA fine-tunes a small base model with LoRA adapters: the base
// weights stay as they were (the final model differs from the base in
// the adapted projections only), the adapter is written in PEFT's
// layout, the eval loss falls, and an interrupted run resumes to the
// same losses and weights.
func TestLoRA(t *testing.T) {
	store, ref := tinyData(t)
	base := t.TempDir()
	_, err := Run(context.Background(), Options{Store: store, Data: ref, Init: tinyConfig(t, t.TempDir()), VocabSize: 320, Output: base,
		Config: Config{LearningRate: 1e-2, MaxSteps: 10, SeqLen: 128, BatchSize: 4}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{LearningRate: 2e-2, MaxSteps: 8, SeqLen: 128, BatchSize: 2, GradAccum: 2, LogEvery: 1, Seed: 5}
	opts := func(out string) Options {
		return Options{Store: store, Data: ref, Model: base, Output: out, Config: cfg,
			LoRA: &model.LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj", "down_proj"}}}
	}
	full := opts(t.TempDir())
	var want []Record
	full.OnRecord = func(r Record) { want = append(want, r) }
	res, err := Run(context.Background(), full)
	if err != nil {
		t.Fatal(err)
	}
	first, last := *res.Evals[0].EvalLoss, *res.Evals[len(res.Evals)-1].EvalLoss
	if !(last < first) {
		t.Errorf("eval loss %.4f → %.4f with LoRA", first, last)
	}
	b, err := model.Load(base)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := model.Load(full.Output)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range b.Tensors() {
		mt, _ := merged.Tensor(tt.Name)
		changed := false
		for i := range tt.Data {
			changed = changed || tt.Data[i] != mt.Data[i]
		}
		adapted := strings.Contains(tt.Name, "q_proj") || strings.Contains(tt.Name, "v_proj") || strings.Contains(tt.Name, "down_proj")
		if changed != adapted {
			t.Errorf("%s: changed %v, adapted %v", tt.Name, changed, adapted)
		}
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} {
		if _, err := os.Stat(filepath.Join(full.Output, AdapterDir, f)); err != nil {
			t.Error(err)
		}
	}
	if res.NumParams >= b.NumParams()/4 {
		t.Errorf("%d trainable parameters of %d", res.NumParams, b.NumParams())
	}

	// Interrupted after step 4 and resumed: the same run.
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	o1 := opts(out)
	o1.OnStep = func(p Progress) {
		if p.Step == 4 {
			cancel()
		}
	}
	if _, err := Run(ctx, o1); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	ck := filepath.Join(out, "checkpoint-4")
	if _, err := os.Stat(filepath.Join(ck, "model.safetensors")); err == nil {
		t.Error("a LoRA checkpoint holds the whole model")
	}
	o2 := opts(out)
	o2.Model, o2.Resume = "", ck
	var got []Record
	o2.OnRecord = func(r Record) { got = append(got, r) }
	if _, err := Run(context.Background(), o2); err != nil {
		t.Fatal(err)
	}
	var tail []Record
	for _, r := range want {
		if r.Step > 4 {
			tail = append(tail, r)
		}
	}
	if len(got) != len(tail) {
		t.Fatalf("resumed run logged %d lines, want %d", len(got), len(tail))
	}
	for i := range got {
		if !sameFloat(got[i].Loss, tail[i].Loss) || !sameFloat(got[i].EvalLoss, tail[i].EvalLoss) {
			t.Errorf("line %d: resumed %s, uninterrupted %s", i, show(got[i]), show(tail[i]))
		}
	}
	// QLoRA: the frozen projections in NF4.
	oq := opts(t.TempDir())
	oq.QLoRA, oq.Config.MaxSteps = true, 2
	if rq, err := Run(context.Background(), oq); err != nil || math.IsNaN(*rq.Evals[1].EvalLoss) {
		t.Fatalf("QLoRA: %v", err)
	}
	g, err := LoadGenerator(filepath.Join(out, "checkpoint-4"))
	if err != nil {
		t.Fatalf("generator from a LoRA checkpoint: %v", err)
	}
	if _, err := g.Chat([]datasets.Message{{Role: "user", Content: "What is 1 + 1?"}}, SampleConfig{MaxNewTokens: 4}); err != nil {
		t.Fatal(err)
	}
}

// TestMain keeps the trainer's INFO logs out of the test output.
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	os.Exit(m.Run())
}
