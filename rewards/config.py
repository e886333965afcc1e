"""Reward modules from plain config, as written in a training config's `reward:` section.

    reward: gra                                   # a name: the module with its defaults
    reward: {name: gra, threshold: 0.5, comparison: ">"}
    reward:                                       # a list: their weighted sum (Compose)
      - {name: gra, weight: 1.0}
      - {name: spa, estimator: runs/spa, grounding: 0.0, weight: 0.5}
      - {component: malformed_action, weight: -0.1}
      - {component: invalid_action, weight: 0}    # logged only

Names: turn, outcome, gra, dra (G-RA's ungated baseline), spa, igpo, compose
(`{name: compose, terms: [...]}` is the long form of a list). The module names are
aliases: turn_level = turn, gated = gra, progress = spa, info_gain = igpo. An unknown
name or setting is refused with the closest known one. Settings are the
modules' constructor arguments; `igpo` takes `model: PATH` for a local scorer model,
or gets the trainer's scorer through `from_config(..., scorer=...)`.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from agenthub.errors import AgentHubError
from agenthub.loading import load_object
from agenthub.rewards.base import RewardModule
from agenthub.rewards.compose import Compose
from agenthub.rewards.gated import GatedAccumulation
from agenthub.rewards.info_gain import AnswerScorer, InformationGain
from agenthub.rewards.progress import StepwiseProgress
from agenthub.rewards.turn_level import Outcome, TurnLevel

# name -> (class, fixed arguments)
MODULES: dict[str, tuple[type[RewardModule], dict[str, Any]]] = {
    "turn": (TurnLevel, {}),
    "outcome": (Outcome, {}),
    "gra": (GatedAccumulation, {}),
    "dra": (GatedAccumulation, {"gated": False}),
    "spa": (StepwiseProgress, {}),
    "igpo": (InformationGain, {}),
}
NAMES = [*MODULES, "compose"]
HF_ANSWER_SCORER = "agenthub.trainers.answer_scorer:HFAnswerScorer"  # `igpo` with `model: PATH`
ALIASES = {"turn_level": "turn", "gated": "gra", "progress": "spa", "info_gain": "igpo"}


def did_you_mean(word: str, choices: list[str]) -> str:
    """" (did you mean 'x'?)" for the closest of `choices`, or "" when none is close."""
    close = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def from_config(cfg: str | list[Any] | dict[str, Any], *, scorer: AnswerScorer | None = None) -> RewardModule:
    """The reward module a config describes; `scorer` is handed to every IGPO module."""
    if isinstance(cfg, str):
        cfg = {"name": cfg}
    elif isinstance(cfg, list):
        cfg = {"name": "compose", "terms": cfg}
    if not isinstance(cfg, dict) or "name" not in cfg:
        raise AgentHubError(f"a reward config needs a name (one of: {', '.join(NAMES)}), got {cfg!r}")
    settings = dict(cfg)
    name = settings.pop("name")
    if not isinstance(name, str):
        raise AgentHubError(f"a reward's name is a string (one of: {', '.join(NAMES)}), got {name!r}")
    name = ALIASES.get(name, name)
    if name == "compose":
        return _compose(settings, scorer)
    if name not in MODULES:
        raise AgentHubError(f"unknown reward {name!r}{did_you_mean(name, [*NAMES, *ALIASES])} "
                            f"(choose from: {', '.join(NAMES)}; aliases: "
                            f"{', '.join(f'{a} = {n}' for a, n in ALIASES.items())})")
    cls, fixed = MODULES[name]
    allowed = {f.name for f in dataclasses.fields(cls) if f.init} - set(fixed) - {"scorer"}
    if cls is InformationGain:
        allowed.add("model")
        model = settings.pop("model", None)
        if model is not None and scorer is None:
            # by name: the scorer is a neural network and lives with the trainer (needs torch)
            scorer = load_object(HF_ANSWER_SCORER, "answer scorer").from_pretrained(model)
        fixed = {**fixed, "scorer": scorer}
    unknown = sorted(set(settings) - allowed, key=str)
    if unknown:
        hint = did_you_mean(str(unknown[0]), sorted(allowed))
        raise AgentHubError(f"reward {name!r} has no setting {unknown[0]!r}{hint} "
                            f"(settings: {', '.join(sorted(allowed))})")
    if cls is StepwiseProgress and "estimator" not in settings:
        raise AgentHubError("reward 'spa' needs `estimator: DIR` (train one with `agenthub rewards train-progress`)")
    try:
        return cls(**settings, **fixed)
    except (TypeError, ValueError) as e:
        raise AgentHubError(f"bad settings for reward {name!r}: {e}") from e


def _compose(settings: dict[str, Any], scorer: AnswerScorer | None) -> Compose:
    terms = settings.pop("terms", None)
    if settings:
        raise AgentHubError(f"reward 'compose' has no setting {sorted(settings)[0]!r} (settings: terms)")
    if not isinstance(terms, list) or not terms:
        raise AgentHubError("reward 'compose' needs `terms`: a list of {name: ..., weight: ...} "
                            "or {component: ..., weight: ...}")
    built: list[tuple[float, RewardModule | str]] = []
    for term in terms:
        term = {"name": term} if isinstance(term, str) else dict(term) if isinstance(term, dict) else term
        if not isinstance(term, dict):
            raise AgentHubError(f"a compose term must be a mapping, got {term!r}")
        try:
            weight = float(term.pop("weight", 1.0))
        except (TypeError, ValueError) as e:
            raise AgentHubError(f"a compose term's weight must be a number: {e}") from e
        if "component" in term:
            if set(term) != {"component"}:
                raise AgentHubError(f"a component term takes only `component` and `weight`, got {sorted(term)}")
            built.append((weight, str(term["component"])))
        else:
            built.append((weight, from_config(term, scorer=scorer)))
    return Compose(built)
