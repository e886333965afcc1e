"""Trainer throughput on this machine: generation, choice scoring and update steps of a
from-scratch `tiny` model, on prompts the length of a small TextWorld game's history.

    python bench/trainer_throughput.py [--size tiny] [--prompt 400] [--repeats 3] [--out bench.json]

Prints medians; `--out` also writes them as JSON. Figures, not assertions: compare runs on
the same machine only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from timing import median_seconds

from agenthub.trainers.batch import Sequence, action_logprobs, collate
from agenthub.trainers.checkpoint import load_model
from agenthub.trainers.engine import HFEngine
from agenthub.trainers.model_init import init_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--prompt", type=int, default=400, help="prompt tokens")
    parser.add_argument("--new", type=int, default=16, help="generated tokens per request")
    parser.add_argument("--candidates", type=int, default=10, help="choice mode: admissible actions per request")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = init_model(Path(tmp) / "model", args.size, ["take the key from the chest, open the door, go north"])
        model, tokenizer = load_model(path, torch.device("cpu"))
    engine = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id)
    vocab = model.config.vocab_size - 64
    gen = torch.Generator().manual_seed(0)

    def prompts(n: int) -> list[list[int]]:
        return torch.randint(10, vocab, (n, args.prompt), generator=gen).tolist()

    figures: dict[str, float] = {"threads": torch.get_num_threads(),
                                 "parameters": sum(p.numel() for p in model.parameters())}
    for batch in (1, 8, 32):
        ps = prompts(batch)
        # eos is never sampled from random weights in 16 tokens, so every request runs to --new
        s = median_seconds(lambda: engine.generate(ps, list(range(batch)), max_new_tokens=args.new,
                                                   temperature=1.0), args.repeats, warmup=True)
        figures[f"generate_batch{batch}_tokens_per_s"] = batch * args.new / s
        figures[f"generate_batch{batch}_s"] = s
    for batch in (1, 8, 32):
        ps = prompts(batch)
        cands = [[torch.randint(10, vocab, (6,), generator=gen).tolist() for _ in range(args.candidates)]
                 for _ in range(batch)]
        s = median_seconds(lambda: engine.score(ps, cands, temperature=1.0), args.repeats, warmup=True)
        figures[f"choice_batch{batch}_decisions_per_s"] = batch / s
    for batch in (4, 16):
        seqs = [Sequence(p + [tokenizer.eos_token_id] * 6, [0] * args.prompt + [1] * 6, [0.0] * (args.prompt + 6),
                         [0.0] * (args.prompt + 6)) for p in prompts(batch)]
        data = collate(seqs, tokenizer.pad_token_id)

        def step() -> None:
            logp, _ = action_logprobs(model, data)
            (-logp.mean()).backward()
            model.zero_grad(set_to_none=True)
        s = median_seconds(step, args.repeats, warmup=True)
        figures[f"update_batch{batch}_s"] = s
        figures[f"update_batch{batch}_tokens_per_s"] = batch * (args.prompt + 6) / s
    for key, value in figures.items():
        print(f"{key:40s} {value:12.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
