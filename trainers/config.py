"""A training run, as typed config objects read from YAML.

Every section is a dataclass; `load_config` checks names and types and fails with one
line that says which key is wrong (and what was probably meant), so a typo never
silently falls back to a default. `KEY=VALUE` overrides use dotted keys
(`loss.kl_coef=0.01`); values are read as YAML (`rollout.mode=choice`, `lora=null`).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from agenthub.errors import AgentHubError


@dataclass
class RolloutConfig:
    """How rollouts are played.

    `max_staleness` (k): overlapped rollouts with a staleness bound (trainers/async_rollouts.py).
    0 (the default): each step plays its rollouts with the current weights, then trains
    on them; exact on-policy, and bit-identical to runs before the setting existed.
    k >= 1: a background producer plays the rollouts of steps n+1..n+k while step n
    trains, on a private copy of the weights (the transformers engine) that takes the
    trainer's weights after every update, between two turns: episodes in flight go on
    with the new weights. Every turn records the policy version that sampled it
    (`info.policy_version`: the RL steps its weights had taken); a step drops rollouts
    with a turn more than k versions behind the weights it trains
    (`samples_stale_dropped`) and logs `staleness_mean` / `staleness_max`. The loss's
    ratio is against the behaviour log-probabilities the rollouts recorded (PPO's clip
    around the behaviour policy); set `loss.tis_cap` (e.g. 2) for the decoupled form:
    clip around the weights before the step, truncated importance weight to the
    behaviour policy. Runs with k >= 1 are not reproducible to the bit (which version
    serves a turn depends on timing), and vLLM's sleep between rollouts and updates is
    off (both stay resident).
    """

    engine: Literal["hf", "vllm", "vllm-server"] = "hf"  # vllm: in-process, weights synced in memory
    server: str | None = None  # vllm-server: a running `vllm serve` (see trainers/vllm_server.py)
    weights_dir: str | None = None  # vllm-server: where pushed weights go; the server must read it too
    mode: Literal["free", "choice"] = "free"  # choice: score the env's admissible actions
    group_size: int = 8  # G: rollouts per task
    tasks_per_step: int = 4
    concurrency: int = 16  # episodes in flight; their turns share one forward pass
    temperature: float = 1.0
    max_new_tokens: int = 32  # per turn
    max_context: int = 2048  # an episode past this ends with stop reason context_overflow
    history: int | None = None  # prompt = opening messages + last N exchanges (trainers.history); None: all
    timeout: float | None = None  # wall-clock budget per episode, seconds
    max_failed_steps: int = 3  # stop after this many consecutive steps where most episodes failed; 0: never
    max_staleness: int = 0  # k: 0 alternates rollouts and updates (on-policy); >= 1 overlaps them (above)
    tool_parser: str | None = None  # how tool calls are read (agenthub.tool_parsers); None: what the template says
    # RL plays the train tasks [start, end) only, e.g. [300, 1300]: games the SFT on the first 300 never showed
    task_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.task_range is not None and not 0 <= self.task_range[0] < self.task_range[1]:
            raise AgentHubError(f"rollout.task_range must be [start, end) with 0 <= start < end, "
                                f"got {list(self.task_range)}")
        if isinstance(self.max_staleness, bool) or not isinstance(self.max_staleness, int) \
                or self.max_staleness < 0:
            raise AgentHubError(f"rollout.max_staleness must be an integer >= 0 (0: on-policy), "
                                f"got {self.max_staleness!r}")


@dataclass
class AlgorithmConfig:
    estimator: Literal["grpo", "rloo", "dr_grpo"] = "grpo"
    turn_level: bool = False  # per-turn advantages from per-turn rewards (G-RA, SPA, IGPO)
    pooling: Literal["joint", "separate", "per_turn_index"] = "joint"
    gamma: float = 1.0


@dataclass
class LossConfig:
    clip_low: float = 0.2
    clip_high: float = 0.28
    aggregation: Literal["token-mean", "seq-mean-token-sum-norm"] = "token-mean"
    norm_length: int = 256  # the constant of seq-mean-token-sum-norm
    kl_coef: float = 0.0  # > 0 keeps a frozen reference model for the k3 penalty
    tis_cap: float | None = None  # truncated importance sampling against rollout logprobs
    epochs: int = 1  # passes over each step's rollouts
    minibatches: int = 1  # optimizer steps per pass
    micro_batch: int = 8  # sequences per forward/backward (gradient accumulation)


@dataclass
class OptimConfig:
    lr: float = 1e-5
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = 0  # in RL steps: the schedule runs on RL progress, whatever the update count
    grad_clip: float = 1.0  # max gradient norm; 0: no clipping


@dataclass
class SFTConfig:
    """Warm start on demonstrations: the oracle's trajectories on `tasks` train tasks, or
    trajectories from a JSONL file (`data`). Loss only on assistant tokens."""

    tasks: int = 0
    data: str | None = None
    epochs: int = 1
    batch_size: int = 8
    lr: float = 1e-3
    schedule: Literal["constant", "linear", "cosine"] = "cosine"
    warmup_steps: int = 10
    grad_clip: float = 1.0
    max_length: int = 2048  # longer conversations are cut
    context_weight: float = 0.0  # > 0: also learn to predict the env's tokens (helps from-scratch models)


@dataclass
class EvalConfig:
    split: str = "test"
    episodes: int = 50
    every: int = 0  # RL steps between evaluations; 0: only at the end
    modes: list[Literal["free", "choice"]] = field(default_factory=lambda: ["free"])
    concurrency: int = 16


@dataclass
class LoraConfig:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    merge: bool = True  # OUT/model: the base with the adapter merged in (true) or the adapter (false)


@dataclass
class TrainConfig:
    model: str  # a model spec: HF directory, Hub id, .gguf file, adapter directory, known name (model_sources)
    suite: str  # a task suite; RL draws from its train split
    init: Literal["tiny", "small"] | None = None  # create `model` from scratch when it does not exist
    steps: int = 100  # RL steps; 0 for SFT only
    seed: int = 0
    reward: Any = "outcome"  # an agenthub.rewards config: a name, a dict, or a list
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sft: SFTConfig | None = None
    eval: EvalConfig | None = field(default_factory=EvalConfig)
    lora: LoraConfig | None = None
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # weights; auto: bf16 on a GPU that has it (precision)
    gradient_checkpointing: bool = False
    save_every: int = 0  # RL steps between checkpoints; 0: only the final one
    keep_checkpoints: int = 2
    check_tokens: bool = False  # compare every prompt's ids with apply_chat_template (slow)
    report_to: list[Literal["tensorboard", "wandb", "trackio"]] = field(default_factory=lambda: ["tensorboard"])
    tensorboard: bool = True  # false: leave tensorboard out of report_to (shorthand kept for older configs)


def load_config(path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None,
                base: dict[str, Any] | None = None) -> TrainConfig:
    """Read YAML (or start from `base`), apply overrides, validate."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise AgentHubError(f"config file not found: {path}") from None
        except (yaml.YAMLError, UnicodeDecodeError) as e:  # one line: YAML's messages span several
            raise AgentHubError(f"{path} is not valid YAML: {' '.join(str(e).split())}") from None
        if not isinstance(loaded, dict):
            raise AgentHubError(f"{path} must be a YAML mapping of settings")
        data.update(loaded)
    items = overrides.items() if isinstance(overrides, dict) else [_split_override(o) for o in overrides or []]
    for key, value in items:
        _set_dotted(data, key, value)
    return build(TrainConfig, data, "")


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _split_override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise AgentHubError(f"override {text!r} must look like KEY=VALUE, e.g. loss.kl_coef=0.01")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        return key.strip(), value


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise AgentHubError(f"cannot set {key!r}: {part!r} is not a section")
        node = child
    node[last] = value


def build(cls: type, data: Any, where: str) -> Any:
    """`cls` (a dataclass) from a dict, checked key by key."""
    if not isinstance(data, dict):
        raise AgentHubError(f"{where.rstrip('.') or 'the config'} must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(fields)})"
            raise AgentHubError(f"unknown setting '{where}{key}'{hint}")
    missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise AgentHubError(f"missing required setting '{where}{missing[0]}'")
    return cls(**{k: _convert(hints[k], v, f"{where}{k}") for k, v in data.items()})


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _convert(options[0], value, where)
        for option in options:
            try:
                return _convert(option, value, where)
            except AgentHubError:
                continue
        raise AgentHubError(f"{where}: {value!r} is not a valid value")
    if dataclasses.is_dataclass(tp):
        return build(tp, {} if value is None else value, where + ".")
    if origin is Literal:
        if value not in args:
            raise AgentHubError(f"{where} must be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise AgentHubError(f"{where} must be a list, got {value!r}")
        item_types = args if origin is tuple and args and args[-1] is not Ellipsis else [args[0]] * len(value)
        if len(item_types) != len(value):
            raise AgentHubError(f"{where} must have {len(item_types)} items, got {value!r}")
        items = [_convert(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(item_types, value))]
        return tuple(items) if origin is tuple else items
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, str, bool) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise AgentHubError(f"{where} must be {getattr(tp, '__name__', tp)}, got {value!r}")
