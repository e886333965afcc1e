"""A local Hugging Face model directory as an agent: `hf:PATH[?OPTION=VALUE&...]`.

It is the trainer's own policy (`agenthub.trainers.policy.PolicyAgent`) over the
transformers engine, so `agenthub eval` measures a checkpoint exactly as training
played it: token-in-token-out, concurrent episodes batched into one forward pass.

Options, in the spec's query string or as keyword arguments:
- `mode=free` (default): generate the action text; `mode=choice`: for envs that list
  admissible actions, take the one with the highest mean per-token log-likelihood;
- `temperature=0` (default, greedy), `max_new_tokens=48`, `max_context` (tokens; the
  model's own limit by default).

Example: `agenthub eval textworld/w2-o3-q2to4:test --agent "hf:runs/demo/model?mode=choice"`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from agenthub.errors import AgentHubError

try:
    import torch

    from agenthub.trainers.engine import HFEngine
    from agenthub.trainers.checkpoint import load_model
    from agenthub.trainers.policy import PolicyAgent
except ImportError as e:
    raise AgentHubError(f"hf: agents need the train extra: pip install 'agenthub[train]' ({e})") from e

_OPTION_TYPES = {"mode": str, "temperature": float, "max_new_tokens": int, "max_context": int}


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """'PATH?mode=choice&temperature=0.5' -> ('PATH', {'mode': 'choice', 'temperature': 0.5})."""
    path, sep, query = spec.partition("?")
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True) if sep else []:
        if key not in _OPTION_TYPES:
            raise AgentHubError(f"unknown hf agent option {key!r} (options: {', '.join(_OPTION_TYPES)})")
        try:
            options[key] = _OPTION_TYPES[key](value)
        except ValueError:
            raise AgentHubError(f"hf agent option {key}={value!r} is not a valid {_OPTION_TYPES[key].__name__}")
    return path, options


class HFAgent(PolicyAgent):
    """The policy agent for the model directory in `spec` (see the module docstring)."""

    def __init__(self, spec: str, **options: Any):
        path, parsed = parse_spec(spec)
        settings = {**parsed, **options}
        mode = settings.pop("mode", "free")
        if mode not in ("free", "choice"):
            raise AgentHubError(f"hf agent mode must be 'free' or 'choice', not {mode!r}")
        model, tokenizer = load_model(path, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        settings.setdefault("max_context", getattr(model.config, "max_position_embeddings", None))
        engine = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id)
        name = f"hf:{path}" + (f" ({mode})" if mode != "free" else "")
        super().__init__(engine, tokenizer, mode=mode, name=name, **settings)
