package filters

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/sieve-data/sieve/datasets"
)

// PII kinds, as PIIConfig.Kinds names them and Scrub counts them.
const (
	PIIEmail      = "email"
	PIIPhone      = "phone"
	PIIIPv4       = "ipv4"
	PIIIPv6       = "ipv6"
	PIICreditCard = "credit_card"
	PIIIBAN       = "iban"
	// PIISecret covers AWS access key ids and secret keys, GitHub,
	// OpenAI, Slack, Google API, Stripe secret keys, JWTs and PEM private
	// key blocks.
	PIISecret = "secret"
)

// piiKinds in priority order: where two detections overlap, the kind
// listed first wins (a secret may contain digits that look like a phone
// number; an IPv6 address may embed an IPv4 one).
var piiKinds = []string{PIISecret, PIIEmail, PIIIBAN, PIICreditCard, PIIIPv6, PIIIPv4, PIIPhone}

const (
	kSecret = iota
	kEmail
	kIBAN
	kCard
	kIPv6
	kIPv4
	kPhone
	nKinds
)

// PIIKinds returns every PII kind a Scrubber knows.
func PIIKinds() []string { return slices.Clone(piiKinds) }

// PII modes.
const (
	// PIIRedact replaces each finding with its placeholder (default).
	PIIRedact = "redact"
	// PIIDrop leaves contents alone; the caller drops samples with
	// findings.
	PIIDrop = "drop"
)

// PIIConfig configures a Scrubber.
type PIIConfig struct {
	// Kinds to look for; default all of PIIKinds().
	Kinds []string `yaml:"kinds" json:"kinds,omitempty"`
	// Mode is redact (default) or drop.
	Mode string `yaml:"mode" json:"mode,omitempty"`
	// Placeholder replaces a finding; "{KIND}" in it becomes the kind in
	// upper case, "{kind}" the kind as is. Default "[{KIND}]", giving
	// "[EMAIL]", "[CREDIT_CARD]".
	Placeholder string `yaml:"placeholder" json:"placeholder,omitempty"`
	// RedactReserved also redacts addresses that name nobody: the
	// documentation and private IP ranges, loopback, link-local, and
	// e-mail domains reserved by RFC 2606 (example.com, *.test, …).
	// Default false, as datatrove keeps non-public IPs.
	RedactReserved bool `yaml:"redact_reserved" json:"redact_reserved,omitempty"`
}

// Defaults fills in the default kinds, mode and placeholder.
func (c *PIIConfig) Defaults() {
	if c.Kinds == nil {
		c.Kinds = PIIKinds()
	}
	if c.Mode == "" {
		c.Mode = PIIRedact
	}
	if c.Placeholder == "" {
		c.Placeholder = "[{KIND}]"
	}
}

// Validate reports unknown kinds and modes, keyed "pii.…".
func (c *PIIConfig) Validate() error {
	var errs []error
	for _, k := range c.Kinds {
		if !slices.Contains(piiKinds, k) {
			errs = append(errs, fmt.Errorf("pii.kinds: unknown kind %q (known: %s)", k, strings.Join(piiKinds, ", ")))
		}
	}
	switch c.Mode {
	case PIIRedact, PIIDrop:
	default:
		errs = append(errs, fmt.Errorf("pii.mode: unknown mode %q (want redact or drop)", c.Mode))
	}
	return errors.Join(errs...)
}

// PIIMatch is one finding: Text[Start:End] is of Kind.
type PIIMatch struct {
	Kind       string // one of PIIKinds()
	Start, End int    // byte offsets
}

// Scrubber finds and redacts PII. It is safe for concurrent use.
type Scrubber struct {
	on           [nKinds]bool
	drop         bool
	placeholders [nKinds]string
	reserved     bool
	memoTag      uint64 // what find depends on: the kinds on and reserved
}

// NewScrubber builds a Scrubber from cfg (after Defaults).
func NewScrubber(cfg PIIConfig) (*Scrubber, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Scrubber{drop: cfg.Mode == PIIDrop, reserved: cfg.RedactReserved}
	for i, k := range piiKinds {
		s.on[i] = slices.Contains(cfg.Kinds, k)
		p := strings.ReplaceAll(cfg.Placeholder, "{KIND}", strings.ToUpper(k))
		s.placeholders[i] = strings.ReplaceAll(p, "{kind}", k)
		if s.on[i] {
			s.memoTag |= 1 << i
		}
	}
	if s.reserved {
		s.memoTag |= 1 << 62
	}
	return s, nil
}

type piiSpan struct{ start, end, kind int }

// Scrub finds PII in every message of sample and, in redact mode,
// replaces each finding with its placeholder in place. It returns the
// number of findings per kind, nil when there are none. In drop mode the
// contents are left alone. The sample's ID is not changed.
func (s *Scrubber) Scrub(sample *datasets.Sample) map[string]int {
	var counts map[string]int
	var spans []piiSpan
	for i := range sample.Messages {
		m := &sample.Messages[i]
		spans = s.find(spans[:0], m.Content)
		if len(spans) == 0 {
			continue
		}
		if counts == nil {
			counts = map[string]int{}
		}
		for _, sp := range spans {
			counts[piiKinds[sp.kind]]++
		}
		if !s.drop {
			m.Content = s.replace(m.Content, spans)
		}
	}
	return counts
}

// Find returns the findings in text, in order, none overlapping.
func (s *Scrubber) Find(text string) []PIIMatch {
	spans := s.find(nil, text)
	out := make([]PIIMatch, len(spans))
	for i, sp := range spans {
		out[i] = PIIMatch{Kind: piiKinds[sp.kind], Start: sp.start, End: sp.end}
	}
	return out
}

// ScrubText returns text with every finding replaced by its placeholder
// (whatever the mode) and the findings.
func (s *Scrubber) ScrubText(text string) (string, []PIIMatch) {
	spans := s.find(nil, text)
	m := make([]PIIMatch, len(spans))
	for i, sp := range spans {
		m[i] = PIIMatch{Kind: piiKinds[sp.kind], Start: sp.start, End: sp.end}
	}
	return s.replace(text, spans), m
}

func (s *Scrubber) replace(text string, spans []piiSpan) string {
	if len(spans) == 0 {
		return text
	}
	var b strings.Builder
	b.Grow(len(text))
	last := 0
	for _, sp := range spans {
		b.WriteString(text[last:sp.start])
		b.WriteString(s.placeholders[sp.kind])
		last = sp.end
	}
	b.WriteString(text[last:])
	return b.String()
}

// spanSet collects findings; add ignores one that overlaps an earlier
// (higher-priority) finding.
type spanSet struct{ spans []piiSpan }

func (f *spanSet) add(start, end, kind int) {
	for _, sp := range f.spans {
		if start < sp.end && sp.start < end {
			return
		}
	}
	f.spans = append(f.spans, piiSpan{start, end, kind})
}

// find appends the findings in text to dst[:0], sorted, without
// overlaps. They are memoised by text (piiMemo): an answer reused under
// many prompts is searched once.
func (s *Scrubber) find(dst []piiSpan, text string) []piiSpan {
	dst = dst[:0]
	if len(text) < 6 {
		return dst
	}
	spans := piiMemo.do(textKey(text, s.memoTag), func() []piiSpan {
		return slices.Clip(s.search(nil, text))
	})
	return append(dst, spans...)
}

// search is find without the memo.
func (s *Scrubber) search(dst []piiSpan, text string) []piiSpan {
	f := spanSet{spans: dst}
	add := &f
	if s.on[kSecret] {
		findSecrets(text, add)
	}
	if s.on[kEmail] {
		findEmails(text, s.reserved, add)
	}
	if s.on[kIBAN] {
		findIBANs(text, add)
	}
	if s.on[kCard] {
		findCards(text, add)
	}
	if s.on[kIPv6] {
		findIPv6(text, s.reserved, add)
	}
	if s.on[kIPv4] {
		findIPv4(text, s.reserved, add)
	}
	if s.on[kPhone] {
		findPhones(text, add)
	}
	slices.SortFunc(f.spans, func(a, b piiSpan) int { return a.start - b.start })
	return f.spans
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isAlnum(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// isWordByte: ASCII letters, digits and '_', and any non-ASCII byte (a
// letter of another script touching a candidate makes it part of a word).
func isWordByte(c byte) bool { return isAlnum(c) || c == '_' || c >= 0x80 }

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// ---------------------------------------------------------------- secrets

// findSecrets finds provider keys and tokens by their fixed prefixes and
// character sets, JWTs by their base64url '{"' header and payload, PEM
// private-key blocks, and AWS secret keys after their variable name.
func findSecrets(s string, add *spanSet) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !secretStart[c] {
			continue
		}
		if c == '-' {
			if strings.HasPrefix(s[i:], "-----BEGIN ") {
				if end, ok := pemBlock(s, i); ok {
					add.add(i, end, kSecret)
					i = end - 1
				}
			}
			continue
		}
		if i > 0 && isWordByte(s[i-1]) {
			continue
		}
		if (c == 'a' || c == 'A') && len(s)-i >= 21 && strings.EqualFold(s[i:i+21], "aws_secret_access_key") {
			if a, b, ok := awsSecret(s, i+21); ok {
				add.add(a, b, kSecret)
				i = b - 1
				continue
			}
		}
		end := 0
		switch c {
		case 'A':
			switch {
			case hasAny(s[i:], "AKIA", "ASIA", "ABIA", "ACCA"):
				end = run(s, i+4, isUpperDigit)
				if end-i != 20 {
					end = 0
				}
			case strings.HasPrefix(s[i:], "AIza"):
				end = run(s, i+4, isB64URL)
				if end-i != 39 {
					end = 0
				}
			}
		case 'g':
			switch {
			case hasAny(s[i:], "ghp_", "gho_", "ghu_", "ghs_", "ghr_"):
				end = run(s, i+4, isAlnum)
				if end-i < 40 {
					end = 0
				}
			case strings.HasPrefix(s[i:], "github_pat_"):
				end = run(s, i+11, isAlnumUnderscore)
				if end-i < 50 {
					end = 0
				}
			}
		case 's', 'r':
			switch {
			case hasAny(s[i:], "sk_live_", "sk_test_", "rk_live_", "rk_test_"):
				end = run(s, i+8, isAlnum)
				if end-i < 8+20 {
					end = 0
				}
			case c == 's' && strings.HasPrefix(s[i:], "sk-"):
				end = run(s, i+3, isB64URL)
				if end-i < 3+32 || !mixedAlnum(s[i+3:end]) {
					end = 0
				}
			}
		case 'x':
			if strings.HasPrefix(s[i:], "xox") && i+4 < len(s) && strings.IndexByte("baprse", s[i+3]) >= 0 && s[i+4] == '-' {
				end = run(s, i+5, isAlnumDash)
				if end-i < 5+10 || !hasDigit(s[i+5:end]) {
					end = 0
				}
			} else if strings.HasPrefix(s[i:], "xapp-") {
				end = run(s, i+5, isAlnumDash)
				if end-i < 5+10 || !hasDigit(s[i+5:end]) {
					end = 0
				}
			}
		case 'e':
			if strings.HasPrefix(s[i:], "eyJ") {
				end = jwt(s, i)
			}
		}
		if end > 0 {
			if end < len(s) && isWordByte(s[end]) {
				continue
			}
			add.add(i, end, kSecret)
			i = end - 1
		}
	}
}

// secretStart marks the first bytes of the prefixes findSecrets knows.
var secretStart = [256]bool{'-': true, 'A': true, 'a': true, 'g': true, 's': true, 'r': true, 'x': true, 'e': true}

func hasAny(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// run returns the end of the run of bytes satisfying ok from i.
func run(s string, i int, ok func(byte) bool) int {
	for i < len(s) && ok(s[i]) {
		i++
	}
	return i
}

func isUpperDigit(c byte) bool      { return isUpper(c) || isDigit(c) }
func isB64URL(c byte) bool          { return isAlnum(c) || c == '-' || c == '_' }
func isAlnumUnderscore(c byte) bool { return isAlnum(c) || c == '_' }
func isAlnumDash(c byte) bool       { return isAlnum(c) || c == '-' }

func hasDigit(s string) bool {
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			return true
		}
	}
	return false
}

// mixedAlnum: digits and letters both present, as in random keys and not
// in words such as "sk-learn-compatible-estimators-and-pipelines".
func mixedAlnum(s string) bool {
	d, l := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isDigit(c):
			d++
		case isAlnum(c):
			l++
		}
	}
	return d >= 2 && l >= 3
}

// jwt returns the end of a JWT starting at i (header "eyJ…", payload
// "eyJ…", signature), or 0.
func jwt(s string, i int) int {
	h := run(s, i, isB64URL)
	if h-i < 10 || h >= len(s) || s[h] != '.' || !strings.HasPrefix(s[h+1:], "eyJ") {
		return 0
	}
	p := run(s, h+1, isB64URL)
	if p-h-1 < 10 || p >= len(s) || s[p] != '.' {
		return 0
	}
	sig := run(s, p+1, isB64URL)
	if sig-p-1 < 16 {
		return 0
	}
	return sig
}

// pemBlock returns the end of the PEM private-key block starting at i: up
// to and including its END line, or to the end of its base64 body when
// the END line is missing.
func pemBlock(s string, i int) (int, bool) {
	nl := strings.IndexByte(s[i:], '\n')
	head := s[i:]
	if nl >= 0 {
		head = s[i : i+nl]
	}
	if !strings.Contains(head, "PRIVATE KEY") || !strings.HasSuffix(strings.TrimSpace(head), "-----") {
		return 0, false
	}
	if nl < 0 {
		return i + len(head), true
	}
	body := i + nl + 1
	if e := strings.Index(s[body:], "-----END "); e >= 0 {
		end := body + e + len("-----END ")
		if k := strings.Index(s[end:], "-----"); k >= 0 && k < 80 {
			return end + k + 5, true
		}
		return end, true
	}
	// No END line: the body runs while lines look like base64.
	end := body
	for end < len(s) {
		line, next := nextLine(s, end)
		t := strings.TrimSpace(line)
		if t == "" || strings.IndexFunc(t, func(r rune) bool {
			return !(r < 128 && (isAlnum(byte(r)) || r == '+' || r == '/' || r == '=' || r == ':' || r == '-' || r == ' '))
		}) >= 0 {
			break
		}
		end = next
	}
	return end, true
}

// awsSecret finds the 40-character key after "aws_secret_access_key",
// an optional quote, '=' or ':', spaces and an optional quote.
func awsSecret(s string, i int) (int, int, bool) {
	j := i
	for j < len(s) && j-i < 8 && (s[j] == ' ' || s[j] == '"' || s[j] == '\'' || s[j] == '=' || s[j] == ':' || s[j] == '\t') {
		j++
	}
	if j == i {
		return 0, 0, false
	}
	e := run(s, j, func(c byte) bool { return isAlnum(c) || c == '/' || c == '+' })
	if e-j != 40 {
		return 0, 0, false
	}
	return j, e, true
}

// ----------------------------------------------------------------- e-mail

// Bytes of an address's local part and domain; bytes >= 0x80 are the
// UTF-8 of internationalised names (RFC 6531, IDNA).
func isLocalByte(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-' || c == '\'' || c >= 0x80
}

func isDomainByte(c byte) bool { return isAlnum(c) || c == '.' || c == '-' || c >= 0x80 }

// findEmails finds local@domain.tld around each '@'.
func findEmails(s string, reserved bool, add *spanSet) {
	for i := 0; ; {
		at := strings.IndexByte(s[i:], '@')
		if at < 0 {
			return
		}
		at += i
		i = at + 1
		a := at
		for a > 0 && isLocalByte(s[a-1]) {
			a--
		}
		for a < at && (s[a] == '.' || s[a] == '\'' || s[a] == '-') {
			a++
		}
		if a == at || s[at-1] == '.' {
			continue
		}
		e := run(s, at+1, isDomainByte)
		for e > at+1 && (s[e-1] == '.' || s[e-1] == '-') {
			e--
		}
		domain := s[at+1 : e]
		if !validDomain(domain) {
			continue
		}
		if !reserved && reservedDomain(domain) {
			continue
		}
		add.add(a, e, kEmail)
		i = e
	}
}

// validDomain: two or more labels of letters, digits and inner hyphens;
// a final label of two or more letters that is not an image extension
// ("icon@2x.png").
func validDomain(d string) bool {
	dot := strings.LastIndexByte(d, '.')
	if dot <= 0 {
		return false
	}
	tld := d[dot+1:]
	if len(tld) < 2 {
		return false
	}
	for i := 0; i < len(tld); i++ {
		if isDigit(tld[i]) || tld[i] == '-' {
			return false
		}
	}
	switch strings.ToLower(tld) {
	case "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico":
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
	}
	return true
}

// reservedDomain reports the RFC 2606 / RFC 6761 names that belong to
// nobody.
func reservedDomain(d string) bool {
	d = strings.ToLower(d)
	switch d {
	case "example.com", "example.net", "example.org", "localhost":
		return true
	}
	for _, suf := range []string{".example.com", ".example.net", ".example.org", ".example", ".test", ".invalid", ".localhost", ".local"} {
		if strings.HasSuffix(d, suf) {
			return true
		}
	}
	return false
}

// ------------------------------------------------------------------- IBAN

// ibanLengths is the IBAN length of each country of the SWIFT IBAN
// registry.
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
	"BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
	"EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
	"GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
	"IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
	"LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
	"NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
	"RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
	"SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

// findIBANs finds country code, check digits and account (either case),
// compact or in groups separated by single spaces, of the country's length
// and passing the ISO 13616 mod-97 check.
func findIBANs(s string, add *spanSet) {
	for i := 0; i+15 <= len(s); i++ {
		if !isDigit(s[i+2]) || !isDigit(s[i+3]) || !isLetter(s[i]) || !isLetter(s[i+1]) {
			continue
		}
		if i > 0 && isWordByte(s[i-1]) {
			continue
		}
		cc := [2]byte{upper(s[i]), upper(s[i+1])}
		want, ok := ibanLengths[string(cc[:])]
		if !ok {
			continue
		}
		var buf [34]byte
		n := 0
		j := i
		for n < want && j < len(s) {
			c := s[j]
			if isAlnum(c) {
				buf[n] = upper(c)
				n++
				j++
				continue
			}
			if c == ' ' && n >= 4 && j+1 < len(s) && isAlnum(s[j+1]) {
				j++
				continue
			}
			break
		}
		if n != want || (j < len(s) && isWordByte(s[j])) {
			continue
		}
		if ibanMod97(buf[:n]) != 1 {
			continue
		}
		add.add(i, j, kIBAN)
		i = j - 1
	}
}

func isLetter(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// ibanMod97 moves the first four characters to the end, reads letters as
// 10..35 and returns the number mod 97.
func ibanMod97(b []byte) int {
	r := 0
	digit := func(c byte) {
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			v := int(c-'A') + 10
			r = (r*100 + v) % 97
		}
	}
	for _, c := range b[4:] {
		digit(c)
	}
	for _, c := range b[:4] {
		digit(c)
	}
	return r
}

// ------------------------------------------------------------ credit card

// findCards finds 13 to 19 digits, compact or in groups separated by
// single spaces or hyphens (one kind throughout), with a card network's
// prefix and a valid Luhn checksum. When the whole run fails, shorter
// runs ending at a group boundary are tried ("4111 1111 1111 1111 123"
// with a CVV).
func findCards(s string, add *spanSet) {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) || (i > 0 && (isWordByte(s[i-1]) || s[i-1] == '.' || s[i-1] == ',')) {
			continue
		}
		if continuesGroup(s, i) {
			i = run(s, i, isDigit)
			continue
		}
		var digits [24]byte
		var ends [12]int // byte end of each group
		var counts [12]int
		n, g := 0, 0
		var sep byte
		j := i
		for j < len(s) && n < len(digits) {
			c := s[j]
			if isDigit(c) {
				digits[n] = c
				n++
				j++
				continue
			}
			if (c == ' ' || c == '-') && (sep == 0 || c == sep) && j+1 < len(s) && isDigit(s[j+1]) && g < len(ends)-1 {
				ends[g], counts[g] = j, n
				g++
				sep = c
				j++
				continue
			}
			break
		}
		ends[g], counts[g] = j, n
		g++
		if n < 13 {
			i = j
			continue
		}
		for k := g - 1; k >= 0; k-- {
			cnt, end := counts[k], ends[k]
			if cnt < 13 {
				break
			}
			if cnt > 19 {
				continue
			}
			if k == g-1 && end < len(s) && (isWordByte(s[end]) || (s[end] == '.' && end+1 < len(s) && isDigit(s[end+1]))) {
				continue
			}
			if cardPrefix(digits[:cnt]) && luhn(digits[:cnt]) {
				add.add(i, end, kCard)
				break
			}
		}
		i = j
	}
}

// continuesGroup reports whether s[i] follows "<code group><space or
// hyphen>", as the tail of a longer code does ("DE89 3704 0044 …",
// "GB95 GEBY 0065 …"): looking back over up to three groups of letters
// and digits joined by single separators, one has a digit before one has
// a lower-case letter (a word such as "card" or "Visa").
func continuesGroup(s string, i int) bool {
	for g := 0; g < 3; g++ {
		if i < 2 || (s[i-1] != ' ' && s[i-1] != '-') || !isAlnum(s[i-2]) {
			return false
		}
		k := i - 2
		digit, lower := false, false
		for ; k >= 0 && isAlnum(s[k]); k-- {
			digit = digit || isDigit(s[k])
			lower = lower || ('a' <= s[k] && s[k] <= 'z')
		}
		if lower {
			return false
		}
		if digit {
			return true
		}
		i = k + 1
	}
	return false
}

// cardPrefix: Visa 4, Mastercard 51–55 and 2221–2720, Amex 34/37, Diners
// 30/36/38, Discover 6011/64/65, JCB 35, UnionPay 62.
func cardPrefix(d []byte) bool {
	two := int(d[0]-'0')*10 + int(d[1]-'0')
	four := two*100 + int(d[2]-'0')*10 + int(d[3]-'0')
	switch {
	case d[0] == '4':
		return true
	case two >= 51 && two <= 55, four >= 2221 && four <= 2720:
		return true
	case two == 34 || two == 37 || two == 30 || two == 36 || two == 38 || two == 35:
		return true
	case four == 6011 || two == 64 || two == 65 || two == 62:
		return true
	}
	return false
}

// luhn reports whether the digits pass the Luhn checksum.
func luhn(d []byte) bool {
	sum := 0
	double := false
	for k := len(d) - 1; k >= 0; k-- {
		v := int(d[k] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// -------------------------------------------------------------------- IP

// findIPv6 looks around each ':' for a run of hex digits, colons and dots
// that parses as an IPv6 address with at least two colons, a digit, and
// either eight groups or "::". Unless reserved, only global unicast
// addresses outside the private and documentation ranges count.
func findIPv6(s string, reserved bool, add *spanSet) {
	for i := 0; ; {
		c := strings.IndexByte(s[i:], ':')
		if c < 0 {
			return
		}
		c += i
		a := c
		for a > 0 && (isHex(s[a-1]) || s[a-1] == ':' || s[a-1] == '.') {
			a--
		}
		e := c
		for e < len(s) && (isHex(s[e]) || s[e] == ':' || s[e] == '.') {
			e++
		}
		i = e
		if e == c+1 && a == c {
			continue
		}
		for e > a && s[e-1] == '.' {
			e--
		}
		if e-a >= 2 && s[e-1] == ':' && s[e-2] != ':' {
			e--
		}
		for a < e && s[a] == '.' {
			a++
		}
		if a > 0 && (isWordByte(s[a-1]) || s[a-1] == ':') || e < len(s) && isWordByte(s[e]) {
			continue
		}
		cand := s[a:e]
		if strings.Count(cand, ":") < 2 || !hasDigit(cand) {
			continue
		}
		if !strings.Contains(cand, "::") && strings.Count(cand, ":") < 7 && !strings.Contains(cand, ".") {
			continue
		}
		addr, err := netip.ParseAddr(cand)
		if err != nil || !addr.Is6() {
			continue
		}
		if !reserved && !publicIP(addr) {
			continue
		}
		add.add(a, e, kIPv6)
	}
}

// versionWords precede dotted numbers that are versions or section
// numbers, not addresses.
var versionWords = []string{"version", "ver", "v", "release", "build", "rev", "revision", "firmware", "patch", "update", "sdk", "api",
	"chapter", "section", "sec", "figure", "fig", "table", "step", "clause", "article", "art", "paragraph", "appendix", "rule", "item"}

// findIPv4 finds four dot-separated decimal octets not touching letters,
// digits or further dotted numbers (so not "1.2.3.4.5" or "v1.2.3.4"),
// and not right after a word such as "version". Unless reserved, only
// public addresses count (as datatrove's ip.is_global).
func findIPv4(s string, reserved bool, add *spanSet) {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			continue
		}
		if i > 0 && (isWordByte(s[i-1]) || s[i-1] == '.' || s[i-1] == '-') {
			i = run(s, i, isDigit)
			continue
		}
		var oct [4]int
		j := i
		ok := true
		for k := 0; k < 4; k++ {
			if k > 0 {
				if j >= len(s) || s[j] != '.' {
					ok = false
					break
				}
				j++
			}
			st := j
			v := 0
			for j < len(s) && isDigit(s[j]) && j-st < 4 {
				v = v*10 + int(s[j]-'0')
				j++
			}
			if j == st || j-st > 3 || v > 255 {
				ok = false
				break
			}
			oct[k] = v
		}
		if !ok {
			i = run(s, i, isDigit)
			continue
		}
		if j < len(s) && (isWordByte(s[j]) || ((s[j] == '.' || s[j] == '-') && j+1 < len(s) && isAlnum(s[j+1]))) {
			i = j
			continue
		}
		if precededBy(s, i, versionWords) {
			i = j
			continue
		}
		addr := netip.AddrFrom4([4]byte{byte(oct[0]), byte(oct[1]), byte(oct[2]), byte(oct[3])})
		if reserved || publicIP(addr) {
			add.add(i, j, kIPv4)
		}
		i = j
	}
}

var nonPublic = func() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "224.0.0.0/3",
		"::/8", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}()

// publicIP reports whether addr is globally routable: not private,
// loopback, link-local, multicast, documentation, benchmarking or
// otherwise reserved (IANA special-purpose registries; Python's
// ipaddress.is_global).
func publicIP(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range nonPublic {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// precededBy reports whether the word before s[i] (skipping spaces and a
// colon) is one of words, case-insensitively.
func precededBy(s string, i int, words []string) bool {
	w := prevWord(s, i)
	for _, x := range words {
		if strings.EqualFold(w, x) {
			return true
		}
	}
	return false
}

// prevWord returns the ASCII word before s[i], skipping spaces, tabs, a
// colon, '#' and "no."-style dots.
func prevWord(s string, i int) string {
	j := i
	for j > 0 && (s[j-1] == ' ' || s[j-1] == '\t' || s[j-1] == ':' || s[j-1] == '.' || s[j-1] == '#') {
		j--
	}
	k := j
	for k > 0 && isAlnum(s[k-1]) {
		k--
	}
	return s[k:j]
}

// ------------------------------------------------------------------ phone

// phoneContext are words that announce a phone number nearby; with one,
// national formats ("020 7946 0958", "06 12 34 56 78") count too.
var phoneContext = []string{"call", "mobile", "cell", "fax", "whatsapp", "sms", "text", "contact", "reach", "ring", "dial",
	"telefono", "teléfono", "téléphone", "tél", "handy", "portable", "telemóvel", "cellulare", "móvil"}

// phoneNumberWords are neutral on their own: "phone number", but "order
// number".
var phoneNumberWords = []string{"number", "no", "nr", "num", "nummer", "numéro", "número"}

// phoneNegative are words after which a phone-shaped number is an
// identifier: "order 555-123-4567", "invoice #212-555-0199".
var phoneNegative = []string{"order", "invoice", "ref", "reference", "tracking", "account", "acct", "ticket", "case", "serial", "sku", "isbn",
	"part", "po", "id", "confirmation", "transaction", "item", "model", "patent", "code", "batch", "lot", "receipt", "policy", "claim", "booking", "shipment", "parcel"}

// findPhones finds international numbers ("+44 20 7946 0958", 8 to 15
// digits after '+' or "00"), North American numbers ("(415) 555-0132",
// "415.555.0132", "1-800-555-0199") and, after a word such as "phone" or
// "call", national numbers starting with 0, ten-digit runs and seven-digit
// local numbers ("555-0173"). Numbers right after an identifier word such
// as "order" or after '#' are skipped.
func findPhones(s string, add *spanSet) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '+' || c == '(' || isDigit(c)) {
			continue
		}
		if i > 0 && (isWordByte(s[i-1]) || strings.IndexByte("+-./#&=%$", s[i-1]) >= 0) {
			if isDigit(c) {
				i = run(s, i, isDigit)
			}
			continue
		}
		if isDigit(c) && (continuesGroup(s, i) || afterParenGroup(s, i)) {
			i = run(s, i, isDigit)
			continue
		}
		end, ok := phoneAt(s, i)
		if ok {
			add.add(i, end, kPhone)
			i = end - 1
		} else if isDigit(c) {
			i = run(s, i, isDigit)
		}
	}
}

// afterParenGroup reports whether s[i] follows "(digits)" and at most
// one space: the rest of "(123) 456-7890" once the whole was turned down,
// which must not be redacted on its own.
func afterParenGroup(s string, i int) bool {
	k := i
	if k > 0 && s[k-1] == ' ' {
		k--
	}
	return k >= 2 && s[k-1] == ')' && isDigit(s[k-2])
}

// phoneAt parses a phone number starting at s[i].
func phoneAt(s string, i int) (int, bool) {
	var groups [8]int // digit count per group
	var paren [8]bool
	var seps [8]byte // separator before group k (0: none)
	var first [8]byte
	ng, total := 0, 0
	j := i
	plus := s[j] == '+'
	if plus {
		j++
		if j >= len(s) || !isDigit(s[j]) {
			return 0, false
		}
	}
	var sep byte
	for ng < len(groups) {
		p := false
		if j < len(s) && s[j] == '(' {
			p = true
			j++
		}
		st := j
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j == st || (p && (j >= len(s) || s[j] != ')')) {
			if ng == 0 {
				return 0, false
			}
			j = st
			if p {
				j--
			}
			break
		}
		groups[ng], paren[ng], seps[ng], first[ng] = j-st, p, sep, s[st]
		total += j - st
		ng++
		if p {
			j++
		}
		if j+1 < len(s) && (s[j] == ' ' || s[j] == '-' || s[j] == '.') && (isDigit(s[j+1]) || s[j+1] == '(') {
			sep = s[j]
			j++
			continue
		}
		if p && j < len(s) && isDigit(s[j]) {
			sep = 0
			continue
		}
		break
	}
	// j may sit after a separator that led nowhere; back up to the last
	// digit or ')'.
	for j > i && !(isDigit(s[j-1]) || s[j-1] == ')') {
		j--
	}
	if ng == 0 || total > 15 {
		return 0, false
	}
	if j < len(s) && !extension(s, j) && (isWordByte(s[j]) || ((s[j] == '.' || s[j] == '-' || s[j] == '/' || s[j] == ',') && j+1 < len(s) && isDigit(s[j+1]))) {
		return 0, false
	}
	// A vanity number ("1-800-273-TALK", "1-800-273-8255-TALK") is a
	// business's line, and its digits alone are not the whole number.
	if j+2 < len(s) && (s[j] == '-' || s[j] == '.') && isUpper(s[j+1]) && isUpper(s[j+2]) {
		return 0, false
	}
	if plus {
		return j, total >= 8 && (ng >= 2 || total >= 10) && !servicePhone(s[i:j], false)
	}
	isNANP := nanp(groups[:ng], paren[:ng], seps[:ng], first[:ng])
	// "00" is the international prefix outside North America.
	intl := ng >= 2 && groups[0] >= 3 && groups[0] <= 5 && strings.HasPrefix(s[i:], "00") && total-2 >= 8
	national := first[0] == '0' && total >= 9 && total <= 12
	bare := ng == 1 && total == 10 && first[0] >= '2'
	local := ng == 2 && groups[0] == 3 && groups[1] == 4 && first[0] >= '2' && seps[1] != 0
	if !isNANP && !intl && !national && !bare && !local {
		return 0, false
	}
	switch ctx := phoneCue(s, i); {
	case ctx < 0:
		return 0, false
	case isNANP, intl, ctx > 0:
		return j, !servicePhone(s[i:j], isNANP || local)
	}
	return 0, false
}

// nanp reports the North American shapes: 3-3-4 with one separator
// throughout or "(3) 3-4", optionally after a "1" group; the exchange
// starts with 2–9. The area code may start with any digit, so that the
// placeholder "(123) 456-7890" is redacted whole rather than in part.
func nanp(groups []int, paren []bool, seps []byte, first []byte) bool {
	k := 0
	if len(groups) == 4 && groups[0] == 1 && first[0] == '1' {
		k = 1
	}
	if len(groups)-k != 3 || groups[k] != 3 || groups[k+1] != 3 || groups[k+2] != 4 {
		return false
	}
	if first[k+1] < '2' {
		return false
	}
	if paren[k+1] || paren[k+2] {
		return false
	}
	if paren[k] {
		return seps[k+2] == '-' || seps[k+2] == ' ' || seps[k+2] == '.'
	}
	return seps[k+1] != 0 && seps[k+1] == seps[k+2]
}

// extension reports "x" and digits right after a number ("x204"): the
// number is found, the extension stays (on its own it names no one).
func extension(s string, j int) bool {
	if s[j] != 'x' || j+1 >= len(s) || !isDigit(s[j+1]) {
		return false
	}
	e := run(s, j+1, isDigit)
	return e-j-1 <= 6 && (e == len(s) || !isWordByte(s[e]))
}

// nanpTollFree are the North American toll-free area codes.
var nanpTollFree = []string{"800", "888", "877", "866", "855", "844", "833"}

// servicePhone reports numbers that name no person, so are not redacted:
//   - North American toll-free numbers (area code 800, 888, 877, 866,
//     855, 844 or 833, with or without 1 or +1): businesses' and
//     hotlines' service lines;
//   - the North American fiction range 555-0100 to 555-0199 and
//     directory assistance 555-1212, with or without an area code;
//   - freephone numbers written nationally as 0800 or 0808 (UK, Germany,
//     France, the Netherlands, Austria, Switzerland, …) or
//     internationally with 800 or 808 right after the country code
//     ("+44 800 1111", "+49 800 111 0 111", "+44 (0)800 …").
//
// Emergency and short codes (911, 112, 999, 988, 116 123, 741741) are
// too short to be found at all.
//
// nanpForm says num has a North American shape (3-3-4, "(3) 3-4" or a
// 3-4 local number); "+1" numbers are North American whatever their
// shape. A ten-digit run after a cue word is not taken for one: an Indian
// mobile number may start with 800.
func servicePhone(num string, nanpForm bool) bool {
	groups := strings.FieldsFunc(num, func(r rune) bool { return r < '0' || r > '9' })
	d := strings.Join(groups, "")
	intl := num[0] == '+' || strings.HasPrefix(d, "00")
	var ten string // a North American number without its 1
	switch {
	case num[0] == '+':
		if len(d) == 11 && d[0] == '1' {
			ten = d[1:]
		}
	case !nanpForm:
	case len(d) == 11 && d[0] == '1':
		ten = d[1:]
	case len(d) == 10:
		ten = d
	case len(d) == 7:
		ten = "000" + d
	}
	if ten != "" {
		if slices.Contains(nanpTollFree, ten[:3]) {
			return true
		}
		if ten[3:6] == "555" && (ten[6:8] == "01" || ten[6:] == "1212") {
			return true
		}
		return false
	}
	if !intl {
		return strings.HasPrefix(d, "0800") || strings.HasPrefix(d, "0808")
	}
	// After the country code, skip a trunk "(0)".
	k := 1
	if k < len(groups) && groups[k] == "0" {
		k++
	}
	return k < len(groups) && (groups[k] == "800" || groups[k] == "808" || groups[k] == "0800" || groups[k] == "0808")
}

// phoneCue looks at the three words before s[i]: +1 if one announces a
// phone number; -1 if '#' precedes the number, or the nearest word is an
// identifier word ("order"), or "number"/"no." after an identifier word
// or after nothing that announces a phone; 0 otherwise.
func phoneCue(s string, i int) int {
	j := i
	for j > 0 && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	if j > 0 && s[j-1] == '#' {
		return -1
	}
	weak := false
	for k := 0; k < 3 && j > 0; k++ {
		// Skip separators, then take the word before them.
		for j > 0 && !isWordByte(s[j-1]) {
			if s[j-1] == '\n' && k > 0 {
				return boolCue(weak)
			}
			j--
		}
		e := j
		for j > 0 && isWordByte(s[j-1]) {
			j--
		}
		w := s[j:e]
		if hasFoldPrefix(w, "phone") || hasFoldPrefix(w, "tel") || containsFold(phoneContext, w) {
			return 1
		}
		if k == 0 && containsFold(phoneNumberWords, w) {
			weak = true
			continue
		}
		if (k == 0 || (k == 1 && weak)) && containsFold(phoneNegative, w) {
			return -1
		}
	}
	return boolCue(weak)
}

func boolCue(weak bool) int {
	if weak {
		return -1
	}
	return 0
}

func hasFoldPrefix(s, p string) bool { return len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) }

func containsFold(list []string, w string) bool {
	for _, x := range list {
		if strings.EqualFold(x, w) {
			return true
		}
	}
	return false
}
