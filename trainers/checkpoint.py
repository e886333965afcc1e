"""Checkpoints: everything needed to continue a run exactly, saved atomically.

    OUT/checkpoints/step-000020/   the model: a Hugging Face directory (config.json,
                                   model.safetensors), or with LoRA the PEFT adapter
                                   (adapter_config.json, adapter_model.safetensors, on
                                   the base it names); tokenizer files and chat template;
                                   trainer_state.pt: step, optimizer, LR scheduler, RNG states;
                                   agenthub_policy.json: how the policy was prompted and
                                   sampled in training (history window, max_new_tokens,
                                   tool parser), which `hf:DIR` takes as its defaults.

Both kinds load as `hf:DIR` (an adapter on its base). Weights are saved in the dtype
they train in, so a resumed run starts from bit-identical parameters; the optimizer and
RNG states make its next step match the uninterrupted run's.

Under torchrun (`trainers.distributed`) every rank holds the same weights, optimizer
state and RNG state (one seed, DDP-averaged gradients), so rank 0 alone writes the
checkpoint, from the policy itself (never the DDP wrapper), in exactly this format;
every rank reads it on resume, at whatever world size: a run saved by N processes
resumes on one and the other way round.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from agenthub.trainers.needs_torch import torch

from agenthub.tool_parsers import TOOL_PARSERS
from agenthub.trainers import distributed
from agenthub.trainers.model_sources import load_model  # noqa: F401  (re-exported: any model spec as a policy)


def checkpoint_dir(out: Path, step: int) -> Path:
    return out / "checkpoints" / f"step-{step:06d}"


def latest_checkpoint(out: Path) -> Path | None:
    found = sorted((out / "checkpoints").glob("step-*/trainer_state.pt"))
    return found[-1].parent if found else None


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def is_adapter_model(model: Any) -> bool:
    """A PEFT model (LoRA adapters on a frozen base)."""
    return hasattr(model, "peft_config")


POLICY_FILE = "agenthub_policy.json"
POLICY_SETTINGS = ("history", "max_new_tokens", "tool_parser")  # what a policy agent must repeat to act as trained


def policy_settings(path: str | Path) -> dict[str, Any]:
    """The policy settings a model directory was trained with (`POLICY_FILE`), or {} when
    it has none (any model not saved by the trainer); an unreadable file or a setting of
    the wrong type or an unknown value is left out: they are defaults, never a reason not
    to load the model."""
    try:
        saved = json.loads((Path(path) / POLICY_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(saved, dict):
        return {}
    return {k: v for k, v in saved.items() if k in _VALID_SETTING and _VALID_SETTING[k](v)}


def _count(minimum: int) -> Any:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum


_VALID_SETTING = {"history": lambda v: v is None or _count(0)(v), "max_new_tokens": _count(1),
                  "tool_parser": lambda v: v is None or v in TOOL_PARSERS}


def save_model(model: Any, tokenizer: Any, path: Path, policy: dict[str, Any] | None = None) -> None:
    """A Hugging Face directory at `path`: a PEFT model as its adapter (PEFT's
    `save_pretrained`), any other as full weights; with the tokenizer either way, and
    the `policy` settings it was trained with in `POLICY_FILE` when given.

    A full model's `name_or_path` becomes `path`, so an adapter trained on it afterwards
    (LoRA after SFT) names this directory as its base, not the model SFT started from."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    path.mkdir(parents=True, exist_ok=True)
    if is_adapter_model(model):
        # the vocabulary is never resized here; "auto" would look the base's config up on the Hub
        model.save_pretrained(path, save_embedding_layers=False)
    else:
        model.save_pretrained(path)
        model.config._name_or_path = str(path.resolve())
    tokenizer.save_pretrained(path)
    if policy is not None:
        (path / POLICY_FILE).write_text(json.dumps({k: policy[k] for k in POLICY_SETTINGS if k in policy}))


def save_final(model: Any, tokenizer: Any, out: Path, merge: bool = True,
               policy: dict[str, Any] | None = None) -> Any:
    """The run's final model at OUT/model; returns the model to evaluate.

    A PEFT model is also saved as its adapter at OUT/adapter; OUT/model is then the base
    with the adapter merged in (`merge`, loadable by anything; the returned model is the
    merged one) or the adapter itself (`merge=False`)."""
    if not is_adapter_model(model):
        save_model(model, tokenizer, out / "model", policy)
        return model
    save_model(model, tokenizer, out / "adapter", policy)
    if not merge:
        shutil.rmtree(out / "model", ignore_errors=True)
        shutil.copytree(out / "adapter", out / "model")
        return model
    merged = model.merge_and_unload()
    save_model(merged, tokenizer, out / "model", policy)
    return merged


def save_checkpoint(out: Path, step: int, model: Any, tokenizer: Any, optimizer: Any, scheduler: Any,
                    extra: dict[str, Any], keep: int = 2, policy: dict[str, Any] | None = None) -> Path:
    """OUT/checkpoints/step-NNNNNN (see the module docstring); keeps the newest `keep`.
    Written by rank 0 only under torchrun (the others hold the same state)."""
    path = checkpoint_dir(out, step)
    if not distributed.is_main():
        return path
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    save_model(model, tokenizer, partial, policy)
    state = {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "rng": rng_state(), **extra}
    torch.save(state, partial / "trainer_state.pt")
    shutil.rmtree(path, ignore_errors=True)
    partial.rename(path)  # a checkpoint directory is complete or absent
    if not is_adapter_model(model):
        model.config._name_or_path = str(path.resolve())
    for old in sorted((out / "checkpoints").glob("step-*"))[:-keep] if keep > 0 else []:
        if old.suffix != ".partial":
            shutil.rmtree(old, ignore_errors=True)
    return path


def load_checkpoint_weights(model: Any, path: Path) -> None:
    """Put a checkpoint's weights into the live `model` (same architecture; a PEFT model
    takes the adapter weights, a full model the full weights). Raises AgentHubError when
    the checkpoint holds the other kind."""
    from safetensors.torch import load_file

    from agenthub.errors import AgentHubError

    adapter = (path / "adapter_config.json").exists()
    if adapter != is_adapter_model(model):
        have = "a LoRA adapter" if adapter else "full weights"
        raise AgentHubError(f"{path} holds {have}, but this run {'uses' if not adapter else 'does not use'} "
                            "LoRA: resume with the config it was trained with")
    if adapter:
        from peft import load_peft_weights, set_peft_model_state_dict
        set_peft_model_state_dict(model, load_peft_weights(str(path), device=str(next(model.parameters()).device)))
    else:
        model.load_state_dict(load_file(path / "model.safetensors"), strict=False)  # tied weights are saved once


def load_trainer_state(path: Path) -> dict[str, Any]:
    return torch.load(path / "trainer_state.pt", weights_only=False)
