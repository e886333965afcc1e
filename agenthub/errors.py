"""User-facing errors: the CLI prints these as one line and exits non-zero, never a
traceback. Raise them for mistakes a user can fix (bad id, bad spec, missing file)."""

import difflib


class AgentHubError(Exception):
    """A mistake the user can fix; its message is the whole explanation."""


class UnknownEnvError(AgentHubError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def did_you_mean(name: str, known: list[str]) -> str:
    """"; did you mean a, b?" naming up to three of `known` close to `name`, or ""."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""
