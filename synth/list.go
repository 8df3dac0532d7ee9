package synth

import (
	"regexp"
	"strconv"
	"strings"
)

var (
	// numberedRE matches a list marker at the start of a line: "1.",
	// "2)", "(3)", "[4]", "5:", "6 -", optionally after a Markdown heading
	// mark or bold, or after a label ("Task 7:", "Instruction #8.").
	// Group 1 is the number, group 2 the rest of the line.
	numberedRE = regexp.MustCompile(`(?i)^\s*(?:#{1,6}\s*)?(?:\*\*|__)?\s*(?:(?:task|instruction|question|prompt|example|item)\s*#?\s*)?[(\[]?(\d{1,3})\s*(?:[.):\]]|[-–—](?:\s|$))[)\]]?\s*(?:\*\*|__)?\s*:?(?:\s+(.*)|$)`)
	bulletRE   = regexp.MustCompile(`^\s*[-*•+]\s+(.*)$`)
	labelRE    = regexp.MustCompile(`(?i)^(?:\*\*|__)?(?:new )?(?:task|instruction|question|prompt)(?:\*\*|__)?\s*:(?:\*\*|__)?\s*`)
	answerRE   = regexp.MustCompile(`(?im)^\s*(?:\*\*|__)?(?:output|answer|response|solution)(?:\*\*|__)?\s*:`)
	chatterRE  = regexp.MustCompile(`(?i)^(?:i hope|hope (?:this|these)|let me know|feel free|these (?:tasks|instructions|questions|prompts)|this list|note:|i have (?:tried|made)|each (?:task|instruction) )`)
)

// ParseList extracts the items of a list the model was asked to write,
// robustly:
//
//   - numbered items in any common form ("1.", "2)", "(3)", "4:", "5 -",
//     "**6.**", "### 7.", "Task 8:"), starting at any number (a model may
//     go on from the examples' numbering); a line opens a new item only
//     when its number follows the previous item's and it is not indented
//     deeper than the first item, so nested numbered lists and numbers
//     inside an item stay in that item;
//   - lines up to the next item belong to the item (an input written
//     after the instruction), blank lines at its ends removed;
//   - text before the first item (a preamble) is ignored, and a last
//     paragraph of closing chatter ("I hope these help") is dropped;
//   - without numbered items, a bulleted list ("- ", "* ", "• ");
//   - each item is cleaned: enclosing bold or quotes and a leading label
//     ("Instruction:") are removed, and an "Output:"/"Answer:" part the
//     model added is cut off.
//
// Empty items are left out; text that is no list yields none.
func ParseList(text string) []string {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	items := parseNumbered(lines)
	if len(items) == 0 {
		items = parseBullets(lines)
	}
	out := items[:0]
	for i, it := range items {
		if i == len(items)-1 {
			it = dropChatter(it)
		}
		if it = cleanItem(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

func parseNumbered(lines []string) []string {
	var items []string
	var cur []string
	last := -1
	indent := 0 // the first item's indentation; deeper markers are nested
	inFence := false
	flush := func() {
		if cur != nil {
			items = append(items, strings.Join(cur, "\n"))
		}
	}
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inFence = !inFence
		}
		if !inFence {
			if m := numberedRE.FindStringSubmatch(l); m != nil {
				n, _ := strconv.Atoi(m[1])
				ind := len(l) - len(strings.TrimLeft(l, " \t"))
				if last < 0 || (n == last+1 && ind <= indent) {
					flush()
					cur = []string{m[2]}
					if last < 0 {
						indent = ind
					}
					last = n
					continue
				}
			}
		}
		if cur != nil {
			cur = append(cur, l)
		}
	}
	flush()
	return items
}

func parseBullets(lines []string) []string {
	var items []string
	var cur []string
	for _, l := range lines {
		if m := bulletRE.FindStringSubmatch(l); m != nil && !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "\t") {
			if cur != nil {
				items = append(items, strings.Join(cur, "\n"))
			}
			cur = []string{m[1]}
			continue
		}
		if cur != nil {
			cur = append(cur, l)
		}
	}
	if cur != nil {
		items = append(items, strings.Join(cur, "\n"))
	}
	return items
}

// dropChatter removes a last paragraph of closing remarks from the last
// item.
func dropChatter(it string) string {
	it = strings.TrimRight(it, " \t\n")
	i := strings.LastIndex(it, "\n\n")
	if i < 0 {
		return it
	}
	if chatterRE.MatchString(strings.TrimSpace(it[i:])) {
		return dropChatter(it[:i])
	}
	return it
}

func cleanItem(it string) string {
	if loc := answerRE.FindStringIndex(it); loc != nil && loc[0] > 0 {
		it = it[:loc[0]]
	}
	lines := strings.Split(it, "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " \t")
	}
	it = strings.TrimSpace(strings.Join(lines, "\n"))
	for {
		before := it
		it = labelRE.ReplaceAllString(it, "")
		for _, p := range [][2]string{{"**", "**"}, {"__", "__"}, {`"`, `"`}, {"“", "”"}, {"`", "`"}} {
			if len(it) > len(p[0])+len(p[1]) && strings.HasPrefix(it, p[0]) && strings.HasSuffix(it, p[1]) &&
				!strings.Contains(it[len(p[0]):len(it)-len(p[1])], p[0]) {
				it = strings.TrimSpace(it[len(p[0]) : len(it)-len(p[1])])
			}
		}
		if it == before {
			return it
		}
	}
}
