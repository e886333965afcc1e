"""Checkpoints: a Hugging Face model directory plus everything needed to continue exactly;
and loading any Hugging Face model directory as a policy.

    OUT/checkpoints/step-000020/   config.json, model.safetensors, tokenizer files and
                                   chat template (loadable by `hf:` agents and by vLLM),
                                   trainer_state.pt: step, optimizer, LR scheduler, RNG
                                   states, LoRA adapter weights when LoRA is on.

Weights are saved in float32, so a resumed run starts from bit-identical parameters; the
optimizer and RNG states make its next step match the uninterrupted run's.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch


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


def load_model(path: str | Path, device: torch.device) -> tuple[Any, Any]:
    """(model in float32 and eval mode, tokenizer) from a Hugging Face directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    from agenthub.errors import AgentHubError

    logging.disable_progress_bar()  # our own bars say what is going on
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
    except (OSError, ValueError) as e:
        raise AgentHubError(f"cannot load a model from {str(path)!r}: {e}") from e
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def save_model(model: Any, tokenizer: Any, path: Path) -> None:
    """An HF directory; a LoRA model is saved merged, so any loader can use it."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    path.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):
        import copy
        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def save_checkpoint(out: Path, step: int, model: Any, tokenizer: Any, optimizer: Any, scheduler: Any,
                    extra: dict[str, Any], keep: int = 2) -> Path:
    path = checkpoint_dir(out, step)
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    save_model(model, tokenizer, partial)
    state = {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "rng": rng_state(), **extra}
    if hasattr(model, "merge_and_unload"):
        from peft import get_peft_model_state_dict
        state["lora"] = get_peft_model_state_dict(model)
    torch.save(state, partial / "trainer_state.pt")
    shutil.rmtree(path, ignore_errors=True)
    partial.rename(path)  # a checkpoint directory is complete or absent
    for old in sorted((out / "checkpoints").glob("step-*"))[:-keep] if keep > 0 else []:
        if old.suffix != ".partial":
            shutil.rmtree(old, ignore_errors=True)
    return path


def load_trainer_state(path: Path) -> dict[str, Any]:
    return torch.load(path / "trainer_state.pt", weights_only=False)
