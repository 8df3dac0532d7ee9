#!/usr/bin/env python3
"""Golden vectors for sieve's optimizer: torch.optim.AdamW, the cosine
learning-rate schedule with warmup of transformers, and
torch.nn.utils.clip_grad_norm_, run together for several steps on fixed
parameters and gradients, the way transformers' Trainer runs them:

    clip_grad_norm_(params, max_norm); optimizer.step(); scheduler.step()

Writes optim_golden.json beside this file; train/optim_test.go replays
the same steps in Go and compares within 1e-6 relative.

    /usr/bin/python3 train/testdata/optim_golden.py   # Debian's CPU torch (1.13)

The schedule is transformers' _get_cosine_schedule_with_warmup_lr_lambda
(transformers/optimization.py; min_lr_rate as in
get_cosine_with_min_lr_schedule_with_warmup), copied here because
transformers is not installed on this machine; hf_check.py compares the
factors written here with transformers itself where it is.
"""
import json
import math
import os

import torch
from torch.optim.lr_scheduler import LambdaLR

torch.set_num_threads(1)


def cosine_lambda(current_step, *, num_warmup_steps, num_training_steps, num_cycles=0.5, min_lr_rate=0.0):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
    factor = factor * (1 - min_lr_rate) + min_lr_rate
    return max(0, factor)


def f32(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def run_case(name, seed, shapes, steps, lr, betas, eps, weight_decay, warmup, total, min_lr_rate, max_norm, grad_scales):
    g = torch.Generator().manual_seed(seed)
    params = []
    for i, shape in enumerate(shapes):
        p = torch.nn.Parameter(torch.randn(*shape, generator=g))
        params.append(p)
    init = [f32(p) for p in params]
    # No decay on 1-D tensors (norm weights), as sieve's trainer.
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ], lr=lr, betas=betas, eps=eps, foreach=False)
    sched = LambdaLR(opt, lambda s: cosine_lambda(s, num_warmup_steps=warmup, num_training_steps=total, min_lr_rate=min_lr_rate))
    out_steps = []
    for step in range(steps):
        grads = []
        for p in params:
            gr = torch.randn(*p.shape, generator=g) * grad_scales[step]
            p.grad = gr.clone()
            grads.append(f32(gr))
        lr_used = opt.param_groups[0]["lr"]
        if max_norm > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        else:
            norm = float(torch.norm(torch.stack([torch.norm(p.grad) for p in params])))
        opt.step()
        sched.step()
        st = [opt.state[p] for p in params]
        out_steps.append({
            "grads": grads,
            "lr": lr_used,
            "grad_norm": norm,
            "params": [f32(p) for p in params],
            "exp_avg": [f32(s["exp_avg"]) for s in st],
            "exp_avg_sq": [f32(s["exp_avg_sq"]) for s in st],
        })
    return {
        "name": name, "shapes": shapes, "lr": lr, "beta1": betas[0], "beta2": betas[1], "eps": eps,
        "weight_decay": weight_decay, "warmup": warmup, "total": total, "min_lr_ratio": min_lr_rate,
        "max_grad_norm": max_norm, "init": init, "steps": out_steps,
    }


cases = [
    # Warmup, clipping on most steps (gradient scales vary around the limit).
    run_case("warmup_clip", 1, [[4, 3], [3], [2, 5]], 8, 1e-2, (0.9, 0.95), 1e-8, 0.1, 2, 8, 0.0, 1.0,
             [0.1, 0.5, 1.0, 0.05, 2.0, 0.2, 0.01, 0.7]),
    # No warmup, min LR ratio, torch's default betas, clipping off.
    run_case("min_lr_noclip", 2, [[6, 4], [4], [5]], 7, 3e-3, (0.9, 0.999), 1e-6, 0.01, 0, 10, 0.1, 0.0,
             [1.0, 0.3, 3.0, 0.1, 1.0, 0.5, 2.0]),
    # Long warmup, grad norms far above the limit, big weight decay.
    run_case("long_warmup", 3, [[8, 8], [8]], 6, 5e-2, (0.8, 0.99), 1e-8, 0.5, 4, 6, 0.2, 0.5,
             [10.0, 5.0, 8.0, 1.0, 20.0, 3.0]),
]

schedules = []
for warmup, total, r in [(0, 10, 0.0), (3, 10, 0.0), (5, 100, 0.1), (10, 10, 0.0), (1, 1, 0.0), (7, 50, 0.5)]:
    schedules.append({"warmup": warmup, "total": total, "min_lr_ratio": r,
                      "factors": [cosine_lambda(s, num_warmup_steps=warmup, num_training_steps=total, min_lr_rate=r)
                                  for s in range(total + 2)]})

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "optim_golden.json"), "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases, "schedules": schedules}, f, separators=(",", ":"))
    f.write("\n")
print("wrote optim_golden.json with torch", torch.__version__)
