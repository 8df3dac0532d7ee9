// Package filters holds sieve's rule-based curation as plain Go: heuristic
// keep-or-drop filters for instruction/response data, PII scrubbing and
// benchmark decontamination. Nothing here imports Beam; package transforms
// wraps these functions as composites and counts what they see.
//
// # Filters
//
// A Filter looks at one sample and answers with a Verdict: keep or drop,
// the rule that decided ("gopher.mean_word_length"), a short stable
// reason, the measured value and the threshold it was compared with. New
// builds the enabled filters of a Config in a fixed order, cheap checks
// first; CheckAll runs them and stops at the first drop, as datatrove's
// pipeline of filters does.
//
// A filter groups the rules that share one pass over the text (the Gopher
// quality and repetition rules share one tokenisation of each turn). When
// a sample passes, the Verdict of a filter still names a rule and
// carries its value and threshold: the rule of the group that came closest
// to its threshold, so a report can show near misses.
//
// Units: characters are Unicode code points, words are runs of non-space
// characters (length rules) or Gopher tokens (Gopher rules, see
// docs/filters.md), tokens are estimated (EstimateTokens). Fractions are in
// [0, 1].
//
// # PII and decontamination
//
// A Scrubber finds e-mail addresses, phone numbers, IP addresses, payment
// card numbers, IBANs and secrets (cloud keys, tokens, private-key blocks)
// with hand-written scanners and validators (Luhn, mod-97, address ranges)
// and replaces them with typed placeholders such as "[EMAIL]".
//
// A Decontaminator indexes the word n-grams (13 by default) of benchmark
// questions and answers and reports the first sample n-gram that occurs in
// a benchmark item.
//
// Filters, Scrubbers and Decontaminators are safe for concurrent use once
// built; their scratch space comes from pools.
package filters
