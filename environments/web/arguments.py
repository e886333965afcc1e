"""The web tools' arguments as a model sends them, checked before the browser sees them.

Tool-call arguments are JSON decoded from model text, so any argument can be any JSON
value (or a Python value, through the Python API): a ref may come as `"--5"`, `"²"`,
`"٣"`, `5.5`, `true`, `null`, a list or a 5,000-digit number; a text may be `null` or
a megabyte. Each check here returns the value the tool uses or raises `ToolError`,
whose message the agent reads as `Error: ...`; messages show a value only through
`shown`, which never fails and stays short.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_TEXT = 2000  # characters a `type` call may enter (MiniWoB's fields take a few words)
MAX_OPTION = 500  # characters of a select option's text
MAX_KEY = 40  # characters of a key name such as "Control+Shift+ArrowDown"
MAX_REF = 10**9  # refs are DOM-walk counters: far below this
SHOWN_CHARS = 60
_REF_TEXT = re.compile(r"[0-9]{1,10}")  # ASCII digits only: int() would also take "٣", "５" or "1_0"
# WebDriver reads U+E000-U+F8FF as key codes (U+E007 is Enter): not text a field should receive.
_KEY_CODES = re.compile("[\ue000-\uf8ff]")


class ToolError(Exception):
    """A call the page cannot carry out; the agent gets its message, the episode goes on."""


def shown(value: Any) -> str:
    """A short, safe rendering of `value` for an error message."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (Python refuses beyond 4,300 digits)
        text = f"a {type(value).__name__} too large to show"
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def element_ref(value: Any) -> int:
    """An element's ref: a whole number, as a JSON number (5 or 5.0) or as ASCII digits
    ("5", " 5 ")."""
    ref: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        ref = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        ref = int(value)
    elif isinstance(value, str) and _REF_TEXT.fullmatch(value.strip()):
        ref = int(value.strip())
    if ref is None or not 0 <= ref <= MAX_REF:
        raise ToolError(f"ref must be an element number such as 4 (the [N] of the page listing), got {shown(value)}")
    return ref


def text_argument(value: Any, name: str, limit: int) -> str:
    """A text argument: a string (numbers are taken as their text) of at most `limit` characters."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = shown(value)
    if not isinstance(value, str):
        raise ToolError(f"{name} must be a string, got {shown(value)}")
    if len(value) > limit:
        raise ToolError(f"{name} is {len(value)} characters long; at most {limit} are accepted")
    if _KEY_CODES.search(value):
        raise ToolError(f"{name} contains key codes (U+E000-U+F8FF); use the press tool for keys")
    return value


def coordinate(value: Any, name: str) -> float:
    """A finite pixel coordinate."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ToolError(f"{name} must be a number, got {shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        number = math.inf
    if not math.isfinite(number):
        raise ToolError(f"{name} must be a finite number, got {shown(value)}")
    return number
