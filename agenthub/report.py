"""Self-contained HTML reports: tables plus matplotlib figures embedded as base64 PNGs,
so a report is one file that opens anywhere, offline.

`Report` is the small builder every report uses (evaluation here, training runs and
reward comparisons elsewhere); `write_eval_report` is the evaluation's page.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any, Callable

from agenthub.types import Trajectory

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:980px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}img{max-width:100%}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}"""


class Report:
    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
        if not rows:
            self.paragraph("(none)")
            return
        columns = columns or list(rows[0])
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in columns) + "</tr>"
                       for r in rows)
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

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
        self.parts.append(f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">')

    def write(self, path: str | Path) -> None:
        Path(path).write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}"
                              f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>"
                              + "\n".join(self.parts) + "</body></html>",
                              encoding="utf-8", errors="backslashreplace")  # a model's lone surrogate shows as \udXXX


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


def write_eval_report(path: str | Path, results: dict[str, Any], trajectories: list[Trajectory]) -> None:
    report = Report(f"agenthub eval: {results['target']} with {results['agent']}")
    add_eval_section(report, results, trajectories)
    report.write(path)
