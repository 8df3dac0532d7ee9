package filters

import (
	"strings"
	"testing"
)

func TestDegenerateGibberish(t *testing.T) {
	c := only(Config{}, "degenerate.gibberish")
	prose := "Start by choosing a quiet room and a regular time. Read the chapter once for the big picture, then again with a pencil, and write a short summary in your own words at the end."
	// 20 tokens with k odd ones: the threshold is 0.15 (3 of 20 keep, 4 drop).
	oddMix := func(k int) string {
		ws := strings.Fields("Choose a quiet room and a regular time then read the chapter twice and write a short summary at the end")
		for i := 0; i < k; i++ {
			ws[2+4*i] = "});"
		}
		return strings.Join(ws, " ")
	}
	runCases(t, []ruleCase{
		{"prose", c, qa("q", prose), true, ""},
		{"3 of 20 odd tokens", c, qa("q", oddMix(3)), true, ""},
		{"4 of 20 odd tokens", c, qa("q", oddMix(4)), false, "degenerate.gibberish"},
		{"tokenizer pieces and braces", c, qa("q", "Ġthe ▁model ##ing }); self.value __init__ => {{ ]] Ċ ▁answer ##ed"), false, "degenerate.gibberish"},
		{"word salad", c, qa("q", "the of and model to in the and of answer is the with a the and for of the by the river in the of and cat the to of the"), false, "degenerate.gibberish"},
		{"code in a fence is not judged", c, qa("q", "Here is the function:\n\n```python\ndef f(x_1, y_2):\n    return {x_1: [y_2]}\n```"), true, ""},
		{"LaTeX and arithmetic", c, qa("q", "The roots are $x = \\frac{-b \\pm \\sqrt{b^2 - 4ac}}{2a}$, so for f(x) = x^2 - 5x + 6 we get f(2) = 0 and f(3) = 0."), true, ""},
		{"hashtags and handles", c, qa("q", "Loving the new café downtown! @beanhouse #coffee #latteart #weekendvibes #citylife"), true, ""},
	})
}

func TestDegenerateLoop(t *testing.T) {
	c := only(Config{}, "degenerate.loop")
	start := "Here are some snacks for game day:\n- Chips and salsa\n- Cheese and crackers\n"
	loop := func(n int) string { return start + strings.Repeat("- Veggie platters with ranch dip\n", n) }
	runCases(t, []ruleCase{
		// The unit is 6 tokens; 4 copies (24 tokens) is below 30 tokens,
		// 5 copies (30 tokens) reaches it and has 4+ copies.
		{"4 copies, 24 tokens", c, qa("q", loop(4)), true, ""},
		{"5 copies, 30 tokens", c, qa("q", loop(5)), false, "degenerate.loop"},
		{"counter loop", c, qa("q", "Daily plan:\n"+strings.Repeat("Day 1: walk for thirty minutes\n", 1)+func() string {
			var b strings.Builder
			for d := 2; d < 12; d++ {
				b.WriteString("Day " + string(rune('0'+d%10)) + ": walk for thirty minutes\n")
			}
			return b.String()
		}()), false, "degenerate.loop"},
		{"song chorus twice", c, qa("q", lighthouseSong), true, ""},
		{"multiplication table", c, qa("q", "2 x 1 = 2\n2 x 2 = 4\n2 x 3 = 6\n2 x 4 = 8\n2 x 5 = 10\n2 x 6 = 12\n2 x 7 = 14\n2 x 8 = 16\n2 x 9 = 18\n2 x 10 = 20"), true, ""},
		{"parallel list wording", c, qa("q", numberedList("Visit", []string{"the old town", "the harbour", "the castle", "the market", "the botanical garden", "the cathedral", "the river walk", "the art museum"})), true, ""},
	})
	fs, _ := New(c)
	if v := fs[0].Check(qa("q", loop(8))); !strings.Contains(v.Detail, "Veggie platters") {
		t.Errorf("detail does not show the loop: %+v", v)
	}
}

func TestTemplateTokens(t *testing.T) {
	c := only(Config{}, "template.leftover_tokens")
	ans := "Paris is the capital of France."
	runCases(t, []ruleCase{
		{"clean", c, qa("q", ans), true, ""},
		{"stop token", c, qa("q", ans+"<|im_end|>"), false, "template.leftover_tokens"},
		{"llama end of sequence", c, qa("q", ans+"</s>"), false, "template.leftover_tokens"},
		{"runaway human turn", c, qa("q", ans+"\n\n### Human: And of Germany?\n\n### Assistant: Berlin."), false, "template.leftover_tokens"},
		{"runaway user turn", c, qa("What is the capital of France?", ans+"\nUser: thanks! what about Spain?"), false, "template.leftover_tokens"},
		{"dialogue the user asked for", c, qa("Write a short chat between a user and a support agent.", "User: My order is late.\nAgent: Sorry to hear that, let me check."), true, ""},
		{"tokens inside code are fine", c, qa("q", "The template ends each turn with a marker:\n\n```\n<|im_start|>user\nhi<|im_end|>\n```"), true, ""},
		{"inline code is fine", c, qa("q", "Llama 2 wraps the prompt in `[INST]` and `[/INST]`."), true, ""},
	})
}

func TestMojibake(t *testing.T) {
	c := only(Config{}, "mojibake.sequences")
	runCases(t, []ruleCase{
		{"clean typographic text", c, qa("q", "It’s a café — “naïve” and déjà vu are French loanwords."), true, ""},
		{"one sequence", c, qa("q", "Itâ€™s a good idea to rest."), false, "mojibake.sequences"},
		{"latin-1 accents", c, qa("q", "The cafÃ© serves crÃ¨me brÃ»lÃ©e."), false, "mojibake.sequences"},
		{"accent next to a quote is not mojibake", c, qa("q", "She said “café” twice."), true, ""},
	})
	if n := CountMojibake("donâ€™t â€œquoteâ€\u009d"); n != 3 {
		t.Errorf("CountMojibake = %d, want 3", n)
	}
}

func TestLanguagePromptMismatch(t *testing.T) {
	c := only(Config{}, "language.prompt_mismatch")
	es := "Para aprender a cocinar en casa, empieza con recetas sencillas y repite cada plato varias veces hasta que te salga bien."
	en := "To learn to cook at home, start with simple recipes and repeat each dish a few times until you get it right."
	runCases(t, []ruleCase{
		{"same language", c, qa("How can I learn to cook at home?", en), true, ""},
		{"spanish answer to an english prompt", c, qa("How can I learn to cook at home?", es), false, "language.prompt_mismatch"},
		{"spanish conversation", c, qa("¿Cómo puedo aprender a cocinar en casa sin gastar mucho dinero?", es), true, ""},
		{"translation asked", c, qa("Translate into Spanish: "+en, es), true, ""},
		{"language named", c, qa("Answer in Spanish: how can I learn to cook at home?", es), true, ""},
		{"chinese answer to an english prompt", c, qa("What is the capital of France?", "法国的首都是巴黎，它也是法国最大的城市。"), false, "language.prompt_mismatch"},
		{"english list", c, qa("List the planets of the solar system.", "Mercury\nVenus\nEarth\nMars\nJupiter\nSaturn\nUranus\nNeptune"), true, ""},
		{"short prompt without cues", c, qa("Online casino legal in India?", en), true, ""},
	})
	fs, _ := New(c)
	if v := fs[0].Check(qa("How can I learn to cook at home?", es)); !strings.Contains(v.Detail, "prompt en") || !strings.Contains(v.Detail, "answer es") {
		t.Errorf("detail: %+v", v)
	}
}

func TestRefusalHelp(t *testing.T) {
	c := only(Config{}, "refusal.phrase")
	help := func(n int) string {
		return strings.Join(strings.Fields(strings.Repeat("you could try a local library or a bookshop ", 5))[:n], " ") + "."
	}
	runCases(t, []ruleCase{
		{"bare refusal", c, qa("q", "I'm sorry, but I can't help with that request. Is there anything else I can help you with?"), false, "refusal.phrase"},
		{"refusal with 24 words of help", c, qa("q", "I cannot provide that book. However, "+help(23)), false, "refusal.phrase"},
		{"refusal with 25 words of help", c, qa("q", "I cannot provide that book. However, "+help(24)), true, ""},
		{"boilerplate, then an answer", c, qa("q", "As an AI language model, I don't read books, but "+help(24)), true, ""},
	})
	var strict Config
	strict.Refusal.MinHelpWords = -1
	runCases(t, []ruleCase{
		{"min_help_words -1: any phrase drops", only(strict, "refusal.phrase"), qa("q", "As an AI language model, I don't read books, but "+help(24)), false, "refusal.phrase"},
	})
}
