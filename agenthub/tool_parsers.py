"""Reading tool calls out of model text, in the formats chat models are trained on.

Parsers are named as vLLM names them (`--tool-call-parser`), so one name picks the same
format everywhere:

- `hermes` (the default; Hermes, Qwen2.5/Qwen3, SmolLM and our own models):
  `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks, or the whole text as
  one bare JSON call;
- `llama3_json` (Llama 3.1/3.2): the text is one or more JSON objects
  `{"name": ..., "parameters": {...}}`, separated by `;`, optionally after `<|python_tag|>`;
- `mistral`: `[TOOL_CALLS]` then a JSON list of calls, or `[TOOL_CALLS]name[ARGS]{...}`;
- `pythonic` (Llama 3.2/4 pythonic, ToolACE): the text is a Python list of calls with
  literal keyword arguments, `[guess(number=3), look()]`.

Which format a model writes is read from its chat template where the template tells
(`detect_tool_parser`; `agenthub.trainers.chat.ChatFormat` does it for model agents and
the trainer), else it is `hermes`, the format of the tools prompt agenthub writes into
templates without tool support; a `tool_parser` option always wins.

Every parser first takes reasoning blocks out (`<think>...</think>`,
`<thinking>...</thinking>`, a closing tag whose opening tag was in the prompt, and an
opening tag never closed): what is drafted there is kept as reasoning and never read
for calls. JSON is decoded strictly: the end of an object is found by scanning it
(strings and escapes included), never by searching for a closing tag, and numbers that
decode to infinity or NaN are refused, so nothing downstream meets a non-finite value.

Parsers never raise; what they cannot read is reported in `ParsedText.errors`.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from agenthub.errors import AgentHubError

DEFAULT_TOOL_PARSER = "hermes"

_REASONING_OPEN = re.compile(r"<(think|thinking)>")
_REASONING_CLOSE = re.compile(r"</(think|thinking)>")


@dataclass
class ParsedText:
    """Model text split into what it says, what it reasoned, and the calls it made.

    `calls` are decoded JSON objects `{"name": ..., "arguments": ...}` exactly as the
    model wrote them (not yet checked against any tool spec)."""

    content: str
    reasoning: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class NonFiniteNumber(ValueError):
    """A JSON number that decodes to infinity or NaN."""


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NonFiniteNumber(f"number {text} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise NonFiniteNumber(f"{name} is not a number JSON allows")


def loads_json(text: str) -> Any:
    """`json.loads` that refuses NaN, Infinity and numbers too large for a float.

    Raises ValueError (with a one-line reason) for anything that is not strict, finite
    JSON, including nesting too deep to decode and integers too long to convert."""
    try:
        return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except NonFiniteNumber:
        raise
    except json.JSONDecodeError as e:
        raise ValueError(f"{e.msg} at char {e.pos}") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError as e:  # e.g. an integer with more digits than Python converts
        raise ValueError(str(e).split("\n")[0]) from None


def json_end(text: str, start: int) -> int | None:
    """The index just past the JSON object or array that opens at `text[start]`.

    Brackets inside strings (and escaped quotes) do not count, so a `}` or a closing
    tag inside an argument never ends the object early. None if it never closes.
    Runs in O(len(text)); the text is not decoded here."""
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def split_reasoning(text: str) -> tuple[str, str | None]:
    """(text outside reasoning blocks, the reasoning joined by blank lines, or None).

    A closing tag before any opening tag closes a block opened in the prompt (templates
    that start the assistant turn with `<think>`); an opening tag that never closes
    makes the rest of the text reasoning (a generation cut off while thinking)."""
    reasoning: list[str] = []
    first_open, first_close = _REASONING_OPEN.search(text), _REASONING_CLOSE.search(text)
    if first_close and (not first_open or first_close.start() < first_open.start()):
        reasoning.append(text[:first_close.start()])
        text = text[first_close.end():]
    outside: list[str] = []
    pos = 0
    while (opened := _REASONING_OPEN.search(text, pos)) is not None:
        outside.append(text[pos:opened.start()])
        closed = re.compile(f"</{opened.group(1)}>").search(text, opened.end())
        if closed is None:
            reasoning.append(text[opened.end():])
            pos = len(text)
            break
        reasoning.append(text[opened.end():closed.start()])
        pos = closed.end()
    outside.append(text[pos:])
    if not reasoning:
        return text, None
    return "".join(outside).strip(), "\n\n".join(r.strip() for r in reasoning)


def _as_calls(value: Any, where: str) -> tuple[list[dict[str, Any]], list[str]]:
    """A decoded call object, or a list of them, as call dicts; anything else an error."""
    items = value if isinstance(value, list) else [value]
    calls, errors = [], []
    for item in items:
        if isinstance(item, dict) and "name" in item:
            args = item.get("arguments", item.get("parameters", {}))
            calls.append({"name": item["name"], "arguments": args, **({"id": item["id"]} if "id" in item else {})})
        else:
            errors.append(f'{where} must be a JSON object with "name" and "arguments"')
    return calls, errors


def _decode_json_at(text: str, start: int, where: str) -> tuple[int, Any, list[str]]:
    """Decode the JSON value opening at `text[start]`; returns (end, value, errors)."""
    end = json_end(text, start)
    if end is None:
        return len(text), None, [f"{where} is not valid JSON (it never closes)"]
    try:
        return end, loads_json(text[start:end]), []
    except ValueError as e:
        return end, None, [f"{where} is not valid JSON ({e})"]


def _decode_call_json(text: str, start: int, where: str
                      ) -> tuple[int, list[dict[str, Any]], list[str]]:
    """Decode the JSON value at `text[start]` as call(s); returns (end, calls, errors)."""
    end, value, errors = _decode_json_at(text, start, where)
    if errors:
        return end, [], errors
    calls, errors = _as_calls(value, where)
    return end, calls, errors


_HERMES_OPEN, _HERMES_CLOSE = "<tool_call>", "</tool_call>"


def parse_hermes(text: str) -> ParsedText:
    """`<tool_call>{json}</tool_call>` blocks (the closing tag may be missing at the end),
    or, with no block, the whole text as one bare JSON call (or a list of them)."""
    content, reasoning = split_reasoning(text)
    parsed = ParsedText(content, reasoning)
    stripped = content.strip()
    if _HERMES_OPEN not in content:
        if stripped[:1] in ("{", "[") and '"name"' in stripped and json_end(stripped, 0) == len(stripped):
            _, parsed.calls, parsed.errors = _decode_call_json(stripped, 0, "tool call")
            parsed.content = "" if parsed.calls and not parsed.errors else content
        return parsed
    kept: list[str] = []
    pos, closing = 0, 0
    while (opened := content.find(_HERMES_OPEN, pos)) != -1:
        kept.append(content[pos:opened])
        body = opened + len(_HERMES_OPEN)
        start = _skip_space(content, body)
        if closing != -1 and closing < body:  # searched again only past the last one: linear time
            closing = content.find(_HERMES_CLOSE, body)
        if start < len(content) and content[start] in "{[":
            end, calls, errors = _decode_call_json(content, start, "tool call")
            parsed.calls += calls
            parsed.errors += errors
            after = _skip_space(content, end)
            if content.startswith(_HERMES_CLOSE, after):
                end = after + len(_HERMES_CLOSE)
            elif errors and closing != -1:  # skip the unreadable block up to its tag
                end = closing + len(_HERMES_CLOSE)
        else:
            parsed.errors.append('tool call must be a JSON object with "name" and "arguments"')
            end = len(content) if closing == -1 else closing + len(_HERMES_CLOSE)
        if parsed.errors:  # keep what could not be read in the text, so the transcript shows it
            kept.append(content[opened:end])
        pos = end
    kept.append(content[pos:])
    parsed.content = "".join(kept).strip()
    return parsed


def parse_llama3_json(text: str) -> ParsedText:
    """JSON calls making up the whole text (after an optional `<|python_tag|>`),
    separated by `;` or whitespace; text that does not start with `{` is plain content."""
    content, reasoning = split_reasoning(text)
    body = content.strip().removeprefix("<|python_tag|>").lstrip()
    if not body.startswith("{"):
        return ParsedText(content, reasoning)
    parsed = ParsedText("", reasoning)
    pos = 0
    while pos < len(body):
        if body[pos] != "{":
            parsed.errors.append(f"tool calls must be JSON objects separated by ';' (found {body[pos:pos + 20]!r})")
            break
        pos, calls, errors = _decode_call_json(body, pos, "tool call")
        parsed.calls += calls
        parsed.errors += errors
        pos = _skip_space(body, pos, extra=";")
    if parsed.errors:
        parsed.content = content
    return parsed


_MISTRAL_TAG = "[TOOL_CALLS]"
_MISTRAL_NAMED = re.compile(r"\s*([A-Za-z0-9_.:-]+)\s*\[ARGS\]\s*")


def parse_mistral(text: str) -> ParsedText:
    """`[TOOL_CALLS]` followed by a JSON list (or object) of calls (Mistral v3) or by
    `name[ARGS]{json}` (v11+), possibly repeated; the text before the tag is content."""
    content, reasoning = split_reasoning(text)
    first = content.find(_MISTRAL_TAG)
    if first == -1:
        return ParsedText(content, reasoning)
    parsed = ParsedText(content[:first].strip(), reasoning)
    for segment in content[first:].split(_MISTRAL_TAG)[1:]:
        start = _skip_space(segment, 0)
        if segment[start:start + 1] in ("[", "{"):
            end, calls, errors = _decode_call_json(segment, start, "tool call")
        elif (named := _MISTRAL_NAMED.match(segment)) and segment[named.end():named.end() + 1] == "{":
            end, args, errors = _decode_json_at(segment, named.end(), "tool call arguments")
            calls = [] if errors else [{"name": named.group(1), "arguments": args}]
        else:
            end, calls, errors = len(segment), [], [f"{_MISTRAL_TAG} must be followed by a JSON list of calls"]
        parsed.calls += calls
        parsed.errors += errors
        if segment[end:].strip():
            parsed.errors.append(f"unexpected text after the tool calls: {segment[end:end + 20]!r}")
    if parsed.errors:
        parsed.content = content
    return parsed


def parse_pythonic(text: str) -> ParsedText:
    """A Python list of calls with literal keyword arguments making up the whole text
    (optionally inside `<|python_start|>...<|python_end|>`); other text is content."""
    content, reasoning = split_reasoning(text)
    body = content.strip().removeprefix("<|python_start|>").removesuffix("<|python_end|>").strip()
    if not (body.startswith("[") and body.endswith("]") and "(" in body):
        return ParsedText(content, reasoning)
    parsed = ParsedText("", reasoning)
    try:
        tree = ast.parse(body, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        parsed.content = content
        parsed.errors.append(f"tool calls are not a valid Python list of calls ({type(e).__name__})")
        return parsed
    if not isinstance(tree, ast.List):
        parsed.content = content
        parsed.errors.append("tool calls must be a Python list of calls")
        return parsed
    for node in tree.elts:
        call, error = _pythonic_call(node)
        if error:
            parsed.errors.append(error)
        else:
            parsed.calls.append(call)  # type: ignore[arg-type]
    if parsed.errors:
        parsed.content = content
    return parsed


def _pythonic_call(node: ast.expr) -> tuple[dict[str, Any] | None, str | None]:
    if not isinstance(node, ast.Call) or not isinstance(node.func, (ast.Name, ast.Attribute)):
        return None, "each tool call must look like name(argument=value, ...)"
    name = ast.unparse(node.func)
    if node.args:
        return None, f"{name}: pass arguments by keyword (name=value)"
    args: dict[str, Any] = {}
    for kw in node.keywords:
        if kw.arg is None:
            return None, f"{name}: **kwargs is not allowed in a tool call"
        try:
            value = ast.literal_eval(kw.value)
            json.dumps(value, allow_nan=False)  # JSON-representable and finite
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            return None, (f"{name}: argument {kw.arg!r} must be a JSON-like literal "
                          "(finite numbers, strings, lists, dicts)")
        args[kw.arg] = value
    return {"name": name, "arguments": args}, None


def _skip_space(text: str, pos: int, extra: str = "") -> int:
    while pos < len(text) and (text[pos].isspace() or text[pos] in extra):
        pos += 1
    return pos


ToolParser = Callable[[str], ParsedText]

TOOL_PARSERS: dict[str, ToolParser] = {
    "hermes": parse_hermes,
    "llama3_json": parse_llama3_json,
    "mistral": parse_mistral,
    "pythonic": parse_pythonic,
}


def get_tool_parser(name: str | None) -> ToolParser:
    """The parser called `name` (None: the default, `hermes`); AgentHubError if unknown."""
    try:
        return TOOL_PARSERS[name or DEFAULT_TOOL_PARSER]
    except KeyError:
        raise AgentHubError(f"unknown tool parser {name!r} (known: {', '.join(sorted(TOOL_PARSERS))})") from None


# What a chat template (or its tokenizer's vocabulary) says about the format its model
# was trained to call tools in, most specific first: Mistral's and Hermes' markers are
# unambiguous; Llama 3.2/4 pythonic templates also carry Llama's `ipython` role, so the
# pythonic instructions are looked for before the Llama 3 JSON signs.
_TEMPLATE_SIGNS: list[tuple[str, re.Pattern[str], str]] = [
    ("mistral", re.compile(re.escape(_MISTRAL_TAG)), "writes calls after [TOOL_CALLS]"),
    ("hermes", re.compile(re.escape(_HERMES_OPEN)), "writes calls in <tool_call> blocks"),
    ("pythonic", re.compile(r"<\|python_start\|>|python list|func_name1\("),
     "asks for calls as a Python list of name(argument=value) calls"),
    ("llama3_json", re.compile(r"<\|python_tag\|>|\bipython\b"),
     "has Llama 3's ipython role or <|python_tag|> (JSON calls)"),
]
_TOKEN_SIGNS: list[tuple[str, str]] = [
    ("mistral", _MISTRAL_TAG), ("hermes", _HERMES_OPEN), ("pythonic", "<|python_start|>"),
    ("llama3_json", "<|python_tag|>"),
]


def detect_tool_parser(template: str | dict[str, str] | list[dict[str, str]] | None,
                       special_tokens: Iterable[str] = ()) -> tuple[str | None, str]:
    """(the parser for the tool-call format a chat template uses, why), read from the
    template's text, else from the tokenizer's special tokens; (None, why) when neither
    tells. `template` is `tokenizer.chat_template`: one Jinja string, or named templates
    (a dict, or HF's list of `{"name", "template"}`) of which `tool_use` is the one
    rendered when tools are passed. Pure text matching: nothing is rendered here."""
    if isinstance(template, list):
        template = {t.get("name", ""): t.get("template", "") for t in template if isinstance(t, dict)}
    if isinstance(template, dict):
        template = template.get("tool_use") or template.get("default") or "\n".join(map(str, template.values()))
    text = template or ""
    for name, sign, what in _TEMPLATE_SIGNS:
        if sign.search(text):
            return name, f"the chat template {what}"
    tokens = set(special_tokens)
    for name, token in _TOKEN_SIGNS:
        if token in tokens:
            return name, f"the tokenizer has the special token {token}"
    return None, "neither the chat template nor the tokenizer names a tool-call format"


def register_tool_parser(name: str, parser: ToolParser) -> None:
    """Make another format available by name (`tool_parser=name` on agents and envs)."""
    TOOL_PARSERS[name] = parser
