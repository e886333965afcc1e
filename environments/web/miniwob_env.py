"""MiniWoB++ tasks in a real headless Chromium, played through tool calls.

The agent reads the task and a text rendering of the page (see `page.py`; optionally
a screenshot too) and acts with tools: `click(ref)`, `type(ref, text)`, `press(key)`,
`select(ref, option)`, `scroll(direction, ref?)` and `click_xy(x, y)` for agents that
work from pixels. Several calls in one turn run in order. The reward is the task's own
raw reward (MiniWoB's, in [-1, 1], without its time penalty), given when the task
ends; `success` is that reward reaching the task's threshold.

Each env owns one browser, started on the first `reset` (so `make` stays cheap) and
closed by `close`, or when the env is garbage-collected or the interpreter exits.
"""

from __future__ import annotations

import base64
import io
import json
import weakref
from typing import Any

from agenthub.actions import Action, Call
from agenthub.env import Env, StepResult
from agenthub.environments.web.arguments import (MAX_KEY, MAX_OPTION, MAX_TEXT, ToolError, coordinate, element_ref,
                                                 shown, text_argument)
from agenthub.environments.web.browser import TaskPage, browser_binaries, open_task_page
from agenthub.environments.web.oracles import ORACLES
from agenthub.environments.web.page import Element, Page, read_page
from agenthub.types import Message, tool_calls_message, tool_spec

# Imported after `browser`, which turns a missing package into a one-line install hint.
from miniwob.constants import TASK_HEIGHT, TASK_WIDTH, WEBDRIVER_SPECIAL_KEYS  # noqa: E402, I001
from miniwob.screenshot import get_screenshot
from miniwob.selenium_actions import execute_click_coords, execute_press_key, execute_scroll_coords, execute_type_text
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.select import Select

WEB_TOOLS = [
    tool_spec("click", "Click the element with this ref.", {"ref": {"type": "integer"}}),
    tool_spec("type", "Click a text field and type text into it, replacing what it holds.",
              {"ref": {"type": "integer"}, "text": {"type": "string"}}),
    tool_spec("press", "Press a key: Enter, Tab, Escape, Backspace, Delete, Space, ArrowUp, ArrowDown, "
              "ArrowLeft, ArrowRight, PageUp, PageDown, Home, End, a single character, or a "
              "combination such as Control+a.", {"key": {"type": "string"}}),
    tool_spec("select", "Choose an option of a select list by its visible text.",
              {"ref": {"type": "integer"}, "option": {"type": "string"}}),
    tool_spec("scroll", "Scroll the page, or the element with this ref, up or down.",
              {"direction": {"type": "string", "enum": ["up", "down"]}, "ref": {"type": "integer"}},
              required=["direction"]),
    tool_spec("click_xy", "Click a point of the page, in pixels from its top-left corner "
              "(the screenshot's coordinates).", {"x": {"type": "number"}, "y": {"type": "number"}}),
]
SYSTEM_PROMPT = (
    "You operate a web page in a browser to complete a task. The page is listed one element per line; "
    "[N] is the element's ref, which the tools take. Act only through the tools; several calls in one "
    "turn run in order. The episode ends when the task is done.")
MODIFIERS = {"control": "C-", "ctrl": "C-", "shift": "S-", "alt": "A-", "meta": "M-"}
SCROLL_PIXELS = 100


class MiniWoBEnv(Env):
    tools = WEB_TOOLS
    version = "0"

    def __init__(self, task: str, max_turns: int = 10, screenshot: bool = False,
                 success_threshold: float = 1.0, episode_time_limit_s: float = 600.0):
        browser_binaries()  # no browser: fail in `make`, with the install hint
        self.task, self.max_turns, self.screenshot = task, max_turns, screenshot
        self.success_threshold, self.episode_time_limit_s = success_threshold, episode_time_limit_s
        self._browser: TaskPage | None = None
        self._closer: weakref.finalize | None = None
        self.page: Page | None = None  # the latest reading of the page
        self.start_page: Page | None = None  # the page as the episode began

    # -- episode ---------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[list[Message], dict[str, Any]]:
        super().reset(seed=seed)
        browser = self._open_browser()
        try:
            browser.force_stop()
        except WebDriverException:  # the browser crashed or hung: start a new one
            self.close()
            browser = self._open_browser()
            browser.force_stop()
        # the page is reused across episodes: focus must not leak from the last one into this one
        browser.driver.execute_script("if (document.activeElement) document.activeElement.blur();")
        browser.begin_task(seed=seed if seed is not None else int(self.np_random.integers(2**31)))
        self.page = self.start_page = read_page(browser)
        return [{"role": "system", "content": SYSTEM_PROMPT}, self._page_message()], self._info()

    def step(self, action: Action) -> StepResult:  # type: ignore[override]
        browser = self._browser
        if browser is None or browser.died or self.page is None:
            raise RuntimeError("no episode is running in this env's browser: call reset() first")
        if not action.calls:
            hint = "No tool was called: act on the page with the tools (click, type, press, select, scroll, click_xy)."
            return ([{"role": "user", "content": hint}, self._page_message()], 0.0, False, False,
                    {**self._info(), "reward_components": {"task": 0.0, "no_tool_call": 1.0}})
        replies: list[Message] = []
        errors = 0
        state = browser.get_metadata()
        for call in action.calls:
            if state["done"]:
                result = "Not run: the task has already ended."
            else:
                result = self._run(browser, call)
                errors += result.startswith("Error:")
                state = browser.get_metadata()
            replies.append({"role": "tool", "tool_call_id": call.id, "content": result})
        if not state["done"]:
            self.page = read_page(browser)
            return (replies + [self._page_message()], 0.0, False, False,
                    {**self._info(), "reward_components": {"task": 0.0, "invalid_calls": float(errors)}})
        raw = float(state["raw_reward"])
        success = raw >= self.success_threshold
        verdict = f"The task is over: reward {raw:+.2f} ({'success' if success else 'failure'})."
        info = {"success": success, "outcome": max(0.0, raw), "task_reward": raw, "reason": state["reason"],
                "reward_components": {"task": raw, "invalid_calls": float(errors)}}
        return replies + [{"role": "user", "content": verdict}], raw, True, False, info

    def oracle_actions(self) -> list[str | Message]:
        if self.task not in ORACLES:
            raise NotImplementedError(f"web/{self.task} has no oracle")
        if self.start_page is None:
            raise RuntimeError("call reset() before asking for the oracle's plan")
        return [tool_calls_message(ORACLES[self.task](self.start_page), id_prefix="oracle")]

    def close(self) -> None:
        if self._closer is not None:
            self._closer()  # runs the browser's close once, and never again at exit
        self._browser = self._closer = None

    # -- browser ---------------------------------------------------------------------------

    def _open_browser(self) -> TaskPage:
        if self._browser is None or self._browser.died:
            self.close()
            self._browser = open_task_page(self.task, self.episode_time_limit_s)
            self._closer = weakref.finalize(self, self._browser.close)
        return self._browser

    def _page_message(self) -> Message:
        assert self.page is not None and self._browser is not None
        text = f"Task: {self.page.utterance}\nPage:\n{self.page.text}"
        if not self.screenshot:
            return {"role": "user", "content": text}
        image = get_screenshot(self._browser.driver, self._browser.inner_width, self._browser.inner_height,
                               TASK_WIDTH, TASK_HEIGHT)
        png = io.BytesIO()
        image.save(png, format="PNG")
        url = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
        return {"role": "user", "content": [{"type": "text", "text": text},
                                            {"type": "image_url", "image_url": {"url": url}}]}

    def _info(self) -> dict[str, Any]:
        return {"admissible_actions": admissible_actions(self.page) if self.page else []}

    # -- tools -----------------------------------------------------------------------------

    def _run(self, browser: TaskPage, call: Call) -> str:
        args, driver = call.arguments, browser.driver
        try:
            if call.name == "click":
                element = self._element(args.get("ref"))
                self._click(browser, element)
                return f"Clicked [{element.ref}]."
            if call.name == "type":
                element, text = self._element(args.get("ref")), text_argument(args.get("text", ""), "text", MAX_TEXT)
                self._click(browser, element)
                execute_press_key("C-a", driver)  # typing then replaces what the field held
                execute_type_text(text, driver)
                return f"Typed {json.dumps(text)} into [{element.ref}]."
            if call.name == "press":
                key = text_argument(args.get("key", ""), "key", MAX_KEY)
                execute_press_key(webdriver_key(key), driver)
                return f"Pressed {key}."
            if call.name == "select":
                element, option = self._element(args.get("ref")), text_argument(args.get("option", ""), "option",
                                                                                 MAX_OPTION)
                return self._select(browser, element, option)
            if call.name == "scroll":
                return self._scroll(browser, args)
            if call.name == "click_xy":
                x, y = coordinate(args.get("x"), "x"), coordinate(args.get("y"), "y")
                if not (0 <= x < browser.inner_width and 0 <= y < browser.inner_height):
                    raise ToolError(f"({x:g}, {y:g}) is outside the page "
                                    f"({browser.inner_width} x {browser.inner_height} pixels)")
                execute_click_coords(x, y, driver)
                return f"Clicked at ({x:g}, {y:g})."
            raise ToolError(f"unknown tool {shown(call.name)}")
        except ToolError as e:
            return f"Error: {e}"
        except WebDriverException as e:
            reason = next(iter((e.msg or str(e)).splitlines()), "") or type(e).__name__
            return f"Error: the browser refused: {reason[:300]}"

    def _element(self, ref: Any) -> Element:
        assert self.page is not None
        number = element_ref(ref)
        element = self.page.elements.get(number)
        if element is None:
            raise ToolError(f"there is no element [{number}] on the page; use a ref from the page listing")
        return element

    @staticmethod
    def _click(browser: TaskPage, element: Element) -> None:
        result = browser.driver.execute_script("return core.elementClick(arguments[0]);", element.ref)
        if result is not True:
            raise ToolError(f"cannot click [{element.ref}]: {result}")

    @staticmethod
    def _select(browser: TaskPage, element: Element, option: str) -> str:
        if element.kind != "select":
            raise ToolError(f"[{element.ref}] is a {element.kind}, not a select list")
        matches = [i for i, o in enumerate(element.options) if o == option] or \
                  [i for i, o in enumerate(element.options) if o.strip().lower() == option.strip().lower()]
        if not matches:
            raise ToolError(f"[{element.ref}] has no option {shown(option)} (options: {', '.join(element.options)})")
        Select(browser.driver.execute_script("return core.previousDOMInfo[arguments[0]];", element.ref)
               ).select_by_index(matches[0])
        return f"Selected {json.dumps(element.options[matches[0]])} in [{element.ref}]."

    def _scroll(self, browser: TaskPage, args: dict[str, Any]) -> str:
        direction = args.get("direction")
        if direction not in ("up", "down"):
            raise ToolError(f"direction must be 'up' or 'down', got {shown(direction)}")
        if args.get("ref") is not None:
            element = self._element(args["ref"])
            (x, y), where = element.center, f"[{element.ref}]"
        else:
            (x, y), where = (TASK_WIDTH / 2, TASK_HEIGHT / 2), "the page"
        amount = SCROLL_PIXELS if direction == "down" else -SCROLL_PIXELS
        execute_scroll_coords(x, y, amount, 150, browser.driver)
        return f"Scrolled {where} {direction}."


def webdriver_key(key: str) -> str:
    """'Enter' -> '<Enter>', 'Control+a' -> 'C-a': MiniWoB's key syntax, or a ToolError."""
    *mods, base = key.split("+") if len(key) > 1 else [key]
    if any(m.lower() not in MODIFIERS for m in mods) or not base:
        raise ToolError(f"unknown key {shown(key)}; modifiers are Control, Shift, Alt, Meta (e.g. Control+a)")
    if len(base) != 1:
        names = {k[1:-1].lower(): k for k in WEBDRIVER_SPECIAL_KEYS}
        if base.lower() not in names:
            raise ToolError(f"unknown key {shown(base)}; use e.g. Enter, Tab, Escape, ArrowDown or one character")
        base = names[base.lower()]
    return "".join(MODIFIERS[m.lower()] for m in mods) + base


def admissible_actions(page: Page) -> list[str]:
    """Element-level actions, as tool-call JSON, for the random agent: click any listed element,
    type a value from the utterance into a text field, pick any option of a list (the action
    set of Liu et al., 2018)."""
    actions = []
    for e in page.elements.values():
        if not (e.interactive or e.text):
            continue
        actions.append(json.dumps({"name": "click", "arguments": {"ref": e.ref}}))
        if e.kind in ("textbox", "password", "textarea"):
            actions += [json.dumps({"name": "type", "arguments": {"ref": e.ref, "text": v}})
                        for v in page.fields.values()]
        actions += [json.dumps({"name": "select", "arguments": {"ref": e.ref, "option": o}}) for o in e.options]
    return actions
