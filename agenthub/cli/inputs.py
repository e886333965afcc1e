"""Reading the files a user hands the CLI, with damage reported as one line.

A trajectories JSONL with a corrupt line (truncated by a crash, edited by hand, not UTF-8,
not JSON, not a trajectory) is refused with `FILE:LINE: what is wrong`, or, when the user
asks to skip invalid lines, read without them and a count of what was skipped.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from agenthub.errors import AgentHubError
from agenthub.types import Trajectory


_NUMBER = (int, float)
_NONE = type(None)
# field -> (accepted JSON types, required): what scoring and training read without
# checking again, so a wrong type here is the line's fault, not a crash later on
_TRAJECTORY_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "env_id": ((str,), True), "task_id": ((str,), True), "seed": ((int, _NONE), True), "agent": ((str,), True),
    "turns": ((list,), False), "outcome": (_NUMBER, False), "success": ((bool,), False),
    "stop_reason": ((str,), False), "final_observation": ((list,), False), "error": ((str, _NONE), False),
    "provenance": ((dict,), False), "duration_s": (_NUMBER, False)}
_TURN_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "observation": ((list,), True), "action": ((dict,), True), "reward": (_NUMBER, False),
    "reward_components": ((dict,), False), "terminated": ((bool,), False), "truncated": ((bool,), False),
    "info": ((dict,), False), "token_ids": ((list, _NONE), False), "logprobs": ((list, _NONE), False),
    "prompt_token_ids": ((list, _NONE), False), "timings": ((dict,), False)}


def _shape_problem(data: dict, fields: dict[str, tuple[tuple[type, ...], bool]], where: str) -> str | None:
    for name, (types, required) in fields.items():
        if name not in data:
            if required:
                return f"{where}has no {name!r}"
            continue
        value = data[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"{where}{name!r} is {type(value).__name__}, not {' or '.join(t.__name__ for t in types)}"
    return None


def _parse(raw: bytes) -> Trajectory:
    """One JSONL line as a trajectory; ValueError saying what is wrong."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text (byte {e.start})") from None
    except (ValueError, RecursionError) as e:
        raise ValueError(f"not JSON ({str(e)[:120]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"a trajectory is a JSON object, not {type(data).__name__}")
    problem = _shape_problem(data, _TRAJECTORY_FIELDS, "")
    for k, turn in enumerate([] if problem else data.get("turns", [])):
        if not isinstance(turn, dict):
            problem = f"turn {k} is {type(turn).__name__}, not an object"
        else:
            problem = _shape_problem(turn, _TURN_FIELDS, f"turn {k}: ")
            components = turn.get("reward_components") or {}
            if not problem and not all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in components.values()):
                problem = f"turn {k}: a reward component is not a number"
        if problem:
            break
    if problem:
        raise ValueError(f"not a trajectory ({problem[:160]})")
    return Trajectory.from_dict(data)


def read_trajectories_checked(path: str | Path, skip_invalid: bool = False) -> list[Trajectory]:
    """Every trajectory in the JSONL file `path`. A line that is not one raises
    AgentHubError naming the file and line, unless `skip_invalid`: then such lines are
    left out and counted on stderr. A last line without a newline that does not parse is
    a write torn by a crash and is left out either way (said so on stderr). Raises
    AgentHubError too when the file holds no trajectory at all."""
    trajectories: list[Trajectory] = []
    skipped: list[tuple[int, str]] = []
    try:
        with open(path, "rb") as f:
            lines = list(enumerate(f, 1))
    except OSError as e:
        raise AgentHubError(f"cannot read {path}: {e.strerror or e}") from None
    for number, raw in lines:
        if not raw.strip():
            continue
        try:
            trajectories.append(_parse(raw))
        except ValueError as e:
            if not raw.endswith(b"\n") and number == len(lines):
                print(f"agenthub: {path}:{number}: ignored a torn last line (an interrupted write)", file=sys.stderr)
            elif skip_invalid:
                skipped.append((number, str(e)))
            else:
                raise AgentHubError(f"{path}:{number}: {e}; fix or delete that line, or pass --skip-invalid "
                                    f"to leave such lines out") from None
    if skipped:
        first_line, first_reason = skipped[0]
        print(f"agenthub: skipped {len(skipped)} invalid line{'s' if len(skipped) > 1 else ''} of {path} "
              f"(first: line {first_line}: {first_reason})", file=sys.stderr)
    if not trajectories:
        raise AgentHubError(f"no trajectories in {path}")
    return trajectories


def with_finite_rewards(trajectories: list[Trajectory], path: str | Path) -> list[Trajectory]:
    """The trajectories whose rewards, reward components and outcome are all finite; the
    others (an env that returned NaN, a file edited by hand) are left out of scoring and
    training, counted on stderr. AgentHubError when none is left."""
    def finite(t: Trajectory) -> bool:
        numbers = [t.outcome] + [x for turn in t.turns for x in (turn.reward, *turn.reward_components.values())]
        return all(math.isfinite(x) for x in numbers)

    kept = [t for t in trajectories if finite(t)]
    if len(kept) < len(trajectories):
        first = next(t for t in trajectories if not finite(t))
        print(f"agenthub: left out {len(trajectories) - len(kept)} episode(s) of {path} whose rewards or outcome "
              f"are not finite (first: {first.task_id})", file=sys.stderr)
    if not kept:
        raise AgentHubError(f"no episode in {path} has finite rewards")
    return kept
