"""Conversations as tokens, with any model's own chat template: token-in-token-out.

Token-in-token-out means the ids the policy sampled are the ids the trainer learns from.
Re-tokenising the decoded text of a turn can give different ids (BPE has many ways to
spell one string), which silently turns on-policy RL into off-policy RL. So an episode's
ids are built incrementally: the first prompt is tokenised once, each sampled turn is
appended as sampled, and only the messages the env sent since are tokenised and
appended. Loss masks follow from the same layout: 1 on assistant tokens (the
end-of-turn token included), 0 on everything the environment or the template contributed.

How the new messages are tokenised is the episode's *token layout*, recorded on every
turn (`Turn.token_layout`):

- `"template"`: the chat template renders the whole conversation, and the text after
  the end of the last assistant turn is appended. For templates whose rendering of a
  longer conversation extends that of a shorter one (ours, Qwen2.5's, Llama 3.x's,
  SmolLM2's) the episode's ids are then exactly `apply_chat_template`'s whenever the
  policy sampled the canonical spelling of its turns.
- `"prefix"` (prefix-preserving): templates that rewrite earlier turns as the
  conversation grows cannot give that. Qwen3-style templates drop earlier turns'
  reasoning and give only the last turn an empty think block; Mistral's move the system
  prompt and the tool list to the last user message. There the sampled ids are kept and
  the env's new messages are rendered on their own: after a fixed base (the episode's
  opening messages and the last assistant turn as it was recorded), cut after that
  turn's end-of-turn token. Nothing already in the episode is ever re-tokenised.

`ChatFormat` tells the two apart when it is made, by rendering a probe conversation
(system, user, a tool call, its result, an answer, a second question, an answer); a
template that passes the probe but stops extending in some episode switches that
episode to `"prefix"` from that turn on. Either way a warning says so, once per template.

Templates without tool support are completed, not bypassed: when a template ignores
`tools` (SmolLM2's), the tool specs go into the system message in the format of
`tools_prompt` (Hermes `<tool_call>` blocks, which the default `hermes` parser reads);
when it does not render assistants' `tool_calls`, each call is written into the
assistant's content as `<tool_call>{"name": ..., "arguments": ...}</tool_call>`.

The tool parser (`agenthub.tool_parsers`) that reads this model's calls is picked from the
template too (`ChatFormat.tool_parser`, `pick_tool_parser`): the format the template
writes calls in (`<tool_call>` -> `hermes`, `[TOOL_CALLS]` -> `mistral`, a Python list of
calls -> `pythonic`, Llama 3's `ipython` role or `<|python_tag|>` -> `llama3_json`), and
`hermes` for a template that ignores `tools`, since the tools prompt asks for that.

Every tokenising path encodes message content as literal text (`chat_text`): a control-
token string inside a message (`<|im_end|>`, `<|eot_id|>`, `</s>`, `<tool_call>` in a
tool's output) is encoded as the plain text it is, never as a control id.
"""

from __future__ import annotations

import json
import sys
import threading
import warnings
from typing import Any, Literal

from agenthub.errors import AgentHubError
from agenthub.tool_parsers import DEFAULT_TOOL_PARSER, detect_tool_parser, get_tool_parser
from agenthub.trainers.chat_text import LiteralText, Marks
from agenthub.types import Message, ToolSpec, text_of

Layout = Literal["template", "prefix"]

IM_START, IM_END, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"

# ChatML with tool specs in the system turn and Hermes/Qwen `<tool_call>` blocks, which
# `agenthub.parse_action` reads back. Turns are joined by "\n" *before* each
# `<|im_start|>`, so an assistant turn ends exactly at its `<|im_end|>`: the token that
# stops sampling is the last token of the turn, with nothing dangling after it.
CHAT_TEMPLATE = (
    # Content is a string or a list of parts (what OpenAI-compatible servers such as vLLM pass).
    "{%- macro text(content) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- elif content -%}{%- for part in content -%}"
    "{%- if part.type == 'text' -%}{{- part.text -}}{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{%- if tools -%}"
    "{{- '<|im_start|>system\\n' -}}"
    "{%- if messages and messages[0].role == 'system' -%}{{- text(messages[0].content) + '\\n\\n' -}}{%- endif -%}"
    "{{- '# Tools\\nCall a tool by writing <tool_call>{\"name\": NAME, \"arguments\": {...}}</tool_call>.\\n' -}}"
    "{%- for tool in tools -%}{{- tool | tojson -}}{{- '\\n' -}}{%- endfor -%}"
    "{{- '<|im_end|>' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if not (tools and loop.first and message.role == 'system') -%}"
    "{%- if tools or not loop.first -%}{{- '\\n' -}}{%- endif -%}"
    "{{- '<|im_start|>' + message.role + '\\n' -}}"
    "{{- text(message.content) -}}"
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


def tools_prompt(tools: list[ToolSpec]) -> str:
    """The tool specs as system-message text, for templates that ignore `tools`: one
    OpenAI function schema (JSON) per line inside `<tools></tools>`, then how to call
    one, in the Hermes format the default `hermes` tool parser reads."""
    lines = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    return ("# Tools\n\nYou may call one or more functions. Their signatures, one JSON schema per line:\n"
            f"<tools>\n{lines}\n</tools>\n\n"
            f'To call a function, write {TOOL_CALL_OPEN}{{"name": NAME, "arguments": {{...}}}}{TOOL_CALL_CLOSE}, '
            "one block per call.")


def call_text(name: str, arguments: Any) -> str:
    """A tool call as a Hermes block, the way `tools_prompt` tells the model to write it."""
    return f"{TOOL_CALL_OPEN}{json.dumps({'name': name, 'arguments': arguments}, ensure_ascii=False)}{TOOL_CALL_CLOSE}"


# the probe conversation: one of each kind of turn a multi-turn tool episode has, in the
# shape strict templates demand (Mistral: user/assistant alternation, 9-character call ids)
_PROBE_TOOLS: list[ToolSpec] = [{"type": "function", "function": {
    "name": "probe_lookup", "description": "Look a word up.",
    "parameters": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}}}]
_PROBE: list[Message] = [
    {"role": "system", "content": "You answer questions."},
    {"role": "user", "content": "What is a probe?"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "probecall1", "type": "function", "function": {
        "name": "probe_lookup", "arguments": '{"word": "probe"}'}}]},
    {"role": "tool", "tool_call_id": "probecall1", "name": "probe_lookup", "content": "an instrument"},
    {"role": "assistant", "content": "An instrument."},
    {"role": "user", "content": "Thank you."},
    {"role": "assistant", "content": "You are welcome."},
]
_warned: set[tuple[int, str]] = set()
_warned_lock = threading.Lock()
_told_parser: set[tuple[int, str, str]] = set()


class ChatFormat:
    """Renders and tokenises conversations for one tokenizer with its own chat template
    (any HF tokenizer whose end-of-turn token is its `eos_token`); see the module docstring.

    Attributes set by the probe: `layout` ("template" or "prefix"), `layout_reason`
    (why "prefix", else ""), `renders_tools`, `renders_tool_calls`; and the tool parser
    the template's format needs, `tool_parser` with `tool_parser_reason`.
    """

    def __init__(self, tokenizer: Any):
        self.name = getattr(tokenizer, "name_or_path", "") or "this model"
        if not getattr(tokenizer, "chat_template", None):
            raise AgentHubError(f"the tokenizer of {self.name} has no chat template; agenthub needs one to lay out "
                                "conversations (set `tokenizer.chat_template`)")
        self.tokenizer = tokenizer
        self.eos_text: str = tokenizer.eos_token
        self.eos_id: int = tokenizer.eos_token_id
        self.text = LiteralText(tokenizer)
        self.renders_tools = self.renders_tool_calls = True  # while probing, the template gets everything
        self.renders_tools = self._renders_tools()
        self.renders_tool_calls = self._renders_calls()
        self.tool_parser, self.tool_parser_reason = self._detect_tool_parser()
        if self.eos_text is None:  # prompts can still be encoded (a scorer needs no more)
            self.layout_reason = "the tokenizer has no end-of-turn (eos) token"
        else:
            self.layout_reason = self._probe_layout()
            if self.layout_reason:
                self._warn(self.layout_reason)
        self.layout: Layout = "prefix" if self.layout_reason else "template"

    # -- tool-call format -----------------------------------------------------------------

    def _detect_tool_parser(self) -> tuple[str, str]:
        if not self.renders_tools:
            return DEFAULT_TOOL_PARSER, ("the chat template ignores `tools`, so they reach the model in agenthub's "
                                         "tools prompt, which asks for <tool_call> blocks")
        added = getattr(self.tokenizer, "get_added_vocab", dict)()
        found, why = detect_tool_parser(self.tokenizer.chat_template, added)
        return (found, why) if found else (DEFAULT_TOOL_PARSER, f"{why}; the default")

    def pick_tool_parser(self, explicit: str | None = None) -> str:
        """The tool parser for this model: `explicit` (a `tool_parser` option) if given,
        else the one the template calls for. Says which on stderr, once per template and
        choice. AgentHubError if `explicit` is not a known parser."""
        if explicit is not None:
            get_tool_parser(explicit)
        choice = explicit or self.tool_parser
        if not explicit:
            why = self.tool_parser_reason
        elif explicit == self.tool_parser:
            why = "the tool_parser option"
        else:
            why = f"the tool_parser option (the template suggests {self.tool_parser!r}: {self.tool_parser_reason})"
        key = (hash(str(self.tokenizer.chat_template)), choice, why)
        with _warned_lock:
            if key in _told_parser:
                return choice
            _told_parser.add(key)
        print(f"agenthub: reading the tool calls of {self.name} with the {choice!r} parser: {why}", file=sys.stderr)
        return choice

    # -- rendering -----------------------------------------------------------------------

    def render(self, messages: list[Message], tools: list[ToolSpec] | None, generation_prompt: bool) -> str:
        """The conversation as the chat template renders it (after `template_input`)."""
        marks = Marks(self.text)
        return marks.reveal(self._render(messages, tools, generation_prompt, marks))

    def template_input(self, messages: list[Message], tools: list[ToolSpec] | None,
                       marks: Marks | None = None) -> tuple[list[dict[str, Any]], list[ToolSpec] | None]:
        """(messages, tools) as handed to the template: content as text, tool-call
        arguments as objects (what HF templates expect), `reasoning` also as
        `reasoning_content`; tools in the system message and calls in the content where
        the template has no place for them; control strings hidden by `marks`."""
        hide = marks.hide if marks else (lambda value, role: value)
        out = []
        for m in messages:
            msg = {k: v for k, v in m.items() if k not in ("content", "tool_calls") and v is not None}
            msg["content"] = text_of(m)
            calls = [_template_call(c) for c in m.get("tool_calls") or [] if isinstance(c, dict)]
            if calls and self.renders_tool_calls:
                msg["tool_calls"] = calls
            elif calls:
                msg["content"] += "".join(("\n" if msg["content"] or i else "") + call_text(
                    c["function"]["name"], c["function"]["arguments"]) for i, c in enumerate(calls))
            if isinstance(m.get("reasoning"), str) and "reasoning_content" not in m:
                msg["reasoning_content"] = m["reasoning"]
            out.append(hide(msg, str(msg.get("role"))))
        hidden_tools = [hide(t, "env") for t in tools or []]
        if hidden_tools and not self.renders_tools:
            text = tools_prompt(hidden_tools)
            if out and out[0].get("role") == "system":
                out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{text}" if out[0]["content"] else text}
            else:
                out.insert(0, {"role": "system", "content": text})
            hidden_tools = []
        return out, hidden_tools or None

    def _render(self, messages: list[Message], tools: list[ToolSpec] | None, generation_prompt: bool,
                marks: Marks) -> str:
        msgs, specs = self.template_input(messages, tools, marks)
        return self.tokenizer.apply_chat_template(msgs, tools=specs, tokenize=False,
                                                  add_generation_prompt=generation_prompt)

    # -- tokens ----------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Ids of template text in which every control string is structure (as
        `tokenizer.encode`); message content goes through `encode_conversation`."""
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        """The text of sampled ids, end-of-turn and padding dropped. Other control tokens
        stay: some formats mark tool calls with one (Mistral's `[TOOL_CALLS]`), and the
        tool parser must see what the model wrote."""
        drop = {self.eos_id, self.tokenizer.pad_token_id}
        return self.tokenizer.decode([i for i in ids if i not in drop], skip_special_tokens=False)

    def encode_conversation(self, messages: list[Message], tools: list[ToolSpec] | None,
                            generation_prompt: bool) -> list[int]:
        """The whole conversation in one render, content as literal text."""
        marks = Marks(self.text)
        return marks.encode(self._render(messages, tools, generation_prompt, marks))

    def prompt(self, messages: list[Message], tools: list[ToolSpec] | None) -> list[int]:
        """The first prompt of an episode, generation prompt included."""
        return self.encode_conversation(messages, tools, True)

    def delta(self, seen: list[Message], messages: list[Message], tools: list[ToolSpec] | None,
              layout: Layout | None = None) -> tuple[list[int], Layout]:
        """(ids to append after the last assistant turn of `seen` so that the sequence
        becomes the prompt of `messages`, which extends `seen`; the layout used).
        `layout` is the episode's so far (default: this template's); a "template"
        episode whose conversation stops extending gets "prefix" (and a warning)."""
        self._end_of_turn()
        marks = Marks(self.text)
        if (layout or self.layout) == "template":
            before = self._render(seen, tools, False, marks)
            cut = before.rfind(self.eos_text) + len(self.eos_text)
            after = self._render(messages, tools, True, marks)
            if after[:cut] == before[:cut]:
                return marks.encode(after[cut:]), "template"
            self._warn("a conversation stopped rendering incrementally")
        return marks.encode(self._new_messages(seen, messages, tools, marks)), "prefix"

    def _new_messages(self, seen: list[Message], messages: list[Message], tools: list[ToolSpec] | None,
                      marks: Marks) -> str:
        """The prefix layout's text for `messages[len(seen):]`: rendered after the
        opening messages and the last assistant turn, cut after that turn's end."""
        first = next((i for i, m in enumerate(seen) if m.get("role") == "assistant"), None)
        if first is None or seen[-1].get("role") != "assistant":
            raise ValueError("delta needs a conversation so far that ends with an assistant turn")
        base = seen[:first] + [seen[-1]]
        turns = self._render(base, tools, False, marks).count(self.eos_text)
        after = self._render(base + messages[len(seen):], tools, True, marks)
        cut = -len(self.eos_text)
        for _ in range(turns):
            cut = after.find(self.eos_text, cut + len(self.eos_text))
            if cut < 0:
                raise AgentHubError("the chat template renders the last assistant turn without its end-of-turn "
                                    f"token {self.eos_text!r}; it cannot be used token-in-token-out")
        return after[cut + len(self.eos_text):]

    def assistant_text(self, text: str) -> list[int]:
        """`text` as the model writes it in an assistant turn: its own added tokens
        (`<tool_call>`, `<think>`) as themselves, special-token strings as literal text."""
        marks = Marks(self.text)
        return marks.encode(marks.hide(text, "assistant"))

    def action(self, text: str) -> list[int]:
        """The ids of an assistant turn whose content is `text`, end-of-turn included: the
        tokens choice mode scores."""
        self._end_of_turn()
        return self.assistant_text(text) + [self.eos_id]

    def answer(self, context: list[Message], message: Message, tools: list[ToolSpec] | None) -> list[int]:
        """The ids of assistant `message` as the template writes it after the generation
        prompt of `context`, end-of-turn included: the tokens SFT teaches."""
        self._end_of_turn()
        marks = Marks(self.text)
        prompt = self._render(context, tools, True, marks)
        full = self._render([*context, message], tools, False, marks)
        end = full.rfind(self.eos_text)  # the message is last, and content holds no control string
        begin = len(prompt) if full.startswith(prompt) else self._after_generation_prompt(prompt, full, end)
        if begin < 0 or end < begin:
            raise AgentHubError("the chat template does not render an assistant turn after its own generation "
                                "prompt; agenthub cannot tell which tokens are the assistant's")
        return marks.encode(full[begin:end + len(self.eos_text)])

    def _end_of_turn(self) -> str:
        if self.eos_text is None:
            raise AgentHubError(f"the tokenizer of {self.name} has no eos token, so agenthub cannot tell where an "
                                "assistant turn ends; set `tokenizer.eos_token` to the end-of-turn token")
        return self.eos_text

    def _after_generation_prompt(self, prompt: str, full: str, end: int) -> int:
        """Where the last assistant turn begins in `full` when the template renders the
        context differently once an answer follows (Mistral's moves the system prompt):
        after the last occurrence, before `end`, of the generation prompt from its last
        control token on (e.g. `[/INST]`, `<|im_start|>assistant\n`); -1 if none."""
        last = max((prompt.rfind(c) for c in self.text.env_controls), default=-1)
        if last < 0:
            return -1
        found = full.rfind(prompt[last:], 0, end)
        return found + len(prompt) - last if found >= 0 else -1

    def conversation(self, messages: list[Message], tools: list[ToolSpec] | None) -> tuple[list[int], list[int]]:
        """(ids, loss mask) of a whole conversation, laid out exactly as a rollout lays it
        out (same layout rules), with mask 1 on assistant tokens. For SFT on demonstrations."""
        ids: list[int] = []
        mask: list[int] = []
        seen: list[Message] = []
        layout: Layout = self.layout
        for i, msg in enumerate(messages):
            if msg.get("role") != "assistant":
                continue
            context = messages[:i]
            if seen:
                prompt, layout = self.delta(seen, context, tools, layout)
            else:
                prompt = self.prompt(context, tools)
            answer = self.answer(context, msg, tools)
            ids += prompt + answer
            mask += [0] * len(prompt) + [1] * len(answer)
            seen = messages[:i + 1]
        return ids, mask

    def matches_template(self, ids: list[int], messages: list[Message], tools: list[ToolSpec] | None) -> bool:
        """Debug check: are `ids` what the template gives for `messages` in one render
        (with the generation prompt)? False when the policy sampled a non-canonical
        spelling of a turn, which is allowed but should be rare, and in the prefix layout."""
        return ids == self.prompt(messages, tools)

    # -- the probe -------------------------------------------------------------------------

    def _renders_tools(self) -> bool:
        hello: list[Message] = [{"role": "user", "content": "Hi."}]
        try:
            return self._raw(hello, _PROBE_TOOLS) != self._raw(hello, None)
        except Exception:  # a template that cannot render tools at all ignores them
            return False

    def _renders_calls(self) -> bool:
        try:
            rendered = self._raw(_PROBE[:3], _PROBE_TOOLS if self.renders_tools else None)
        except Exception:
            return False
        return rendered.count("probe_lookup") > (1 if self.renders_tools else 0)

    def _raw(self, messages: list[Message], tools: list[ToolSpec] | None) -> str:
        msgs, _ = self.template_input(messages, None)
        return self.tokenizer.apply_chat_template(msgs, tools=tools, tokenize=False)

    def _probe_layout(self) -> str:
        """Why this template needs the prefix layout ("" when it renders incrementally)."""
        marks = Marks(self.text)
        assistants = [i for i, m in enumerate(_PROBE) if m["role"] == "assistant"]
        try:
            for i, j in zip(assistants, assistants[1:]):
                before = self._render(_PROBE[:i + 1], _PROBE_TOOLS, False, marks)
                cut = before.rfind(self.eos_text) + len(self.eos_text)
                if cut < len(self.eos_text):
                    return f"it does not end assistant turns with the end-of-turn token {self.eos_text!r}"
                if self._render(_PROBE[:j], _PROBE_TOOLS, True, marks)[:cut] != before[:cut]:
                    return "rendering a longer conversation changes the text of earlier turns"
        except Exception as e:  # noqa: BLE001 - any template error means: not incremental
            return f"it cannot render a probe conversation incrementally ({type(e).__name__}: {e})"
        return ""

    def _warn(self, reason: str) -> None:
        key = (hash(str(self.tokenizer.chat_template)), reason)  # str: named templates are a dict
        with _warned_lock:
            if key in _warned:
                return
            _warned.add(key)
        warnings.warn(f"the chat template of {self.name} does "
                      f"not render incrementally: {reason}. Episodes keep their sampled tokens and append the "
                      "env's new messages rendered on their own (token layout 'prefix', recorded on each turn)",
                      stacklevel=3)


def _template_call(call: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI tool call with its arguments as an object where they are a JSON object
    (HF chat templates index and `tojson` them)."""
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            decoded = json.loads(arguments)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            arguments = decoded
    out = {"type": "function", "function": {"name": function.get("name"), "arguments": arguments}}
    return {"id": call["id"], **out} if isinstance(call.get("id"), str) else out
