package synth

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
)

// Hand-computed ROUGE-L F values (F = 2·LCS/(|c|+|r|)).
func TestRougeLGolden(t *testing.T) {
	cases := []struct {
		c, r string
		lcs  int
		want float64
	}{
		// Lin (2004), §3.1: S2 and S3 against the reference S1.
		{"police kill the gunman", "police killed the gunman", 3, 0.75},   // police the gunman: 6/8
		{"the gunman kill police", "police killed the gunman", 2, 0.5},    // the gunman: 4/8
		{"the cat sat on the mat", "the cat is on the mat", 5, 10.0 / 12}, // the cat on the mat
		{"a b c d e", "a x c y e z w", 3, 0.5},                            // P 3/5, R 3/7: 2·(9/35)/(36/35) = 0.5
		{"Give three tips for staying healthy.", "Give me three tips to stay healthy.", 4, 8.0 / 13},
		{"Hello, World!", "hello world", 2, 1},                   // case and punctuation are separators
		{"Café au lait", "café noir", 1, 0.4},                    // letters of any script are tokens
		{"It's 2024-05-01.", "its 2024 05 01", 3, 2.0 * 3 / 9.0}, // it s 2024 05 01 vs its 2024 05 01
		{"", "anything", 0, 0},
		{"one two", "three four", 0, 0},
	}
	for _, c := range cases {
		ct, rt := RougeTokens(c.c), RougeTokens(c.r)
		if l := LCS(ct, rt); l != c.lcs {
			t.Errorf("LCS(%q, %q) = %d, want %d", c.c, c.r, l, c.lcs)
		}
		got := RougeL(c.c, c.r)
		if math.Abs(got-c.want) > 1e-12 {
			t.Errorf("RougeL(%q, %q) = %v, want %v", c.c, c.r, got, c.want)
		}
		if back := RougeL(c.r, c.c); math.Abs(back-got) > 1e-12 {
			t.Errorf("RougeL not symmetric on %q, %q", c.c, c.r)
		}
	}
	// CLRS's example: LCS of ABCBDAB and BDCABA is 4 (BCBA), where a greedy
	// match finds less.
	if l := LCS(strings.Split("ABCBDAB", ""), strings.Split("BDCABA", "")); l != 4 {
		t.Errorf("LCS(ABCBDAB, BDCABA) = %d, want 4", l)
	}
}

func TestNoveltyIndex(t *testing.T) {
	x := NewNoveltyIndex(0, "Give three tips for staying healthy.", "Translate the sentence into French.")
	if x.Threshold() != 0.7 || x.Len() != 2 {
		t.Fatalf("threshold %v len %d", x.Threshold(), x.Len())
	}
	ok, score, near := x.Novel("Give three tips for staying healthy and happy.")
	// LCS 6 of 6 and 8 tokens: 12/14 ≥ 0.7.
	if ok || math.Abs(score-12.0/14) > 1e-12 || near != "Give three tips for staying healthy." {
		t.Fatalf("near copy: %v %v %q", ok, score, near)
	}
	ok, score, _ = x.Novel("Give me three tips to stay healthy.") // 8/13 = 0.615 < 0.7
	if !ok || math.Abs(score-8.0/13) > 1e-12 {
		t.Fatalf("paraphrase: %v %v", ok, score)
	}
	if s, n := x.Nearest("Translate this sentence to French."); n != "Translate the sentence into French." || math.Abs(s-2*3.0/10) > 1e-12 {
		t.Fatalf("nearest %v %q", s, n)
	}

	// Concurrent TryAdd admits exactly one of a set of identical texts.
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			text := "Write a haiku about autumn leaves falling"
			if i%2 == 1 {
				text = fmt.Sprintf("Write a haiku about autumn leaves falling %d", i)
			}
			if ok, _, _ := x.TryAdd(text); ok {
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if admitted != 1 {
		t.Fatalf("%d near-duplicates admitted", admitted)
	}
}

func TestParseList(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
	}{
		{"plain", "1. Write a poem about rain.\n2. Explain recursion to a child.\n3. Sort the numbers 5, 2, 9.",
			[]string{"Write a poem about rain.", "Explain recursion to a child.", "Sort the numbers 5, 2, 9."}},
		{"preamble and chatter", "Sure! Here are three new tasks:\n\n1) Name two rivers in Africa.\n2) Summarize the plot of Hamlet.\n3) Convert 5 miles to kilometers.\n\nI hope these tasks are useful!",
			[]string{"Name two rivers in Africa.", "Summarize the plot of Hamlet.", "Convert 5 miles to kilometers."}},
		{"continues numbering", "9. Describe a sunset.\n10. List prime numbers below 20.",
			[]string{"Describe a sunset.", "List prime numbers below 20."}},
		{"labels and bold", "**1.** **Instruction:** Write a limerick.\nTask 2: \"Explain photosynthesis.\"\n### 3. Compare tea and coffee.",
			[]string{"Write a limerick.", "Explain photosynthesis.", "Compare tea and coffee."}},
		{"multi-line with input and nested list", "1. Rank these steps in order:\n   1. boil water\n   2. add tea\n\n2. Fix the bug in this code:\n```\nfor i in range(10)\n3. print(i)\n```\n3. What is 2.5 times 4?",
			[]string{"Rank these steps in order:\n   1. boil water\n   2. add tea", "Fix the bug in this code:\n```\nfor i in range(10)\n3. print(i)\n```", "What is 2.5 times 4?"}},
		{"output cut off", "1. Classify the sentiment: I loved it.\nOutput: Positive\n2. Name a mammal that flies.\nAnswer: A bat.",
			[]string{"Classify the sentiment: I loved it.", "Name a mammal that flies."}},
		{"parenthesised", "(1) Write a tweet.\n(2) Plan a picnic.", []string{"Write a tweet.", "Plan a picnic."}},
		{"bullets", "Here you go:\n- Write a story.\n- Define entropy.\n  in physics terms\n* Name a color.",
			[]string{"Write a story.", "Define entropy.\n  in physics terms", "Name a color."}},
		{"prose", "Sure, I can help with that. What kind of tasks would you like?", nil},
		{"empty items", "1.\n2. Real task here.\n3.   ", []string{"Real task here."}},
		{"windows newlines", "1. One task.\r\n2. Two tasks.", []string{"One task.", "Two tasks."}},
	}
	for _, c := range cases {
		got := ParseList(c.in)
		if strings.Join(got, "|") != strings.Join(c.want, "|") || len(got) != len(c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

func TestChunkDocument(t *testing.T) {
	doc := "# Handbook\n\nIntro text about the handbook.\n\n## Install\n### Linux\n\nRun the installer.\n\n```sh\n# not a heading\nmake install\n```\n\n## Use\n\nStart it with `tool run`.\n"
	chunks, err := ChunkDocument("docs/handbook.md", doc, ChunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range chunks {
		got = append(got, c.Heading)
		if doc[c.Offset:c.Offset+len(c.Text)] != c.Text || c.ID != ChunkID("docs/handbook.md", c.Offset) || len(c.ID) != 16 {
			t.Fatalf("chunk %+v does not match the document", c)
		}
	}
	if strings.Join(got, "|") != "Handbook|Handbook > Install > Linux|Handbook > Use" {
		t.Fatalf("headings %q", got)
	}
	if !strings.HasPrefix(chunks[1].Text, "## Install\n### Linux") || !strings.Contains(chunks[1].Text, "# not a heading") {
		t.Fatalf("install chunk %q", chunks[1].Text)
	}
	again, _ := ChunkDocument("docs/handbook.md", doc, ChunkConfig{})
	other, _ := ChunkDocument("docs/other.md", doc, ChunkConfig{})
	if again[2].ID != chunks[2].ID || other[2].ID == chunks[2].ID {
		t.Fatal("chunk ids are not a stable function of path and offset")
	}
	// The same text as plain text is one chunk.
	if plain, _ := ChunkDocument("handbook.txt", doc, ChunkConfig{}); len(plain) != 1 || plain[0].Heading != "" {
		t.Fatalf("plain %+v", plain)
	}

	// Long plain text: pieces within the limit, ending at sentence or
	// paragraph ends, overlapping, covering everything.
	var b strings.Builder
	for i := range 60 {
		fmt.Fprintf(&b, "Sentence number %d says something mildly interesting. ", i)
		if i%10 == 9 {
			b.WriteString("\n\n")
		}
	}
	long := b.String()
	cs, err := ChunkDocument("long.txt", long, ChunkConfig{MaxChars: 500, Overlap: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) < 7 {
		t.Fatalf("%d chunks", len(cs))
	}
	end := 0
	for i, c := range cs {
		if len(c.Text) > 500 || long[c.Offset:c.Offset+len(c.Text)] != c.Text {
			t.Fatalf("chunk %d: %d bytes", i, len(c.Text))
		}
		if !strings.HasSuffix(c.Text, ".") {
			t.Errorf("chunk %d ends mid-sentence: %q", i, c.Text[len(c.Text)-20:])
		}
		if i > 0 {
			if c.Offset >= end || end-c.Offset > 150 {
				t.Errorf("chunk %d: offset %d, previous end %d: overlap should be about 100", i, c.Offset, end)
			}
			if long[c.Offset-1] != ' ' && long[c.Offset-1] != '\n' {
				t.Errorf("chunk %d starts mid-word", i)
			}
		}
		end = c.Offset + len(c.Text)
	}
	if end != len(strings.TrimRight(long, " \n")) {
		t.Errorf("chunks end at %d of %d", end, len(long))
	}
	if _, err := ChunkDocument("x", "y", ChunkConfig{MaxChars: 500, Overlap: 300}); err == nil {
		t.Error("overlap ≥ max_chars/2 accepted")
	}
}

func TestSplitReasoning(t *testing.T) {
	cases := []struct{ in, r, a string }{
		{"<reasoning>\n2 apples + 3 apples = 5 apples.\n</reasoning>\n<answer>5</answer>", "2 apples + 3 apples = 5 apples.", "5"},
		{"<reasoning>step</reasoning>\n\n<answer>\nSeven\n", "step", "Seven"},
		{"First, add. Then check.\n\n**Final answer:** 42", "First, add. Then check.", "42"},
		{FormatCoT(StyleThink, "because", "yes"), "because", "yes"},
		{FormatCoT(StyleFinalAnswer, "because", "yes"), "because", "yes"},
	}
	for _, c := range cases {
		r, a, ok := SplitReasoning(c.in)
		if !ok || r != c.r || a != c.a {
			t.Errorf("SplitReasoning(%q) = %q, %q, %v", c.in, r, a, ok)
		}
	}
	for _, in := range []string{"Just the answer: 5.", "<reasoning>thinking…</reasoning>", "<answer>5</answer>"} {
		if _, _, ok := SplitReasoning(in); ok {
			t.Errorf("SplitReasoning(%q) ok", in)
		}
	}
	if FormatCoT(StyleThink, " r ", " a ") != "<think>\nr\n</think>\n\na" {
		t.Error("think format")
	}
}

func TestQuoteIn(t *testing.T) {
	text := "The “reset” button is on the back.  Hold it for ten seconds — the light turns red."
	for q, want := range map[string]bool{
		`the "reset" button is on the back`:             true,
		"Hold it for ten\nseconds - the light":          true,
		"The reset button ... turns red":                false, // quotes missing around reset
		`The "reset" button … the light turns red.`:     true,
		"hold it for twenty seconds":                    false,
		"the light turns red ... The “reset” button is": false, // parts out of order
		"...": false,
	} {
		if got := quoteIn(q, text); got != want {
			t.Errorf("quoteIn(%q) = %v, want %v", q, got, want)
		}
	}
}
