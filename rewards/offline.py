"""Re-scoring saved trajectories offline, and the report that compares reward modules.

Trajectories from `agenthub eval` or training are grouped by task, as a trainer groups
its rollouts, and each group goes through a module; the comparison report then shows,
module by module, what reward every turn would have received.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agenthub.report import Report
from agenthub.rewards.base import RewardModule
from agenthub.types import Trajectory, text_of


def group_by_task(trajectories: list[Trajectory]) -> list[list[int]]:
    """Indices of the trajectories of each task, tasks in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, trajectory in enumerate(trajectories):
        groups.setdefault(trajectory.task_id, []).append(i)
    return list(groups.values())


def rescore(module: RewardModule, trajectories: list[Trajectory]) -> tuple[list[list[float]], dict[str, float]]:
    """Per-turn rewards of every trajectory (in the given order), scored group by group,
    and the module's metrics averaged over groups, weighted by group size."""
    rewards: list[list[float]] = [[] for _ in trajectories]
    sums: dict[str, float] = {}
    weights: dict[str, int] = {}
    for indices in group_by_task(trajectories):
        for i, per_turn in zip(indices, module([trajectories[i] for i in indices])):
            rewards[i] = per_turn
        for key, value in module.metrics.items():
            sums[key] = sums.get(key, 0.0) + value * len(indices)
            weights[key] = weights.get(key, 0) + len(indices)
    return rewards, {key: sums[key] / weights[key] for key in sums}


def summarise(trajectories: list[Trajectory], rewards: list[list[float]], metrics: dict[str, float]) -> dict[str, Any]:
    """One row of the comparison: how returns under this reward relate to winning."""
    returns = np.array([sum(r) for r in rewards])
    won = np.array([t.success for t in trajectories])
    outcomes = np.array([t.outcome for t in trajectories])
    row: dict[str, Any] = {
        "mean return": float(returns.mean()) if len(returns) else 0.0,
        "won": float(returns[won].mean()) if won.any() else None,
        "lost": float(returns[~won].mean()) if (~won).any() else None,
        "corr(return, outcome)": (float(np.corrcoef(returns, outcomes)[0, 1])
                                  if returns.std() > 0 and outcomes.std() > 0 else None),
    }
    row["metrics"] = {k: v for k, v in metrics.items() if not k.endswith("/mean_return")}
    return row


def write_comparison_report(path: str | Path, source: str, trajectories: list[Trajectory],
                            scored: dict[str, tuple[list[list[float]], dict[str, float]]]) -> None:
    """`scored` maps a module label to its `rescore` result."""
    report = Report(f"Reward modules on {source}")
    won = sum(t.success for t in trajectories)
    report.paragraph(f"{len(trajectories)} episodes of {len(group_by_task(trajectories))} tasks "
                     f"({won} won), re-scored by each module, grouped by task. 'won' and 'lost' are the "
                     f"mean episode returns under the module's rewards.")
    report.table([{"module": label, **summarise(trajectories, rewards, metrics)}
                  for label, (rewards, metrics) in scored.items()])
    report.heading("Per-turn rewards")
    report.paragraph("Each line is one episode (green: won, red: lost); the thick lines are the means by turn.")
    for label, (rewards, _) in scored.items():
        report.figure(lambda ax, label=label, rewards=rewards: _draw_turn_rewards(ax, label, trajectories, rewards),
                      width=4.8, height=3.2)
    example = next((i for i, t in enumerate(trajectories) if t.success), 0) if trajectories else None
    if example is not None:
        report.heading(f"One episode, turn by turn ({trajectories[example].task_id})")
        rows = []
        for k, turn in enumerate(trajectories[example].turns):
            row: dict[str, Any] = {"#": k + 1, "action": text_of(turn.action)[:60] or "(tool call)",
                                   "env reward": turn.reward}
            row.update({label: rewards[example][k] for label, (rewards, _) in scored.items()})
            rows.append(row)
        report.table(rows)
    report.write(path)


def _draw_turn_rewards(ax: Any, label: str, trajectories: list[Trajectory], rewards: list[list[float]]) -> None:
    for won, colour in ((False, "#c44e52"), (True, "#55a868")):
        chosen = [r for t, r in zip(trajectories, rewards) if t.success == won and r]
        for per_turn in chosen[:200]:
            ax.plot(range(1, len(per_turn) + 1), per_turn, color=colour, alpha=0.12, linewidth=0.8)
        if chosen:
            length = max(len(r) for r in chosen)
            means = [np.mean([r[k] for r in chosen if len(r) > k]) for k in range(length)]
            ax.plot(range(1, length + 1), means, color=colour, linewidth=2.2,
                    label=f"{'won' if won else 'lost'} ({len(chosen)})")
    ax.set_title(label)
    ax.set_xlabel("turn")
    ax.set_ylabel("reward")
    ax.legend(fontsize=8)
