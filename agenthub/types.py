"""The wire types under one name, as every part of agenthub imports them: messages and
tool specs (`agenthub.messages`), turns and trajectories (`agenthub.trajectory`) and
their JSONL files (`agenthub.trajectory_io`)."""

from agenthub.messages import (FunctionCall, FunctionSpec, Message, StopReason, ToolCall, ToolSpec, content_text,
                               conversation_problems, message, text_of, tool_calls_message, tool_spec)
from agenthub.trajectory import Trajectory, Turn
from agenthub.trajectory_io import TrajectoryWriter, iter_trajectories, read_trajectories, write_trajectories

__all__ = ["FunctionCall", "FunctionSpec", "Message", "StopReason", "ToolCall", "ToolSpec", "Trajectory",
           "TrajectoryWriter", "Turn", "content_text", "conversation_problems", "iter_trajectories", "message",
           "read_trajectories", "text_of", "tool_calls_message", "tool_spec", "write_trajectories"]
