package filters

import (
	"fmt"
	"strings"
	"testing"
)

// These tests guard the defaults against the false drops a user measured
// on real model answers (issue 13): each answer below is one a curator
// keeps, and the default filter set (New(Config{}), CheckAll) must keep
// it; each broken answer must be dropped. They use only the API that
// predates the SFT defaults, so they can be run against the old code,
// where the keep cases failed.

func defaultVerdict(t *testing.T, q, a string) (Verdict, bool) {
	t.Helper()
	fs, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return CheckAll(fs, qa(q, a))
}

type answerCase struct {
	name, prompt, answer string
	keep                 bool
}

func runAnswerCases(t *testing.T, cases []answerCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, keep := defaultVerdict(t, c.prompt, c.answer)
			if keep != c.keep {
				t.Errorf("keep = %v, want %v: %+v", keep, c.keep, v)
			}
		})
	}
}

const coverLetter = `Dear Ms. Alvarez,

I am writing to apply for the position of junior data analyst at Northwind Logistics. Over the past two years I have built weekly reporting dashboards for a regional retailer, cleaned and merged sales data from four different systems, and presented the results to store managers.

I would welcome the chance to bring the same care to your team. Thank you for considering my application.

Sincerely,
[Your Name]`

func TestDefaultsKeepGoodAnswers(t *testing.T) {
	runAnswerCases(t, []answerCase{
		{"letter ending with a placeholder", "Write a short cover letter for a junior data analyst job.", coverLetter, true},
		{"letter ending with a signature line", "Write a thank-you note to my neighbour for watering the plants.",
			"Hi Tom,\n\nThank you so much for looking after the plants while we were away. The tomatoes are thriving and the basil has never looked better, which is entirely your doing. Please come over for dinner next week so we can thank you properly.\n\nWarm wishes,\nAnna and Luis", true},
		{"answer ending with a closing parenthesis", "How long should I boil an egg for a soft yolk?",
			"For a soft, jammy yolk, lower the egg into boiling water and cook it for six to seven minutes, then move it to cold water for a minute so it stops cooking (a little longer if the egg comes straight from the fridge)", true},
		{"answer ending with a closing quote", "Give me a motivational quote about persistence.",
			"Here is one that many people find helpful when progress feels slow: \"It does not matter how slowly you go as long as you do not stop\"", true},
		{"numbered list with parallel wording", "Give me ten ways to save money on groceries.",
			numberedList("Buy", []string{"store brands instead of name brands", "rice and beans in bulk", "fruit that is in season", "frozen vegetables for soups", "whole chickens and portion them yourself", "bread from the reduced shelf and freeze it", "coffee beans rather than pods", "spices from the international aisle", "larger packs of oats", "only what is on your list"}), true},
		{"song with a chorus", "Write a short song about a lighthouse keeper.", lighthouseSong, true},
		{"markdown table", "Compare three programming languages in a table.",
			"| Language | Typing | Typical use |\n| --- | --- | --- |\n| Python | dynamic | data analysis, scripting |\n| Go | static | network services |\n| Rust | static | systems programming |\n| JavaScript | dynamic | web front ends |\n| Kotlin | static | Android apps |", true},
		{"arithmetic steps", "What is 17 × 24? Show the steps.",
			"17 × 24 = 17 × 20 + 17 × 4\n= 340 + 68\n= 408\n\nSo 17 × 24 = 408.", true},
		{"requested translation", "Translate into French: The museum opens at nine and closes at six on weekdays.",
			"Le musée ouvre à neuf heures et ferme à dix-huit heures en semaine, sauf les jours fériés où il reste fermé toute la journée.", true},
		{"requested hashtags", "Write an Instagram caption for a beach sunset photo with hashtags.",
			"Golden hour never gets old 🌅 #sunset #beachlife #goldenhour #oceanvibes #travelgram #naturelovers #summerdays #wanderlust #photooftheday #sea", true},
		{"opens with boilerplate, then answers", "Do you have a favourite book?",
			"As an AI language model, I don't have personal preferences, but I can tell you about books that many readers love. Pride and Prejudice is admired for its sharp dialogue and memorable characters, One Hundred Years of Solitude for its magical realism, and The Hobbit for its warmth and sense of adventure. If you tell me what genres you enjoy, I can suggest something that fits your taste.", true},
		{"English list of names", "List the planets of the solar system.",
			"Mercury\nVenus\nEarth\nMars\nJupiter\nSaturn\nUranus\nNeptune", true},
	})
}

func numberedList(verb string, items []string) string {
	var b strings.Builder
	b.WriteString("Here are some ideas:\n\n")
	for i, it := range items {
		fmt.Fprintf(&b, "%d. %s %s.\n", i+1, verb, it)
	}
	return b.String()
}

const lighthouseSong = `(Verse 1)
Every night he climbs the stairs
Ninety steps of salt and stone
Lights the lamp and says his prayers
For the sailors far from home

(Chorus)
Shine on, shine on, across the bay
Guide them through the wind and spray
Shine on, shine on, until the day
Brings the fishing boats their way

(Verse 2)
Storms may rattle every pane
Fog may swallow half the shore
Still he trims the wick again
As his father did before

(Chorus)
Shine on, shine on, across the bay
Guide them through the wind and spray
Shine on, shine on, until the day
Brings the fishing boats their way`

func TestDefaultsDropBrokenAnswers(t *testing.T) {
	loop := "To make the sauce, melt the butter in a pan and stir in the flour. " + strings.Repeat("Then add the milk slowly while stirring. ", 12)
	runAnswerCases(t, []answerCase{
		{"generation loop", "How do I make a white sauce?", loop, false},
		{"cut at the token limit", "Explain how vaccines work.",
			"Vaccines train the immune system to recognise a germ without causing the disease. They contain a weakened or inactivated form of the germ, or a piece of it such as a protein, and when the body meets it, it produces antibodies and memory cells that", false},
		{"answer in another language", "What are some tips for learning to cook at home?",
			"Para aprender a cocinar en casa, empieza con recetas sencillas y repite cada plato varias veces hasta que te salga bien. Compra ingredientes frescos y prepara todo antes de encender el fuego.", false},
		{"bare refusal", "Write a poem about autumn leaves.", "I'm sorry, but I can't help with that request.", false},
		{"empty", "Name a prime number.", " \n ", false},
	})
}
