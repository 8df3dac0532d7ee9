#!/usr/bin/env python3
"""PEFT reference for sieve's LoRA adapters (train/model/lora.go).

Run from train/model/testdata on a machine with torch, transformers and peft
(no bitsandbytes needed; CPU):

    python3 peft_parity.py OUTDIR

It reads the base checkpoint hf_untied/ (written by sieve, loaded with
LlamaForCausalLM.from_pretrained), the adapters peft/sieve_all/ and
peft/sieve_rslora/ (written by sieve's SaveAdapter; TestWritePEFTFixtures)
and the batch peft/batch.safetensors, and writes to OUTDIR:

  peft_golden.safetensors
      <case>.loss, <case>.logits [B, T, V], <case>.grad.<name>   PEFT in float32
      <case>.loss64, <case>.logits64, <case>.grad64.<name>       PEFT in float64 (stored F32)
      <case>.scaling                                             PEFT's scaling of the adapter
      peft_own.loss, peft_own.logits (and ...64)                 the adapter below
      __metadata__: versions, per-case checks
  peft_own/   an adapter PEFT creates (LoraConfig target_modules "all-linear",
              r 4, lora_alpha 12, use_rslora, lora_B drawn from N(0, 0.1²))
              and saves with save_pretrained, for sieve's LoadAdapter

<name> is the PEFT state-dict name without the adapter name, as in the saved
file (base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight). The
loss is the mean cross-entropy over tokens with mask 1 of logits[b, t] against
targets[b, t] (already shifted). Copy OUTDIR's contents into peft/; the Go test
TestPEFTParity compares them with sieve.

The script also checks, and reports in a JSON line per case, that PEFT loaded
every tensor of the sieve adapter (values equal to the file's), that only the
adapter is trainable, and that the adapter changes the base model's logits.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ beside the golden files
sys.path.insert(0, HERE)
from parity import read_safetensors, rel, write_safetensors  # noqa: E402

BASE = os.path.join(HERE, "hf_untied")
PEFT_DIR = os.path.join(HERE, "peft")
CASES = ["sieve_all", "sieve_rslora"]


def load_base(dtype):
    from transformers import LlamaForCausalLM
    try:
        m = LlamaForCausalLM.from_pretrained(BASE, dtype=torch.float32, attn_implementation="eager")
    except TypeError:
        m = LlamaForCausalLM.from_pretrained(BASE, torch_dtype=torch.float32, attn_implementation="eager")
    return m.to(dtype)


def batch():
    b, _ = read_safetensors(os.path.join(PEFT_DIR, "batch.safetensors"))
    return {k: torch.from_numpy(v.astype(np.int64)) for k, v in b.items()}


def loss_of(logits, x):
    V = logits.shape[-1]
    mask = x["mask"].reshape(-1).bool()
    return F.cross_entropy(logits.reshape(-1, V)[mask], x["targets"].reshape(-1)[mask])


def strip(name):
    return name.replace(".default", "")


def run_case(case, dtype, x):
    from peft import PeftModel
    adir = os.path.join(PEFT_DIR, case)
    base = load_base(dtype)
    with torch.no_grad():
        base_logits = base(input_ids=x["ids"]).logits.clone()
    model = PeftModel.from_pretrained(base, adir, is_trainable=True).to(dtype)
    model.train()  # lora_dropout is 0: train and eval agree
    saved, _ = read_safetensors(os.path.join(adir, "adapter_model.safetensors"))
    lora = {strip(n): p for n, p in model.named_parameters() if "lora_" in n}
    trainable = {strip(n) for n, p in model.named_parameters() if p.requires_grad}
    assert set(lora) == set(saved), (sorted(set(lora) ^ set(saved)))[:5]
    assert trainable == set(saved), sorted(trainable ^ set(saved))[:5]
    for n, p in lora.items():
        assert np.array_equal(p.detach().to(torch.float32).numpy(), saved[n]), n
    logits = model(input_ids=x["ids"]).logits
    loss = loss_of(logits, x)
    loss.backward()
    mod = model.base_model.model.model.layers[0].self_attn
    proj = mod.q_proj if hasattr(mod.q_proj, "scaling") else mod.v_proj
    scaling = float(proj.scaling["default"])
    info = dict(case=case, dtype=str(dtype), loss=loss.item(), scaling=scaling, tensors=len(lora),
                adapter_changes_logits=rel(logits.detach().numpy(), base_logits.numpy()))
    return loss.detach(), logits.detach(), {n: p.grad.detach() for n, p in lora.items()}, scaling, info


def peft_own(out, x):
    from peft import LoraConfig, get_peft_model
    base = load_base(torch.float32)
    cfg = LoraConfig(r=4, lora_alpha=12, target_modules="all-linear", lora_dropout=0.0, use_rslora=True,
                     task_type="CAUSAL_LM", bias="none")
    pm = get_peft_model(base, cfg)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    pm.eval()
    pm.save_pretrained(os.path.join(out, "peft_own"))
    res = {}
    with torch.no_grad():
        z = pm(input_ids=x["ids"]).logits
        res["peft_own.logits"], res["peft_own.loss"] = z, loss_of(z, x)
        pm.double()
        z = pm(input_ids=x["ids"]).logits
        res["peft_own.logits64"], res["peft_own.loss64"] = z, loss_of(z, x)
    with open(os.path.join(out, "peft_own", "adapter_config.json")) as f:
        saved_cfg = json.load(f)
    info = dict(case="peft_own", target_modules=saved_cfg.get("target_modules"), r=saved_cfg.get("r"),
                lora_alpha=saved_cfg.get("lora_alpha"), use_rslora=saved_cfg.get("use_rslora"),
                loss=float(res["peft_own.loss"]))
    return {k: v.to(torch.float32).numpy() for k, v in res.items()}, info


def main():
    import peft
    import transformers
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(4)
    x = batch()
    tensors, infos = {}, []
    for case in CASES:
        l32, z32, g32, s, info32 = run_case(case, torch.float32, x)
        l64, z64, g64, _, info64 = run_case(case, torch.float64, x)
        tensors[case + ".loss"] = np.array(l32.item(), np.float32)
        tensors[case + ".loss64"] = np.array(l64.item(), np.float32)
        tensors[case + ".logits"] = z32.numpy()
        tensors[case + ".logits64"] = z64.numpy().astype(np.float32)
        tensors[case + ".scaling"] = np.array(s, np.float32)
        for n in g32:
            tensors[case + ".grad." + n] = g32[n].numpy()
            tensors[case + ".grad64." + n] = g64[n].numpy().astype(np.float32)
        info32.update(logits_f32_vs_f64=rel(z32.numpy(), z64.numpy()),
                      worst_grad_f32_vs_f64=max(rel(g32[n].numpy(), g64[n].numpy()) for n in g32))
        infos += [info32, info64]
    own, info = peft_own(out, x)
    tensors.update(own)
    infos.append(info)
    versions = dict(torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__)
    write_safetensors(os.path.join(out, "peft_golden.safetensors"), tensors,
                      {"versions": json.dumps(versions, sort_keys=True), "checks": json.dumps(infos)})
    for i in infos:
        print(json.dumps(dict(i, **versions)), flush=True)


if __name__ == "__main__":
    main()
