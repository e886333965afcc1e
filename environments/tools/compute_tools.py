"""The tools of the computation env: calculator, unit conversion, dates, and Python.

Each is an ordinary Python function that returns the text the agent reads, raising
`ToolError` for input it cannot handle (the env shows that as an error observation).
The calculator evaluates arithmetic through Python's `ast` with a whitelist, never
`eval`; the Python tool runs code in an `agenthub.sandbox`.
"""

from __future__ import annotations

import ast
import datetime as dt
import math
import operator
from typing import Any, Callable

from agenthub import sandbox
from agenthub.sandbox import Sandbox, SandboxError


class ToolError(Exception):
    """Bad input to a tool; the agent sees the message."""


# -- calculator -------------------------------------------------------------------------

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max, "floor": math.floor,
    "ceil": math.ceil, "log": math.log, "log10": math.log10, "exp": math.exp}
_CONSTANTS = {"pi": math.pi, "e": math.e}
MAX_EXPONENT = 1000
# Python computes big integers exactly, for as long as that takes: `(10**1000)**1000**...`
# would run for hours. Bounding every integer result's size bounds the time of each step.
MAX_INT_BITS = 10_000  # about 3,000 decimal digits
MAX_EXPRESSION_CHARS = 1_000


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression: numbers, + - * / // % ** (or ^), parentheses,
    pi, e and sqrt/abs/round/min/max/floor/ceil/log/log10/exp."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"the expression is {len(expression):,} characters long; at most {MAX_EXPRESSION_CHARS:,}")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
        return _value(tree.body)
    except SyntaxError as e:
        raise ToolError(f"cannot parse {expression!r}: {e.msg}") from e
    except (RecursionError, MemoryError):
        raise ToolError(f"cannot evaluate {expression!r}: it is nested too deeply") from None
    except (ZeroDivisionError, OverflowError, ValueError, TypeError) as e:
        raise ToolError(f"cannot evaluate {expression!r}: {e}") from e


def _value(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ValueError(f"exponent {right} is too large")
        if isinstance(left, int) and isinstance(right, int):
            bits = {ast.Pow: left.bit_length() * max(right, 0),
                    ast.Mult: left.bit_length() + right.bit_length()}.get(type(node.op), 0)
            if bits > MAX_INT_BITS:
                raise ValueError(f"the result would have more than {MAX_INT_BITS * 3 // 10:,} digits")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS \
            and not node.keywords:
        args = [_value(a) for a in node.args]
        if node.func.id == "round" and len(args) == 2 and abs(args[1]) > MAX_EXPONENT:  # computes 10**digits
            raise ValueError(f"cannot round to {args[1]} digits")
        return _FUNCTIONS[node.func.id](*args)
    raise ValueError(f"{ast.unparse(node)!r} is not allowed (numbers, operators and math functions only)")


def format_number(value: float) -> str:
    """Integers without a decimal point, other values to 10 significant decimals."""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return repr(round(value, 10))


def calculator(expression: str) -> str:
    return format_number(evaluate(expression))


# -- unit conversion --------------------------------------------------------------------

# unit -> (dimension, size in the dimension's base unit); temperatures are handled apart.
UNITS: dict[str, tuple[str, float]] = {
    "m": ("length", 1.0), "km": ("length", 1000.0), "cm": ("length", 0.01), "mm": ("length", 0.001),
    "mi": ("length", 1609.344), "yd": ("length", 0.9144), "ft": ("length", 0.3048), "in": ("length", 0.0254),
    "kg": ("mass", 1.0), "g": ("mass", 0.001), "mg": ("mass", 1e-6), "t": ("mass", 1000.0),
    "lb": ("mass", 0.45359237), "oz": ("mass", 0.028349523125),
    "l": ("volume", 1.0), "ml": ("volume", 0.001), "gal": ("volume", 3.785411784),
    "s": ("time", 1.0), "min": ("time", 60.0), "h": ("time", 3600.0), "day": ("time", 86400.0),
    "week": ("time", 604800.0),
    "m/s": ("speed", 1.0), "km/h": ("speed", 1000 / 3600), "mph": ("speed", 1609.344 / 3600),
    "c": ("temperature", 1.0), "f": ("temperature", 1.0), "k": ("temperature", 1.0),
}
ALIASES = {
    "meter": "m", "metre": "m", "kilometer": "km", "kilometre": "km", "centimeter": "cm", "centimetre": "cm",
    "millimeter": "mm", "millimetre": "mm", "mile": "mi", "yard": "yd", "foot": "ft", "feet": "ft",
    "inch": "in", "inches": "in", "kilogram": "kg", "gram": "g", "milligram": "mg", "tonne": "t",
    "pound": "lb", "lbs": "lb", "ounce": "oz", "liter": "l", "litre": "l", "milliliter": "ml",
    "millilitre": "ml", "gallon": "gal", "second": "s", "sec": "s", "minute": "min", "hour": "h", "hr": "h",
    "days": "day", "d": "day", "weeks": "week", "kph": "km/h", "kmh": "km/h", "celsius": "c", "°c": "c",
    "fahrenheit": "f", "°f": "f", "kelvin": "k",
}


def canonical_unit(unit: str) -> str:
    """'Miles' -> 'mi', 'km/h' -> 'km/h'; ToolError for a unit it does not know."""
    name = unit.strip().lower()
    if name not in UNITS and name not in ALIASES and name.endswith("s"):
        name = name[:-1]  # plurals: meters, hours, ...
    name = ALIASES.get(name, name)
    if name not in UNITS:
        raise ToolError(f"unknown unit {unit!r}; known: {', '.join(UNITS)}")
    return name


def convert(value: float, from_unit: str, to_unit: str) -> float:
    source, target = canonical_unit(from_unit), canonical_unit(to_unit)
    (dimension, size), (target_dimension, target_size) = UNITS[source], UNITS[target]
    if dimension != target_dimension:
        raise ToolError(f"cannot convert {dimension} ({from_unit}) to {target_dimension} ({to_unit})")
    if dimension == "temperature":
        kelvin = {"c": value + 273.15, "f": (value - 32) * 5 / 9 + 273.15, "k": value}[source]
        return {"c": kelvin - 273.15, "f": (kelvin - 273.15) * 9 / 5 + 32, "k": kelvin}[target]
    return value * size / target_size


def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    number = as_number(value, "value")
    return f"{format_number(number)} {from_unit} = {format_number(convert(number, from_unit, to_unit))} {to_unit}"


def as_number(value: Any, name: str) -> float:
    """A number, also from numeric text ("12.5"): models often quote numbers."""
    if isinstance(value, bool):
        raise ToolError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ToolError(f"{name} must be a number, got {value!r}") from None
    except OverflowError:  # an int beyond float's range
        raise ToolError(f"{name} is too large") from None


# -- dates ------------------------------------------------------------------------------

def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(text).strip())
    except ValueError as e:
        raise ToolError(f"dates are written YYYY-MM-DD, got {text!r}") from e


def date_diff(start: str, end: str) -> str:
    return str((parse_date(end) - parse_date(start)).days)


def date_add(date: str, days: int) -> str:
    number = as_number(days, "days")
    if not number.is_integer():
        raise ToolError(f"days must be a whole number, got {days!r}")
    try:
        return (parse_date(date) + dt.timedelta(days=int(number))).isoformat()
    except OverflowError as e:
        raise ToolError(f"{date} + {days} days is out of range") from e


def weekday(date: str) -> str:
    return parse_date(date).strftime("%A")


# -- Python in a sandbox ----------------------------------------------------------------

class PythonRunner:
    """Runs snippets with `python3 -c` in a sandbox opened on first use.

    Agent code never runs unisolated unless asked for: the backend is bwrap (namespaces,
    no network, read-only system) or docker; `local` (plain host processes, no security
    boundary) only when the caller names it. A backend that cannot start is an error,
    never a silent fall back: `check()` raises it early with how to get bwrap or Docker,
    and a sandbox that fails later is reported in the tool's answer.
    """

    def __init__(self, backend: str = "bwrap", timeout: float = 10.0, max_output: int = 2000):
        self.backend, self.timeout, self.max_output = backend, timeout, max_output
        self.backend_used: str | None = None
        self._box: Sandbox | None = None

    def check(self) -> None:
        """Raise SandboxError, saying how to get a sandbox, if `backend` cannot run here."""
        sandbox.check(self.backend)

    def run(self, code: str) -> str:
        """The snippet's output as the agent reads it; ToolError if no sandbox can run it."""
        try:
            box = self._sandbox()
        except SandboxError as e:
            raise ToolError(str(e)) from None
        result = box.exec(["python3", "-c", code], timeout=self.timeout)
        if result.timed_out:
            return f"Error: the code ran longer than {self.timeout:g} s and was stopped."
        out = result.stdout.strip()
        if len(out) > self.max_output:  # cut before the exit code is added, so that it always shows
            out = out[: self.max_output] + "\n... (output cut)"
        if result.exit_code != 0:
            out += f"\n(exit code {result.exit_code})\n{result.stderr[-self.max_output // 2:]}"
        return out.strip() or "(no output: print the result)"

    def _sandbox(self) -> Sandbox:
        if self._box is None:
            try:
                self._box = sandbox.open(self.backend, memory="512m", cpus=1, pids=64, network=False)
            except SandboxError as e:
                raise SandboxError(f"the python tool runs agent code only in a sandbox, and the {self.backend} "
                                   f"backend cannot start: {e}. {sandbox.HOW_TO_ISOLATE}") from e
            self.backend_used = self.backend
        return self._box

    def close(self) -> None:
        if self._box is not None:
            self._box.close()
            self._box = None
