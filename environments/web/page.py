"""What an LLM sees of a web page: its elements as short text lines with stable refs.

MiniWoB's DOM walk (`core.getDOMInfo`) numbers every visible element with a `ref` that
stays the same for the whole episode; the agent's tools name elements by that ref.
The rendering keeps what a person would act on or read: interactive elements
(buttons, links, inputs, selects, labels) and elements with text, one per line, with
their state (value, checked, selected option, focus). Layout-only containers are left
out and their children move up, so a page is a few lines, not a DOM dump:

    [6] label "Username"
    [7] textbox#username value=""
    [11] button#subbtn "Login"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Tags kept even without text: what an agent can act on.
INTERACTIVE = {"a", "button", "label", "select", "textarea", "option"}
INPUT_KINDS = {"text": "textbox", "password": "password", "checkbox": "checkbox", "radio": "radio"}

# Options of every <select>: the DOM walk skips them (a closed list has no size).
_SELECT_OPTIONS_JS = """
var out = [];
for (var ref in core.previousDOMInfo) {
  var el = core.previousDOMInfo[ref];
  if (el.tagName === 'SELECT')
    out.push([+ref, Array.from(el.options).map(function (o) { return o.text; }), el.selectedIndex]);
}
return out;
"""


@dataclass
class Element:
    ref: int
    tag: str  # lower-case; inputs as "input_<type>", as MiniWoB reports them
    text: str  # own text, or for interactive elements the text of their text children
    value: Any
    id: str
    classes: str
    focused: bool
    box: tuple[float, float, float, float]  # left, top, width, height in page pixels
    parent: int | None
    options: list[str] = field(default_factory=list)  # <select> only
    selected: int = -1

    @property
    def kind(self) -> str:
        if self.tag.startswith("input_"):
            kind = self.tag[len("input_"):]
            return INPUT_KINDS.get(kind, f"input[{kind}]")
        return self.tag

    @property
    def interactive(self) -> bool:
        return self.tag in INTERACTIVE or self.tag.startswith("input_")

    @property
    def center(self) -> tuple[float, float]:
        left, top, width, height = self.box
        return left + width / 2, top + height / 2

    def line(self) -> str:
        parts = [f"[{self.ref}] {self.kind}" + (f"#{self.id}" if self.id else "")]
        if self.text and self.tag != "textarea":  # a text area's text is its value
            parts.append(f'"{self.text}"')
        if self.kind in ("checkbox", "radio"):
            parts.append("checked" if self.value else "unchecked")
        elif self.tag.startswith("input_") or self.tag == "textarea":
            parts.append(f'value="{self.value or ""}"')
        if self.options:
            parts.append("options: " + " | ".join(f'"{o}"' for o in self.options))
            if 0 <= self.selected < len(self.options):
                parts.append(f'selected="{self.options[self.selected]}"')
        if self.focused:
            parts.append("(focused)")
        return " ".join(parts)


@dataclass
class Page:
    """One reading of the page: the task, its elements by ref, and their rendering."""

    utterance: str
    fields: dict[str, str]  # values MiniWoB extracts from the utterance, e.g. {"target": "OK"}
    elements: dict[int, Element]  # in document order
    text: str

    def find(self, kind: str | None = None, text: str | None = None, **attrs: Any) -> list[Element]:
        """Elements of this kind (e.g. "button", "textbox") and text, in document order."""
        return [e for e in self.elements.values()
                if (kind is None or e.kind == kind) and (text is None or e.text == text)
                and all(getattr(e, k) == v for k, v in attrs.items())]


def read_page(task_page: Any) -> Page:
    """Walk the live DOM of a `TaskPage` (refs are assigned as a side effect)."""
    observation, extra = task_page.get_observation(use_cached_fields=False)
    elements: dict[int, Element] = {}
    lines: list[tuple[int, int | str]] = []
    _walk(extra["root_dom"], None, 0, elements, lines)
    for ref, options, selected in task_page.driver.execute_script(_SELECT_OPTIONS_JS):
        if ref in elements:
            elements[ref].options, elements[ref].selected = options, selected
    rendered = [(" " * depth) + (elements[item].line() if isinstance(item, int) else item)
                for depth, item in lines]
    return Page(observation["utterance"], dict(observation["fields"]), elements, "\n".join(rendered))


def _walk(node: Any, parent: int | None, depth: int, elements: dict[int, Element],
          lines: list[tuple[int, int | str]]) -> None:
    """Record `node` and its subtree; `lines` gets (indent, ref or quoted text) rows."""
    if node.tag == "t":
        lines.append((depth, f'"{node.text}"'))
        return
    element = Element(node.ref, node.tag, node.text or "", node.value, node.id or "", node.classes or "",
                      bool(node.focused), (node.left, node.top, node.width, node.height), parent)
    elements[node.ref] = element
    children = list(node.children)
    if element.interactive and not element.text:  # a button's label sits in its text children
        element.text = " ".join(c.text for c in children if c.tag == "t" and c.text)
        children = [c for c in children if c.tag != "t"]
    shown = element.interactive or bool(element.text)
    if shown:
        lines.append((depth, node.ref))
    for child in children:
        _walk(child, node.ref, depth + 2 if shown else depth, elements, lines)
