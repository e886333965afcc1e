"""The env server's wire protocol: frame limits and close codes, request parsing, and
the per-connection session record. Shared by `agenthub.server` and the OpenEnv bridge
(`agenthub.openenv_bridge`) without either importing the other back."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from agenthub.env import Env

PROTOCOL = 1
CAPACITY_CLOSE_CODE = 1013  # "try again later"
IDLE_CLOSE_CODE = 4000
TIMEOUT_CLOSE_CODE = 4001
MAX_FRAME_BYTES = 16 * 1024 * 1024
MAX_ID_CHARS = 256
WORKERS = 64  # threads for env calls (plus one per call past op_timeout); the default --max-sessions gets one each
OPS = ("reset", "step", "oracle_actions", "ping")
FIELDS = {"reset": {"seed", "options"}, "step": {"action"}, "oracle_actions": set(), "ping": set()}

def _fallback(x: Any) -> Any:
    if hasattr(x, "tolist"):  # numpy arrays and scalars
        return x.tolist()
    if isinstance(x, (set, tuple)):
        return list(x)
    return str(x)


# One encoder for every answer: json.dumps(default=...) builds a new encoder per call.
_encode = json.JSONEncoder(default=_fallback).encode


def to_json(obj: Any) -> str:
    """JSON for env outputs, which may hold numpy scalars/arrays or other odd values.
    Raises ValueError for a circular structure, RecursionError for one nested too deep."""
    return _encode(obj)


class BadRequest(ValueError):
    """A frame that is not a well-formed request; `rid` is its id when that was readable."""

    def __init__(self, message: str, rid: int | str | None = None):
        super().__init__(message)
        self.rid = rid


def parse_request(text: str) -> tuple[int | str | None, str, dict[str, Any]]:
    """(id, op, arguments) of one request frame. Raises BadRequest naming what is wrong:
    not JSON (including nesting too deep to decode and numbers too long), not an object,
    an id that is not a short string or an integer, an unknown op, an unknown field, or a
    field of the wrong type (seed: a non-negative integer below 2**64; options: an object;
    action: a string or an assistant-message object)."""
    try:
        request = json.loads(text)
    except (ValueError, RecursionError) as e:  # RecursionError: `[[[[...` nested too deep
        raise BadRequest(f"the frame is not JSON: {str(e)[:200]}") from None
    if not isinstance(request, dict):
        raise BadRequest(f"a request is a JSON object, not {_json_type(request)}")
    rid = request.get("id")
    if not (rid is None or (isinstance(rid, int) and not isinstance(rid, bool) and abs(rid) < 2**63)
            or (isinstance(rid, str) and len(rid) <= MAX_ID_CHARS)):
        raise BadRequest(f"id must be an integer below 2**63 in size or a string of at most {MAX_ID_CHARS} "
                         f"characters, not {_json_type(rid)}")
    op = request.get("op")
    if not isinstance(op, str) or op not in OPS:
        what = f"{op!r}"[:80] if isinstance(op, str) else _json_type(op)
        raise BadRequest(f"op must be one of {', '.join(OPS)}; got {what}", rid)
    extra = sorted(set(request) - {"id", "op"} - FIELDS[op])
    if extra:
        raise BadRequest(f"op {op!r} takes no field {extra[0][:80]!r} "
                         f"(fields: {', '.join(['id', 'op', *sorted(FIELDS[op])])})", rid)
    seed, options = request.get("seed"), request.get("options")
    if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**64):
        raise BadRequest(f"seed must be null or an integer in [0, 2**64), not {_json_type(seed)}", rid)
    if options is not None and not isinstance(options, dict):
        raise BadRequest(f"options must be null or an object, not {_json_type(options)}", rid)
    if op == "step" and not isinstance(request.get("action"), (str, dict)):
        raise BadRequest(f"action must be a string or an assistant message object, "
                         f"not {_json_type(request.get('action'))}", rid)
    return rid, op, {k: v for k, v in request.items() if k in FIELDS[op]}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer out of range" if abs(value) >= 2**63 else "a negative integer" if value < 0 else "an integer"
    names = {float: "a number", str: "a string", list: "an array", dict: "an object"}
    return names.get(type(value), type(value).__name__)


@dataclass
class Session:
    id: str
    websocket: Any
    env: Env | None = None
    last_active: float = field(default_factory=time.monotonic)
    busy: bool = False
    closed: bool = False
    stale: asyncio.Future[Any] | None = None  # an env call that outlived op_timeout
