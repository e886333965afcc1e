"""A history window: what a policy sees of a long episode.

By default the policy's prompt is the whole conversation so far (token-in-token-out:
each turn's prompt extends the last). With a window of `history=K`, the prompt is the
episode's opening messages (the system prompt and the first observation, which states
the goal) followed by the last K exchanges: each exchange is one assistant turn and the
environment's messages after it, so the current observation is always there when K >= 1.

A windowed prompt is not a prefix of the next turn's: each turn is encoded afresh and
recorded whole (`Turn.token_layout == WINDOW`, `prompt_token_ids` = the complete prompt),
so training lays each turn out as its own sequence (`batch.trajectory_sequences`) and SFT
makes one example per demonstrated step (`sft.demonstration_sequences`). Small models
learn far faster from these short, focused prompts than from whole chats.
"""

from __future__ import annotations

from agenthub.errors import AgentHubError
from agenthub.types import Message

WINDOW = "window"  # the token layout of a turn whose prompt_token_ids are its whole prompt


def check_history(history: object) -> int | None:
    """`history` as a window size: None (the whole conversation) or an int >= 0.
    AgentHubError in one line otherwise."""
    if history is None:
        return None
    if isinstance(history, bool) or not isinstance(history, int) or history < 0:
        raise AgentHubError(f"history must be a whole number of exchanges >= 0 (or none for the whole "
                            f"conversation), not {history!r}")
    return history


def window(messages: list[Message], history: int | None) -> list[Message]:
    """The messages a policy with a `history`-exchange window sees; `messages` itself
    when `history` is None. The opening messages run up to the first assistant turn;
    with `history=0` only their system messages are kept, then the current observation."""
    if history is None:
        return messages
    starts = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    if not history and starts:
        return [m for m in messages[:starts[0]] if m.get("role") == "system"] + messages[starts[-1] + 1:]
    if len(starts) <= history:
        return messages
    return messages[:starts[0]] + messages[starts[len(starts) - history]:]
