"""Self-contained HTML reports: tables, matplotlib figures embedded as base64 PNGs and
readable episode transcripts, so a report is one file that opens anywhere, offline.

`Report` is the small builder every report uses (evaluation here, training runs and
reward comparisons elsewhere); `write_eval_report` is the evaluation's page. The page is
rendered by the jinja2 template `templates/report.html.j2` with autoescaping on, since
every message, tool argument, task id and error may come from a model or an env.
"""

from __future__ import annotations

import base64
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import jinja2

from agenthub.types import Trajectory, content_text

_TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                                autoescape=True, undefined=jinja2.StrictUndefined)

# Transcript limits keep a report of a big run openable: episodes shown per task, in the
# whole report section, and characters shown per message text or tool-call argument.
MAX_EPISODES_PER_TASK = 5
MAX_EPISODES = 200
MAX_CHARS = 4000
MAX_TEXT = 2_000_000  # characters of text in one transcripts section: a few MB of HTML at most


class Report:
    def __init__(self, title: str):
        self.title = title
        self.blocks: list[dict[str, Any]] = []

    def heading(self, text: str) -> None:
        self.blocks.append({"kind": "heading", "text": text})

    def paragraph(self, text: str) -> None:
        self.blocks.append({"kind": "paragraph", "text": text})

    def table(self, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
        if not rows:
            self.paragraph("(none)")
            return
        columns = columns or list(rows[0])
        self.blocks.append({"kind": "table", "columns": columns,
                            "rows": [[_fmt(r.get(c)) for c in columns] for r in rows]})

    def figure(self, draw: Callable[[Any], None], width: float = 7, height: float = 3.2) -> None:
        """`draw(ax)` paints one matplotlib axes; the figure is embedded as a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(width, height))
        draw(ax)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        self.blocks.append({"kind": "figure", "src": f"data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"})

    def transcripts(self, trajectories: list[Trajectory], per_task: int = MAX_EPISODES_PER_TASK,
                    limit: int = MAX_EPISODES, max_chars: int = MAX_CHARS, budget: int = MAX_TEXT) -> None:
        """Every task's episodes as collapsible transcripts (messages, tool calls, reasoning,
        per-turn rewards and components, stop reason, error) with a success / failure /
        error filter. At most `per_task` episodes per task and `limit` in all are shown,
        none once `budget` characters of text are shown, and each text is cut at
        `max_chars` characters; the page says what was left out."""
        index = sum(b["kind"] == "transcripts" for b in self.blocks)
        self.blocks.append(_transcripts_block(trajectories, index, per_task, limit, max_chars, budget))

    def render(self) -> str:
        """The page as HTML text (it may hold lone surrogates from a model's output)."""
        return _TEMPLATES.get_template("report.html.j2").render(title=self.title, blocks=self.blocks)

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.render(), encoding="utf-8",
                              errors="backslashreplace")  # a model's lone surrogate shows as \udXXX


def episode_status(trajectory: Trajectory) -> str:
    """"error" (the episode crashed or timed out, as evaluation counts errors), "success" or "failure"."""
    if trajectory.stop_reason in ("error", "timeout") or trajectory.error:
        return "error"
    return "success" if trajectory.success else "failure"


def _transcripts_block(trajectories: list[Trajectory], index: int, per_task: int, limit: int,
                       max_chars: int, budget: int) -> dict[str, Any]:
    by_task: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        by_task[str(t.task_id)].append(t)
    tasks, shown, used = [], 0, 0
    counts = {"all": 0, "success": 0, "failure": 0, "error": 0}
    for task_id in sorted(by_task):
        episodes = by_task[task_id]
        statuses = [episode_status(t) for t in episodes]
        views = []
        for t, status in zip(episodes[:per_task], statuses):
            if shown >= limit or used >= budget:
                break
            views.append(_episode_view(t, status, max_chars))
            used += views[-1].pop("chars")
            shown += 1
            counts["all"] += 1
            counts[status] += 1
        left = len(episodes) - len(views)
        tasks.append({
            "task_id": task_id,
            "summary": f"{statuses.count('success')}/{len(episodes)} succeeded"
                       + (f", {statuses.count('error')} errors" if "error" in statuses else ""),
            "note": f"{left} of {len(episodes)} episodes not shown (the report shows the first {len(views)})"
                    if left else "",
            "episodes": views,
        })
    notes = []
    if shown < len(trajectories):
        notes.append(f"Showing {shown} of {len(trajectories)} episodes: at most {per_task} per task, "
                     f"{limit} in all, and none after {budget:,} characters of text.")
    return {"kind": "transcripts", "index": index, "tasks": tasks, "counts": counts, "notes": notes}


def _episode_view(t: Trajectory, status: str, max_chars: int) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for k, turn in enumerate(t.turns):
        items += [_message_view(m, max_chars) for m in _as_list(turn.observation)]
        items.append(_message_view(turn.action, max_chars))
        flags = ", ".join(name for name in ("terminated", "truncated") if getattr(turn, name))
        items.append({"kind": "step", "index": k + 1, "reward": _fmt(turn.reward),
                      "components": _fmt(turn.reward_components), "flags": flags})
    items += [_message_view(m, max_chars) for m in _as_list(t.final_observation)]
    error, dropped = _cut(t.error or "", max_chars)
    return {
        "status": status,
        "summary": f"seed {t.seed} · {status} · return {_fmt(t.return_)} · {len(t.turns)} turns · {t.stop_reason}",
        "meta": [("status", status), ("outcome", _fmt(t.outcome)), ("return", _fmt(t.return_)),
                 ("turns", str(len(t.turns))), ("stop reason", str(t.stop_reason)), ("seed", str(t.seed)),
                 ("agent", str(t.agent)), ("duration (s)", _fmt(t.duration_s))],
        "error": error + (f" … ({dropped} more characters)" if dropped else ""),
        "note": "" if items else "(no messages)",
        "entries": items,
        "chars": len(error) + sum(len(i.get("text", "")) + len(i.get("reasoning", ""))
                                  + sum(len(c["arguments"]) for c in i.get("tool_calls", [])) for i in items),
    }


def _message_view(m: Any, max_chars: int) -> dict[str, Any]:
    """What the template shows of one message; any shape is accepted, since a
    trajectory read back from disk or sent by a client may hold garbage."""
    if not isinstance(m, dict):
        text, dropped = _cut(repr(m), max_chars)
        return {"kind": "message", "role": "?", "name": "", "tool_call_id": "", "text": text, "dropped": dropped,
                "reasoning": "", "reasoning_dropped": 0, "tool_calls": []}
    text, problems = content_text(m.get("content"))
    if problems:
        text = json.dumps(m.get("content"), ensure_ascii=False, default=str)
    text, dropped = _cut(text, max_chars)
    reasoning = m.get("reasoning") or m.get("reasoning_content") or ""
    reasoning, reasoning_dropped = _cut(reasoning if isinstance(reasoning, str) else str(reasoning), max_chars)
    role = m.get("role")
    return {"kind": "message", "role": role if role in ("system", "user", "assistant", "tool") else "?",
            "name": str(m.get("name") or ""), "tool_call_id": str(m.get("tool_call_id") or ""),
            "text": text, "dropped": dropped, "reasoning": reasoning, "reasoning_dropped": reasoning_dropped,
            "tool_calls": [_call_view(c, max_chars) for c in _as_list(m.get("tool_calls"))]}


def _call_view(call: Any, max_chars: int) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict):
        arguments, dropped = _cut(repr(call), max_chars)
        return {"name": "?", "id": "", "arguments": arguments, "dropped": dropped}
    arguments = fn.get("arguments")
    try:  # well-formed JSON arguments on one line, or pretty-printed when long; anything else as it came
        parsed = json.loads(arguments)
        arguments = json.dumps(parsed, ensure_ascii=False)
        if len(arguments) > 100:
            arguments = json.dumps(parsed, indent=1, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        arguments = arguments if isinstance(arguments, str) else repr(arguments)
    arguments, dropped = _cut(arguments, max_chars)
    return {"name": str(fn.get("name")), "id": str(call.get("id") or ""), "arguments": arguments, "dropped": dropped}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _cut(text: str, max_chars: int) -> tuple[str, int]:
    """`text` cut to `max_chars` characters, and how many were dropped."""
    return (text, 0) if len(text) <= max_chars else (text[:max_chars], len(text) - max_chars)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return "" if v is None else str(v)


def add_eval_section(report: Report, results: dict[str, Any], trajectories: list[Trajectory]) -> None:
    """Summary, success by task, and return / turn-count histograms of one evaluation."""
    summary = {k: results[k] for k in ("target", "agent", "episodes", "success_rate", "mean_return",
                                       "mean_turns", "errors", "duration_s")}
    summary["pass_at_k"] = results["pass_at_k"]
    report.table([summary])
    per_task = sorted(results["per_task"], key=lambda p: p["task_id"])
    if len(per_task) > 1:
        def success_by_task(ax: Any) -> None:
            ax.bar(range(len(per_task)), [p["success_rate"] for p in per_task], color="#4c72b0")
            ax.set_ylim(0, 1.05)
            ax.set_xlabel("task")
            ax.set_ylabel("success rate")
            ax.set_title("Success by task")
        report.figure(success_by_task)
    returns = [t.return_ for t in trajectories]
    turns = [len(t.turns) for t in trajectories]

    def histograms(ax: Any) -> None:
        lo, hi = min(returns, default=0.0), max(returns, default=0.0)
        ax.hist(returns, bins=20, range=(lo - 0.5, hi + 0.5) if hi - lo < 1e-6 else (lo, hi), color="#55a868")
        ax.set_xlabel("episode return")
        ax.set_ylabel("episodes")
        ax.set_title("Returns")
    report.figure(histograms)

    def turn_hist(ax: Any) -> None:
        ax.hist(turns, bins=range(0, max(turns, default=0) + 2), color="#c44e52")
        ax.set_xlabel("turns")
        ax.set_ylabel("episodes")
        ax.set_title("Turns per episode")
    report.figure(turn_hist)
    report.heading("Per task")
    report.table(per_task, ["task_id", "samples", "successes", "success_rate", "mean_return", "mean_turns",
                            "stop_reasons"])
    report.heading("Transcripts")
    report.transcripts(trajectories)


def write_eval_report(path: str | Path, results: dict[str, Any], trajectories: list[Trajectory]) -> None:
    report = Report(f"agenthub eval: {results['target']} with {results['agent']}")
    add_eval_section(report, results, trajectories)
    report.write(path)
