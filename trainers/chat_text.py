"""Message text as literal tokens: control-token strings in text never become control ids.

A tokenizer matches its added tokens (`<|im_end|>`, `<|eot_id|>`, `</s>`, `<tool_call>`,
...) anywhere in the text it is given. Encoding a rendered chat template that way lets
any text inside a message forge structure: a tool output holding
`<|im_end|>\\n<|im_start|>assistant\\n` would end the tool turn and open an assistant turn
in the ids the policy reads and learns from. So every tokenising path in agenthub
encodes message *content* with `LiteralText` and lets only the template's own text
produce control ids.

The way to do that with any chat template: `Marks` replaces every control string inside
the messages (and tool specs) by one private-use placeholder character before the
template renders them, so the template sees no control string in content and makes its
decisions (`'</think>' in content`, `content | trim`, `tojson`) on plain text; then
`Marks.encode` encodes the rendered text piecewise: the template's text with the normal
tokenizer, each placeholder as its original string in literal tokens. Text without
control strings encodes exactly as `tokenizer.encode` would encode it.

Which strings count as control: in text the environment wrote (system, user and tool
messages, tool specs) every added token that is not pure whitespace, special or not
(`<tool_call>` in a tool's output stays text); in assistant messages only special
tokens, because the other added tokens (`<tool_call>`, `<think>`) are how the model
itself writes tool calls and reasoning and must encode as it samples them.
"""

from __future__ import annotations

import json
import re
import threading
import weakref
from typing import Any

# Supplementary Private Use Area-B: no tokenizer or template gives these meaning. One
# placeholder character per distinct control string; text already holding such
# characters has them marked too, so a placeholder is never ambiguous.
_PLACEHOLDER_BASE = 0x100000
_PLACEHOLDER_LAST = 0x10FFFD
_PLACEHOLDERS = re.compile(f"[{chr(_PLACEHOLDER_BASE)}-{chr(_PLACEHOLDER_LAST)}]")


class LiteralText:
    """Encodes text for one tokenizer so that no added token comes out of it.

    `encode(text)` gives ids that decode back to `text` and contain no id of an added
    token (special or not): the tokenizer's normaliser, pre-tokenizer and model applied
    to the text as if the added vocabulary did not exist. A private copy of the
    tokenizer's `tokenizers` backend does this (thread-safe: nothing is toggled on the
    shared tokenizer); a tokenizer without such a backend falls back to
    `split_special_tokens=True`, which covers special tokens only.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        added = dict(tokenizer.added_tokens_decoder)
        self.env_controls: frozenset[str] = frozenset(t.content for t in added.values() if t.content.strip())
        self.model_controls: frozenset[str] = frozenset(t.content for t in added.values()
                                                        if t.special and t.content.strip())
        self._backend = _literal_backend(tokenizer)

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        if self._backend is not None:
            return [e.ids for e in self._backend.encode_batch(texts, add_special_tokens=False)]
        return [self.tokenizer.encode(t, add_special_tokens=False, split_special_tokens=True) if t else []
                for t in texts]


# per tokenizer object (and its added vocabulary, which can grow): building one takes a
# second for a 50k-token vocabulary, and every ChatFormat, scorer and estimator needs it
_backends: weakref.WeakKeyDictionary[Any, tuple[frozenset[str], Any]] = weakref.WeakKeyDictionary()
_backends_lock = threading.Lock()


def _literal_backend(tokenizer: Any) -> Any:
    """A copy of the tokenizer's backend in which every added token is special and
    special tokens are never matched."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    added = frozenset(t.content for t in tokenizer.added_tokens_decoder.values())
    with _backends_lock:
        cached = _backends.get(tokenizer)
    if cached is not None and cached[0] == added:
        return cached[1]
    spec = json.loads(backend.to_str())
    for token in spec.get("added_tokens") or []:
        token["special"] = True
    spec["truncation"] = spec["padding"] = None
    literal = Tokenizer.from_str(json.dumps(spec))
    literal.encode_special_tokens = True
    with _backends_lock:
        _backends[tokenizer] = (added, literal)
    return literal


class Marks:
    """Control strings in messages swapped for placeholders, and back as literal tokens.

    One `Marks` serves the renders whose texts are compared or cut together (the same
    string always gets the same placeholder); it is not shared between threads.
    """

    def __init__(self, text: LiteralText):
        self.text = text
        self._originals: dict[str, str] = {}  # placeholder -> original
        self._placeholder: dict[str, str] = {}  # original -> placeholder
        self._patterns = {
            role: _pattern(controls) for role, controls in
            (("env", text.env_controls), ("assistant", text.model_controls))}

    def hide(self, value: Any, role: str) -> Any:
        """`value` (a string, or dicts and lists of them) with every control string of
        `role`'s kind ("assistant", else environment text) replaced by its placeholder."""
        if isinstance(value, str):
            return self._patterns["assistant" if role == "assistant" else "env"].sub(self._swap, value)
        if isinstance(value, dict):
            return {k: self.hide(v, role) for k, v in value.items()}
        if isinstance(value, list):
            return [self.hide(v, role) for v in value]
        return value

    def reveal(self, text: str) -> str:
        """Rendered text with its placeholders replaced by the original strings."""
        return _PLACEHOLDERS.sub(lambda m: self._originals.get(m.group(), m.group()), text)

    def encode(self, rendered: str) -> list[int]:
        """Ids of rendered template text: the template's text (and content free of
        control strings) with the normal tokenizer, each placeholder in literal tokens."""
        ids: list[int] = []
        start = 0
        for m in _PLACEHOLDERS.finditer(rendered):
            ids += self._structure(rendered[start:m.start()])
            ids += self.text.encode(self._originals.get(m.group(), m.group()))
            start = m.end()
        return ids + self._structure(rendered[start:])

    def _structure(self, text: str) -> list[int]:
        return self.text.tokenizer.encode(text, add_special_tokens=False) if text else []

    def _swap(self, m: re.Match[str]) -> str:
        original = m.group()
        if original not in self._placeholder:
            placeholder = chr(_PLACEHOLDER_BASE + len(self._placeholder))
            if ord(placeholder) > _PLACEHOLDER_LAST:
                raise ValueError("too many distinct control strings in one conversation")
            self._placeholder[original] = placeholder
            self._originals[placeholder] = original
        return self._placeholder[original]


def _pattern(controls: frozenset[str]) -> re.Pattern[str]:
    # longest first, so `<|im_end|>` wins over a shorter token that is its prefix
    alternatives = [re.escape(c) for c in sorted(controls, key=len, reverse=True)]
    return re.compile("|".join([*alternatives, _PLACEHOLDERS.pattern]))
