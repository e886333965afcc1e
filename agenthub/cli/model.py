"""`agenthub model init OUT_DIR [--size tiny|small]`: a from-scratch model, no hub needed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agenthub.errors import AgentHubError


def add_commands(sub: Any) -> None:
    p = sub.add_parser("model", help="create models from scratch")
    model_sub = p.add_subparsers(dest="model_command", required=True, metavar="SUBCOMMAND")
    init = model_sub.add_parser("init", help="train a tokenizer on env texts and write a fresh Qwen2-style model")
    init.add_argument("out_dir")
    init.add_argument("--size", choices=["tiny", "small"], default="tiny",
                      help="tiny: ~3M parameters (CPU); small: ~22M (GPU)")
    init.add_argument("--env", action="append", default=None, metavar="ENV_ID",
                      help="env whose texts (oracle episodes) train the tokenizer; repeatable "
                           "(default: tools/guess-number-v0)")
    init.add_argument("--episodes", type=int, default=20, help="oracle episodes per env for the tokenizer corpus")
    init.add_argument("--texts", action="append", default=[], metavar="FILE",
                      help="a text file to add to the tokenizer corpus; repeatable")
    init.add_argument("--seed", type=int, default=0)
    init.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    try:
        from agenthub.trainers.model_init import corpus_from_envs, init_model
    except ImportError as e:
        raise AgentHubError(f"models need the train extra: pip install 'agenthub[train]' ({e})") from e
    out = Path(args.out_dir)
    if (out / "config.json").exists():
        raise AgentHubError(f"{out} already holds a model")
    texts = corpus_from_envs(args.env or ["tools/guess-number-v0"], episodes=args.episodes)
    for path in args.texts:
        texts.append(Path(path).read_text())
    init_model(out, args.size, texts, seed=args.seed)
    info = json.loads((out / "agenthub_model.json").read_text())
    print(f"wrote {out}: {info['parameters'] / 1e6:.1f}M parameters, vocabulary {info['config']['vocab_size']} "
          f"(evaluate it with: agenthub eval SUITE --agent hf:{out})")
    return 0
