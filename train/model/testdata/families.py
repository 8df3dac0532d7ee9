#!/usr/bin/env python3
"""transformers' and PEFT's own models as the reference for sieve's model families.

Run on a machine with PyTorch 2.11, transformers 5.17 and peft 0.21 (no network,
no weights; CUDA when there is one, else CPU), from train/model/testdata:

    python3 families.py OUTDIR

For each family, at the real configuration of a checkpoint users fine-tune
(its config.json as published, read by AutoConfig.from_pretrained as a
downloaded checkpoint's would be), cut as stated in CUTS:

    llama    Llama-3.2-1B            tied, GQA 32/8, head_dim 64, rope_scaling llama3 (factor 32)
    qwen2    Qwen2.5-0.5B-Instruct   tied, GQA 14/2, q/k/v biases
    qwen3    Qwen3-0.6B              tied, GQA 16/8, head_dim 128 != 1024/16, q_norm/k_norm
    mistral  Mistral-7B-v0.1         untied, GQA 32/8, sliding_window 4096 (rows of 16 tokens)

it builds the model with AutoModelForCausalLM.from_config, sets every weight
from the portable generator below (which sieve's Go test reimplements, so no
weight is stored), runs a batch of 2 rows of 16 tokens (row 1 at positions
3000..3015, so that the rotary frequencies matter) and writes
OUTDIR/families_<family>.safetensors with

    batch.ids, batch.pos, batch.targets, batch.mask   [2, 16] int64 (targets shifted, -100 = not counted)
    w.<name>                    the first row (1-D: all) of each weight, to check the generator
    rope.inv_freq               the model's rotary inverse frequencies (float32)
    full.loss, full.logits      float64 run (stored F32); full32.loss: the float32 run's loss
    full.grad.<name>            rows 0 and last (1-D: all) of every parameter's gradient, float64 run
    full.gradnorm.<name>        the L2 norm of the whole gradient, float64 run
    lora.*                      the same with PEFT LoRA (r 8, alpha 16, all seven projections,
                                lora_A and lora_B from the generator), <name> PEFT's saved name
    __metadata__                config (config.json text), cuts, versions, checks (JSON)

"float64 run": the model in float64 with SDPA attention. transformers' RMSNorm
computes in float32 whatever the model's dtype, and its rotary tables are
float32: the reference is float64 elsewhere. The float32 run (eager attention,
TF32 off) is there to state transformers' own float32 error against it.

Then it loads the tiny checkpoints and adapters that sieve wrote
(families/hf_<family>/, TestWriteFamilyCheckpoints) with from_pretrained and
PeftModel.from_pretrained and compares their logits with sieve's.

Every result is also a JSON line on stdout and in OUTDIR/families_record.jsonl.
"""
import json
import math
import os
import struct
import sys
import tempfile
import traceback

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network there: never try
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
HERE = os.path.dirname(os.path.abspath(__file__))

# ----------------------------------------------------------------------------
# the configs (as published; token ids dropped with the vocabulary cut)

CONFIGS = {
    "llama": {  # meta-llama/Llama-3.2-1B
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
        "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
        "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8, "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_cache": True,
        "vocab_size": 128256,
    },
    "qwen2": {  # Qwen/Qwen2.5-0.5B-Instruct
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "hidden_act": "silu", "hidden_size": 896,
        "initializer_range": 0.02, "intermediate_size": 4864, "max_position_embeddings": 32768,
        "max_window_layers": 21, "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
        "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
        "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_cache": True, "use_sliding_window": False,
        "vocab_size": 151936,
    },
    "qwen3": {  # Qwen/Qwen3-0.6B
        "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "head_dim": 128,
        "hidden_act": "silu", "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
        "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
        "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
        "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "use_cache": True, "use_sliding_window": False, "vocab_size": 151936,
    },
    "mistral": {  # mistralai/Mistral-7B-v0.1
        "architectures": ["MistralForCausalLM"], "hidden_act": "silu", "hidden_size": 4096,
        "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768,
        "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
        "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": 32000,
    },
}
# What is cut, so that sieve's float32 test holds the model (weights and
# gradients about 1 GB for the largest) and the golden files stay small.
# Everything else (widths, heads, head_dim, rope, eps, tying, biases, norms,
# window) is the published value.
CUTS = {
    "llama": {"num_hidden_layers": 2, "vocab_size": 2048},
    "qwen2": {"num_hidden_layers": 2, "vocab_size": 2048},
    "qwen3": {"num_hidden_layers": 2, "vocab_size": 2048},
    "mistral": {"num_hidden_layers": 2, "vocab_size": 2048, "intermediate_size": 1024},
}
B, T, PROMPT = 2, 16, 4  # rows, tokens a row, leading tokens of a row not counted in the loss
ROW_START = [0, 3000]  # position of each row's first token
LORA_R, LORA_ALPHA = 8, 16
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def config_of(family):
    c = dict(CONFIGS[family])
    c.update(CUTS[family])
    return c


# ----------------------------------------------------------------------------
# the portable generator (train/model/families_golden_test.go: goldenValues)
#
# Tensor name s, element i (row-major), value
#     z = splitmix64(fnv1a64(s) + (i+1)·0x9E3779B97F4A7C15)
#     v = float32(float64((z >> 40)·2⁻²³ − 1)·a + c)     uniform on [c − a, c + a)
# in IEEE float64 operations, each rounded (no fused multiply-add), then to float32.

M64 = (1 << 64) - 1
GAMMA, C1, C2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def uniform2(name, n):
    """(z >> 40)·2⁻²³ − 1 for elements 0..n-1 of tensor name: float64 in [-1, 1)."""
    out = np.empty(n, np.float64)
    key = np.uint64(fnv1a64(name))
    step = 1 << 22
    with np.errstate(over="ignore"):
        for lo in range(0, n, step):
            i = np.arange(lo + 1, min(n, lo + step) + 1, dtype=np.uint64)
            z = key + i * GAMMA
            z = (z ^ (z >> np.uint64(30))) * C1
            z = (z ^ (z >> np.uint64(27))) * C2
            z = z ^ (z >> np.uint64(31))
            out[lo:lo + len(i)] = (z >> np.uint64(40)).astype(np.float64) * 2.0 ** -23 - 1.0
    return out


def golden_scale(name, shape, hidden):
    """(a, c) of tensor name: half-width and centre of its uniform values."""
    if name.endswith("norm.weight"):
        return 0.1, 1.0
    if name.endswith(".bias"):
        return 0.5, 0.0
    if name.endswith("embed_tokens.weight") or name.endswith("lm_head.weight"):
        return 2 * math.sqrt(3.0 / hidden), 0.0  # std 2/√D: logits of a few units
    if name.endswith("lora_B.weight"):
        return 0.25 * math.sqrt(3.0 / shape[1]), 0.0
    return math.sqrt(3.0 / shape[-1]), 0.0  # std 1/√in


def golden_values(name, shape, hidden):
    a, c = golden_scale(name, shape, hidden)
    u = uniform2(name, int(np.prod(shape)))
    return ((u * a) + c).astype(np.float32).reshape(shape)


# ----------------------------------------------------------------------------
# safetensors, by hand (as parity.py)


def write_safetensors(path, tensors, metadata=None):
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        a = np.array(tensors[name], order="C")
        dt = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}[a.dtype]
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        dt = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}[e["dtype"]]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + end], dtype=dt).reshape(tuple(e["shape"])).copy()
    return out


# ----------------------------------------------------------------------------
# the batch


def make_batch(V):
    u = uniform2("batch.ids", B * T)
    ids = np.minimum(((u + 1) * 0.5 * V).astype(np.int64), V - 1).reshape(B, T)
    pos = np.array([[s + t for t in range(T)] for s in ROW_START], np.int64)
    targets = np.full((B, T), -100, np.int64)
    targets[:, :-1] = ids[:, 1:]
    mask = np.zeros((B, T), np.int64)
    mask[:, PROMPT:-1] = 1
    return dict(ids=ids, pos=pos, targets=targets, mask=mask)


# ----------------------------------------------------------------------------
# the runs


def log(record, f):
    line = json.dumps(record, sort_keys=True)
    print(line, flush=True)
    f.write(line + "\n")
    f.flush()


def slice_rows(a):
    a = np.asarray(a)
    if a.ndim == 1:
        return a
    return np.stack([a[0], a[-1]])


def run_family(family, out, rec, torch, device):
    import peft
    import torch.nn.functional as F
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = config_of(family)
    cfg_text = json.dumps(cfg, indent=2, sort_keys=True)
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write(cfg_text)
        config = AutoConfig.from_pretrained(d)
    D, V = cfg["hidden_size"], cfg["vocab_size"]
    batch = make_batch(V)
    tb = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
    labels = torch.where(tb["mask"].bool(), tb["targets"], torch.full_like(tb["targets"], -100))

    def new_model(impl, where):
        # float32 whatever the config's torch_dtype (bfloat16 here) says.
        with torch.device(where):
            try:
                m = AutoModelForCausalLM.from_config(config, attn_implementation=impl, dtype=torch.float32)
            except TypeError:
                m = AutoModelForCausalLM.from_config(config, attn_implementation=impl, torch_dtype=torch.float32)
        tied = lambda: m.lm_head.weight.data_ptr() == m.model.embed_tokens.weight.data_ptr()  # noqa: E731
        if cfg["tie_word_embeddings"] and where != "meta" and not tied():
            m.tie_weights()
            assert tied(), "tie_word_embeddings is set but lm_head is not tied to embed_tokens"
        return m

    def build(dtype, impl):
        m = new_model(impl, device)
        names = [n for n, _ in m.named_parameters()]
        sd = {n: torch.from_numpy(weights[n]) for n in names}
        missing, unexpected = m.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not (k == "lm_head.weight" and cfg["tie_word_embeddings"])]
        assert not missing and not unexpected, (missing, unexpected)
        for n, p in m.named_parameters():  # the generator's values, exactly
            assert p.dtype == torch.float32 and torch.equal(p.detach().cpu(), sd[n]), n
        return m.to(dtype)

    def loss_of(logits):
        return F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=-100)

    # The weights, by the names transformers gives them.
    try:
        shapes = {n: tuple(p.shape) for n, p in new_model("eager", "meta").named_parameters()}
    except Exception:  # noqa: BLE001 - a meta build that fails: build it for real
        shapes = {n: tuple(p.shape) for n, p in new_model("eager", "cpu").named_parameters()}
    weights = {n: golden_values(n, s, D) for n, s in shapes.items()}
    t = {"batch." + k: v for k, v in batch.items()}
    for n, w in weights.items():
        t["w." + n] = w.reshape(w.shape[0], -1)[0] if w.ndim > 1 else w

    def forward_backward(m, dtype):
        m.train()  # dropout is 0 in every config
        logits = m(input_ids=tb["ids"], position_ids=tb["pos"], use_cache=False).logits
        loss = loss_of(logits.to(dtype))
        loss.backward()
        return loss.detach(), logits.detach()

    checks = dict(family=family, transformers=transformers.__version__, torch=torch.__version__,
                  peft=peft.__version__, device=str(device))
    results = {}
    for dtype, impl, tag in [(torch.float64, "sdpa", "64"), (torch.float32, "eager", "32")]:
        m = build(dtype, impl)
        if tag == "64":
            inner = m.model
            rot = getattr(inner, "rotary_emb", None) or inner.layers[0].self_attn.rotary_emb
            inv = [b for n, b in rot.named_buffers() if n.endswith("inv_freq")]
            t["rope.inv_freq"] = inv[0].detach().float().cpu().numpy()
            attn = inner.layers[0].self_attn
            checks.update(model_class=type(m).__name__, rope_type=str(getattr(rot, "rope_type", None)),
                          head_dim=int(attn.head_dim), q_bias=attn.q_proj.bias is not None,
                          o_bias=attn.o_proj.bias is not None, q_norm=hasattr(attn, "q_norm"),
                          sliding_window=getattr(attn, "sliding_window", None),
                          layer_types=getattr(config, "layer_types", None), n_params=len(shapes),
                          tied=m.lm_head.weight.data_ptr() == inner.embed_tokens.weight.data_ptr())
        loss, logits = forward_backward(m, dtype)
        grads = {n: p.grad.detach().double().cpu().numpy() for n, p in m.named_parameters()}
        results["full" + tag] = (loss.item(), logits.double().cpu().numpy(), grads)
        del m

        # LoRA through PEFT: the base frozen (biases and norms too, bias="none").
        m = build(dtype, impl)
        lcfg = LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, target_modules=LORA_TARGETS, lora_dropout=0.0,
                          bias="none", task_type="CAUSAL_LM")
        pm = get_peft_model(m, lcfg).to(dtype)
        trainable = sorted(n.replace(".default", "") for n, p in pm.named_parameters() if p.requires_grad)
        assert all(".lora_A." in n or ".lora_B." in n for n in trainable), trainable[:5]
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if p.requires_grad:
                    name = n.replace(".default", "")
                    p.copy_(torch.from_numpy(golden_values(name, tuple(p.shape), D)).to(p.dtype))
        loss, logits = forward_backward(pm, dtype)
        grads = {n.replace(".default", ""): p.grad.detach().double().cpu().numpy()
                 for n, p in pm.named_parameters() if p.requires_grad}
        results["lora" + tag] = (loss.item(), logits.double().cpu().numpy(), grads)
        if tag == "64":
            checks.update(lora_trainable=len(trainable), lora_scaling=float(
                pm.base_model.model.model.layers[0].self_attn.q_proj.scaling["default"]))
        del m, pm

    for kind in ["full", "lora"]:
        l64, z64, g64 = results[kind + "64"]
        l32, z32, g32 = results[kind + "32"]
        t[kind + ".loss"] = np.array(l64, np.float32)
        t[kind + "32.loss"] = np.array(l32, np.float32)
        t[kind + ".logits"] = z64.astype(np.float32)
        for n, g in g64.items():
            t[kind + ".grad." + n] = slice_rows(g).astype(np.float32)
            t[kind + ".gradnorm." + n] = np.array(np.sqrt((g * g).sum()), np.float64)
        worst = max(float(np.abs(g32[n] - g).max() / max(np.abs(g).max(), 1e-30)) for n, g in g64.items())
        checks[kind] = dict(loss64=l64, loss32=l32, loss_rel_f32=abs(l32 - l64) / abs(l64),
                            logits_maxabs_f32=float(np.abs(z32 - z64).max()), logits_maxabs=float(np.abs(z64).max()),
                            worst_grad_rel_f32=worst, n_grads=len(g64))
    path = os.path.join(out, f"families_{family}.safetensors")
    write_safetensors(path, t, {"config": cfg_text, "cuts": json.dumps(CUTS[family], sort_keys=True),
                                "checks": json.dumps(checks, sort_keys=True)})
    checks.update(file=os.path.basename(path), bytes=os.path.getsize(path), ok=True)
    log(checks, rec)


def check_checkpoint(family, rec, torch, device):
    """sieve's tiny checkpoint and adapter of a family, loaded by transformers and PEFT."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    d = os.path.join(HERE, "families", "hf_" + family)
    ref = read_safetensors(os.path.join(d, "expected_logits.safetensors"))
    ids = torch.from_numpy(ref["ids"].astype(np.int64)).to(device)
    try:
        m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    except TypeError:
        m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32)
    m = m.to(device).eval()
    sd = read_safetensors(os.path.join(d, "model.safetensors"))
    for n, p in m.named_parameters():  # sieve's weights, as written
        assert torch.equal(p.detach().cpu(), torch.from_numpy(sd[n])), n
    with torch.no_grad():
        z = m(input_ids=ids, use_cache=False).logits.cpu().numpy()
    err = float(np.abs(z - ref["logits"]).max())
    pm = PeftModel.from_pretrained(m, os.path.join(d, "adapter")).to(device).eval()
    with torch.no_grad():
        za = pm(input_ids=ids, use_cache=False).logits.cpu().numpy()
    aerr = float(np.abs(za - ref["adapter_logits"]).max())
    scale = float(np.abs(ref["logits"]).max())
    log(dict(checkpoint="hf_" + family, model_class=type(m).__name__, logits_maxabs_err=err,
             adapter_logits_maxabs_err=aerr, logits_maxabs=scale,
             adapter_changes_logits=float(np.abs(za - z).max()),
             ok=err <= 1e-5 * max(scale, 1) and aerr <= 1e-5 * max(scale, 1)), rec)


def main():
    import torch
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    try:  # float32 products in float32 (TF32 off: torch's default for matmul)
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    except Exception:  # noqa: BLE001 - older torch: the legacy switch
        torch.backends.cuda.matmul.allow_tf32 = False
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ok = True
    with open(os.path.join(out, "families_record.jsonl"), "w") as rec:
        for family in sys.argv[2:] or CONFIGS:
            try:
                run_family(family, out, rec, torch, device)
            except Exception:  # noqa: BLE001 - recorded, and the next family still runs
                ok = False
                log(dict(family=family, error=traceback.format_exc()[-3000:], ok=False), rec)
            if device.type == "cuda":
                torch.cuda.empty_cache()
        for family in ["qwen2", "qwen3", "llama", "mistral"]:
            try:
                check_checkpoint(family, rec, torch, device)
            except Exception:  # noqa: BLE001
                ok = False
                log(dict(checkpoint="hf_" + family, error=traceback.format_exc()[-3000:], ok=False), rec)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
