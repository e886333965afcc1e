"""Information-gain turn rewards, from "Information Gain-based Policy Optimization" (IGPO).

For a task with a ground-truth answer, the policy's own belief in that answer is
measured before the first turn and after every turn: p_t is the length-normalised
probability of the answer (the geometric mean of its tokens' probabilities),
teacher-forced after the conversation up to and including turn t's observation. A turn
that brings in what the agent needed to know raises that belief, so turn t (every turn
but the last) is rewarded with

    p_t - p_{t-1}          (or log p_t - log p_{t-1} with `log_prob: true`)

and the last turn, which gives the answer, by its outcome ("outcome": the env's
judgement; "em"/"f1": exact match / token F1 of the last action against the ground
truth). Envs give the ground truth as the last turn's `info["ground_truth"]` (a string,
or a list of accepted strings); trajectories without one get the outcome alone.

The scorer is an interface so that the belief is always the *current* policy's: the
trainer serves it with its live model.

    class AnswerScorer(Protocol):
        def answer_logprob(self, contexts: list[list[Message]], answers: list[str]
                           ) -> list[tuple[float, int]]:
            # per pair: (mean log-probability per answer token, number of answer tokens)

`agenthub.trainers.answer_scorer.HFAnswerScorer(model, tokenizer)` implements it for a
transformers causal LM; this module imports no model code.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import ClassVar, Literal, Protocol

from agenthub.errors import AgentHubError
from agenthub.rewards.base import RewardModule, final_info, mean
from agenthub.scoring import exact_match, f1
from agenthub.types import Message, Trajectory, text_of


class AnswerScorer(Protocol):
    def answer_logprob(self, contexts: list[list[Message]], answers: list[str]) -> list[tuple[float, int]]:
        """For each (context, answer): the mean log-probability per answer token of the
        answer written as the assistant's reply to the context, and its token count."""
        ...


@dataclasses.dataclass
class InformationGain(RewardModule):
    """IGPO turn rewards; see the module docstring.

    scorer: the AnswerScorer (the trainer's policy); may be set after construction.
    log_prob: reward log-probability differences instead of probability differences.
    final: how the last turn is scored: "outcome", "em" or "f1".
    answer_format: how the ground truth is written as the assistant's reply, e.g.
        "<answer>{answer}</answer>" for a policy that answers in tags.

    Records per turn `igpo/belief` (p_t after the turn) and `igpo/gain`, and on the last
    turn `igpo/final`; metrics `igpo/mean_gain` and `igpo/ground_truth_rate`.
    """

    scorer: AnswerScorer | None = None
    log_prob: bool = False
    final: Literal["outcome", "em", "f1"] = "outcome"
    answer_format: str = "{answer}"
    namespace: ClassVar[str] = "igpo"

    def __post_init__(self) -> None:
        if self.final not in ("outcome", "em", "f1"):
            raise AgentHubError(f"IGPO final must be 'outcome', 'em' or 'f1', not {self.final!r}")

    def score(self, group: list[Trajectory]) -> list[list[float]]:
        contexts, answers, owners = [], [], []
        truths = [_ground_truths(t) for t in group]
        for index, (trajectory, truth) in enumerate(zip(group, truths)):
            if truth and len(trajectory.turns) > 1:
                # what the agent saw before each turn's action: the belief before turn k+1
                # is the belief after turn k, env reply included
                context: list[Message] = []
                for turn in trajectory.turns:
                    context = context + turn.observation
                    contexts.append(context)
                    context = context + [turn.action]
                answers += [self.answer_format.format(answer=truth[0])] * len(trajectory.turns)
                owners += [index] * len(trajectory.turns)
        if contexts and self.scorer is None:
            raise AgentHubError("the IGPO reward needs a scorer: pass scorer= (the trainer's policy) "
                                "or set `model: PATH` in its config")
        scores = self.scorer.answer_logprob(contexts, answers) if contexts else []
        beliefs: dict[int, list[float]] = {}
        for owner, (logprob, _) in zip(owners, scores):
            beliefs.setdefault(owner, []).append(logprob if self.log_prob else math.exp(logprob))
        rewards, gains = [], []
        for index, (trajectory, truth) in enumerate(zip(group, truths)):
            if not trajectory.turns:
                rewards.append([])
                continue
            belief = beliefs.get(index, [])
            turn_gains = [after - before for before, after in zip(belief, belief[1:])]
            for turn, after, gain in zip(trajectory.turns, belief[1:], turn_gains):
                self.record(turn, "belief", after)
                self.record(turn, "gain", gain)
            final = self._final(trajectory, truth)
            self.record(trajectory.turns[-1], "final", final)
            gains += turn_gains
            rewards.append(turn_gains + [0.0] * (len(trajectory.turns) - 1 - len(turn_gains)) + [final])
        self.metrics["igpo/mean_gain"] = mean(gains)
        self.metrics["igpo/ground_truth_rate"] = mean([float(bool(t)) for t in truths])
        return rewards

    def _final(self, trajectory: Trajectory, truth: list[str]) -> float:
        if self.final == "outcome" or not truth:
            return float(trajectory.outcome)
        said = _answer_text(trajectory.turns[-1].action)
        measure = exact_match if self.final == "em" else f1
        return max(measure(said, t) for t in truth)


def _ground_truths(trajectory: Trajectory) -> list[str]:
    truth = final_info(trajectory, "ground_truth")
    if truth is None:
        return []
    return [str(t) for t in truth] if isinstance(truth, list) else [str(truth)]


def _answer_text(action: Message) -> str:
    """What an action says: its text, or else the argument values of its tool calls."""
    text = text_of(action)
    if text.strip():
        return text
    values = []
    for call in action.get("tool_calls") or []:
        try:
            arguments = json.loads(call.get("function", {}).get("arguments") or "{}")
        except json.JSONDecodeError:
            continue
        values += [str(v) for v in arguments.values()] if isinstance(arguments, dict) else [str(arguments)]
    return " ".join(values)
