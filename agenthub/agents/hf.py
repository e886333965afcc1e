"""A model as an agent: `hf:MODEL[?OPTION=VALUE&...]`.

MODEL is any model spec (`agenthub.trainers.model_sources`): a Hugging Face directory, a
Hub id (through the HF cache), a `.gguf` file, a PEFT adapter directory (loaded on its
base and merged), or a known name such as `smollm2-135m-instruct`.

It is the trainer's own policy (`agenthub.trainers.policy.PolicyAgent`) over the
transformers engine, so `agenthub eval` measures a checkpoint exactly as training
played it: token-in-token-out, concurrent episodes batched into one forward pass.

Options, in the spec's query string or as keyword arguments:
- `mode=free` (default): generate the action text; `mode=choice`: for envs that list
  admissible actions, take the one with the highest mean per-token log-likelihood;
- `temperature=0` (default, greedy), `max_new_tokens=48`, `max_context` (tokens; the
  model's own limit by default);
- `dtype=float32` (default), `bfloat16`, or `auto` (bfloat16 on a GPU that has it).

Examples: `agenthub eval textworld/w2-o3-q2to4:test --agent "hf:runs/demo/model?mode=choice"`,
`--agent hf:smollm2-135m-instruct`, `--agent hf:Qwen/Qwen2.5-0.5B-Instruct`.
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
    from agenthub.trainers.precision import weights_dtype
except ImportError as e:
    raise AgentHubError(f"hf: agents need the train extra: pip install 'agenthub[train]' ({e})") from e

_OPTION_TYPES = {"mode": str, "temperature": float, "max_new_tokens": int, "max_context": int, "dtype": str}


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
    """The policy agent for the model in `spec` (see the module docstring)."""

    def __init__(self, spec: str, **options: Any):
        path, parsed = parse_spec(spec)
        settings = {**parsed, **options}
        mode = settings.pop("mode", "free")
        if mode not in ("free", "choice"):
            raise AgentHubError(f"hf agent mode must be 'free' or 'choice', not {mode!r}")
        dtype = settings.pop("dtype", "float32")
        if dtype not in ("auto", "float32", "bfloat16"):
            raise AgentHubError(f"hf agent dtype must be auto, float32 or bfloat16, not {dtype!r}")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model, tokenizer = load_model(path, device, weights_dtype(dtype, device))
        settings.setdefault("max_context", getattr(model.config, "max_position_embeddings", None))
        engine = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id)
        name = f"hf:{path}" + (f" ({mode})" if mode != "free" else "")
        super().__init__(engine, tokenizer, mode=mode, name=name, **settings)
