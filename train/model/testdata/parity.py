#!/usr/bin/env python3
"""PyTorch reference for sieve's train/model (the Go Llama model).

Builds the same Llama model in PyTorch from a fixed seed, runs a packed and
padded batch, and writes weights, batch, loss, logits and every parameter
gradient to golden safetensors files that parity_test.go compares with the
Go forward and backward.

    /usr/bin/python3 parity.py                 # write parity_*.safetensors (Debian python3-torch, CPU)
    python3 parity.py --transformers [DIR...]  # check the golden files against transformers'
                                               # LlamaForCausalLM, and load the checkpoint DIRs
                                               # (written by the Go test) with from_pretrained

Only torch and numpy are needed for the first form; safetensors files are
read and written by the small functions below (no safetensors package).

The model follows transformers' modeling_llama: RMSNorm computed as
weight * (x * rsqrt(mean(x^2) + eps)), rotary embeddings in the rotate-half
convention with inv_freq = 1 / theta^(arange(0, hd, 2) / hd) and
position_ids, grouped-query attention by repeat_kv, softmax in float32,
SwiGLU MLP, tied or untied lm_head. The attention mask is causal and
confined to each token's segment (its run of equal segment ids), so packed
samples never attend to each other. The loss is the mean cross-entropy over
tokens whose mask is set (ignore_index -100 elsewhere); targets are already
shifted (targets[t] is the token after t).

Each golden file holds:
    model.* / lm_head.weight        the weights (F32), Hugging Face names
    batch.ids/pos/seg/targets/mask  [B, T] int64
    out.loss [], out.logits [B, T, V], grad.<name>        float32 PyTorch
    out64.loss, out64.logits, grad64.<name>               float64 PyTorch (stored F32)
    __metadata__: config (config.json text), torch version
"""
import json
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

CASES = {
    # GQA (4 query heads, 2 key/value heads), untied head, default head_dim.
    "untied": dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, head_dim=8, vocab_size=61, rms_norm_eps=1e-5, rope_theta=10000.0,
                   max_position_embeddings=64, tie_word_embeddings=False),
    # Tied head, head_dim 12 != hidden/heads, another theta and eps.
    "tied": dict(hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=1, head_dim=12, vocab_size=53, rms_norm_eps=1e-6, rope_theta=500000.0,
                 max_position_embeddings=64, tie_word_embeddings=True),
}
B, T = 3, 16
ROWS = [[9, 7], [11], [4, 6, 6]]  # sample lengths per row; the rest is padding

DTYPES = {"F32": (np.float32, 4), "F64": (np.float64, 8), "I64": (np.int64, 8), "BF16": (None, 2), "F16": (np.float16, 2)}


# ----------------------------------------------------------------------------
# safetensors, by hand


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> numpy array (float32, float64 or int64)."""
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        a = np.array(tensors[name], order="C")  # keeps 0-d arrays 0-d
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
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        raw = data[base + b:base + end]
        if e["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            a = u.view(np.float32)
        else:
            a = np.frombuffer(raw, dtype=np.dtype(DTYPES[e["dtype"]][0]).newbyteorder("<"))
        out[name] = a.reshape(tuple(e["shape"])).copy()
    return out, meta


# ----------------------------------------------------------------------------
# the model


def param_shapes(c):
    D, F_, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd, H, KV = c["head_dim"], c["num_attention_heads"], c["num_key_value_heads"]
    s = {"model.embed_tokens.weight": (V, D), "model.norm.weight": (D,)}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        s.update({p + "input_layernorm.weight": (D,), p + "self_attn.q_proj.weight": (H * hd, D),
                  p + "self_attn.k_proj.weight": (KV * hd, D), p + "self_attn.v_proj.weight": (KV * hd, D),
                  p + "self_attn.o_proj.weight": (D, H * hd), p + "post_attention_layernorm.weight": (D,),
                  p + "mlp.gate_proj.weight": (F_, D), p + "mlp.up_proj.weight": (F_, D),
                  p + "mlp.down_proj.weight": (D, F_)})
    if not c["tie_word_embeddings"]:
        s["lm_head.weight"] = (V, D)
    return s


def init_weights(c, seed):
    g = torch.Generator().manual_seed(seed)
    w = {}
    for name, shape in sorted(param_shapes(c).items()):
        if len(shape) == 1:
            w[name] = 1 + 0.1 * torch.randn(shape, generator=g)
        elif name == "model.embed_tokens.weight":
            w[name] = (0.3 if c["tie_word_embeddings"] else 1.0) * torch.randn(shape, generator=g)
        else:
            w[name] = 0.15 * torch.randn(shape, generator=g)
    return w


def make_batch(c, seed):
    g = torch.Generator().manual_seed(seed)
    V = c["vocab_size"]
    ids = torch.zeros(B, T, dtype=torch.int64)
    pos = torch.zeros(B, T, dtype=torch.int64)
    seg = torch.full((B, T), -1, dtype=torch.int64)
    tgt = torch.full((B, T), -100, dtype=torch.int64)
    mask = torch.zeros(B, T, dtype=torch.int64)
    for b, lens in enumerate(ROWS):
        t = 0
        for s, n in enumerate(lens):
            toks = torch.randint(0, V, (n,), generator=g)
            prompt = int(torch.randint(1, n - 1, (1,), generator=g))  # tokens [prompt, n) are "assistant"
            for i in range(n):
                ids[b, t + i], pos[b, t + i], seg[b, t + i] = toks[i], i, s
                if i + 1 < n:
                    tgt[b, t + i] = toks[i + 1]
                    mask[b, t + i] = int(i + 1 >= prompt)
            t += n
        for i in range(T - t):  # padding: one segment of its own, positions 0, 1, ...
            pos[b, t + i] = i
    return dict(ids=ids, pos=pos, seg=seg, targets=tgt, mask=mask)


def allowed_mask(seg):
    """[B, T, T] bool: token i sees token j iff j <= i and no segment change in (j, i]."""
    run = torch.cumsum(torch.cat([torch.zeros_like(seg[:, :1]), (seg[:, 1:] != seg[:, :-1]).long()], 1), 1)
    same = run[:, :, None] == run[:, None, :]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    return same & causal


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rmsnorm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def forward(c, w, batch, dtype):
    D, V = c["hidden_size"], c["vocab_size"]
    hd, H, KV = c["head_dim"], c["num_attention_heads"], c["num_key_value_heads"]
    eps = c["rms_norm_eps"]
    ids, pos = batch["ids"], batch["pos"]
    Bn, Tn = ids.shape
    W = lambda n: w[n]
    # Rotary tables as transformers' LlamaRotaryEmbedding (float32 there; float64 in the 64-bit run).
    inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).to(dtype) / hd))
    freqs = pos[..., None].to(dtype) * inv_freq
    emb = torch.cat((freqs, freqs), -1)
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]  # [B, 1, T, hd]
    neg = torch.zeros(Bn, 1, Tn, Tn, dtype=dtype).masked_fill(~allowed_mask(batch["seg"])[:, None], float("-inf"))
    x = W("model.embed_tokens.weight")[ids]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rmsnorm(x, W(p + "input_layernorm.weight"), eps)
        q = (h @ W(p + "self_attn.q_proj.weight").T).view(Bn, Tn, H, hd).transpose(1, 2)
        k = (h @ W(p + "self_attn.k_proj.weight").T).view(Bn, Tn, KV, hd).transpose(1, 2)
        v = (h @ W(p + "self_attn.v_proj.weight").T).view(Bn, Tn, KV, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)  # = repeat_kv
        v = v.repeat_interleave(H // KV, dim=1)
        att = (q @ k.transpose(2, 3)) * hd ** -0.5 + neg
        att = att.softmax(-1, dtype=torch.float32 if dtype == torch.float32 else dtype).to(dtype)
        y = (att @ v).transpose(1, 2).reshape(Bn, Tn, H * hd)
        x = x + y @ W(p + "self_attn.o_proj.weight").T
        h = rmsnorm(x, W(p + "post_attention_layernorm.weight"), eps)
        x = x + (F.silu(h @ W(p + "mlp.gate_proj.weight").T) * (h @ W(p + "mlp.up_proj.weight").T)) @ W(p + "mlp.down_proj.weight").T
    h = rmsnorm(x, W("model.norm.weight"), eps)
    head = W("model.embed_tokens.weight") if c["tie_word_embeddings"] else W("lm_head.weight")
    logits = h @ head.T
    labels = torch.where(batch["mask"].bool(), batch["targets"], torch.full_like(batch["targets"], -100))
    loss = F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=-100)
    return loss, logits


def run(c, w32, batch, dtype):
    w = {n: t.to(dtype).clone().requires_grad_(True) for n, t in w32.items()}
    loss, logits = forward(c, w, batch, dtype)
    loss.backward()
    return loss.detach(), logits.detach(), {n: t.grad.detach() for n, t in w.items()}


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def generate():
    torch.set_num_threads(1)
    for name, c in CASES.items():
        w = init_weights(c, seed=1234 + len(name))
        batch = make_batch(c, seed=99)
        l32, z32, g32 = run(c, w, batch, torch.float32)
        l64, z64, g64 = run(c, w, batch, torch.float64)
        out = {n: t.numpy().astype(np.float32) for n, t in w.items()}
        out.update({"batch." + k: v.numpy() for k, v in batch.items()})
        out["out.loss"] = np.array(l32.item(), np.float32)
        out["out.logits"] = z32.numpy()
        out["out64.loss"] = np.array(l64.item(), np.float32)
        out["out64.logits"] = z64.numpy().astype(np.float32)
        for n in w:
            out["grad." + n] = g32[n].numpy()
            out["grad64." + n] = g64[n].numpy().astype(np.float32)
        cfg = dict(c, architectures=["LlamaForCausalLM"], model_type="llama", hidden_act="silu")
        write_safetensors(f"parity_{name}.safetensors", out,
                          {"config": json.dumps(cfg, sort_keys=True), "torch": torch.__version__})
        worst = max(rel(g32[n], g64[n]) for n in w)
        print(json.dumps(dict(case=name, loss32=l32.item(), loss64=l64.item(), logits_f32_vs_f64=rel(z32, z64),
                              worst_grad_f32_vs_f64=worst)))


# ----------------------------------------------------------------------------
# cross-check with Hugging Face transformers (GPU machine, CPU math)


def check_case(name, impl, t, c, batch):
    """LlamaForCausalLM with the golden weights against the golden float64 results."""
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM
    m = LlamaForCausalLM(LlamaConfig(**c, attn_implementation=impl)).float().eval()
    sd = {n: torch.from_numpy(t[n]) for n in param_shapes(c)}
    missing, unexpected = m.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and c["tie_word_embeddings"])]
    assert not missing and not unexpected, (missing, unexpected)
    # Each sample alone (no packing, no padding); the loss is the sum over
    # all counted tokens divided by their number, as in the packed batch.
    total, count, logits_err = 0.0, int(batch["mask"].sum()), 0.0
    m.zero_grad()
    for b in range(B):
        seg = batch["seg"][b]
        t0 = 0
        while t0 < T:
            t1 = t0
            while t1 < T and seg[t1] == seg[t0]:
                t1 += 1
            if seg[t0] >= 0:
                z = m(input_ids=batch["ids"][b, t0:t1][None], position_ids=batch["pos"][b, t0:t1][None]).logits[0]
                tg, mk = batch["targets"][b, t0:t1], batch["mask"][b, t0:t1].bool()
                lab = torch.where(mk, tg, torch.full_like(tg, -100))
                s = F.cross_entropy(z, lab, ignore_index=-100, reduction="sum")
                (s / count).backward()
                total += s.item()
                logits_err = max(logits_err, rel(z.detach().numpy(), t["out64.logits"][b, t0:t1]))
            t0 = t1
    loss = total / count
    gerr = {n: rel(p.grad.numpy(), t["grad64." + n]) for n, p in m.named_parameters() if p.grad is not None}
    res = dict(case=name, impl=impl, transformers=transformers.__version__, torch=torch.__version__,
               loss_hf=loss, loss_golden64=float(t["out64.loss"]),
               loss_rel=abs(loss - float(t["out64.loss"])) / float(t["out64.loss"]),
               logits_rel=logits_err, worst_grad_rel=max(gerr.values()), n_grads=len(gerr))
    # Packed rows through position_ids alone (transformers detects packed
    # sequences when no attention_mask is given): informational.
    try:
        with torch.no_grad():
            zp = m(input_ids=batch["ids"], position_ids=batch["pos"]).logits
        real = (batch["seg"] >= 0).numpy()
        res["packed_logits_rel"] = rel(zp.numpy()[real], t["out64.logits"][real])
    except Exception as e:  # noqa: BLE001
        res["packed_error"] = repr(e)[:200]
    res["ok"] = res["loss_rel"] < 1e-5 and res["logits_rel"] < 1e-4 and res["worst_grad_rel"] < 1e-4
    print(json.dumps(res), flush=True)
    return res["ok"]


def check_transformers(dirs):
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(4)
    ok = True
    for name in CASES:
        t, meta = read_safetensors(f"parity_{name}.safetensors")
        c = json.loads(meta["config"])
        batch = {k[6:]: torch.from_numpy(v) for k, v in t.items() if k.startswith("batch.")}
        for impl in ["eager", "sdpa"]:
            try:
                ok &= check_case(name, impl, t, c, batch)
            except Exception as e:  # noqa: BLE001
                import traceback
                print(json.dumps(dict(case=name, impl=impl, error=traceback.format_exc()[-1500:], ok=False)), flush=True)
                ok = False
    # Checkpoints written by the Go test: from_pretrained, then the logits
    # of plain causal rows against Go's.
    for d in dirs:
        try:
            try:
                m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
            except TypeError:
                m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
            ref, _ = read_safetensors(f"{d}/expected_logits.safetensors")
            with torch.no_grad():
                z = m(input_ids=torch.from_numpy(ref["ids"]).long()).logits.numpy()
            err = rel(z, ref["logits"])
            res = dict(checkpoint=d, model_class=type(m).__name__, logits_rel=err, ok=err < 1e-4)
        except Exception as e:  # noqa: BLE001
            res = dict(checkpoint=d, error=repr(e)[:500], ok=False)
        ok &= res["ok"]
        print(json.dumps(res), flush=True)
    return ok


if __name__ == "__main__":
    if "--transformers" in sys.argv:
        dirs = [a for a in sys.argv[1:] if not a.startswith("--")]
        sys.exit(0 if check_transformers(dirs) else 1)
    generate()
