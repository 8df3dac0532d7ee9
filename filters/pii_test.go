package filters

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
)

// The REGRESSION set, hand-written part: texts with every PII span marked
// {{kind:text}}; unmarked look-alikes in them are negatives. It was
// written alongside the detectors, so it pins behaviour and measures
// nothing (TestPIIHeldOut does). Policy (docs/filters.md): reserved
// names (example.com, private and documentation IP ranges) and service
// phone lines (toll-free, 555-01xx) are not PII by default.
var piiRegressionHandWritten = []string{
	// e-mail
	"Please write to {{email:jane.doe@gmail.com}} if anything changes.",
	"Contact: {{email:m.rossi+newsletter@libero.it}}; phone not available.",
	"My work address is {{email:Pieter.deVries@kpn-mail.nl}}.",
	"cc {{email:ops_team@acme-corp.co.uk}}, bcc {{email:ceo@acme-corp.co.uk}}",
	"<a href=\"mailto:{{email:info@boulangerie-martin.fr}}\">écrivez-nous</a>",
	"Send the invoice to {{email:billing@shop.example.io}}.", // example.io is a real TLD domain, not reserved
	"Author: Wei Zhang <{{email:wei.zhang@tsinghua.edu.cn}}>",
	"git config --global user.email \"{{email:dev.kowalski@protonmail.com}}\"",
	// e-mail look-alikes
	"Use user@example.com in the docs and admin@test.test in tests.",
	"The retina asset is icon@2x.png and the logo logo@3x.webp.",
	"Install @types/node and decorate with @dataclass or @app.route('/').",
	"Ping me @jane on Slack; the package is lodash@4.17.21.",
	"Mention user@localhost or root@server in the config comments.",
	// phone
	"Call me on {{phone:+44 20 7946 0958}} after six.",
	"Our Berlin office: {{phone:+49 30 901820}}, fax {{phone:+49 30 9018 2299}}.",
	"Reach the front desk at {{phone:(415) 555-2132}} or {{phone:415.555.2198}}.",
	"Mobile {{phone:+33 6 12 34 56 78}}, bureau {{phone:+33 1 42 68 53 00}}.",
	"WhatsApp: {{phone:+91 98765 43210}}",
	"Téléphone : {{phone:01 42 68 53 00}}",
	"Please call {{phone:020 7946 0958}} to book.",
	"Her cell is {{phone:212-555-2147}}.",
	"Phone number: {{phone:+1 (555) 234-5678}}",
	"Tel. {{phone:+61 2 9876 5432}}",
	"Contact {{phone:+14155552671}} for support.",
	"Phone: {{phone:(312) 555 2175}}",
	// phone look-alikes; service lines and fiction numbers (issue 13 item 6)
	"Toll free: 1-800-555-0199.",
	"Reach the front desk at (415) 555-0132 or 415.555.0198 (fiction range).",
	"Order #555-123-4567 has shipped.",
	"Your order number 415-555-0132 is confirmed.",
	"Tracking 212-555-0147 updated on 2023-11-15.",
	"The meeting is on 11/15/2023 at 14:30, room 4-112.",
	"ISBN 978-3-16-148410-0 and ISBN 0-306-40615-2 are both cited.",
	"The population grew from 1,234,567 to 2,345,678 people.",
	"SSN-style test value 123-45-6789 from the tutorial.",
	"Pi is 3.14159265358979 and e is 2.718281828.",
	"The range 10-20-30-40 is a pattern, not a number.",
	"Invoice 2024-0042-7781 is overdue.",
	"Timestamp 1700000000123 in milliseconds.",
	"Dial-up modems used 56000 bits per second.",
	// IPv4
	"The server is at {{ipv4:93.184.216.34}} behind a proxy.",
	"Blocked {{ipv4:185.220.101.7}} and {{ipv4:45.33.32.156}} after the scan.",
	"ssh root@{{ipv4:51.15.12.200}} -p 2222",
	"Client IP: {{ipv4:8.8.4.4}}.",
	"curl http://{{ipv4:203.0.114.9}}:8080/health",
	// IPv4 look-alikes
	"Upgrade to version 1.2.3.4 or later; v1.2.3 is end of life.",
	"The build 10.0.19041.1 ships with 1.2.3.4.5 of the library.",
	"Home routers use 192.168.1.1, servers 10.0.0.5 and localhost is 127.0.0.1.",
	"The docs use 192.0.2.10 and 198.51.100.7 as examples.",
	"Subnet mask 255.255.255.0 and broadcast 255.255.255.255.",
	"Values 256.1.1.1 and 1.2.3 are not addresses.",
	"Coordinates 48.8566, 2.3522 mark Paris.",
	"Semantic versions 2.10.3 and 0.4.1-beta.",
	// IPv6
	"The AAAA record points to {{ipv6:2606:4700:4700::1111}}.",
	"Bind to {{ipv6:2a00:1450:4001:82b::200e}} instead.",
	"Full form {{ipv6:2001:4860:4860:0000:0000:0000:0000:8888}} works too.",
	"Peer [{{ipv6:2a03:2880:f12f:83:face:b00c::25de}}]:443 connected.",
	// IPv6 look-alikes
	"Loopback ::1 and link-local fe80::1ff:fe23:4567:890a stay local.",
	"The docs prefix 2001:db8::8a2e:370:7334 is reserved.",
	"Use std::vector<int> and Foo::Bar::baz() in C++.",
	"It happened at 12:30:45 on the dot.",
	"The MAC address 00:1a:2b:3c:4d:5e belongs to the NIC.",
	"Python slices a[1::2] and dead::beef are not addresses.",
	// credit card
	"Card: {{credit_card:4111 1111 1111 1111}}, exp 12/27.",
	"Charge {{credit_card:5555-5555-5555-4444}} for the order.",
	"Amex {{credit_card:3782 822463 10005}} on file.",
	"Paid with {{credit_card:6011111111111117}} yesterday.",
	"Visa {{credit_card:4012888888881881}} CVV 123",
	"JCB {{credit_card:3530 1113 3330 0000}}.",
	"Diners {{credit_card:3056 9309 0259 04}}",
	"Mastercard 2-series {{credit_card:2223 0031 2200 3222}}",
	// credit card look-alikes
	"Card 4111 1111 1111 1112 fails the checksum.",
	"The account 1234 5678 9012 3456 is fake.",
	"Number 1234567812345678 is a sequence.",
	"Big integer 79927398713 passes Luhn but is too short.",
	"EAN 4006381333931 on the box.",
	"The order id 9780306406157 is an ISBN.",
	// IBAN
	"Transfer to {{iban:DE89 3704 0044 0532 0130 00}} by Friday.",
	"IBAN: {{iban:GB82WEST12345698765432}}",
	"Bankverbindung {{iban:NL91 ABNA 0417 1643 00}}, BIC ABNANL2A",
	"Pay {{iban:FR14 2004 1010 0505 0001 3M02 606}} please.",
	"Account {{iban:BE68 5390 0754 7034}}.",
	"Konto {{iban:AT61 1904 3002 3457 3201}}",
	// IBAN look-alikes
	"Transfer to DE89 3704 0044 0532 0130 01 (typo) will bounce.",
	"Model GB82 is discontinued; see NL91 ABNA for details.",
	"The part number DE12345678 is not an account.",
	// secrets
	"export AWS_ACCESS_KEY_ID={{secret:AKIAIOSFODNN7EXAMPLE}}",
	"aws_secret_access_key = {{secret:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY}}",
	"token: {{secret:ghp_16C7e42F292c6912E7710c838347Ae178B4a}}",
	"OPENAI_API_KEY={{secret:sk-proj-4fK9x2LmQ8rT1vZ7bN3cW6yH0jP5sD2aE9gU}}",
	"slack bot {{secret:xoxb-2048672139-4096123456789-AbCdEfGhIjKlMnOpQrStUvWx}}",
	"key={{secret:AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY}}",
	"stripe.api_key = \"{{secret:sk_live_4eC39HqLyjWDarjtT1zdp7dc}}\"",
	"Authorization: Bearer {{secret:eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c}}",
	"{{secret:-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi6kxQp3h1eC2dd0J2ns3bTIj0u\nk7lfQ2oZ4l1oD9yNw3LmSFmjSg0p6t2xN4KxZJ3TQ1c0aSd7Q==\n-----END RSA PRIVATE KEY-----}}\nkeep this line",
	// secret look-alikes
	"Install sk-learn-compatible-estimators-and-pipelines from PyPI.",
	"AKIA is the prefix of AWS key ids; AKIA1234 is too short.",
	"-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
	"-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBa\n-----END CERTIFICATE-----",
	"The header eyJhbGciOiJIUzI1NiJ9 alone is not a token.",
	"Our GitHub org is github_pathfinder and ghp_ is the token prefix.",
	// other look-alikes: ids and hashes
	"Request id 123e4567-e89b-12d3-a456-426614174000 failed.",
	"sha256 5994471abb01112afcc18159f6cc74b4f511b99806da59b3caf5a9c173cacfc5",
	"commit 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
	"md5 d41d8cd98f00b204e9800998ecf8427e of the empty file",
	"Price: $1,299.99 or 4 x 324.99 EUR.",
	"The answer is 42, and 1e10 is ten billion.",
}

// piiHardCases were written after the detectors as a harder check; the
// detectors were then fixed on them, so they are part of the regression
// set now, and TestPIIHardCases asserts each exactly.
var piiHardCases = []string{
	"EMAIL: {{email:JOHN.SMITH@COMPANY.COM}}",
	"{{email:firstname.lastname@sub.domain.co.uk}} is the format.",
	"Schreib an {{email:hallo@müller.de}}.",
	"\"email\":\"{{email:x_y-z@mail-server.org}}\"",
	"Call {{phone:+1-202-555-2173}} or {{phone:+1.202.555.2173}}.",
	"Call me at {{phone:202 555 2173}}.",
	"Office: {{phone:(202)555-2173}}",
	"Dublin {{phone:+353 1 234 5678}}, Moscow {{phone:+7 (495) 123-45-67}}.",
	"From abroad dial {{phone:0044 20 7946 0958}}.",
	"Ring me on {{phone:555-2173}} tonight.",
	"tel:{{phone:+12025552173}}",
	"IP={{ipv4:23.45.67.89}};",
	"route via {{ipv6:2001:470:1f0b:1::2}} now",
	"\"card\":\"{{credit_card:4111111111111111}}\"",
	"iban {{iban:de89 3704 0044 0532 0130 00}}",
	"AWS_SECRET_ACCESS_KEY={{secret:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY}}",
	"token {{secret:ghs_16C7e42F292c6912E7710c838347Ae178B4a}}",
	"{{secret:-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----}}",
	"ANTHROPIC_API_KEY={{secret:sk-ant-api03-Xk29dLq8ZpW3nR7vT1yB4cF6hJ0mS5aE2gU9iO8}}",
	"Call of Duty 2 sold 1,000,000 copies.",
	"The ratio 1:2:3:4:5:6:7:8 is arbitrary.",
	"Read John 3:16 and Genesis 1:1 at 10:30:00.000.",
	"See RFC 3986 section 3.2.2 and Windows 10.0.22621.2428.",
	"Build 4.18.0.193 and firmware 3.1.4.159 were flashed.",
	"Chapter 1.2.3.4 of the spec defines it.",
	"UPS tracking 1Z999AA10123456784 arrived.",
	"iPhone 15 Pro 256GB, call 911 or 112 in an emergency.",
	"The 2023-2024 budget is 1,500,000 and ZIP 90210-1234.",
	"Product code 555-1234-5678 ships in blue.",
	"That is +1 more thing; score +12 points, +345 total.",
	"Avogadro is 6.022e23 and Planck 6.626e-34.",
	"Publishable key pk_live_51H8xYzAbCdEfGhIjKlMnOpQr is public.",
}

var piiMark = regexp.MustCompile(`(?s)\{\{([a-z0-9_]+):(.*?)\}\}`)

type labelledSpan struct {
	kind  string
	start int
	end   int
}

// parseLabelled strips the markers and returns the text and its spans.
func parseLabelled(s string) (string, []labelledSpan) {
	var b strings.Builder
	var spans []labelledSpan
	last := 0
	for _, m := range piiMark.FindAllStringSubmatchIndex(s, -1) {
		b.WriteString(s[last:m[0]])
		start := b.Len()
		b.WriteString(s[m[4]:m[5]])
		spans = append(spans, labelledSpan{s[m[2]:m[3]], start, b.Len()})
		last = m[1]
	}
	b.WriteString(s[last:])
	return b.String(), spans
}

// generatedRegressionPII generates positives and negatives for the
// regression set from the detectors' own specification, so every kind
// has at least 40 positives.
func generatedRegressionPII() []string {
	r := rand.New(rand.NewPCG(5, 9))
	var out []string
	first := []string{"anna", "li.wei", "jose.garcia", "k.nowak", "sam", "o'brien", "marie-claire", "tom_h"}
	domains := []string{"gmail.com", "outlook.de", "uni-heidelberg.de", "mail.ru", "company.co.jp", "yahoo.fr", "startup.io"}
	for i := 0; i < 40; i++ {
		e := fmt.Sprintf("%s%d@%s", first[r.IntN(len(first))], r.IntN(100), domains[r.IntN(len(domains))])
		out = append(out, fmt.Sprintf("Send it to {{email:%s}} today.", e))
	}
	for i := 0; i < 20; i++ {
		a, b, c := 200+r.IntN(700), 200+r.IntN(700), r.IntN(10000)
		forms := []string{"(%03d) %03d-%04d", "%03d-%03d-%04d", "%03d.%03d.%04d", "+1 %03d %03d %04d"}
		p := fmt.Sprintf(forms[i%len(forms)], a, b, c)
		out = append(out, fmt.Sprintf("You can reach me at {{phone:%s}} in the evening.", p))
		intl := []string{"+44 7700 9%05d", "+49 151 %08d", "+34 6%02d %03d %03d", "+81 90 %04d %04d"}
		switch i % 4 {
		case 0:
			p = fmt.Sprintf(intl[0], r.IntN(100000))
		case 1:
			p = fmt.Sprintf(intl[1], r.IntN(100000000))
		case 2:
			p = fmt.Sprintf(intl[2], r.IntN(100), r.IntN(1000), r.IntN(1000))
		default:
			p = fmt.Sprintf(intl[3], r.IntN(10000), r.IntN(10000))
		}
		out = append(out, fmt.Sprintf("Mobile: {{phone:%s}}", p))
		// Look-alike: the same shape after an identifier word.
		out = append(out, fmt.Sprintf("Order %03d-%03d-%04d was refunded.", a, b, c))
	}
	for i := 0; i < 40; i++ {
		ip := fmt.Sprintf("%d.%d.%d.%d", 11+r.IntN(80), r.IntN(256), r.IntN(256), 1+r.IntN(254))
		out = append(out, fmt.Sprintf("Login from {{ipv4:%s}} was blocked.", ip))
		out = append(out, fmt.Sprintf("Requires version %d.%d.%d.%d or newer.", r.IntN(20), r.IntN(20), r.IntN(100), r.IntN(1000)))
		out = append(out, fmt.Sprintf("Release %d.%d.%d.%d.%d is out.", 1+r.IntN(9), r.IntN(20), r.IntN(20), r.IntN(20), r.IntN(99)))
		ip6 := fmt.Sprintf("2a0%d:%x:%x:%x::%x", 1+r.IntN(8), r.IntN(0xffff), r.IntN(0xffff), r.IntN(0xffff), 1+r.IntN(0xfffe))
		out = append(out, fmt.Sprintf("The host resolved to {{ipv6:%s}} yesterday.", ip6))
	}
	prefixes := []string{"4", "51", "55", "37", "6011", "35", "2221"}
	lengths := []int{16, 16, 16, 15, 16, 16, 16}
	for i := 0; i < 40; i++ {
		k := i % len(prefixes)
		d := luhnNumber(r, prefixes[k], lengths[k])
		grouped := groupDigits(d, " ")
		if i%3 == 1 {
			grouped = groupDigits(d, "-")
		} else if i%3 == 2 {
			grouped = d
		}
		out = append(out, fmt.Sprintf("Please charge {{credit_card:%s}} for it.", grouped))
		// Look-alike: one digit off fails the checksum.
		bad := []byte(d)
		bad[len(bad)-1] = '0' + (bad[len(bad)-1]-'0'+1)%10
		out = append(out, fmt.Sprintf("Reference %s is not a card.", groupDigits(string(bad), " ")))
	}
	countries := []struct {
		cc   string
		bban string // pattern: 9 digit, A upper
	}{{"DE", "999999999999999999"}, {"GB", "AAAA99999999999999"}, {"FR", "9999999999AAAAAAAAAAA99"}, {"ES", "99999999999999999999"}, {"NL", "AAAA9999999999"}, {"IT", "A9999999999AAAAAAAAAAAA"}, {"PL", "999999999999999999999999"}, {"CH", "99999AAAAAAAAAAAA"}}
	for i := 0; i < 40; i++ {
		c := countries[i%len(countries)]
		iban := makeIBAN(r, c.cc, c.bban)
		text := iban
		if i%2 == 0 {
			text = groupDigits(iban, " ")
		}
		out = append(out, fmt.Sprintf("Our account is {{iban:%s}} at the local bank.", text))
		bad := []byte(iban)
		bad[len(bad)-1] = '0' + (bad[len(bad)-1]-'0'+3)%10
		if bad[len(bad)-1] >= '0' && bad[len(bad)-1] <= '9' {
			out = append(out, fmt.Sprintf("Wrong account %s bounced.", groupDigits(string(bad), " ")))
		}
	}
	alnum := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	rs := func(n int, set string) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = set[r.IntN(len(set))]
		}
		return string(b)
	}
	upperDigits := "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	for i := 0; i < 40; i++ {
		var sec string
		switch i % 8 {
		case 0:
			sec = "AKIA" + rs(16, upperDigits)
		case 1:
			sec = "ghp_" + rs(36, alnum)
		case 2:
			sec = "github_pat_" + rs(22, alnum) + "_" + rs(59, alnum)
		case 3:
			sec = "sk-" + rs(20, alnum) + "T3BlbkFJ" + rs(20, alnum)
		case 4:
			sec = "xoxp-" + rs(12, "0123456789") + "-" + rs(13, "0123456789") + "-" + rs(24, alnum)
		case 5:
			sec = "AIza" + rs(35, alnum+"-_")
		case 6:
			sec = "sk_test_" + rs(24, alnum)
		default:
			sec = "eyJhbGciOiJSUzI1NiJ9.eyJ" + rs(40, alnum) + "." + rs(43, alnum+"-_")
		}
		if sec[len(sec)-1] == '-' || sec[len(sec)-1] == '_' {
			sec = sec[:len(sec)-1] + "x"
		}
		out = append(out, fmt.Sprintf("Never commit {{secret:%s}} to the repo.", sec))
		// Look-alikes: UUIDs and hex digests.
		out = append(out, fmt.Sprintf("Trace %s / digest %s", rs(8, "0123456789abcdef")+"-"+rs(4, "0123456789abcdef")+"-4"+rs(3, "0123456789abcdef")+"-a"+rs(3, "0123456789abcdef")+"-"+rs(12, "0123456789abcdef"), rs(40, "0123456789abcdef")))
	}
	return out
}

func luhnNumber(r *rand.Rand, prefix string, n int) string {
	d := []byte(prefix)
	for len(d) < n-1 {
		d = append(d, byte('0'+r.IntN(10)))
	}
	for c := byte('0'); c <= '9'; c++ {
		if luhn(append(d[:len(d):len(d)], c)) {
			return string(append(d, c))
		}
	}
	panic("unreachable")
}

func groupDigits(s, sep string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

func makeIBAN(r *rand.Rand, cc, pattern string) string {
	b := []byte{}
	for _, p := range pattern {
		if p == '9' {
			b = append(b, byte('0'+r.IntN(10)))
		} else {
			b = append(b, byte('A'+r.IntN(26)))
		}
	}
	for ck := 2; ck < 99; ck++ {
		s := fmt.Sprintf("%s%02d%s", cc, ck, b)
		if ibanMod97([]byte(s)) == 1 {
			return s
		}
	}
	panic("no check digits")
}

// TestPIIRegressionSet is a regression pin, not a measure of quality:
// the hand-labelled texts were written alongside the detectors, the hard
// cases were folded in once fixed, and the generated texts come from the
// detectors' own specification. It guards against a change that breaks
// what already works. TestPIIHeldOut measures quality.
func TestPIIRegressionSet(t *testing.T) {
	set := append(append(append([]string{}, piiRegressionHandWritten...), piiHardCases...), generatedRegressionPII()...)
	per := measurePII(t, set)
	for _, k := range PIIKinds() {
		c := per[k]
		if c.tp+c.fn < 20 {
			t.Errorf("%s: only %d positives in the regression set", k, c.tp+c.fn)
		}
		if p, r := c.precision(), c.recall(); p < 0.95 || r < 0.95 {
			t.Errorf("%s: precision %.3f recall %.3f on the regression set, want both >= 0.95", k, p, r)
		}
	}
}

// TestPIIHardCases asserts each hard case exactly: every labelled span
// found with its kind, nothing else found.
func TestPIIHardCases(t *testing.T) {
	assertExact(t, piiHardCases)
}

// piiPhoneBugs are the cases of issue 13 item 6, each written before its
// fix: public service lines are not personal phone numbers (toll-free
// NANP codes, vanity numbers, the fiction range 555-0100–0199, directory
// assistance 555-1212, emergency and short codes, UK/European freephone
// 0800/0808), and a number is redacted whole or not at all
// (parenthesised area codes, country codes, a trunk "(0)"; extensions
// stay).
var piiPhoneBugs = []string{
	"If you are in crisis, call 1-800-273-TALK (1-800-273-8255).",
	"Call 1-800-273-8255-TALK any time.",
	"Hotline: 1-888-373-7888; SAMHSA 1-877-726-4727.",
	"Customer service: (866) 331-9474 or +1 855-771-8824.",
	"Call 1-844-762-8483 or 833.289.6642 for the recall.",
	"Toll free: 18002738255, +18663319474.",
	"Order at 1-800-FLOWERS, or call 1-800-356-9377.",
	"In the film she calls (212) 555-0187 from a payphone.",
	"Dial 555-0123 for the Simpsons, 555-1212 for directory assistance.",
	"In an emergency call 911, 112 or 999; text 741741; dial 988.",
	"NSPCC: call 0808 800 5000; Childline +44 800 1111.",
	"Please call me at {{phone:(123) 456-7890}} tomorrow.",
	"Phone: {{phone:(123) 456-7890}}",
	"Phone: {{phone:(123)456-7890}}",
	"Call {{phone:123-456-7890}} or {{phone:+1 (123) 456-7890}}.",
	"London {{phone:+44 20 7946 0958}}, Manchester {{phone:+44 (0)161 496 0753}}.",
	"Her cell is {{phone:(415) 555-2671}}, not (415) 555-0132.",
	"Call {{phone:212-736-4410}} ext. 204 or {{phone:212-736-4410}}x205.",
	"Mobile: {{phone:07911 123456}}; Tel. {{phone:(0161) 496 0753}}.",
	// A ten-digit run after a cue word is not taken for a North American
	// toll-free number: Indian mobile numbers may start with 800.
	"WhatsApp {{phone:8001234567}}",
}

// TestPIIPhoneBugs asserts the phone cases of issue 13 item 6 exactly.
func TestPIIPhoneBugs(t *testing.T) {
	assertExact(t, piiPhoneBugs)
}

// assertExact checks that the Scrubber finds exactly the labelled spans
// of each text.
func assertExact(t *testing.T, cases []string) {
	t.Helper()
	sc, err := NewScrubber(PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, lt := range cases {
		text, labels := parseLabelled(lt)
		var got, want []string
		for _, f := range sc.Find(text) {
			got = append(got, f.Kind+":"+text[f.Start:f.End])
		}
		for _, l := range labels {
			want = append(want, l.kind+":"+text[l.start:l.end])
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%q: found %q, want %q", text, got, want)
		}
	}
}

type piiCounts struct{ tp, fp, fn int }

func (c piiCounts) precision() float64 { return float64(c.tp) / float64(max(c.tp+c.fp, 1)) }
func (c piiCounts) recall() float64    { return float64(c.tp) / float64(max(c.tp+c.fn, 1)) }

// measurePII runs the default Scrubber over labelled texts and logs, per
// kind, the positives, findings, precision and recall. A finding counts
// as correct only with a label's exact span and kind; a partial
// redaction is a false positive and a miss.
func measurePII(t *testing.T, texts []string) map[string]piiCounts {
	t.Helper()
	sc, err := NewScrubber(PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]piiCounts{}
	for _, lt := range texts {
		text, labels := parseLabelled(lt)
		want := map[labelledSpan]bool{}
		for _, l := range labels {
			want[l] = true
		}
		for _, f := range sc.Find(text) {
			ls := labelledSpan{f.Kind, f.Start, f.End}
			c := per[f.Kind]
			if want[ls] {
				c.tp++
				delete(want, ls)
			} else {
				c.fp++
				t.Logf("false positive %s %q in %q", f.Kind, text[f.Start:f.End], text)
			}
			per[f.Kind] = c
		}
		for _, l := range labels {
			if want[l] {
				c := per[l.kind]
				c.fn++
				per[l.kind] = c
				t.Logf("missed %s %q in %q", l.kind, text[l.start:l.end], text)
			}
		}
	}
	kinds := PIIKinds()
	sort.Strings(kinds)
	t.Logf("%d labelled texts", len(texts))
	for _, k := range kinds {
		c := per[k]
		t.Logf("%-12s positives %3d  found %3d  precision %.3f  recall %.3f", k, c.tp+c.fn, c.tp+c.fp, c.precision(), c.recall())
	}
	return per
}

// TestPIIHeldOut measures the Scrubber on testdata/pii_heldout.jsonl, a
// set written from real-world formats after the detectors and not from
// their patterns (docs/filters.md, PII). The set is FROZEN: do not edit,
// add or relabel lines to make a detector pass; a detector change that
// the set motivates is a change to the detector, and the numbers in the
// docs are updated with it. Floors are those that hold now; they guard
// against regressions and are no target.
//
//	go test ./filters -run TestPIIHeldOut -v
func TestPIIHeldOut(t *testing.T) {
	texts := loadHeldOut(t, "testdata/pii_heldout.jsonl")
	if len(texts) < 150 {
		t.Fatalf("%d held-out texts, want >= 150", len(texts))
	}
	per := measurePII(t, texts)
	floors := map[string][2]float64{ // precision, recall
		PIIEmail:      {0.90, 0.82},
		PIIPhone:      {1, 0.96},
		PIIIPv4:       {1, 1},
		PIIIPv6:       {1, 1},
		PIICreditCard: {0.93, 0.93},
		PIIIBAN:       {1, 1},
		PIISecret:     {1, 0.77},
	}
	for _, k := range PIIKinds() {
		c, f := per[k], floors[k]
		if p, r := c.precision(), c.recall(); p < f[0] || r < f[1] {
			t.Errorf("%s: held-out precision %.3f recall %.3f, floors %.2f %.2f", k, p, r, f[0], f[1])
		}
	}
}

// loadHeldOut reads {"text", "spans": [{"kind", "text"}]} lines and
// returns them in the {{kind:text}} form parseLabelled reads. Spans are
// located in order, each after the previous one.
func loadHeldOut(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for n, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec struct {
			Text  string `json:"text"`
			Spans []struct {
				Kind string `json:"kind"`
				Text string `json:"text"`
			} `json:"spans"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%s:%d: %v", path, n+1, err)
		}
		if strings.Contains(rec.Text, "{{") {
			t.Fatalf("%s:%d: text contains {{", path, n+1)
		}
		var b strings.Builder
		rest := rec.Text
		for _, sp := range rec.Spans {
			if !slices.Contains(PIIKinds(), sp.Kind) {
				t.Fatalf("%s:%d: unknown kind %q", path, n+1, sp.Kind)
			}
			i := strings.Index(rest, sp.Text)
			if i < 0 || sp.Text == "" {
				t.Fatalf("%s:%d: span %q not in the text", path, n+1, sp.Text)
			}
			fmt.Fprintf(&b, "%s{{%s:%s}}", rest[:i], sp.Kind, sp.Text)
			rest = rest[i+len(sp.Text):]
		}
		b.WriteString(rest)
		out = append(out, b.String())
	}
	return out
}

func TestScrubRedactsInPlace(t *testing.T) {
	sc, err := NewScrubber(PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s := &datasets.Sample{Messages: []datasets.Message{
		{Role: "user", Content: "My email is jane.doe@gmail.com and my card 4111 1111 1111 1111."},
		{Role: "assistant", Content: "Thanks! I will not store jane.doe@gmail.com anywhere."},
	}}
	counts := sc.Scrub(s)
	if counts["email"] != 2 || counts["credit_card"] != 1 || len(counts) != 2 {
		t.Errorf("counts = %v", counts)
	}
	if got, want := s.Messages[0].Content, "My email is [EMAIL] and my card [CREDIT_CARD]."; got != want {
		t.Errorf("user turn = %q, want %q", got, want)
	}
	if got, want := s.Messages[1].Content, "Thanks! I will not store [EMAIL] anywhere."; got != want {
		t.Errorf("assistant turn = %q, want %q", got, want)
	}
	// Nothing found: nil counts, content untouched.
	clean := &datasets.Sample{Messages: []datasets.Message{{Role: "user", Content: "Hello there, version 1.2.3.4.5."}}}
	if c := sc.Scrub(clean); c != nil {
		t.Errorf("counts = %v, want nil", c)
	}
}

func TestScrubModesAndPlaceholders(t *testing.T) {
	text := "Mail a.b@gmail.com or call +44 20 7946 0958 from 10.0.0.1."
	drop, err := NewScrubber(PIIConfig{Mode: "drop"})
	if err != nil {
		t.Fatal(err)
	}
	s := &datasets.Sample{Messages: []datasets.Message{{Role: "user", Content: text}}}
	if c := drop.Scrub(s); c["email"] != 1 || c["phone"] != 1 || s.Messages[0].Content != text {
		t.Errorf("drop mode: counts %v, content %q", c, s.Messages[0].Content)
	}
	custom, err := NewScrubber(PIIConfig{Kinds: []string{"email", "ipv4"}, Placeholder: "<{kind}>", RedactReserved: true})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := custom.ScrubText(text)
	if want := "Mail <email> or call +44 20 7946 0958 from <ipv4>."; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := NewScrubber(PIIConfig{Kinds: []string{"ssn"}, Mode: "mask"}); err == nil ||
		!strings.Contains(err.Error(), "pii.kinds") || !strings.Contains(err.Error(), "pii.mode") {
		t.Errorf("err = %v", err)
	}
}

func TestLuhnAndMod97(t *testing.T) {
	for _, tc := range []struct {
		n    string
		want bool
	}{{"79927398713", true}, {"79927398710", false}, {"4111111111111111", true}, {"4111111111111112", false}, {"378282246310005", true}} {
		if got := luhn([]byte(tc.n)); got != tc.want {
			t.Errorf("luhn(%s) = %v", tc.n, got)
		}
	}
	for _, tc := range []struct {
		iban string
		want bool
	}{{"DE89370400440532013000", true}, {"DE89370400440532013001", false}, {"GB82WEST12345698765432", true}, {"GB82WEST12345698765433", false}} {
		if got := ibanMod97([]byte(tc.iban)) == 1; got != tc.want {
			t.Errorf("mod97(%s) = %v", tc.iban, got)
		}
	}
}
