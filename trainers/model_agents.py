"""Models as agents: `hf:MODEL[?OPTION=VALUE&...]` and `vllm:MODEL[?...]`.

MODEL is any model spec (`agenthub.trainers.model_sources`): a Hugging Face directory, a
Hub id (through the HF cache), a `.gguf` file, a PEFT adapter directory (loaded on its
base and merged), or a known name such as `smollm2-135m-instruct`.

Each is the trainer's own policy (`agenthub.trainers.policy.PolicyAgent`) over an engine,
so `agenthub eval` measures a checkpoint exactly as training played it: token-in-token-out,
concurrent episodes batched into one forward pass. The agent registry
(`agenthub.agents.load_agent`) finds these classes by name, so the core never imports them.

Options, in the spec's query string or as keyword arguments:
- `mode=free` (default): generate the action text; `mode=choice`: for envs that list
  admissible actions, take the one with the highest mean per-token log-likelihood;
- `temperature=0` (default, greedy), `max_new_tokens=48`, `max_context` (tokens; the
  model's own limit by default);
- `history=K`: the prompt is the episode's opening messages and its last K exchanges
  (`agenthub.trainers.history`), as a model trained with `rollout.history=K` saw it;
  the whole conversation by default;
- `tool_parser=NAME` (`hermes`, `llama3_json`, `mistral`, `pythonic`): how the model's
  tool calls are read; by default the one its chat template calls for
  (`agenthub.trainers.chat.ChatFormat.tool_parser`; `hermes` where it does not tell);
- `hf:` only: `dtype=float32` (default), `bfloat16`, or `auto` (bfloat16 on a GPU that has it).

A model directory the trainer saved records its rollouts' `history`, `max_new_tokens`
and `tool_parser` (`agenthub_policy.json`, `trainers.checkpoint.policy_settings`); they
are the defaults, which the spec's options and keyword arguments (other than None) override.

Examples: `agenthub eval textworld/w2-o3-q2to4:test --agent "hf:runs/demo/model?mode=choice"`,
`--agent hf:smollm2-135m-instruct`, `--agent hf:Qwen/Qwen2.5-0.5B-Instruct`.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import parse_qsl

from agenthub.trainers.needs_torch import torch

from agenthub.errors import AgentHubError
from agenthub.trainers.checkpoint import load_model, policy_settings
from agenthub.trainers.engine import Engine, HFEngine
from agenthub.trainers.policy import PolicyAgent
from agenthub.trainers.precision import weights_dtype

_OPTION_TYPES = {"mode": str, "temperature": float, "max_new_tokens": int, "max_context": int, "history": int,
                 "dtype": str, "tool_parser": str}


def parse_spec(spec: str, kind: str = "hf") -> tuple[str, dict[str, Any]]:
    """'PATH?mode=choice&temperature=0.5' -> ('PATH', {'mode': 'choice', 'temperature': 0.5});
    AgentHubError names an unknown or mistyped option."""
    path, sep, query = spec.partition("?")
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True) if sep else []:
        if key not in _OPTION_TYPES:
            raise AgentHubError(f"unknown {kind} agent option {key!r} (options: {', '.join(_OPTION_TYPES)})")
        try:
            options[key] = _OPTION_TYPES[key](value)
        except ValueError:
            raise AgentHubError(f"{kind} agent option {key}={value!r} is not a valid {_OPTION_TYPES[key].__name__}")
    return path, options


class ModelAgent(PolicyAgent):
    """The policy agent for the model in `spec`; a subclass says which engine runs it.

    Options named in `policy_options` go to `PolicyAgent` (`None`: every option not in
    `engine_options`), the rest to `load_engine`."""

    kind: ClassVar[str]
    policy_options: ClassVar[tuple[str, ...] | None] = None
    engine_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: str, **options: Any):
        path, parsed = parse_spec(spec, self.kind)
        given = {k: v for k, v in options.items() if v is not None}
        settings = {**policy_settings(path), **parsed, **given}
        mode = settings.pop("mode", "free")
        if mode not in ("free", "choice"):
            raise AgentHubError(f"{self.kind} agent mode must be 'free' or 'choice', not {mode!r}")
        names = self.policy_options if self.policy_options is not None else \
            [k for k in settings if k not in self.engine_options]
        policy = {k: settings.pop(k) for k in names if k in settings}
        engine, tokenizer, max_context = self.load_engine(path, **settings)
        policy.setdefault("max_context", max_context)
        name = f"{self.kind}:{path}" + (f" ({mode})" if mode != "free" else "")
        super().__init__(engine, tokenizer, mode=mode, name=name, **policy)

    def load_engine(self, path: str, **options: Any) -> tuple[Engine, Any, int | None]:
        """(engine, tokenizer, the model's context length in tokens or None)."""
        raise NotImplementedError


class HFAgent(ModelAgent):
    """`hf:` agents: the policy over the transformers engine."""

    kind = "hf"
    engine_options = ("dtype",)

    def load_engine(self, path: str, dtype: str = "float32") -> tuple[Engine, Any, int | None]:
        if dtype not in ("auto", "float32", "bfloat16"):
            raise AgentHubError(f"hf agent dtype must be auto, float32 or bfloat16, not {dtype!r}")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model, tokenizer = load_model(path, device, weights_dtype(dtype, device))
        engine = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id)
        return engine, tokenizer, getattr(model.config, "max_position_embeddings", None)
