"""`agenthub list`, `agenthub info ENV_ID`, `agenthub play ENV_ID`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from agenthub.factory import make
from agenthub.registry import list_envs, spec
from agenthub.suites import list_suites
from agenthub.types import text_of


def add_commands(sub: Any) -> None:
    p = sub.add_parser("list", help="list registered envs (plugins included) and suites")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("info", help="show one env's spec, tools and first observation")
    p.add_argument("env_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("play", help="play an env yourself in the terminal")
    p.add_argument("env_id")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_play)


def cmd_list(args: argparse.Namespace) -> int:
    envs = [s.to_dict() for s in list_envs()]
    suites = [{"name": s.name, "env_id": s.env_id, "splits": s.sizes, "description": s.description}
              for s in list_suites()]
    if args.json:
        print(json.dumps({"envs": envs, "suites": suites}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Column, Table

    def whole(header: str, values: list[str]) -> Column:  # ids are never cut: the description gives way
        return Column(header, no_wrap=True, min_width=max([len(header), *map(len, values)]))

    table = Table(whole("env id", [e["id"] for e in envs]), "max turns", "from", "description", title="environments")
    for e in envs:
        table.add_row(e["id"], str(e["max_turns"] or "-"), e["plugin"], e["description"])
    suite_table = Table(whole("suite", [s["name"] for s in suites]), whole("env id", [s["env_id"] for s in suites]),
                        "splits", "description", title="suites")
    for s in suites:
        suite_table.add_row(s["name"], s["env_id"], ", ".join(f"{k} {v}" for k, v in s["splits"].items()),
                            s["description"])
    Console().print(table, suite_table)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    s = spec(args.env_id)
    env = make(s.id)
    try:
        obs, info = env.reset(seed=0)
        data = {**s.to_dict(), "tools": env.tools, "env_version": env.version,
                "first_observation": obs, "info_keys": sorted(info)}
    finally:
        env.close()
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    print(f"{s.id}  (max turns {s.max_turns}, from {s.plugin})\n{s.description}\n")
    print("tools: " + (", ".join(t["function"]["name"] for t in env.tools) or "none (text commands)"))
    print("\nfirst observation (seed 0):")
    for m in obs:
        print(f"  [{m['role']}] {text_of(m)}")
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    """A person's view of an episode: type text, or `name {json args}` to call a tool."""
    env = make(args.env_id)
    try:
        obs, info = env.reset(seed=args.seed)
        total = 0.0
        tool_names = {t["function"]["name"] for t in env.tools}
        if tool_names:
            print(f"(tools: {', '.join(sorted(tool_names))}; call one as  NAME {{\"arg\": value}})")
        while True:
            _show(obs, info)
            try:
                line = input("> ").strip()
            except EOFError:
                print()
                return 0
            if line in ("quit", "exit"):
                return 0
            obs, reward, terminated, truncated, info = env.step(_as_action(line, tool_names))
            total += float(reward)
            if reward:
                print(f"  (reward {reward:+.3f}, total {total:.3f})")
            if terminated or truncated:
                _show(obs, {})
                verdict = "won" if info.get("success") else ("out of turns" if truncated else "over")
                print(f"\n*** episode {verdict}: return {total:.3f}, {info.get('turn')} turns ***")
                return 0
    finally:
        env.close()


def _as_action(line: str, tool_names: set[str]) -> str | dict:
    name, _, rest = line.partition(" ")
    if name in tool_names and rest.strip().startswith("{"):
        return {"role": "assistant", "content": "", "tool_calls": [
            {"id": "play", "type": "function", "function": {"name": name, "arguments": rest.strip()}}]}
    return line


def _show(obs: list, info: dict) -> None:
    shown = "\n".join(text_of(m) for m in obs if m["role"] != "system")
    print(shown)
    admissible = info.get("admissible_actions")
    if admissible and len(admissible) <= 40 and not all(a in shown for a in admissible):  # unless the env lists them
        print("  [you can: " + " | ".join(admissible) + "]")
