"""User-facing errors: the CLI prints these as one line and exits non-zero, never a
traceback. Raise them for mistakes a user can fix (bad id, bad spec, missing file)."""


class AgentHubError(Exception):
    """A mistake the user can fix; its message is the whole explanation."""


class UnknownEnvError(AgentHubError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
