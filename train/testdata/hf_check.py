#!/usr/bin/env python3
"""Checks sieve's training outputs against Hugging Face's own code.

    python3 hf_check.py DIR

DIR holds what the check reads, as train's TestExportForHFCheck writes it:

    SIEVE_HF_EXPORT=DIR go test ./train/ -run TestExportForHFCheck

  A/                 a model trained from scratch by `sieve train --init`
  B/                 a model fine-tuned with `sieve train --model A --lora-r ...`
                     (adapters merged), B/adapter/ the PEFT adapter
  A_expected.json    what sieve computes on A, B and B/adapter: token ids and
  B_expected.json    assistant mask of a conversation (ChatTemplate.Encode),
  Badapter_expected.json  loss and logits of one forward pass, greedy ids
  optim_golden.json  train/testdata/optim_golden.json

and checks, with transformers (and peft, tokenizers) as installed:

  1. AutoTokenizer loads the tokenizer files; apply_chat_template renders
     the same text and token ids, and return_assistant_tokens_mask gives
     the same loss mask;
  2. AutoModelForCausalLM loads config.json + model.safetensors as they
     are; its logits and loss (labels -100 outside the mask) match sieve's;
  3. greedy model.generate continues the prompt with sieve's greedy ids;
  4. PeftModel.from_pretrained(A, B/adapter) gives B's logits (the adapter
     loads, and merging agrees);
  5. transformers' get_cosine_schedule_with_warmup and
     get_cosine_with_min_lr_schedule_with_warmup give the factors of the
     golden file (which optim_golden.py computed with a copy of their
     lambda).

Prints one JSON line per check and exits 1 if any fails.
"""
import json
import math
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

root = sys.argv[1]
failed = False


def report(check, ok, **kw):
    global failed
    failed |= not ok
    print(json.dumps({"check": check, "ok": bool(ok), **kw}), flush=True)


def load(name):
    with open(os.path.join(root, name)) as f:
        return json.load(f)


def model_checks(name, d, exp, model=None):
    tok = AutoTokenizer.from_pretrained(d)
    msgs = exp["messages"]
    text = tok.apply_chat_template(msgs, tokenize=False)
    report(f"{name}: chat template text", text == exp["text"])
    enc = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids = list(enc["input_ids"])
    mask = [bool(m) for m in enc["assistant_masks"]]
    report(f"{name}: chat template ids", ids == exp["ids"], n=len(ids))
    report(f"{name}: assistant mask", mask == exp["mask"], hf=sum(mask), sieve=sum(exp["mask"]))
    prompt = tok.apply_chat_template(msgs[:2], tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
    report(f"{name}: generation prompt ids", list(prompt) == exp["prompt_ids"])

    if model is None:
        model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32)
    model.eval()
    x = torch.tensor([exp["ids"]])
    labels = torch.tensor([[t if m else -100 for t, m in zip(exp["ids"], exp["mask"])]])
    with torch.no_grad():
        out = model(input_ids=x, labels=labels)
    logits = out.logits[0].reshape(-1)
    want = torch.tensor(exp["logits"])
    err = (logits - want).abs().max().item()
    scale = want.abs().max().item()
    report(f"{name}: logits", err <= 1e-4 * max(1.0, scale), max_abs_err=err, max_abs=scale)
    report(f"{name}: loss", abs(out.loss.item() - exp["loss"]) <= 1e-5 * max(1.0, exp["loss"]), hf=out.loss.item(), sieve=exp["loss"])

    eos = [tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|eot_id|>", tok.eos_token) if t and t in tok.get_vocab()]
    with torch.no_grad():
        gen = model.generate(torch.tensor([exp["prompt_ids"]]), max_new_tokens=24, do_sample=False,
                             eos_token_id=eos, pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else 0)
    new = gen[0, len(exp["prompt_ids"]):].tolist()
    while new and new[-1] in eos:
        new = new[:-1]
    report(f"{name}: greedy generation", new == exp["greedy"], hf=new, sieve=exp["greedy"])
    return model


print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__}))
A, B = os.path.join(root, "A"), os.path.join(root, "B")
model_checks("scratch", A, load("A_expected.json"))
model_checks("lora merged", B, load("B_expected.json"))

try:
    from peft import PeftModel
    import peft
    base = AutoModelForCausalLM.from_pretrained(A, torch_dtype=torch.float32)
    pm = PeftModel.from_pretrained(base, os.path.join(B, "adapter"))
    print(json.dumps({"peft": peft.__version__}))
    model_checks("peft adapter on base", os.path.join(B, "adapter"), load("Badapter_expected.json"), model=pm)
except ImportError as e:
    report("peft", False, error=str(e))

from transformers import get_cosine_schedule_with_warmup
try:
    from transformers import get_cosine_with_min_lr_schedule_with_warmup
except ImportError:
    get_cosine_with_min_lr_schedule_with_warmup = None
golden = load("optim_golden.json")
worst = 0.0
for s in golden["schedules"]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    if s["min_lr_ratio"] > 0:
        sched = get_cosine_with_min_lr_schedule_with_warmup(opt, s["warmup"], s["total"], min_lr_rate=s["min_lr_ratio"])
    else:
        sched = get_cosine_schedule_with_warmup(opt, s["warmup"], s["total"])
    for want in s["factors"]:
        worst = max(worst, abs(opt.param_groups[0]["lr"] - want))
        opt.step()
        sched.step()
report("cosine schedules", worst <= 1e-12, max_abs_err=worst)
sys.exit(1 if failed else 0)
