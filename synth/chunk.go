package synth

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Chunk is a piece of a document, the unit doc_qa asks questions about.
type Chunk struct {
	// ID is ChunkID(Doc, Offset): stable across runs for the same
	// document path and content before the chunk.
	ID string `json:"id"`
	// Doc is the document's path (or any name the caller gives it).
	Doc string `json:"doc"`
	// Offset is the byte offset of Text in the document: Text is exactly
	// document[Offset:Offset+len(Text)].
	Offset int `json:"offset"`
	// Heading is the Markdown section's heading path ("Install > Linux"),
	// empty for plain text.
	Heading string `json:"heading,omitempty"`
	Text    string `json:"text"` // the chunk's text, verbatim
}

// ChunkID is the hex of the first 8 bytes of SHA-256 over the document
// path, a 0 byte and the decimal offset.
func ChunkID(doc string, offset int) string {
	sum := sha256.Sum256([]byte(doc + "\x00" + strconv.Itoa(offset)))
	return hex.EncodeToString(sum[:8])
}

// ChunkConfig tunes ChunkDocument; zero values mean the defaults.
type ChunkConfig struct {
	// MaxChars bounds a chunk's length in bytes; default 2000.
	MaxChars int `yaml:"max_chars,omitempty" json:"max_chars,omitempty"`
	// Overlap is how many bytes (about) consecutive pieces of a long
	// section share; default 200, less than MaxChars/2.
	Overlap int `yaml:"overlap,omitempty" json:"overlap,omitempty"`
	// Format is markdown, text, or auto (default): markdown for .md,
	// .markdown, .mdx and .mdown paths.
	Format string `yaml:"format,omitempty" json:"format,omitempty"`
}

func (c *ChunkConfig) defaults() error {
	if c.MaxChars == 0 {
		c.MaxChars = 2000
	}
	if c.Overlap == 0 {
		c.Overlap = 200
	}
	if c.Format == "" {
		c.Format = "auto"
	}
	switch {
	case c.MaxChars < 100:
		return fmt.Errorf("max_chars %d: want at least 100", c.MaxChars)
	case c.Overlap < 0 || c.Overlap >= c.MaxChars/2:
		return fmt.Errorf("overlap %d: want 0 ≤ overlap < max_chars/2", c.Overlap)
	case c.Format != "auto" && c.Format != "markdown" && c.Format != "text":
		return fmt.Errorf("format %q is not one of auto, markdown, text", c.Format)
	}
	return nil
}

var headingRE = regexp.MustCompile(`^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*#*[ \t]*$`)

// ChunkDocument splits a plain-text or Markdown document into chunks:
// Markdown first into sections at ATX headings ("#" to "######", not
// inside code fences; a section holding only headings joins the next),
// then every section (or the whole plain text) longer than MaxChars into
// pieces of at most MaxChars that end at a paragraph break, a line
// break, a sentence end or a space (in that order of preference, within
// the piece's second half) and overlap by about Overlap bytes, starting
// at a word. Chunks are trimmed of surrounding white space; empty ones
// are dropped. The result depends only on doc, text and cfg.
func ChunkDocument(doc, text string, cfg ChunkConfig) ([]Chunk, error) {
	if err := cfg.defaults(); err != nil {
		return nil, fmt.Errorf("synth: chunk: %w", err)
	}
	md := cfg.Format == "markdown"
	if cfg.Format == "auto" {
		switch strings.ToLower(filepath.Ext(doc)) {
		case ".md", ".markdown", ".mdx", ".mdown":
			md = true
		}
	}
	var secs []section
	if md {
		secs = markdownSections(text)
	} else {
		secs = []section{{0, len(text), ""}}
	}
	var out []Chunk
	for _, s := range secs {
		for _, p := range splitSize(text, s.start, s.end, cfg.MaxChars, cfg.Overlap) {
			a, b := p[0], p[1]
			for a < b && isSpace(text[a]) {
				a++
			}
			for b > a && isSpace(text[b-1]) {
				b--
			}
			if a == b {
				continue
			}
			out = append(out, Chunk{ID: ChunkID(doc, a), Doc: doc, Offset: a, Heading: s.heading, Text: text[a:b]})
		}
	}
	return out, nil
}

type section struct {
	start, end int
	heading    string
}

// markdownSections splits at ATX headings outside code fences.
func markdownSections(text string) []section {
	var secs []section
	var stack [7]string
	cur := section{0, 0, ""}
	onlyHeadings := true // the current section has no body text yet
	fence := ""
	for off := 0; off < len(text); {
		nl := strings.IndexByte(text[off:], '\n')
		end := len(text)
		if nl >= 0 {
			end = off + nl + 1
		}
		line := strings.TrimRight(text[off:end], "\r\n")
		t := strings.TrimLeft(line, " ")
		switch {
		case fence != "":
			if strings.HasPrefix(t, fence) {
				fence = ""
			}
			onlyHeadings = false
		case strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~"):
			fence = t[:3]
			onlyHeadings = false
		default:
			if m := headingRE.FindStringSubmatch(line); m != nil {
				level := len(m[1])
				stack[level] = strings.TrimSpace(m[2])
				for i := level + 1; i < len(stack); i++ {
					stack[i] = ""
				}
				var parts []string
				for _, h := range stack[1:] {
					if h != "" {
						parts = append(parts, h)
					}
				}
				if !onlyHeadings {
					cur.end = off
					secs = append(secs, cur)
					cur = section{start: off}
				}
				cur.heading = strings.Join(parts, " > ")
				onlyHeadings = true
				off = end
				continue
			}
			if strings.TrimSpace(line) != "" {
				onlyHeadings = false
			}
		}
		off = end
	}
	cur.end = len(text)
	return append(secs, cur)
}

// splitSize cuts text[start:end] into pieces of at most max bytes that
// overlap by about overlap bytes.
func splitSize(text string, start, end, max, overlap int) [][2]int {
	var out [][2]int
	for start < end {
		if end-start <= max {
			return append(out, [2]int{start, end})
		}
		cut := boundary(text, start, start+max)
		out = append(out, [2]int{start, cut})
		next := cut - overlap
		if next <= start {
			next = cut
		} else {
			// Start the overlap at a word: after the first white space
			// at or past next.
			i := strings.IndexAny(text[next:cut], " \t\n")
			if i < 0 {
				next = cut
			} else {
				next += i
				for next < cut && isSpace(text[next]) {
					next++
				}
			}
		}
		start = next
	}
	return out
}

// boundary picks where a piece starting at start and ending by limit
// ends: after the last paragraph break, line break, sentence end or space
// in the second half of the piece, else at limit (moved back to a rune
// start).
func boundary(text string, start, limit int) int {
	half := start + (limit-start)/2
	win := text[half:limit]
	for _, seps := range [][]string{{"\n\n"}, {"\n"}, {". ", "? ", "! "}, {" "}} {
		best := -1
		for _, sep := range seps {
			if i := strings.LastIndex(win, sep); i >= 0 && i+len(sep) > best {
				best = i + len(sep)
			}
		}
		if best > 0 {
			return half + best
		}
	}
	for limit > start+1 && !utf8.RuneStart(text[limit]) {
		limit--
	}
	return limit
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }
