#!/usr/bin/env python3
"""Deterministic selection of the quality evaluation set.

320 records per alpaca_eval generator file (indices 0..804), chosen by a seeded RNG
(seed 13), each assigned to split "tune" or "heldout" (160 each per generator) by a
second seeded shuffle. Prints JSONL {"file", "index", "split"} sorted by file, index.
Reads nothing from the data files: only names and the fixed record count (805).
"""
import json
import random

FILES = ["Yi-34B-Chat.json", "claude-2.1.json", "falcon-7b-instruct.json",
         "gemma-7b-it.json", "gpt4.json"]
N_RECORDS = 805
PER_FILE = 320
SEED = 13


def select():
    rng = random.Random(SEED)
    rows = []
    for f in FILES:
        picked = rng.sample(range(N_RECORDS), PER_FILE)
        order = list(picked)
        rng.shuffle(order)
        split = {idx: ("tune" if i % 2 == 0 else "heldout") for i, idx in enumerate(order)}
        for idx in sorted(picked):
            rows.append({"file": f, "index": idx, "split": split[idx]})
    return rows


if __name__ == "__main__":
    for r in select():
        print(json.dumps(r))
