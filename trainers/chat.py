"""Conversations as tokens: the chat template of from-scratch models, and token-in-token-out.

Token-in-token-out means the ids the policy sampled are the ids the trainer learns from.
Re-tokenising the decoded text of a turn can give different ids (BPE has many ways to
spell one string), which silently turns on-policy RL into off-policy RL. So an episode's
ids are built incrementally: the first prompt is tokenised once, each sampled turn is
appended as sampled, and only the messages the env sent since are tokenised and
appended. `ChatFormat.delta` finds those new messages' text by rendering the chat
template twice and cutting at the end of the last assistant turn, which works with any
template whose rendering of a longer conversation extends that of a shorter one (ours,
Qwen's, Llama's).

Loss masks follow from the same layout: 1 on assistant tokens (the end-of-turn token
included), 0 on everything the environment or the template contributed.
"""

from __future__ import annotations

from typing import Any

from agenthub.types import Message, ToolSpec

IM_START, IM_END, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"

# ChatML with tool specs in the system turn and Hermes/Qwen `<tool_call>` blocks, which
# `agenthub.parse_action` reads back. Turns are joined by "\n" *before* each
# `<|im_start|>`, so an assistant turn ends exactly at its `<|im_end|>`: the token that
# stops sampling is the last token of the turn, with nothing dangling after it.
CHAT_TEMPLATE = (
    "{%- if tools -%}"
    "{{- '<|im_start|>system\\n' -}}"
    "{%- if messages and messages[0].role == 'system' -%}{{- messages[0].content + '\\n\\n' -}}{%- endif -%}"
    "{{- '# Tools\\nCall a tool by writing <tool_call>{\"name\": NAME, \"arguments\": {...}}</tool_call>.\\n' -}}"
    "{%- for tool in tools -%}{{- tool | tojson -}}{{- '\\n' -}}{%- endfor -%}"
    "{{- '<|im_end|>' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if not (tools and loop.first and message.role == 'system') -%}"
    "{%- if tools or not loop.first -%}{{- '\\n' -}}{%- endif -%}"
    "{{- '<|im_start|>' + message.role + '\\n' -}}"
    "{%- if message.content is string -%}{{- message.content -}}"
    "{%- elif message.content -%}{%- for part in message.content -%}"
    "{%- if part.type == 'text' -%}{{- part.text -}}{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{%- for call in message.tool_calls or [] -%}"
    "{{- '<tool_call>{\"name\": \"' + call.function.name + '\", \"arguments\": ' -}}"
    "{%- if call.function.arguments is string -%}{{- call.function.arguments -}}"
    "{%- else -%}{{- call.function.arguments | tojson -}}{%- endif -%}"
    "{{- '}</tool_call>' -}}"
    "{%- endfor -%}"
    "{{- '<|im_end|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '\\n<|im_start|>assistant\\n' -}}{%- endif -%}"
)


class ChatFormat:
    """Renders and tokenises conversations for one tokenizer (any HF tokenizer with a
    chat template whose end-of-turn token is its `eos_token`)."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.eos_text: str = tokenizer.eos_token
        self.eos_id: int = tokenizer.eos_token_id

    def render(self, messages: list[Message], tools: list[ToolSpec] | None, generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False,
                                                  add_generation_prompt=generation_prompt)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i != self.eos_id], skip_special_tokens=True)

    def prompt(self, messages: list[Message], tools: list[ToolSpec] | None) -> list[int]:
        """The first prompt of an episode, generation prompt included."""
        return self.encode(self.render(messages, tools, True))

    def delta(self, seen: list[Message], messages: list[Message], tools: list[ToolSpec] | None) -> list[int]:
        """Ids to append after the last assistant turn of `seen` so that the sequence
        becomes the prompt of `messages` (which extends `seen`)."""
        before = self.render(seen, tools, False)
        cut = before.rfind(self.eos_text) + len(self.eos_text)
        after = self.render(messages, tools, True)
        if after[:cut] != before[:cut]:
            raise ValueError("the chat template does not render conversations incrementally; "
                             "token-in-token-out needs one that does")
        return self.encode(after[cut:])

    def action(self, text: str) -> list[int]:
        """The ids of an assistant turn whose content is `text`, end-of-turn included: the
        tokens choice mode scores and SFT learns."""
        return self.encode(text) + [self.eos_id]

    def conversation(self, messages: list[Message], tools: list[ToolSpec] | None) -> tuple[list[int], list[int]]:
        """(ids, loss mask) of a whole conversation, laid out exactly as a rollout lays it
        out, with mask 1 on assistant tokens. For SFT on demonstrations."""
        ids: list[int] = []
        mask: list[int] = []
        seen: list[Message] = []
        for i, msg in enumerate(messages):
            if msg["role"] != "assistant":
                continue
            context = messages[:i]
            prompt = self.delta(seen, context, tools) if seen else self.prompt(context, tools)
            rendered = self.render(messages[:i + 1], tools, False)
            start = len(self.render(context, tools, True))
            answer = self.encode(rendered[start:rendered.rindex(self.eos_text) + len(self.eos_text)])
            ids += prompt + answer
            mask += [0] * len(prompt) + [1] * len(answer)
            seen = messages[:i + 1]
        return ids, mask

    def matches_template(self, ids: list[int], messages: list[Message], tools: list[ToolSpec] | None) -> bool:
        """Debug check: are `ids` what `apply_chat_template` gives for `messages` (with the
        generation prompt)? False when the policy sampled a non-canonical spelling of a
        turn, which is allowed, but should be rare."""
        return ids == self.prompt(messages, tools)
