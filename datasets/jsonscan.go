package datasets

// This file holds the single-pass JSON scanner behind Decoder.Decode and
// DetectFormat. It walks a record once, validating it as strictly as
// encoding/json does (any syntax error anywhere is "bad json"), matches the
// keys the formats use and decodes chat turns and content-part lists in
// place. Content strings are validated, unescaped and copied in one go
// (bytes.IndexByte finds quotes and backslashes, a word-at-a-time check
// finds control and non-ASCII bytes) into a pooled buffer, and every
// message of a turn list is cut from one string: an OpenAI record costs
// one pass and two allocations (the message slice and the text).
//
// It deliberately reproduces encoding/json's behaviour wherever that shows
// through to the decoded record:
//   - struct keys match case-insensitively with Unicode simple folding
//     ("Messages", "meſſages"), map keys (text format, DetectFormat) exactly;
//   - the last of duplicate keys wins, and null resets a pointer or
//     RawMessage-like field but leaves a plain string field alone;
//   - invalid UTF-8 inside strings becomes U+FFFD, byte by byte, and so do
//     lone UTF-16 surrogates in \u escapes;
//   - nesting deeper than 10000 is a syntax error;
//   - a value of the wrong type in a typed top-level field fails the whole
//     record ("bad json"), inside a turn list "bad field".
//
// The old encoding/json implementation lives on in jsonscan_test.go as the
// oracle for a differential and a fuzz test.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxNestingDepth is encoding/json's limit on nested arrays and objects.
const maxNestingDepth = 10000

// String flags recorded by scanString.
const (
	strEscaped = 1 << iota // holds a backslash escape
	strHigh                // holds a byte >= 0x80
)

// strSpan is a scanned JSON string: the offsets of the bytes between its
// quotes and what they contain.
type strSpan struct {
	start, end int
	flags      uint8
}

// jsonSyntaxError is a record that is not valid JSON.
type jsonSyntaxError struct {
	msg string
	off int
}

func (e *jsonSyntaxError) Error() string {
	return e.msg + " (at byte " + strconv.Itoa(e.off) + ")"
}

// jsonScanner walks one JSON document held in data.
type jsonScanner struct {
	data  []byte
	pos   int
	depth int
	// out accumulates decoded contents, which are cut from one string per
	// turn list; tmp decodes keys, tags and other strings with escapes.
	out, tmp []byte
	// parts collects the text spans of a content-part list; offs the
	// content offsets in out of a turn list's messages.
	parts []strSpan
	offs  [][2]int
}

// scanners recycles scanners and their buffers between records.
var scanners = sync.Pool{New: func() any { return new(jsonScanner) }}

func getScanner(data []byte) *jsonScanner {
	s := scanners.Get().(*jsonScanner)
	s.data, s.pos, s.depth = data, 0, 0
	s.out, s.tmp, s.parts, s.offs = s.out[:0], s.tmp[:0], s.parts[:0], s.offs[:0]
	return s
}

func putScanner(s *jsonScanner) {
	s.data = nil
	if cap(s.out) > 1<<20 || cap(s.tmp) > 1<<20 || cap(s.parts) > 1<<12 || cap(s.offs) > 1<<12 {
		return // do not pin the buffers of a huge record
	}
	scanners.Put(s)
}

func (s *jsonScanner) eof() error {
	return &jsonSyntaxError{"unexpected end of JSON input", len(s.data)}
}

func (s *jsonScanner) errAt(i int, context string) error {
	return &jsonSyntaxError{"invalid character " + quoteChar(s.data[i]) + " " + context, i}
}

// quoteChar formats c as encoding/json's syntax errors do.
func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	q := strconv.Quote(string(rune(c)))
	return "'" + q[1:len(q)-1] + "'"
}

// next skips whitespace and returns the byte at s.pos, which it leaves
// there; the end of the input is an error.
func (s *jsonScanner) next() (byte, error) {
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; c {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return c, nil
		}
	}
	return 0, s.eof()
}

// enter consumes the '{' or '[' at s.pos, one level deeper.
func (s *jsonScanner) enter() error {
	s.depth++
	if s.depth > maxNestingDepth {
		return &jsonSyntaxError{"exceeded max depth", s.pos}
	}
	s.pos++
	return nil
}

// object walks the object at s.pos. For each member it calls field with
// the key and s.pos at the first byte of the value, which field must
// consume.
func (s *jsonScanner) object(field func(key strSpan) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	c, err := s.next()
	if err != nil {
		return err
	}
	if c == '}' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		if c != '"' {
			return s.errAt(s.pos, "looking for beginning of object key string")
		}
		key, err := s.scanString()
		if err != nil {
			return err
		}
		if c, err = s.next(); err != nil {
			return err
		}
		if c != ':' {
			return s.errAt(s.pos, "after object key")
		}
		s.pos++
		if _, err = s.next(); err != nil {
			return err
		}
		if err = field(key); err != nil {
			return err
		}
		if c, err = s.next(); err != nil {
			return err
		}
		switch c {
		case ',':
			s.pos++
			if c, err = s.next(); err != nil {
				return err
			}
		case '}':
			s.pos++
			s.depth--
			return nil
		default:
			return s.errAt(s.pos, "after object key:value pair")
		}
	}
}

// array walks the array at s.pos, calling elem with s.pos at the first
// byte of each element, which elem must consume. It returns the number of
// elements.
func (s *jsonScanner) array(elem func(i int) error) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	c, err := s.next()
	if err != nil {
		return 0, err
	}
	if c == ']' {
		s.pos++
		s.depth--
		return 0, nil
	}
	for i := 0; ; i++ {
		if err := elem(i); err != nil {
			return 0, err
		}
		if c, err = s.next(); err != nil {
			return 0, err
		}
		switch c {
		case ',':
			s.pos++
			if _, err = s.next(); err != nil {
				return 0, err
			}
		case ']':
			s.pos++
			s.depth--
			return i + 1, nil
		default:
			return 0, s.errAt(s.pos, "after array element")
		}
	}
}

// skipValue consumes and validates the value at s.pos.
func (s *jsonScanner) skipValue() error {
	switch c := s.data[s.pos]; c {
	case '"':
		_, err := s.scanString()
		return err
	case '{':
		return s.object(func(strSpan) error { return s.skipValue() })
	case '[':
		_, err := s.array(func(int) error { return s.skipValue() })
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || '0' <= c && c <= '9' {
			return s.number()
		}
		return s.errAt(s.pos, "looking for beginning of value")
	}
}

func (s *jsonScanner) literal(lit string) error {
	for k := 0; k < len(lit); k++ {
		i := s.pos + k
		if i >= len(s.data) {
			return s.eof()
		}
		if s.data[i] != lit[k] {
			return s.errAt(i, "in literal "+lit)
		}
	}
	s.pos += len(lit)
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// number consumes a number, enforcing JSON's grammar (no leading zeros,
// digits after '.' and in exponents).
func (s *jsonScanner) number() error {
	d, i := s.data, s.pos
	if d[i] == '-' {
		i++
		if i >= len(d) {
			return s.eof()
		}
	}
	switch {
	case d[i] == '0':
		i++
	case '1' <= d[i] && d[i] <= '9':
		i++
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	default:
		return s.errAt(i, "in numeric literal")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) {
			return s.eof()
		}
		if !isDigit(d[i]) {
			return s.errAt(i, "after decimal point in numeric literal")
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) {
			return s.eof()
		}
		if !isDigit(d[i]) {
			return s.errAt(i, "in exponent of numeric literal")
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	s.pos = i
	return nil
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plainRun returns the index of the first byte at or after i that a string
// scan must look at: '"', '\\', a control character or, while high is
// msb, a byte >= 0x80. It tests eight bytes at a time; the lowest flagged
// byte of a word is always a true hit (borrows only run upwards).
func plainRun(data []byte, i int, high uint64) int {
	for i+8 <= len(data) {
		w := binary.LittleEndian.Uint64(data[i:])
		q := w ^ (lsb * '"')
		b := w ^ (lsb * '\\')
		m := ((w-lsb*0x20)&^w | (q-lsb)&^q | (b-lsb)&^b | w&high) & msb
		if m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for ; i < len(data); i++ {
		c := data[i]
		if c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf && high != 0 {
			return i
		}
	}
	return i
}

// scanString consumes and validates the string at s.pos (which holds its
// opening quote).
func (s *jsonScanner) scanString() (strSpan, error) {
	data := s.data
	i := s.pos + 1
	sp := strSpan{start: i}
	// Fast path: the next quote ends the string and nothing before it
	// needs a look.
	if k := bytes.IndexByte(data[i:], '"'); k >= 0 {
		seg := data[i : i+k]
		if !ctrlOrHigh(seg) && bytes.IndexByte(seg, '\\') < 0 {
			sp.end = i + k
			s.pos = sp.end + 1
			return sp, nil
		}
	}
	high := uint64(msb)
	for {
		i = plainRun(data, i, high)
		if i >= len(data) {
			return sp, s.eof()
		}
		switch c := data[i]; {
		case c == '"':
			sp.end = i
			s.pos = i + 1
			return sp, nil
		case c == '\\':
			sp.flags |= strEscaped
			if i+1 >= len(data) {
				return sp, s.eof()
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := i + 2; k < i+6; k++ {
					if k >= len(data) {
						return sp, s.eof()
					}
					if !isHex(data[k]) {
						return sp, s.errAt(k, `in \u hexadecimal character escape`)
					}
				}
				i += 6
			default:
				return sp, s.errAt(i+1, "in string escape code")
			}
		case c < 0x20:
			return sp, s.errAt(i, "in string literal")
		default:
			sp.flags |= strHigh
			high = 0 // utf8.Valid checks the rest when decoding
			i++
		}
	}
}

// ctrlOrHigh reports whether p holds a byte < 0x20 or >= 0x80.
func ctrlOrHigh(p []byte) bool {
	for len(p) >= 16 {
		w0 := binary.LittleEndian.Uint64(p)
		w1 := binary.LittleEndian.Uint64(p[8:])
		if ((w0-lsb*0x20)|w0|(w1-lsb*0x20)|w1)&msb != 0 {
			return true
		}
		p = p[16:]
	}
	for _, c := range p {
		if c < 0x20 || c >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// hasCtrl reports whether p holds a byte < 0x20.
func hasCtrl(p []byte) bool {
	for len(p) >= 8 {
		w := binary.LittleEndian.Uint64(p)
		if (w-lsb*0x20)&^w&msb != 0 {
			return true
		}
		p = p[8:]
	}
	for _, c := range p {
		if c < 0x20 {
			return true
		}
	}
	return false
}

// appendString consumes the string at s.pos, validating it, and appends
// its decoded form to s.out in the same pass. Errors come from scanString,
// which scans the string again from its start.
func (s *jsonScanner) appendString() error {
	data, out := s.data, s.out
	start := s.pos
	i := start + 1
	q := -1 // the next quote at or after i
	for {
		if q < i {
			k := bytes.IndexByte(data[i:], '"')
			if k < 0 {
				break
			}
			q = i + k
		}
		seg := data[i:q]
		esc := bytes.IndexByte(seg, '\\')
		if esc >= 0 {
			seg = seg[:esc]
		}
		if ctrlOrHigh(seg) {
			if hasCtrl(seg) {
				break
			}
			out = appendUTF8(out, seg, true)
		} else {
			out = append(out, seg...)
		}
		if esc < 0 {
			s.out = out
			s.pos = q + 1
			return nil
		}
		i += esc
		if i+1 >= len(data) {
			break
		}
		switch c := data[i+1]; c {
		case '"', '\\', '/':
			out = append(out, c)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if !isU4(data[i:]) {
				goto slow
			}
			r := hex4(data[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				if isU4(data[i:]) {
					if dec := utf16.DecodeRune(r, hex4(data[i+2:])); dec != unicode.ReplacementChar {
						out = utf8.AppendRune(out, dec)
						i += 6
						continue
					}
				}
				r = unicode.ReplacementChar
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			goto slow
		}
		i += 2
	}
slow:
	s.pos = start
	_, err := s.scanString()
	if err == nil {
		err = &jsonSyntaxError{"internal error: string accepted on rescan", start}
	}
	return err
}

// isU4 reports whether p starts with a \u escape and its four hex digits.
func isU4(p []byte) bool {
	return len(p) >= 6 && p[0] == '\\' && p[1] == 'u' && isHex(p[2]) && isHex(p[3]) && isHex(p[4]) && isHex(p[5])
}

// raw returns the bytes between the quotes of sp.
func (s *jsonScanner) raw(sp strSpan) []byte { return s.data[sp.start:sp.end] }

// plain reports whether sp decodes to its raw bytes.
func (s *jsonScanner) plain(sp strSpan) bool {
	return sp.flags == 0 || sp.flags == strHigh && utf8.Valid(s.raw(sp))
}

// str decodes sp as encoding/json does.
func (s *jsonScanner) str(sp strSpan) string {
	return string(s.bytes(sp))
}

// bytes decodes sp, without allocating when it holds no escapes. The
// result must not be modified and is only valid until the next use of
// s.tmp.
func (s *jsonScanner) bytes(sp strSpan) []byte {
	if s.plain(sp) {
		return s.raw(sp)
	}
	s.tmp = appendUnquoted(s.tmp[:0], s.raw(sp), sp.flags)
	return s.tmp
}

// appendUnquoted appends the decoded form of raw, the validated inside of
// a JSON string: escapes resolved, lone surrogates and invalid UTF-8 bytes
// replaced by U+FFFD, as encoding/json's unquote does.
func appendUnquoted(dst, raw []byte, flags uint8) []byte {
	high := flags&strHigh != 0
	for len(raw) > 0 {
		k := len(raw)
		if flags&strEscaped != 0 {
			if k = bytes.IndexByte(raw, '\\'); k < 0 {
				k = len(raw)
			}
		}
		if k > 0 {
			dst = appendUTF8(dst, raw[:k], high)
			raw = raw[k:]
			continue
		}
		switch c := raw[1]; c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[2:6])
			raw = raw[6:]
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(raw) >= 6 && raw[0] == '\\' && raw[1] == 'u' {
					r2 = hex4(raw[2:6])
				}
				if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
					dst = utf8.AppendRune(dst, dec)
					raw = raw[6:]
					continue
				}
				r = unicode.ReplacementChar
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
		raw = raw[2:]
	}
	return dst
}

// appendUTF8 appends p, replacing each byte that does not start a valid
// UTF-8 sequence by U+FFFD (when high says p may hold such bytes).
func appendUTF8(dst, p []byte, high bool) []byte {
	if !high || utf8.Valid(p) {
		return append(dst, p...)
	}
	for len(p) > 0 {
		r, n := utf8.DecodeRune(p)
		if r == utf8.RuneError && n == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, p[:n]...)
		}
		p = p[n:]
	}
	return dst
}

// hex4 decodes four validated hex digits.
func hex4(p []byte) rune {
	var r rune
	for _, c := range p[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// foldKey folds key as encoding/json does to match struct fields
// case-insensitively (ASCII upper case, other runes to the smallest rune
// of their simple-fold orbit). Every field name is short lower-case ASCII,
// so it gives up (ok false) as soon as the folded key could not be one.
func foldKey(key []byte, buf *[16]byte) ([]byte, bool) {
	n := 0
	for i := 0; i < len(key); {
		c := key[i]
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			i++
		} else {
			r, size := utf8.DecodeRune(key[i:])
			i += size
			r = foldRune(r)
			if r >= utf8.RuneSelf {
				return nil, false
			}
			c = byte(r)
		}
		if n == len(buf) {
			return nil, false
		}
		buf[n] = c
		n++
	}
	return buf[:n], true
}

// foldRune returns the smallest rune of r's simple-fold orbit.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// Top-level keys of the formats (the fields of the old wire struct).
const (
	wNone = iota
	wInstruction
	wInput
	wOutput
	wSystem
	wContext
	wResponse
	wCategory // last string field
	wHistory
	wConversations // first raw field
	wMessages
	wPrompt
	wCompletion
	numWireKeys
)

const numStrKeys = wCategory + 1

// wireKey matches a decoded top-level key the way encoding/json matches
// the old wire struct's fields: exactly, else case-insensitively.
func wireKey(key []byte) int {
	switch string(key) {
	case "messages":
		return wMessages
	case "conversations":
		return wConversations
	case "instruction":
		return wInstruction
	case "input":
		return wInput
	case "output":
		return wOutput
	case "system":
		return wSystem
	case "history":
		return wHistory
	case "context":
		return wContext
	case "response":
		return wResponse
	case "category":
		return wCategory
	case "prompt":
		return wPrompt
	case "completion":
		return wCompletion
	}
	var buf [16]byte
	folded, ok := foldKey(key, &buf)
	if !ok {
		return wNone
	}
	switch string(folded) {
	case "MESSAGES":
		return wMessages
	case "CONVERSATIONS":
		return wConversations
	case "INSTRUCTION":
		return wInstruction
	case "INPUT":
		return wInput
	case "OUTPUT":
		return wOutput
	case "SYSTEM":
		return wSystem
	case "HISTORY":
		return wHistory
	case "CONTEXT":
		return wContext
	case "RESPONSE":
		return wResponse
	case "CATEGORY":
		return wCategory
	case "PROMPT":
		return wPrompt
	case "COMPLETION":
		return wCompletion
	}
	return wNone
}

// Keys of a chat turn.
const (
	tNone = iota
	tRole
	tContent
	tFrom
	tValue
)

func turnKey(key []byte) int {
	switch string(key) {
	case "role":
		return tRole
	case "content":
		return tContent
	case "from":
		return tFrom
	case "value":
		return tValue
	}
	var buf [16]byte
	folded, ok := foldKey(key, &buf)
	if !ok {
		return tNone
	}
	switch string(folded) {
	case "ROLE":
		return tRole
	case "CONTENT":
		return tContent
	case "FROM":
		return tFrom
	case "VALUE":
		return tValue
	}
	return tNone
}

// Keys of an OpenAI content part.
const (
	pNone = iota
	pType
	pText
)

func partKey(key []byte) int {
	switch string(key) {
	case "type":
		return pType
	case "text":
		return pText
	}
	var buf [16]byte
	folded, ok := foldKey(key, &buf)
	if !ok {
		return pNone
	}
	switch string(folded) {
	case "TYPE":
		return pType
	case "TEXT":
		return pText
	}
	return pNone
}

// kindName names the JSON kind of the value starting with c, for type
// mismatch messages.
func kindName(c byte) string {
	switch c {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// topLevel parses a whole record: an object is walked with field, null is
// accepted, anything else only validated. It returns the first byte of the
// value ('{', 'n' or the kind that mismatches an object).
func (s *jsonScanner) topLevel(field func(key strSpan) error) (byte, error) {
	c, err := s.next()
	if err != nil {
		return 0, err
	}
	if c == '{' {
		err = s.object(field)
	} else {
		err = s.skipValue()
	}
	if err != nil {
		return 0, err
	}
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
			continue
		}
		return 0, s.errAt(s.pos, "after top-level value")
	}
	return c, nil
}

// optString parses a *string field: a string sets it, null clears it,
// anything else is a type mismatch recorded in *mismatch (the first wins).
func (s *jsonScanner) optString(dst *strSpan, set *bool, name string, mismatch *string) error {
	switch c := s.data[s.pos]; c {
	case '"':
		sp, err := s.scanString()
		*dst, *set = sp, true
		return err
	case 'n':
		*set = false
		return s.literal("null")
	default:
		if *mismatch == "" {
			*mismatch = name + ": cannot unmarshal " + kindName(c) + " into a string"
		}
		return s.skipValue()
	}
}

var (
	errNotString = errors.New("content is not a string")
	errNotParts  = errors.New("content is not a string or a list of text parts")
)

// contentVal is a content (or ShareGPT value) field as contentString sees
// it. Its text is s.out[start:end].
type contentVal struct {
	present, null bool
	start, end    int
	err           error // why contentString rejects it
}

// parseContent parses a content value: a string, a list of text parts
// (joined with newlines), null, or anything else (an error). The text is
// appended to s.out.
func (s *jsonScanner) parseContent() (contentVal, error) {
	cv := contentVal{present: true, start: len(s.out)}
	var err error
	switch s.data[s.pos] {
	case '"':
		err = s.appendString()
	case 'n':
		cv.null = true
		err = s.literal("null")
		cv.err = errNotString
	case '[':
		cv.err, err = s.parseParts()
	default:
		cv.err = errNotString
		err = s.skipValue()
	}
	cv.end = len(s.out)
	return cv, err
}

// contentText returns the text of a content parsed last, releasing its
// room in s.out.
func (s *jsonScanner) contentText(cv contentVal) string {
	t := string(s.out[cv.start:cv.end])
	s.out = s.out[:cv.start]
	return t
}

// parseParts parses an OpenAI content-part list; only text parts are
// accepted. It appends the joined text to s.out, or returns why the list
// is rejected, and a syntax error.
func (s *jsonScanner) parseParts() (fail, err error) {
	s.parts = s.parts[:0]
	typeErr := false
	_, err = s.array(func(i int) error {
		switch s.data[s.pos] {
		case '{':
		case 'n':
			if fail == nil {
				fail = partTypeErr(i, "")
			}
			return s.literal("null")
		default:
			typeErr = true
			return s.skipValue()
		}
		var typ, text strSpan
		hasType, hasText := false, false
		err := s.object(func(key strSpan) error {
			switch partKey(s.bytes(key)) {
			case pType:
				switch s.data[s.pos] {
				case '"':
					var err error
					typ, err = s.scanString()
					hasType = true
					return err
				case 'n': // null leaves a string field alone
					return s.literal("null")
				}
				typeErr = true
			case pText:
				switch s.data[s.pos] {
				case '"':
					var err error
					text, err = s.scanString()
					hasText = true
					return err
				case 'n':
					hasText = false
					return s.literal("null")
				}
				typeErr = true
			}
			return s.skipValue()
		})
		if err != nil || fail != nil || typeErr {
			return err
		}
		var t []byte
		if hasType {
			t = s.bytes(typ)
		}
		if string(t) != "text" || !hasText {
			fail = partTypeErr(i, string(t))
			return nil
		}
		s.parts = append(s.parts, text)
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case typeErr:
		return errNotParts, nil
	case fail != nil:
		return fail, nil
	}
	for i, sp := range s.parts {
		if i > 0 {
			s.out = append(s.out, '\n')
		}
		if s.plain(sp) {
			s.out = append(s.out, s.raw(sp)...)
		} else {
			s.out = appendUnquoted(s.out, s.raw(sp), sp.flags)
		}
	}
	return nil, nil
}

func partTypeErr(i int, typ string) error {
	return errors.New("content part " + strconv.Itoa(i) + " has type " + strconv.Quote(typ) + "; only text parts are supported")
}

// turnVal is one chat turn in either spelling.
type turnVal struct {
	role, from       strSpan
	hasRole, hasFrom bool
	content, value   contentVal
}

// parseTurns parses a list of chat turns (the value at s.pos) and maps
// them to messages. fail is why the list is rejected (a *DecodeError), err
// a syntax error.
func (s *jsonScanner) parseTurns(d *Decoder, field string) (msgs []Message, fail, err error) {
	switch c := s.data[s.pos]; c {
	case '[':
	case 'n':
		if err := s.literal("null"); err != nil {
			return nil, nil, err
		}
		return nil, decErr("empty conversation", "%s is empty", field), nil
	default:
		if err := s.skipValue(); err != nil {
			return nil, nil, err
		}
		return nil, decErr("bad field", "%s: cannot unmarshal %s into a list of turns", field, kindName(c)), nil
	}
	var typeErr error
	base := len(s.out)
	s.offs = s.offs[:0]
	n, err := s.array(func(i int) error {
		switch c := s.data[s.pos]; c {
		case '{':
		case 'n':
			if fail == nil {
				fail = decErr("missing field", "%s[%d] has neither role nor from", field, i)
			}
			return s.literal("null")
		default:
			if typeErr == nil {
				typeErr = decErr("bad field", "%s[%d]: cannot unmarshal %s into a turn object", field, i, kindName(c))
			}
			return s.skipValue()
		}
		var t turnVal
		var mismatch string
		err := s.object(func(key strSpan) error {
			var err error
			switch turnKey(s.bytes(key)) {
			case tRole:
				return s.optString(&t.role, &t.hasRole, "role", &mismatch)
			case tFrom:
				return s.optString(&t.from, &t.hasFrom, "from", &mismatch)
			case tContent:
				t.content, err = s.parseContent()
				return err
			case tValue:
				t.value, err = s.parseContent()
				return err
			}
			return s.skipValue()
		})
		if err != nil {
			return err
		}
		if mismatch != "" && typeErr == nil {
			typeErr = decErr("bad field", "%s[%d].%s", field, i, mismatch)
		}
		if typeErr != nil || fail != nil {
			return nil
		}
		role, body, f := d.turnRole(s, &t, field, i)
		if f != nil {
			fail = f
			return nil
		}
		if msgs == nil {
			msgs = make([]Message, 0, 4)
		}
		msgs = append(msgs, Message{Role: role})
		s.offs = append(s.offs, [2]int{body.start - base, body.end - base})
		return nil
	})
	switch {
	case err != nil:
	case typeErr != nil:
		fail = typeErr
	case n == 0:
		fail = decErr("empty conversation", "%s is empty", field)
	}
	if err != nil || fail != nil {
		s.out = s.out[:base]
		return nil, fail, err
	}
	// One string holds every content of the list.
	all := string(s.out[base:])
	s.out = s.out[:base]
	for i, o := range s.offs {
		msgs[i].Content = all[o[0]:o[1]]
	}
	return msgs, nil, nil
}

// turnRole checks one parsed turn as the old per-turn checks did and
// returns its role and content.
func (d *Decoder) turnRole(s *jsonScanner, t *turnVal, field string, i int) (string, *contentVal, error) {
	var tag strSpan
	var body *contentVal
	switch {
	case t.hasRole:
		tag, body = t.role, &t.content
	case t.hasFrom:
		tag, body = t.from, &t.value
	default:
		return "", nil, decErr("missing field", "%s[%d] has neither role nor from", field, i)
	}
	tb := s.bytes(tag)
	role, ok := d.roleBytes(tb)
	if !ok {
		return "", nil, decErr("unknown role", "%s[%d]: %q (map it with the source's roles: setting)", field, i, tb)
	}
	if !body.present || body.null {
		return "", nil, decErr("missing field", "%s[%d] has no content", field, i)
	}
	if body.err != nil {
		return "", nil, decErr("bad field", "%s[%d]: %v", field, i, body.err)
	}
	return role, body, nil
}

// roleBytes is role for a tag in bytes, without allocating for short ASCII
// tags.
func (d *Decoder) roleBytes(tag []byte) (string, bool) {
	i, j := 0, len(tag)
	for i < j && asciiSpace(tag[i]) {
		i++
	}
	for j > i && asciiSpace(tag[j-1]) {
		j--
	}
	var buf [24]byte
	if j-i > len(buf) {
		return d.role(string(tag))
	}
	key := buf[:j-i]
	for k, c := range tag[i:j] {
		if c >= utf8.RuneSelf {
			return d.role(string(tag)) // Unicode spaces and case
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		key[k] = c
	}
	if r, ok := d.Roles[string(key)]; ok {
		return r, true
	}
	r, ok := DefaultRoleAliases[string(key)]
	return r, ok
}

// asciiSpace is the ASCII part of strings.TrimSpace's white space.
func asciiSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// histSlot is one element of alpaca's history ([][]string). vals keeps
// every position ever decoded into the element's backing array, because
// encoding/json decodes into the existing slice: with duplicate history
// keys, a null (which leaves a string alone) or a shorter list exposes
// earlier values.
type histSlot struct {
	vals []strSpan // a zero span decodes to ""
	n    int
}

// history is alpaca's history field, modelled the same way.
type history struct {
	slots []histSlot
	n     int
}

// parseHistory decodes the value at s.pos into h as encoding/json decodes
// into an existing [][]string.
func (s *jsonScanner) parseHistory(h *history, mismatch *string) error {
	bad := func(c byte) error {
		if *mismatch == "" {
			*mismatch = "history: cannot unmarshal " + kindName(c) + " into a list of string lists"
		}
		return s.skipValue()
	}
	switch c := s.data[s.pos]; c {
	case 'n':
		*h = history{}
		return s.literal("null")
	case '[':
	default:
		return bad(c)
	}
	n, err := s.array(func(i int) error {
		if i >= len(h.slots) {
			h.slots = append(h.slots, histSlot{})
		}
		switch c := s.data[s.pos]; c {
		case 'n':
			h.slots[i] = histSlot{}
			return s.literal("null")
		case '[':
		default:
			return bad(c)
		}
		m, err := s.array(func(j int) error {
			slot := &h.slots[i]
			if j >= len(slot.vals) {
				slot.vals = append(slot.vals, strSpan{})
			}
			switch c := s.data[s.pos]; c {
			case '"':
				sp, err := s.scanString()
				slot.vals[j] = sp
				return err
			case 'n': // null leaves a string alone
				return s.literal("null")
			default:
				return bad(c)
			}
		})
		if m == 0 {
			h.slots[i] = histSlot{} // [] makes a fresh empty slice
		} else {
			h.slots[i].n = m
		}
		return err
	})
	if n == 0 {
		*h = history{}
	} else {
		h.n = n
	}
	return err
}

// rawField is the position of a field that the old wire struct held as
// json.RawMessage.
type rawField struct {
	present    bool
	start, end int
}

// turnsResult is a turn list decoded while scanning.
type turnsResult struct {
	msgs []Message
	fail error
}

// wireScan is what one pass over a record collects for the non-text
// formats: the old wire struct, with strings as spans.
type wireScan struct {
	strs     [numStrKeys]strSpan
	hasStr   [numStrKeys]bool
	hist     history
	raws     [numWireKeys - wConversations]rawField
	turns    [numWireKeys - wConversations]turnsResult
	mismatch string
}

func (w *wireScan) raw(k int) rawField { return w.raws[k-wConversations] }

// scanWire parses raw into w, decoding the turn lists d's format needs on
// the way. The error is "bad json": invalid JSON, a non-object record, or
// a typed field of the wrong type.
func (d *Decoder) scanWire(s *jsonScanner, w *wireScan) error {
	var eager [numWireKeys - wConversations]string
	switch d.Format {
	case FormatOpenAI:
		eager[wMessages-wConversations] = "messages"
	case FormatShareGPT:
		eager[0] = "conversations" // wConversations - wConversations
		eager[wMessages-wConversations] = "conversations"
	}
	kind, err := s.topLevel(func(key strSpan) error {
		k := wireKey(s.bytes(key))
		switch {
		case k == wNone:
			return s.skipValue()
		case k < numStrKeys:
			return s.optString(&w.strs[k], &w.hasStr[k], fieldName(k), &w.mismatch)
		case k == wHistory:
			return s.parseHistory(&w.hist, &w.mismatch)
		}
		r := &w.raws[k-wConversations]
		r.present, r.start = true, s.pos
		if field := eager[k-wConversations]; field != "" {
			msgs, fail, err := s.parseTurns(d, field)
			if err != nil {
				return err
			}
			w.turns[k-wConversations] = turnsResult{msgs, fail}
		} else if err := s.skipValue(); err != nil {
			return err
		}
		r.end = s.pos
		return nil
	})
	switch {
	case err != nil:
		return decErr("bad json", "%v", err)
	case kind != '{' && kind != 'n':
		return decErr("bad json", "cannot unmarshal %s into a record object", kindName(kind))
	case w.mismatch != "":
		return decErr("bad json", "%s", w.mismatch)
	}
	return nil
}

func fieldName(k int) string {
	return [...]string{
		wInstruction:   "instruction",
		wInput:         "input",
		wOutput:        "output",
		wSystem:        "system",
		wContext:       "context",
		wResponse:      "response",
		wCategory:      "category",
		wHistory:       "history",
		wConversations: "conversations",
		wMessages:      "messages",
		wPrompt:        "prompt",
		wCompletion:    "completion",
	}[k]
}

// optStr returns a string field, or nil when absent or null.
func (w *wireScan) optStr(s *jsonScanner, k int) *string {
	if !w.hasStr[k] {
		return nil
	}
	v := s.str(w.strs[k])
	return &v
}

// alpacaScan is alpaca over a scanned record.
func (d *Decoder) alpacaScan(s *jsonScanner, w *wireScan) ([]Message, error) {
	if !w.hasStr[wInstruction] {
		return nil, decErr("missing field", "instruction")
	}
	if !w.hasStr[wOutput] {
		return nil, decErr("missing field", "output")
	}
	msgs := make([]Message, 0, 3+2*w.hist.n)
	if sys := w.optStr(s, wSystem); sys != nil && strings.TrimSpace(*sys) != "" {
		msgs = append(msgs, Message{RoleSystem, *sys})
	}
	for i, slot := range w.hist.slots[:w.hist.n] {
		if slot.n != 2 {
			return nil, decErr("bad field", "history[%d] has %d items, want [user, assistant]", i, slot.n)
		}
		msgs = append(msgs, Message{RoleUser, s.str(slot.vals[0])}, Message{RoleAssistant, s.str(slot.vals[1])})
	}
	return append(msgs,
		Message{RoleUser, joinInput(s.str(w.strs[wInstruction]), w.optStr(s, wInput))},
		Message{RoleAssistant, s.str(w.strs[wOutput])}), nil
}

// dollyScan is dolly over a scanned record.
func (d *Decoder) dollyScan(s *jsonScanner, w *wireScan) ([]Message, error) {
	if !w.hasStr[wInstruction] {
		return nil, decErr("missing field", "instruction")
	}
	if !w.hasStr[wResponse] {
		return nil, decErr("missing field", "response")
	}
	return []Message{
		{RoleUser, joinInput(s.str(w.strs[wInstruction]), w.optStr(s, wContext))},
		{RoleAssistant, s.str(w.strs[wResponse])},
	}, nil
}

// promptCompletionScan is promptCompletion over a scanned record: it
// parses the two fields again from their positions.
func (d *Decoder) promptCompletionScan(s *jsonScanner, w *wireScan) ([]Message, error) {
	prompt, completion := w.raw(wPrompt), w.raw(wCompletion)
	if !prompt.present || s.data[prompt.start] == 'n' {
		return nil, decErr("missing field", "prompt")
	}
	if !completion.present || s.data[completion.start] == 'n' {
		return nil, decErr("missing field", "completion")
	}
	part := func(r rawField, field, role string) ([]Message, error) {
		s.pos, s.depth = r.start, 1
		cv, err := s.parseContent()
		if err != nil {
			return nil, decErr("bad json", "%v", err)
		}
		if cv.err == nil {
			return []Message{{role, s.contentText(cv)}}, nil
		}
		if s.data[r.start] != '[' {
			return nil, decErr("bad field", "%s is neither a string nor a message list", field)
		}
		s.pos, s.depth = r.start, 1
		msgs, fail, err := s.parseTurns(d, field)
		if err != nil {
			return nil, decErr("bad json", "%v", err)
		}
		return msgs, fail
	}
	p, err := part(prompt, "prompt", RoleUser)
	if err != nil {
		return nil, err
	}
	c, err := part(completion, "completion", RoleAssistant)
	if err != nil {
		return nil, err
	}
	return append(p, c...), nil
}

// decodeText is Decode for FormatText: the record is read as a map, so its
// keys match exactly.
func (d *Decoder) decodeText(raw []byte) ([]Message, string, error) {
	field := d.TextField
	if field == "" {
		field = "text"
	}
	s := getScanner(raw)
	defer putScanner(s)
	var cv contentVal
	found := false
	kind, err := s.topLevel(func(key strSpan) error {
		if string(s.bytes(key)) != field {
			return s.skipValue()
		}
		found = true
		var err error
		cv, err = s.parseContent()
		return err
	})
	switch {
	case err != nil:
		return nil, "", decErr("bad json", "%v", err)
	case kind != '{' && kind != 'n':
		return nil, "", decErr("bad json", "cannot unmarshal %s into a record object", kindName(kind))
	case !found:
		return nil, "", decErr("missing field", "%s", field)
	case cv.err != nil:
		return nil, "", decErr("bad field", "%s: %v", field, cv.err)
	}
	return finish([]Message{{Role: RoleAssistant, Content: s.contentText(cv)}}), "", nil
}

// Keys DetectFormat looks at.
const (
	dConversations = iota
	dMessages
	dPrompt
	dCompletion
	dInstruction
	dOutput
	dResponse
	dText
	numDetectKeys
)

func detectKey(key []byte) int {
	switch string(key) {
	case "conversations":
		return dConversations
	case "messages":
		return dMessages
	case "prompt":
		return dPrompt
	case "completion":
		return dCompletion
	case "instruction":
		return dInstruction
	case "output":
		return dOutput
	case "response":
		return dResponse
	case "text":
		return dText
	}
	return -1
}

// detectFormat is DetectFormat over the scanner; keys match exactly, as in
// a map, and a key holding null counts as absent.
func detectFormat(raw []byte) (Format, error) {
	s := jsonScanner{data: raw}
	var has [numDetectKeys]bool
	var messages rawField
	kind, err := s.topLevel(func(key strSpan) error {
		k := detectKey(s.bytes(key))
		if k < 0 {
			return s.skipValue()
		}
		start := s.pos
		if err := s.skipValue(); err != nil {
			return err
		}
		has[k] = s.data[start] != 'n'
		if k == dMessages {
			messages = rawField{true, start, s.pos}
		}
		return nil
	})
	switch {
	case err != nil:
		return "", decErr("bad json", "%v", err)
	case kind != '{' && kind != 'n':
		return "", decErr("bad json", "cannot unmarshal %s into a record object", kindName(kind))
	}
	switch {
	case has[dConversations]:
		return FormatShareGPT, nil
	case has[dMessages]:
		m := raw[messages.start:messages.end]
		if bytes.Contains(m, []byte(`"from"`)) && !bytes.Contains(m, []byte(`"role"`)) {
			return FormatShareGPT, nil
		}
		return FormatOpenAI, nil
	case has[dPrompt] && has[dCompletion]:
		return FormatPromptCompletion, nil
	case has[dInstruction] && has[dOutput]:
		return FormatAlpaca, nil
	case has[dInstruction] && has[dResponse]:
		return FormatDolly, nil
	case has[dText]:
		return FormatText, nil
	}
	return "", decErr("unknown format", "no known format has fields [%s]", strings.Join(recordKeys(raw), ", "))
}

// recordKeys returns the distinct top-level keys of a valid record,
// sorted.
func recordKeys(raw []byte) []string {
	s := jsonScanner{data: raw}
	seen := map[string]bool{}
	var keys []string
	s.topLevel(func(key strSpan) error {
		if k := s.str(key); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
		return s.skipValue()
	})
	sort.Strings(keys)
	return keys
}
