#!/usr/bin/env python3
"""sieve's PyTorch CPU reference for the trainer benchmark (bench/train).

Builds the Llama model that sieve's train/model implements (RMSNorm,
rotary embeddings in Hugging Face's rotate-half convention, causal
multi-head attention, SwiGLU MLP, final norm, lm_head tied to the
embedding, no biases), in float32, and times training steps on a fixed
random batch: forward, cross-entropy, backward, clip_grad_norm_(1.0),
torch.optim.AdamW(lr 3e-4, betas (0.9, 0.95), weight decay 0.1). Prints
one JSON object: tokens/s from the median step, and the process's peak
RSS (ru_maxrss).

Settings come from the environment, the names the Go side uses:
DIM (256), LAYERS (4), HEADS (4), KVHEADS (HEADS), VOCAB (4096), SEQ
(256), BATCH (8), HIDDEN (0: llama2.c's rule, 704 for DIM 256), THREADS
(2), STEPS (10), WARMUP (2), MODE (full | lora: base frozen, LoRA rank
LORA_R 8, alpha LORA_ALPHA 16 on q, k, v, o, gate, up and down).
"""
import json
import math
import os
import resource
import time

import torch
import torch.nn.functional as F
from torch import nn


def env(name, default):
    return type(default)(os.environ.get(name, default))


DIM, LAYERS, HEADS = env("DIM", 256), env("LAYERS", 4), env("HEADS", 4)
KVHEADS, VOCAB = env("KVHEADS", HEADS), env("VOCAB", 4096)
SEQ, BATCH = env("SEQ", 256), env("BATCH", 8)
HIDDEN = env("HIDDEN", 0) or 32 * ((2 * 4 * DIM // 3 + 31) // 32)
THREADS, STEPS, WARMUP = env("THREADS", 2), env("STEPS", 10), env("WARMUP", 2)
MODE = os.environ.get("MODE", "full")
LORA_R, LORA_ALPHA = env("LORA_R", 8), env("LORA_ALPHA", 16.0)
HD = DIM // HEADS


class Norm(nn.Module):
    """RMSNorm: x / sqrt(mean(x^2) + eps) * w."""

    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(d))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.square().mean(-1, keepdim=True) + self.eps))


class Proj(nn.Module):
    """y = x W^T, plus (alpha/r) x A^T B^T once lora() has frozen W."""

    def __init__(self, fan_in, fan_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in) * 0.02)
        self.a = self.b = None

    def lora(self, r, alpha):
        self.weight.requires_grad_(False)
        self.a = nn.Parameter(torch.empty(r, self.weight.shape[1]))
        nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))
        self.b = nn.Parameter(torch.zeros(self.weight.shape[0], r))
        self.s = alpha / r

    def forward(self, x):
        y = x @ self.weight.t()
        if self.a is not None:
            y = y + (x @ self.a.t()) @ self.b.t() * self.s
        return y


def rotate(x, cos, sin):
    """Rotary embedding, rotate-half: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1, self.norm2 = Norm(DIM), Norm(DIM)
        self.q, self.k = Proj(DIM, HEADS * HD), Proj(DIM, KVHEADS * HD)
        self.v, self.o = Proj(DIM, KVHEADS * HD), Proj(HEADS * HD, DIM)
        self.gate, self.up, self.down = Proj(DIM, HIDDEN), Proj(DIM, HIDDEN), Proj(HIDDEN, DIM)

    def forward(self, x, cos, sin, causal):
        B, T, _ = x.shape
        h = self.norm1(x)
        q = rotate(self.q(h).view(B, T, HEADS, HD).transpose(1, 2), cos, sin)
        k = rotate(self.k(h).view(B, T, KVHEADS, HD).transpose(1, 2), cos, sin)
        v = self.v(h).view(B, T, KVHEADS, HD).transpose(1, 2)
        if KVHEADS != HEADS:
            k = k.repeat_interleave(HEADS // KVHEADS, dim=1)
            v = v.repeat_interleave(HEADS // KVHEADS, dim=1)
        s = (q @ k.transpose(2, 3)) * (1 / math.sqrt(HD))
        p = s.masked_fill(causal, float("-inf")).softmax(dim=-1)
        x = x + self.o((p @ v).transpose(1, 2).reshape(B, T, HEADS * HD))
        h = self.norm2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Parameter(torch.randn(VOCAB, DIM) * 0.02)  # also the head (tied)
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.norm = Norm(DIM)
        inv = 1.0 / (10000.0 ** (torch.arange(0, HD, 2, dtype=torch.float32) / HD))
        ang = torch.arange(SEQ, dtype=torch.float32)[:, None] * inv[None, :]
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())
        self.register_buffer("causal", torch.ones(SEQ, SEQ, dtype=torch.bool).triu(1))

    def forward(self, ids, targets):
        x = F.embedding(ids, self.embed)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.causal)
        logits = self.norm(x) @ self.embed.t()
        return F.cross_entropy(logits.view(-1, VOCAB), targets.view(-1))


def main():
    torch.set_num_threads(THREADS)
    torch.manual_seed(1)
    model = Llama()
    params = sum(p.numel() for p in model.parameters())
    if MODE == "lora":
        model.embed.requires_grad_(False)
        for layer in model.layers:
            for m in layer.modules():
                if isinstance(m, Norm):
                    m.weight.requires_grad_(False)
                elif isinstance(m, Proj):
                    m.lora(LORA_R, LORA_ALPHA)
        model.norm.weight.requires_grad_(False)
    elif MODE != "full":
        raise SystemExit(f"MODE {MODE}: want full or lora")
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ))
    targets = torch.randint(0, VOCAB, (BATCH, SEQ))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(ids, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        return loss.item()

    for _ in range(WARMUP):
        step()
    times, losses = [], []
    for _ in range(STEPS):
        t0 = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - t0)
    med = sorted(times)[len(times) // 2]
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(), "mode": MODE,
        "dim": DIM, "layers": LAYERS, "heads": HEADS, "kv_heads": KVHEADS, "hidden": HIDDEN,
        "vocab": VOCAB, "seq": SEQ, "batch": BATCH, "params": params,
        "trainable": sum(p.numel() for p in trainable), "steps": STEPS,
        "step_ms_median": round(med * 1e3, 1), "tokens_per_s": round(BATCH * SEQ / med, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4),
    }))


if __name__ == "__main__":
    main()
