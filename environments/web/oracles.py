"""Scripted solutions of the MiniWoB tasks, read off the page and the task's utterance.

Each oracle maps the page at the start of an episode to the tool calls that solve it
(all in one turn). They use the same tools an agent has and only what the agent sees:
the rendered elements and the values MiniWoB extracts from the utterance.
"""

from __future__ import annotations

from typing import Any, Callable

from agenthub.environments.web.page import Element, Page

Plan = list[tuple[str, dict[str, Any]]]


def _only(elements: list[Element], what: str) -> Element:
    if not elements:
        raise ValueError(f"oracle: the page has no {what}")
    return elements[0]


def _click(element: Element) -> tuple[str, dict[str, Any]]:
    return "click", {"ref": element.ref}


def _submit(page: Page, label: str = "Submit") -> tuple[str, dict[str, Any]]:
    return _click(_only(page.find("button", text=label), f"{label!r} button"))


def _tick_labelled(page: Page, kind: str, labels: list[str]) -> Plan:
    """Click the checkbox/radio inside each <label> whose text is in `labels`."""
    plan = []
    for label in page.find("label"):
        if label.text in labels:
            box = [e for e in page.elements.values() if e.kind == kind and e.parent == label.ref]
            plan.append(_click(_only(box, f"{kind} in label {label.text!r}")))
    return plan


def click_test(page: Page) -> Plan:
    x, y = _only(page.find("button"), "button").center  # by coordinates: the GUI-agent path
    return [("click_xy", {"x": round(x), "y": round(y)})]


def click_button(page: Page) -> Plan:
    return [_click(_only(page.find("button", text=page.fields["target"]), "target button"))]


def click_link(page: Page) -> Plan:
    target = page.fields["target"]
    links = [e for e in page.find("span", text=target) if "alink" in e.classes.split()]
    return [_click(_only(links, f"link {target!r}"))]


def click_checkboxes(page: Page) -> Plan:
    targets = [v for k, v in page.fields.items() if k.startswith("target")]
    return [*_tick_labelled(page, "checkbox", targets), _submit(page)]


def click_option(page: Page) -> Plan:
    return [*_tick_labelled(page, "radio", [page.fields["target"]]), _submit(page)]


def click_dialog_2(page: Page) -> Plan:
    target = page.fields["target"]
    if target == "x":
        buttons = [e for e in page.find("button") if "ui-dialog-titlebar-close" in e.classes.split()]
    else:
        buttons = page.find("button", text=target)
    return [_click(_only(buttons, f"dialog button {target!r}"))]


def click_tab(page: Page) -> Plan:
    return [_click(_only(page.find("a", text=f"Tab #{page.fields['target']}"), "tab"))]


def focus_text_2(page: Page) -> Plan:
    n = int(page.fields["target"])
    return [_click(_only(page.find("textbox")[n - 1:n], f"textbox #{n}"))]


def enter_text(page: Page) -> Plan:
    box = _only(page.find("textbox"), "textbox")
    return [("type", {"ref": box.ref, "text": page.fields["target"]}), _submit(page)]


def enter_password(page: Page) -> Plan:
    boxes = page.find("password")
    if len(boxes) != 2:
        raise ValueError(f"oracle: expected two password fields, found {len(boxes)}")
    return [*(("type", {"ref": b.ref, "text": page.fields["target"]}) for b in boxes), _submit(page)]


def login_user(page: Page) -> Plan:
    user = _only(page.find(id="username"), "username field")
    password = _only(page.find(id="password"), "password field")
    return [("type", {"ref": user.ref, "text": page.fields["username"]}),
            ("type", {"ref": password.ref, "text": page.fields["password"]}), _submit(page, "Login")]


def scroll_text_2(page: Page) -> Plan:
    """Scroll the text area far enough (ten steps cover every text MiniWoB draws), then Submit."""
    area = _only(page.find("textarea"), "text area")
    direction = "down" if "bottom" in page.utterance else "up"
    return [*[("scroll", {"direction": direction, "ref": area.ref})] * 10, _submit(page)]


def choose_list(page: Page) -> Plan:
    select = _only(page.find("select"), "list")
    return [("select", {"ref": select.ref, "option": page.fields["target"]}), _submit(page)]


ORACLES: dict[str, Callable[[Page], Plan]] = {
    "click-test": click_test, "click-button": click_button, "click-link": click_link,
    "click-checkboxes": click_checkboxes, "click-option": click_option, "click-dialog-2": click_dialog_2,
    "scroll-text-2": scroll_text_2,
    "click-tab": click_tab, "focus-text-2": focus_text_2, "enter-text": enter_text,
    "enter-password": enter_password, "login-user": login_user, "choose-list": choose_list,
}
