"""`agenthub serve ENV_ID`: run an env behind the HTTP/WebSocket env server."""

from __future__ import annotations

import argparse
import errno
import json
from typing import Any

from agenthub.cli.arg_types import at_least, port, positive_seconds
from agenthub.errors import AgentHubError


def add_commands(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve an env over HTTP + WebSocket (one session per connection)")
    p.add_argument("env_id")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port, default=8700, help="0 picks a free port (printed on start)")
    p.add_argument("--uds", metavar="PATH", help="listen on a unix socket instead of host:port")
    p.add_argument("--max-sessions", type=at_least(1), default=64, help="refuse sessions beyond this many")
    p.add_argument("--idle-timeout", type=positive_seconds, default=600, help="close sessions idle this many seconds")
    p.add_argument("--op-timeout", type=positive_seconds, default=300,
                   help="seconds one op may take; a session whose op runs longer is closed")
    p.add_argument("--max-frame-bytes", type=at_least(1), default=16 * 1024 * 1024,
                   help="close connections that send a larger frame (code 1009)")
    p.add_argument("--token-file", metavar="PATH",
                   help="the shared-secret token clients must send (default: $AGENTHUB_SERVER_TOKEN or the file "
                        "$AGENTHUB_SERVER_TOKEN_FILE); required beyond loopback and on --uds")
    p.add_argument("--max-turns", type=at_least(1), default=None, help="override the env's turn limit")
    p.add_argument("--env-kwargs", default="{}", metavar="JSON", help="keyword arguments for the env")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from agenthub.auth import load_token
    from agenthub.server import serve
    try:
        env_kwargs = json.loads(args.env_kwargs)
    except ValueError as e:
        raise AgentHubError(f"--env-kwargs is not valid JSON: {e}") from None
    if not isinstance(env_kwargs, dict):
        raise AgentHubError("--env-kwargs must be a JSON object")
    try:
        serve(args.env_id, host=args.host, port=args.port, uds=args.uds, max_sessions=args.max_sessions,
              idle_timeout=args.idle_timeout, op_timeout=args.op_timeout, max_turns=args.max_turns,
              env_kwargs=env_kwargs, token=load_token(args.token_file), max_frame_bytes=args.max_frame_bytes)
    except OSError as e:
        if e.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        where = args.uds or f"{args.host}:{args.port}"
        raise AgentHubError(f"cannot listen on {where}: {e.strerror}") from None
    return 0
