"""The env server's shared-secret token: where it comes from and how it is checked.

The server and its clients read the same secret from `AGENTHUB_SERVER_TOKEN`, or from
the file `AGENTHUB_SERVER_TOKEN_FILE` names (`agenthub serve --token-file` too). A
client sends it as `Authorization: Bearer TOKEN` when it opens a session; the server
compares it in constant time. A server bound beyond loopback, or on a unix socket
(which any local user may reach), refuses to start without one.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path

from agenthub.errors import AgentHubError

TOKEN_ENV = "AGENTHUB_SERVER_TOKEN"
TOKEN_FILE_ENV = "AGENTHUB_SERVER_TOKEN_FILE"
HEADER = "authorization"


def load_token(token_file: str | Path | None = None) -> str | None:
    """The token from `token_file`, else `$AGENTHUB_SERVER_TOKEN`, else the file named by
    `$AGENTHUB_SERVER_TOKEN_FILE`; None when none is set. Surrounding whitespace (a file's
    trailing newline) is dropped. Raises AgentHubError for an unreadable or empty file."""
    if token_file is None and os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    path = token_file if token_file is not None else os.environ.get(TOKEN_FILE_ENV)
    if not path:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise AgentHubError(f"cannot read the server token from {path}: {getattr(e, 'strerror', None) or e}") from None
    if not token:
        raise AgentHubError(f"the server token file {path} is empty")
    return token


def new_token() -> str:
    """A fresh random token (256 bits), e.g. for a server this process starts itself."""
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def token_required(host: str, uds: str | None) -> bool:
    """Whether a server listening there must have a token."""
    return uds is not None or not is_loopback(host)


def bearer(token: str) -> dict[str, str]:
    """The handshake header carrying `token`."""
    return {"Authorization": f"Bearer {token}"}


def token_matches(header: str | None, token: str) -> bool:
    """Whether an `Authorization` header value carries `token`, in constant time."""
    presented = (header or "").strip()
    if presented[:7].lower() == "bearer ":
        presented = presented[7:].strip()
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), token.encode("utf-8"))
