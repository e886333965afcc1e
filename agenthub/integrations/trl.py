"""agenthub envs and suites under TRL's own `GRPOTrainer` (TRL >= 1.16).

TRL's environment interface (`GRPOTrainer(environment_factory=...)`) wants a class
whose public methods are the tools the model may call (named, type-hinted, with a
Google-style docstring), a `reset(**row)` called with each dataset row before a
rollout, and optionally `get_reward()`, which makes the environment own the reward.
This module builds such a class for any agenthub env from the env's OpenAI tool specs:

    from agenthub.integrations.trl import trl_environments, reward_function
    envs = trl_environments("tools/guess-number-v0", episodes=64)   # or a suite
    GRPOTrainer(model=..., args=GRPOConfig(...), train_dataset=envs.dataset,
                environment_factory=envs.factory,
                reward_funcs=[reward_function(GatedAccumulation(threshold=1.0))])

- Each tool call the model makes is one `env.step` (an assistant message carrying that
  call); the tool's answer is the text of the env's new messages. A text env (no tools)
  gets one tool, `act(text)`, whose argument is stepped as the assistant's text.
- `get_reward()` is the episode's return (the sum of the env's immediate rewards), or
  its `outcome` with `env_reward="outcome"`; `env_reward=None` leaves the reward to
  `reward_funcs`. TRL logs it as `rewards/<env id>/mean`.
- `reward_function(module)` turns any agenthub reward module into a TRL reward
  function: the rollouts of one task (same env, seed and options) form the module's
  group, and each rollout's reward is the sum of its per-turn rewards.
- Every rollout is recorded as an agenthub `Trajectory` (turns, rewards, reward
  components, outcome), kept in `TRLEnvironments.history` as it is scored.

TRL parses tool calls with a response template it knows by chat template; agenthub's
own template (Hermes `<tool_call>` blocks, as `agenthub model init` writes) is not in
its list, so `prepare_tokenizer` sets the matching one.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal

from agenthub.errors import AgentHubError
from agenthub.evaluation import target_episodes
from agenthub.factory import make
from agenthub.rewards.base import RewardModule
from agenthub.types import Message, ToolSpec, Trajectory, Turn, text_of, tool_spec

EnvReward = Literal["return", "outcome"]

# The tool a text env (one with no tools) is played through.
TEXT_TOOL = tool_spec("act", "Send your reply to the environment: the text you would write, e.g. a command.",
                      {"text": {"type": "string", "description": "your reply"}})
_JSON_TYPES: dict[str, Any] = {"integer": int, "number": float, "string": str, "boolean": bool,
                               "array": list, "object": dict}
_RESERVED = ("reset", "get_reward")


def _python_type(schema: dict[str, Any]) -> Any:
    """The type hint TRL (via transformers' `get_json_schema`) turns back into `schema`'s type."""
    kind = schema.get("type")
    if kind == "array" and isinstance(schema.get("items"), dict) and schema["items"].get("type") in _JSON_TYPES:
        return list[_JSON_TYPES[schema["items"]["type"]]]  # type: ignore[misc]
    if isinstance(kind, str) and kind in _JSON_TYPES:
        return _JSON_TYPES[kind]
    return Any


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _tool_method(spec: ToolSpec) -> Callable[..., str]:
    """A method named after the tool, with the tool's arguments as typed keyword
    parameters and a Google-style docstring, so TRL renders the same tool to the model.

    Raises AgentHubError when the tool cannot be a Python method (a reserved or private
    name, an argument name that is not an identifier).
    """
    function = spec["function"]
    name = function["name"]
    if name in _RESERVED or name.startswith("_"):
        raise AgentHubError(f"tool {name!r} clashes with TRL's environment interface (reset, get_reward, _private)")
    parameters = function.get("parameters") or {}
    properties: dict[str, dict[str, Any]] = parameters.get("properties") or {}
    required = set(parameters.get("required") or [])

    def method(self: AgentHubEnvironment, **arguments: Any) -> str:
        return self._call(name, arguments)

    signature = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    doc_args = []
    for arg, schema in properties.items():
        if not arg.isidentifier():
            raise AgentHubError(f"tool {name!r}: argument {arg!r} is not a Python identifier, so TRL cannot expose it")
        annotations[arg] = _python_type(schema)
        default = inspect.Parameter.empty if arg in required else None
        signature.append(inspect.Parameter(arg, inspect.Parameter.KEYWORD_ONLY, default=default,
                                           annotation=annotations[arg]))
        line = _one_line(schema.get("description") or arg)
        if "enum" in schema:  # transformers reads "(choices: [...])" back into the schema's enum
            line += f" (choices: {json.dumps(schema['enum'])})"
        doc_args.append(f"    {arg}: {line}")
    annotations["return"] = str
    method.__name__ = method.__qualname__ = name
    method.__signature__ = inspect.Signature(signature, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    method.__doc__ = _one_line(function.get("description") or name) + (
        "\n\nArgs:\n" + "\n".join(doc_args) if doc_args else "")
    return method


class AgentHubEnvironment:
    """One TRL rollout slot playing agenthub episodes; subclassed per env id with its
    tool methods. Public functions are what TRL exposes as tools, so everything else
    here is private (TRL calls `reset`, `get_reward` and the tools only)."""

    env_id: ClassVar[str]
    env_kwargs: ClassVar[dict[str, Any]]
    text_tool: ClassVar[bool]  # True: the env has no tools and is played through `act(text)`

    def __init__(self, owner: TRLEnvironments):
        self._owner = owner
        self._env: Any = None
        self._made: tuple[str, str] | None = None  # (env id, options JSON) of `_env`
        self._trajectory: Trajectory | None = None
        self._observation: list[Message] = []
        self._done = True
        self._calls = 0

    def reset(self, **row: Any) -> str | None:
        """Start the episode of a dataset row (`env_id`, `seed`, `env_kwargs` JSON).

        Returns None when the row carries the prompt (the env's reset messages, as
        `TRLEnvironments.dataset` writes them), else the reset messages' text, which TRL
        appends to the row's last user message.
        """
        env_id = row.get("env_id") or self.env_id
        options = row.get("env_kwargs") or "{}"
        if self._made != (env_id, options):
            self._close()
            self._env = make(env_id, **{**self.env_kwargs, **json.loads(options)})
            self._made = (env_id, options)
        seed = row.get("seed")
        observation, info = self._env.reset(seed=None if seed is None else int(seed))
        self._trajectory = Trajectory(env_id, str(info.get("task_id", f"{env_id}:{seed}")),
                                      None if seed is None else int(seed), "trl",
                                      stop_reason="context_overflow")
        self._observation, self._done, self._calls = list(observation), False, 0
        return None if row.get("prompt") else "\n\n".join(text_of(m) for m in observation)

    def _call(self, name: str, arguments: dict[str, Any]) -> str:
        """Step the env with one tool call; the answer is the text of its new messages."""
        if self._trajectory is None:
            return "Error: no episode has started."
        if self._done:
            return "Error: the episode is over; nothing more happens."
        call_id = f"call_{self._calls}"
        self._calls += 1
        if self.text_tool:
            action: Message = {"role": "assistant", "content": str(arguments.get("text", ""))}
        else:
            action = {"role": "assistant", "content": "", "tool_calls": [{
                "id": call_id, "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments, default=str)}}]}
        try:
            observation, reward, terminated, truncated, info = self._env.step(action)
        except Exception as exc:  # an env failure ends this rollout, not the training run
            self._trajectory.error, self._trajectory.stop_reason, self._done = repr(exc), "error", True
            return f"Error: the environment failed: {_one_line(exc)}"
        self._trajectory.turns.append(Turn(
            self._observation, action, float(reward), dict(info.get("reward_components") or {}),
            bool(terminated), bool(truncated), dict(info)))
        self._observation = list(observation)
        if terminated or truncated:
            self._done = True
            self._trajectory.stop_reason = "terminated" if terminated else "max_turns"
            self._trajectory.outcome = float(info.get("outcome", 0.0))
            self._trajectory.success = bool(info.get("success", False))
            self._trajectory.final_observation = self._observation
        return "\n".join(text_of(m) for m in observation) or "(no answer)"

    def _close(self) -> None:
        if self._env is not None:
            self._env.close()
        self._env, self._made = None, None


def _get_reward(self: AgentHubEnvironment) -> float:
    """The env-owned reward of the finished rollout (TRL calls it once per rollout)."""
    trajectory = self._trajectory
    if trajectory is None:
        return 0.0
    self._owner.history.append(trajectory)
    return trajectory.outcome if self._owner.env_reward == "outcome" else trajectory.return_


@dataclass
class TRLEnvironments:
    """An agenthub env or suite packaged for `GRPOTrainer`: `dataset` (one row per task:
    `prompt`, `env_id`, `seed`, `env_kwargs`, and `environment` when the tasks span
    several env ids) and `factory` (TRL's `environment_factory`: a callable, or a dict
    of callables keyed by env id)."""

    dataset: Any
    factory: Callable[[], AgentHubEnvironment] | dict[str, Callable[[], AgentHubEnvironment]]
    env_reward: EnvReward | None = "return"
    history: list[Trajectory] = field(default_factory=list)  # scored rollouts, oldest first
    instances: list[AgentHubEnvironment] = field(default_factory=list)

    def close(self) -> None:
        """Close every env the factory made (TRL keeps its instances for the whole run)."""
        for instance in self.instances:
            instance._close()


def environment_class(env_id: str, env_kwargs: dict[str, Any] | None = None,
                      env_reward: EnvReward | None = "return") -> type[AgentHubEnvironment]:
    """The TRL environment class of `env_id`: one method per tool of the env (built
    once from a probe instance), `get_reward` unless `env_reward` is None. The class is
    named after the env id, which is how TRL labels its reward column."""
    probe = make(env_id, **(env_kwargs or {}))
    try:
        tools = list(probe.tools or [])
    finally:
        probe.close()
    members: dict[str, Any] = {"env_id": env_id, "env_kwargs": dict(env_kwargs or {}), "text_tool": not tools}
    for spec in tools or [TEXT_TOOL]:
        method = _tool_method(spec)
        members[method.__name__] = method
    if env_reward is not None:
        members["get_reward"] = _get_reward
    return type(env_id, (AgentHubEnvironment,), members)


def trl_environments(target: str, episodes: int | None = None, seed: int = 0,
                     env_kwargs: dict[str, Any] | None = None,
                     env_reward: EnvReward | None = "return") -> TRLEnvironments:
    """Package an env id (`episodes` seeds from `seed`) or a suite ("NAME[:SPLIT]", its
    first `episodes` tasks) for TRL. `env_kwargs` go to every `agenthub.make` (e.g.
    `{"tool_mode": True}` for TextWorld). Resets every task once to write its prompt.

    Raises AgentHubError for an unknown target or a tool TRL cannot expose.
    """
    from datasets import Dataset

    tasks = target_episodes(target, episodes, 1, seed)
    env_ids = list(dict.fromkeys(t.env_id for t in tasks))
    out = TRLEnvironments(dataset=None, factory={}, env_reward=env_reward)
    factories: dict[str, Callable[[], AgentHubEnvironment]] = {}
    for env_id in env_ids:
        cls = environment_class(env_id, env_kwargs, env_reward)

        def factory(cls: type[AgentHubEnvironment] = cls) -> AgentHubEnvironment:
            instance = cls(out)
            out.instances.append(instance)
            return instance

        factories[env_id] = factory
    rows = []
    for task in tasks:
        env = make(task.env_id, **{**(env_kwargs or {}), **task.env_kwargs})
        try:
            observation, _ = env.reset(seed=task.seed)
        finally:
            env.close()
        row = {"prompt": [{"role": m["role"], "content": text_of(m)} for m in observation],
               "env_id": task.env_id, "seed": task.seed, "env_kwargs": json.dumps(task.env_kwargs, sort_keys=True)}
        if len(env_ids) > 1:
            row["environment"] = task.env_id
        rows.append(row)
    out.dataset = Dataset.from_list(rows)
    out.factory = factories if len(env_ids) > 1 else factories[env_ids[0]]
    return out


def reward_function(module: RewardModule, name: str | None = None) -> Callable[..., list[float | None]]:
    """`module` as a TRL reward function: rollouts of the same task (env id, seed,
    options) are one group; a rollout's reward is the sum of the per-turn rewards the
    module gives it (0.0 for a rollout that never called a tool). Rollouts that are not
    agenthub environments get None (TRL then leaves this function out for them).

    Raises AgentHubError when TRL passes no environments (no `environment_factory`).
    """

    def reward(environments: list[Any] | None = None, **_: Any) -> list[float | None]:
        if environments is None:
            raise AgentHubError("agenthub reward modules score agenthub episodes: pass "
                                "environment_factory=trl_environments(...).factory to GRPOTrainer")
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, env in enumerate(environments):
            trajectory = getattr(env, "_trajectory", None)
            if isinstance(env, AgentHubEnvironment) and trajectory is not None:
                groups.setdefault((trajectory.env_id, trajectory.seed, env._made), []).append(i)
        out: list[float | None] = [None] * len(environments)
        for members in groups.values():
            group = [environments[i]._trajectory for i in members]
            for i, per_turn in zip(members, module(group), strict=True):
                out[i] = float(sum(per_turn))
        return out

    reward.__name__ = name or module.namespace
    return reward


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Give `tokenizer` the response parser TRL needs to read tool calls: TRL's own for
    the chat templates it knows; for another template that writes Hermes/Qwen
    `<tool_call>{json}</tool_call>` blocks (agenthub's own), TRL's Qwen parser.

    Raises AgentHubError when the template is neither.
    """
    from trl.chat_template_utils import _SUPPORTS_RESPONSE_TEMPLATE, add_response_schema, qwen3_schema, qwen3_template

    if getattr(tokenizer, "response_template", None) is not None or getattr(tokenizer, "response_schema", None):
        return tokenizer
    try:
        return add_response_schema(tokenizer)
    except ValueError:
        if "<tool_call>" not in (tokenizer.chat_template or ""):
            raise AgentHubError("TRL cannot parse tool calls for this chat template: set "
                                "tokenizer.response_template (see transformers' response parsing docs)") from None
    if _SUPPORTS_RESPONSE_TEMPLATE:
        tokenizer.response_template = qwen3_template
    else:
        tokenizer.response_schema = qwen3_schema
    return tokenizer
