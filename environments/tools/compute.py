"""Computation with tools (the ToolRL setting).

Each episode is one question that needs a tool: arithmetic word problems (calculator),
unit conversions, date arithmetic, small programs (Python, run in a sandbox) and
two-step problems that chain two tools. Every task carries a reference plan: the tool
calls, turn by turn, that solve it, ending with `answer(...)`.

Rewards follow ToolRL's decomposition, per turn, against the plan's next step:
- `format`: the turn made well-formed tool calls (malformed ones never get here: the
  episode contract answers them with an error);
- `tool_name`: Jaccard overlap of the called tool names with the step's;
- `tool_params`: for each expected call, the best same-named call's overlap of argument
  names, averaged with the share of argument values that match (numbers within 1e-6,
  units by meaning, expressions by value; the Python tool's code counts by name only,
  since it is judged by what it prints);
- `answer`: 1 when the final answer is right (numbers within the stated rounding).
The turn's reward is the weighted sum (`reward_weights`); a step is done, and the plan
moves on, when the tool names match. `success` and `outcome` are answer correctness.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Callable

from agenthub.actions import Action, Call
from agenthub.env import Env, StepResult
from agenthub.environments.tools import compute_tools as ct
from agenthub.environments.tools.limits import bounded, checked_arguments
from agenthub.types import Message, tool_calls_message, tool_spec

COMPUTE_TOOLS = [
    tool_spec("calculator", "Evaluate an arithmetic expression: numbers, + - * / // % ** and parentheses, "
              "pi, e, sqrt, log, exp, floor, ceil, round, min, max, abs. Example: '(3 + 4) * 2'.",
              {"expression": {"type": "string"}}),
    tool_spec("convert_units", "Convert a value between units of length (m, km, cm, mm, mi, yd, ft, in), "
              "mass (kg, g, mg, t, lb, oz), volume (l, ml, gal), time (s, min, h, day, week), speed "
              "(m/s, km/h, mph) or temperature (c, f, k).",
              {"value": {"type": "number"}, "from_unit": {"type": "string"}, "to_unit": {"type": "string"}}),
    tool_spec("date_diff", "Days from start to end (dates as YYYY-MM-DD); negative if end is earlier.",
              {"start": {"type": "string"}, "end": {"type": "string"}}),
    tool_spec("date_add", "The date (YYYY-MM-DD) that is `days` days after `date` (before, if negative).",
              {"date": {"type": "string"}, "days": {"type": "integer"}}),
    tool_spec("weekday", "The day of the week of a date (YYYY-MM-DD), e.g. 'Monday'.", {"date": {"type": "string"}}),
    tool_spec("python", "Run Python 3 code in a sandbox (no network, 10 s limit) and return what it prints.",
              {"code": {"type": "string"}}),
    tool_spec("answer", "Give the final answer; this ends the episode.", {"answer": {"type": "string"}}),
]
FUNCTIONS: dict[str, Callable[..., str]] = {
    "calculator": ct.calculator, "convert_units": ct.convert_units, "date_diff": ct.date_diff,
    "date_add": ct.date_add, "weekday": ct.weekday}
SYSTEM_PROMPT = (
    "You solve problems with tools. Use the tools for every calculation, conversion and date question "
    "rather than working it out yourself; you may call several tools in one turn. When you have the "
    "result, call `answer` with just the final value (a number, a date as YYYY-MM-DD, or a word).")
DEFAULT_WEIGHTS = {"format": 0.05, "tool_name": 0.1, "tool_params": 0.1, "answer": 1.0}
KINDS = ("arithmetic", "units", "dates", "python", "two_step")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass
class PlannedCall:
    name: str
    arguments: dict[str, Any]
    judge_values: bool = True  # False: only argument names count (the Python tool's code)


@dataclass
class ComputeTask:
    kind: str
    question: str
    answer: str
    tolerance: float | None  # numeric answers: the largest accepted error; None: compared as text
    plan: list[list[PlannedCall]]  # the calls of each turn; the last turn answers

    def check(self, given: Any) -> bool:
        text = str(given).strip()
        if self.tolerance is None:
            return text.lower().rstrip(".") == self.answer.lower()
        found = _NUMBER.search(text.replace(",", ""))
        return found is not None and abs(float(found.group()) - float(self.answer)) <= self.tolerance + 1e-9


# -- task generators ----------------------------------------------------------------------

def _answer_step(value: str) -> list[PlannedCall]:
    return [PlannedCall("answer", {"answer": value})]


def _rounded(value: float) -> str:
    return f"{value:.2f}"


def arithmetic_task(rng: random.Random) -> ComputeTask:
    form = rng.randrange(3)
    if form == 0:
        a, b, c = rng.randint(12, 480), rng.randint(6, 144), rng.randint(10, 900)
        question = (f"A warehouse holds {a} crates with {b} items in each. {c} items are shipped out. "
                    "How many items are left?")
        expression = f"{a} * {b} - {c}"
    elif form == 1:
        a, b, c, e = rng.randint(100, 999), rng.randint(100, 999), rng.randint(3, 40), rng.randint(2, 25)
        d = e * rng.randint(2, 60)
        question = f"Compute ({a} + {b}) * {c} - {d} / {e}."
        expression = f"({a} + {b}) * {c} - {d} / {e}"
    else:
        p, r, n = rng.randint(10, 500) * 100, rng.choice([1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7]), rng.randint(2, 30)
        question = (f"A deposit of {p} grows by {r}% per year, compounded yearly. What is it worth after {n} "
                    "years? Round to 2 decimal places.")
        expression = f"{p} * (1 + {r} / 100) ** {n}"
        value = _rounded(ct.evaluate(expression))
        return ComputeTask("arithmetic", question, value, 0.005,
                           [[PlannedCall("calculator", {"expression": expression})], _answer_step(value)])
    value = ct.format_number(ct.evaluate(expression))
    return ComputeTask("arithmetic", question, value, 0.0,
                       [[PlannedCall("calculator", {"expression": expression})], _answer_step(value)])


UNIT_NAMES = {"m": "metres", "km": "kilometres", "cm": "centimetres", "mi": "miles", "yd": "yards", "ft": "feet",
              "in": "inches", "kg": "kilograms", "g": "grams", "lb": "pounds", "oz": "ounces", "l": "litres",
              "ml": "millilitres", "gal": "US gallons", "h": "hours", "min": "minutes", "day": "days",
              "week": "weeks", "km/h": "kilometres per hour", "mph": "miles per hour", "m/s": "metres per second",
              "c": "degrees Celsius", "f": "degrees Fahrenheit", "k": "kelvin"}
UNIT_GROUPS = [["m", "km", "cm", "mi", "yd", "ft", "in"], ["kg", "g", "lb", "oz"], ["l", "ml", "gal"],
               ["h", "min", "day", "week"], ["km/h", "mph", "m/s"], ["c", "f", "k"]]


def units_task(rng: random.Random) -> ComputeTask:
    source, target = rng.sample(rng.choice(UNIT_GROUPS), 2)
    value = round(rng.uniform(1, 500), 1)
    result = _rounded(ct.convert(value, source, target))
    question = f"Convert {value:g} {UNIT_NAMES[source]} to {UNIT_NAMES[target]}. Round to 2 decimal places."
    return ComputeTask("units", question, result, 0.005, [
        [PlannedCall("convert_units", {"value": value, "from_unit": source, "to_unit": target})],
        _answer_step(result)])


def _random_date(rng: random.Random) -> dt.date:
    return dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(80 * 365))


def dates_task(rng: random.Random) -> ComputeTask:
    start, form = _random_date(rng), rng.randrange(3)
    if form == 0:
        end = start + dt.timedelta(days=rng.randint(1, 4000))
        value = str((end - start).days)
        return ComputeTask("dates", f"How many days are there from {start} to {end}?", value, 0.0, [
            [PlannedCall("date_diff", {"start": str(start), "end": str(end)})], _answer_step(value)])
    if form == 1:
        days = rng.randint(1, 2000)
        value = str(start + dt.timedelta(days=days))
        return ComputeTask("dates", f"What date is {days} days after {start}? Answer as YYYY-MM-DD.", value, None, [
            [PlannedCall("date_add", {"date": str(start), "days": days})], _answer_step(value)])
    value = start.strftime("%A")
    return ComputeTask("dates", f"What day of the week was {start}?", value, None, [
        [PlannedCall("weekday", {"date": str(start)})], _answer_step(value)])


def _primes_below(n: int) -> list[int]:
    sieve = bytearray([1]) * n
    sieve[:2] = b"\x00\x00"
    for p in range(2, math.isqrt(n - 1) + 1):
        if sieve[p]:
            sieve[p * p::p] = bytearray(len(range(p * p, n, p)))
    return [i for i in range(n) if sieve[i]]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def python_task(rng: random.Random) -> ComputeTask:
    form = rng.randrange(4)
    if form == 0:
        n = rng.randint(1000, 20000)
        question = f"What is the sum of all prime numbers below {n}?"
        code = f"print(sum(p for p in range(2, {n}) if all(p % d for d in range(2, int(p ** 0.5) + 1))))"
        value = sum(_primes_below(n))
    elif form == 1:
        n = rng.randint(30, 90)
        question = f"What is the {_ordinal(n)} Fibonacci number, counting F(1) = F(2) = 1?"
        code = f"a, b = 1, 1\nfor _ in range({n} - 2):\n    a, b = b, a + b\nprint(b)"
        a, b = 1, 1
        for _ in range(n - 2):
            a, b = b, a + b
        value = b
    elif form == 2:
        n, a, b = rng.randint(1000, 100000), rng.randint(3, 17), rng.randint(3, 17)
        question = f"How many integers from 1 to {n} are divisible by {a} or by {b}?"
        code = f"print(sum(1 for i in range(1, {n} + 1) if i % {a} == 0 or i % {b} == 0))"
        value = n // a + n // b - n // math.lcm(a, b)
    else:
        a, b = rng.randint(2, 9), rng.randint(50, 300)
        question = f"What is the sum of the digits of {a} to the power {b}?"
        code = f"print(sum(int(d) for d in str({a} ** {b})))"
        value = sum(int(d) for d in str(a ** b))
    return ComputeTask("python", question, str(value), 0.0, [
        [PlannedCall("python", {"code": code}, judge_values=False)], _answer_step(str(value))])


def two_step_task(rng: random.Random) -> ComputeTask:
    if rng.randrange(2) == 0:
        laps, miles = rng.randint(2, 40), round(rng.uniform(0.5, 6), 1)
        total = ct.evaluate(f"{laps} * {miles}")
        value = _rounded(ct.convert(total, "mi", "km"))
        question = (f"A runner does {laps} laps of a {miles:g}-mile course. How many kilometres is that in "
                    "total? Round to 2 decimal places.")
        return ComputeTask("two_step", question, value, 0.005, [
            [PlannedCall("calculator", {"expression": f"{laps} * {miles}"})],
            [PlannedCall("convert_units", {"value": total, "from_unit": "mi", "to_unit": "km"})],
            _answer_step(value)])
    start = _random_date(rng)
    end = start + dt.timedelta(days=rng.randint(30, 3000))
    days = (end - start).days
    value = str(days // 7)
    return ComputeTask("two_step", f"A project runs from {start} to {end}. How many complete weeks is that?",
                       value, 0.0, [
                           [PlannedCall("date_diff", {"start": str(start), "end": str(end)})],
                           [PlannedCall("calculator", {"expression": f"{days} // 7"})],
                           _answer_step(value)])


GENERATORS: dict[str, Callable[[random.Random], ComputeTask]] = {
    "arithmetic": arithmetic_task, "units": units_task, "dates": dates_task, "python": python_task,
    "two_step": two_step_task}


# -- ToolRL-style scoring -------------------------------------------------------------------

def same_argument(key: str, expected: Any, given: Any) -> bool:
    if given is None:
        return False
    try:
        if key == "expression":
            return math.isclose(ct.evaluate(str(expected)), ct.evaluate(str(given)), rel_tol=1e-9, abs_tol=1e-9)
        if key.endswith("_unit"):
            return ct.canonical_unit(str(expected)) == ct.canonical_unit(str(given))
        if isinstance(expected, (int, float)):
            return math.isclose(float(expected), ct.as_number(given, key), rel_tol=1e-6, abs_tol=1e-9)
    except (ct.ToolError, OverflowError):  # OverflowError: an int result beyond float's range
        return False
    return str(given).strip().lower() == str(expected).strip().lower()


def call_match(expected: PlannedCall, call: Call, task: ComputeTask) -> float:
    """ToolRL's parameter reward for one call: argument-name overlap, averaged with value matches."""
    names, given = set(expected.arguments), set(call.arguments)
    name_score = len(names & given) / len(names | given) if names | given else 1.0
    if not expected.judge_values:
        return name_score
    if expected.name == "answer":
        value_score = float(task.check(call.arguments.get("answer", "")))
    else:
        value_score = sum(same_argument(k, v, call.arguments.get(k)) for k, v in expected.arguments.items()) \
            / max(1, len(expected.arguments))
    return (name_score + value_score) / 2


def score_turn(calls: list[Call], expected: list[PlannedCall], task: ComputeTask) -> dict[str, float]:
    made, wanted = Counter(c.name for c in calls), Counter(e.name for e in expected)
    union = sum((made | wanted).values())
    tool_name = sum((made & wanted).values()) / union if union else 0.0
    tool_params = sum(max((call_match(e, c, task) for c in calls if c.name == e.name), default=0.0)
                      for e in expected) / len(expected) if expected else 0.0
    return {"format": 1.0 if calls else 0.0, "tool_name": tool_name, "tool_params": tool_params}


# -- the env ------------------------------------------------------------------------------

class ComputeEnv(Env):
    tools = COMPUTE_TOOLS
    version = "0"

    def __init__(self, kinds: list[str] | None = None, max_turns: int = 8, python_backend: str = "bwrap",
                 reward_weights: dict[str, float] | None = None, python_timeout: float = 10.0):
        """`python_timeout`: seconds one run of the Python tool may take (its answer is then an error)."""
        unknown = set(kinds or []) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown task kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")
        self.kinds, self.max_turns = list(kinds or KINDS), max_turns
        self.weights = {**DEFAULT_WEIGHTS, **(reward_weights or {})}
        self.python = ct.PythonRunner(python_backend, timeout=python_timeout)
        self.python.check()  # agent code never runs unisolated by surprise: fail here, saying how to fix it
        self.task: ComputeTask | None = None
        self.next_step = 0
        self.answered = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[list[Message], dict[str, Any]]:
        super().reset(seed=seed)
        self.python.close()  # a fresh sandbox (opened on first use) for every episode
        rng = random.Random(f"compute:{seed if seed is not None else int(self.np_random.integers(2**31))}")
        self.task = GENERATORS[rng.choice(self.kinds)](rng)
        self.next_step, self.answered = 0, False
        return ([{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": self.task.question}],
                {"kind": self.task.kind})

    def step(self, action: Action) -> StepResult:  # type: ignore[override]
        task = self.task
        assert task is not None, "call reset() first"
        expected = task.plan[self.next_step] if self.next_step < len(task.plan) else []
        # A call with unusable arguments is scored as a call without arguments, and answered with the reason.
        checked = [self._checked(c) for c in action.calls]
        components = {**score_turn([c for c, _ in checked], expected, task), "answer": 0.0}
        if components["tool_name"] == 1.0:
            self.next_step += 1
        info: dict[str, Any] = {"ground_truth": task.answer, "kind": task.kind}
        if not action.calls:
            replies: list[Message] = [{"role": "user", "content": "No tool was called. Use the tools, and `answer` "
                                                                  "to give the final value."}]
        else:
            replies = [{"role": "tool", "tool_call_id": c.id,
                        "content": f"Error: {error}" if error else bounded(self._run(c, components))}
                       for c, error in checked]
        if self.python.backend_used:
            info["python_backend"] = self.python.backend_used
        reward = sum(self.weights.get(k, 0.0) * v for k, v in components.items())
        info["reward_components"] = components
        if self.answered:
            info.update(success=components["answer"] == 1.0, outcome=components["answer"])
        return replies, reward, self.answered, False, info

    @staticmethod
    def _checked(call: Call) -> tuple[Call, str | None]:
        """The call with its arguments as the tool takes them, or without arguments and the reason."""
        try:
            return replace(call, arguments=checked_arguments(call.name, call.arguments, COMPUTE_TOOLS)), None
        except ValueError as e:
            return replace(call, arguments={}), str(e)

    def _run(self, call: Call, components: dict[str, float]) -> str:
        if self.answered:
            return "Not run: the answer has already been given."
        if call.name == "answer":
            self.answered = True
            components["answer"] = float(self.task.check(call.arguments.get("answer", "")))  # type: ignore[union-attr]
            return "Answer recorded: " + ("correct." if components["answer"] else "incorrect.")
        try:
            if call.name == "python":
                return self.python.run(str(call.arguments.get("code", "")))
            return FUNCTIONS[call.name](**call.arguments)
        except ct.ToolError as e:
            return f"Error: {e}"
        except TypeError as e:  # unexpected argument names
            return f"Error: {call.name}: {e}"

    def oracle_actions(self) -> list[str | Message]:
        """The reference plan, one turn per step."""
        assert self.task is not None, "call reset() first"
        return [tool_calls_message([(c.name, c.arguments) for c in step], f"step_{i}")
                for i, step in enumerate(self.task.plan)]

    def close(self) -> None:
        self.python.close()
