// Package tokenizer is sieve's byte-level BPE tokenizer: it loads a
// Hugging Face tokenizer.json (GPT-2, Llama-3, Qwen2/Qwen3 and any file
// built from the same parts) and encodes text to the same token ids as
// Hugging Face tokenizers, trains a new byte-level BPE vocabulary from
// text, and renders conversations with a chat template into token ids and
// an assistant-only loss mask.
//
// # Encoding
//
// Encode follows the Hugging Face pipeline step by step:
//
//  1. added tokens (special tokens such as <|im_start|> and the others
//     listed under "added_tokens") are matched first, leftmost-longest,
//     on the raw text; they become single ids and the text between them
//     is encoded independently;
//  2. the normalizer runs on each remaining piece (NFC, NFD, NFKC, NFKD
//     or a Sequence of them; Qwen uses NFC);
//  3. the pre-tokenizer cuts each piece into words: ByteLevel (with
//     add_prefix_space and use_regex), Split with the GPT-2, Llama-3 or
//     Qwen2 regular expression (or a literal string), or a Sequence of
//     those;
//  4. each word, as UTF-8 bytes, is merged by BPE with the merge ranks of
//     the file (lowest rank first, leftmost first among equal ranks),
//     with a priority queue over a linked list of symbols: O(n log n) for
//     a word of n bytes. Results are cached per word.
//
// The three regular expressions need a lookahead (\s+(?!\S)), which Go's
// regexp package lacks; they are implemented as hand-written scanners
// whose equivalence with the leftmost-first backtracking semantics of
// Oniguruma (used by Hugging Face tokenizers) is argued case by case in
// pretokenize.go. Character classes follow Unicode general categories:
// \p{L} is unicode.IsLetter, \p{N} is unicode.IsNumber and \s is
// unicode.IsSpace (the White_Space property, as Oniguruma's \s).
//
// Encode returns what Hugging Face's tokenizer.encode(text,
// add_special_tokens=False) returns; EncodeOrdinary skips step 1 and
// treats special-token strings as plain text (as tiktoken's
// encode_ordinary). Decode maps ids back to bytes (added tokens to their
// content); for a file without a normalizer Decode(Encode(s)) == s.
//
// # Training
//
// Train learns a byte-level BPE vocabulary from an iterator of strings:
// the 256 byte symbols, then merges of the most frequent adjacent pair,
// with pair counts updated incrementally and ties broken by the smaller
// pair of ids, so that the result depends only on the multiset of words
// in the input. The result saves as a tokenizer.json that Hugging Face
// tokenizers and transformers load.
//
// # Chat templates
//
// A Tokenizer carries a ChatTemplate: ChatML (<|im_start|>role\ncontent
// <|im_end|>\n) by default, or Llama-3 when the chat_template of a loaded
// tokenizer_config.json has the Llama-3 markers. ChatTemplate.Encode
// renders messages and returns their ids with a loss mask that is true
// exactly on the tokens of assistant contents and on the end-of-turn
// token that closes each assistant turn.
//
// A Tokenizer is safe for concurrent use once loaded (ReadConfig and
// SetChatFormat excepted).
package tokenizer
