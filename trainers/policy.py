"""The policy as an agent: what the rollout runner calls, turn by turn, in many threads.

`PolicyAgent.act` keeps each episode's token ids in `ctx.state` (token-in-token-out,
see `chat`): it tokenises only the messages the env sent since the last turn, asks the
engine for the next turn, and returns the sampled ids and log-probabilities with the
message and the episode's token layout, so they land on the trajectory's `Turn`.

Two ways to act:
- free generation (the default): sample text until end-of-turn;
- choice mode, for envs that list `admissible_actions`: score every admissible action by
  its per-token log-likelihood. Greedy (temperature 0) takes the best mean per-token
  log-likelihood, so long commands are not penalised for their length. Sampling (for RL)
  draws an action in proportion to its sequence probability under the tempered policy,
  renormalised over the admissible set: the distribution free sampling at that
  temperature would have if it could only produce admissible actions. Raising a chosen
  action's token log-probabilities, which is what RL does, then raises its chance of
  being chosen by the same amount (a mean would dilute it by the action's length).

The runner plays each episode in its own thread; the agent funnels their requests
through one queue to one worker thread, which sends everything waiting to the engine as
one batch, so concurrent episodes share each forward pass. An engine that batches
concurrent calls itself at every decoding step (`continuous`, e.g. vLLM) is called
straight from each episode's thread instead: a turn that ends early frees its episode at
once rather than when the batch's longest turn ends.

An engine that knows which weights served a call (`served_version`, see
`async_rollouts.VersionedEngine`) gets that policy version recorded on each turn, as
`info.policy_version`.
"""

from __future__ import annotations

import queue
import threading
import zlib
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

from agenthub.trainers.needs_torch import torch

from agenthub.agents.base import Context, ContextOverflow, Reply
from agenthub.trainers.chat import ChatFormat
from agenthub.trainers.engine import Engine, Generation
from agenthub.trainers.history import WINDOW, check_history, window
from agenthub.types import Message

Mode = Literal["free", "choice"]


@dataclass
class _Request:
    prompt: list[int]
    seed: int
    candidates: list[list[int]] | None = None  # choice mode
    result: Future = field(default_factory=Future)
    policy_version: int | None = None  # of the weights that served it, when the engine tells


class PolicyAgent:
    def __init__(self, engine: Engine, tokenizer: Any, *, mode: Mode = "free", temperature: float = 0.0,
                 max_new_tokens: int = 48, max_context: int | None = None, seed: int = 0,
                 max_batch: int = 64, gather_s: float = 0.01, check_tokens: bool = False, name: str = "policy",
                 history: int | None = None, tool_parser: str | None = None):
        if mode not in ("free", "choice"):
            raise ValueError(f"mode must be 'free' or 'choice', not {mode!r}")
        self.history = check_history(history)  # None: the whole conversation (see trainers.history)
        self.engine, self.chat = engine, ChatFormat(tokenizer)
        self.tool_parser = self.chat.pick_tool_parser(tool_parser)  # the runner reads actions with it
        self.mode, self.temperature, self.max_new_tokens = mode, temperature, max_new_tokens
        self.max_context, self.seed, self.name = max_context, seed, name
        self.max_batch, self.gather_s = max_batch, gather_s
        self.continuous = bool(getattr(engine, "continuous", False))
        self.check_tokens = check_tokens
        self.token_mismatches = 0  # turns whose ids differ from apply_chat_template (check_tokens)
        self.generated_tokens = 0
        self._queue: queue.Queue[_Request] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- the Agent protocol -------------------------------------------------------------

    def act(self, messages: list[Message], ctx: Context) -> Reply:
        state, tools = ctx.state, ctx.env.tools
        if self.history is not None:  # each turn's prompt is its own: encoded whole, recorded whole
            messages = window(messages, self.history)
            new = self.chat.prompt(messages, tools)
            state["ids"], state["layout"] = [], WINDOW
        elif "ids" not in state:
            new = self.chat.prompt(messages, tools)
            state["ids"], state["layout"] = [], self.chat.layout
        else:
            delta, state["layout"] = self.chat.delta(messages[:state["seen"]], messages, tools, state["layout"])
            new = ([] if state["finished"] else [self.chat.eos_id]) + delta
        ids = state["ids"] + new
        if self.check_tokens and not self.chat.matches_template(ids, messages, tools):
            with self._lock:
                self.token_mismatches += 1
        if self.max_context is not None and len(ids) + self.max_new_tokens > self.max_context:
            raise ContextOverflow(f"{len(ids)} prompt tokens + {self.max_new_tokens} new exceed the "
                                  f"{self.max_context}-token context")
        seed = zlib.crc32(f"{self.seed}:{ctx.info.get('task_id')}:{ctx.sample}:{ctx.turn}".encode())
        admissible = ctx.info.get("admissible_actions") or []
        if self.mode == "choice" and admissible:
            out, version = self._choose(ids, list(admissible), seed)
        else:
            request = _Request(ids, seed)
            out, version = self._submit(request), request.policy_version
        state["ids"], state["seen"], state["finished"] = ids + out.token_ids, len(messages) + 1, out.finished
        with self._lock:
            self.generated_tokens += len(out.token_ids)
        text = self.chat.decode(out.token_ids)
        return Reply({"role": "assistant", "content": text}, out.token_ids, out.logprobs, new, state["layout"],
                     info=None if version is None else {"policy_version": version})

    def _choose(self, ids: list[int], admissible: list[str], seed: int) -> tuple[Generation, int | None]:
        """The sampled (or greedy) admissible action, and the policy version that scored it."""
        candidates = [self.chat.action(a) for a in admissible]
        request = _Request(ids, seed, candidates)
        scored: list[list[float]] = self._submit(request)
        if self.temperature > 0:
            # the candidates' probabilities under the tempered policy, renormalised over the
            # admissible set: what free sampling would pick, given that it picks one of them
            probs = torch.softmax(torch.tensor([sum(lp) for lp in scored]), dim=0)
            pick = int(torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(seed)))
        else:
            pick = int(torch.tensor([sum(lp) / len(lp) for lp in scored]).argmax())
        return Generation(candidates[pick], scored[pick], True), request.policy_version

    # -- batching -------------------------------------------------------------------------

    def _submit(self, request: _Request) -> Any:
        if self.continuous:
            self._run([request])
            return request.result.result()
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve, daemon=True, name="policy-batcher")
                self._worker.start()
        self._queue.put(request)
        return request.result.result()

    def _serve(self) -> None:
        """Forever: wait for a request, gather what else arrives within `gather_s`, run it."""
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get(timeout=self.gather_s))
                except queue.Empty:
                    break
            try:
                self._run(batch)
            except BaseException as e:  # fail the waiting episodes, keep serving
                for r in batch:
                    if not r.result.done():
                        r.result.set_exception(e)

    def _run(self, batch: list[_Request]) -> None:
        free = [r for r in batch if r.candidates is None]
        choice = [r for r in batch if r.candidates is not None]
        served = getattr(self.engine, "served_version", None)  # this thread's last call's weights
        if free:
            outs = self.engine.generate([r.prompt for r in free], [r.seed for r in free],
                                        max_new_tokens=self.max_new_tokens, temperature=self.temperature)
            version = served() if served else None
            for r, out in zip(free, outs):
                r.policy_version = version
                r.result.set_result(out)
        if choice:
            outs = self.engine.score([r.prompt for r in choice], [r.candidates for r in choice],  # type: ignore[misc]
                                     temperature=self.temperature)
            version = served() if served else None
            for r, out in zip(choice, outs):
                r.policy_version = version
                r.result.set_result(out)

