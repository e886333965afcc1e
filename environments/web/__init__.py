"""Web/GUI tasks: MiniWoB++ in a real headless Chromium (ids `web/<task>-v0`).

Registered: the tasks below, each with a scripted oracle. Any other MiniWoB task runs
too, without an oracle, once registered:
`agenthub.register("web/click-widget-v0", ENTRY_POINT, max_turns=10, task="click-widget")`.
"""

from agenthub.registry import register
from agenthub.suites import SPLIT_STRIDE, SPLITS, Task, register_suite

# task -> (max turns, what it asks)
TASKS = {
    "click-test": (5, "Click the one button (the oracle clicks by coordinates)."),
    "click-button": (5, "Click the button with a given label among other elements."),
    "click-link": (5, "Click the link with a given text inside a paragraph."),
    "click-checkboxes": (10, "Tick the named checkboxes, then Submit."),
    "click-option": (10, "Pick the named radio button, then Submit."),
    "click-dialog-2": (5, "Click the named button of a dialog box."),
    "click-tab": (5, "Click the numbered tab."),
    "focus-text-2": (5, "Focus the n-th text box."),
    "enter-text": (10, "Type a word into a text field, then Submit."),
    "enter-password": (10, "Type a password into both fields, then Submit."),
    "login-user": (10, "Fill in a username and password, then Login."),
    "choose-list": (10, "Choose the named entry of a select list, then Submit."),
    "scroll-text-2": (10, "Scroll a text area to its top or bottom, then Submit."),
}
ENTRY_POINT = "agenthub.environments.web.miniwob_env:MiniWoBEnv"


def miniwob_tasks(split: str, n: int) -> list[Task]:
    """The mixed suite: tasks in turn, each split on its own seed range."""
    base = SPLITS.index(split) * SPLIT_STRIDE
    names = list(TASKS)
    return [Task(f"web/{names[i % len(names)]}-v0", base + i // len(names), f"web/miniwob:{split}:{i}")
            for i in range(n)]


def register_envs() -> None:
    for task, (max_turns, description) in TASKS.items():
        register(f"web/{task}-v0", ENTRY_POINT, max_turns=max_turns,
                 description=f"MiniWoB {task}: {description}", task=task)
        register_suite(f"web/{task}", f"web/{task}-v0", train=1000, test=100,
                       description=f"MiniWoB {task}; the seed picks the instance.")
    register_suite("web/miniwob", f"web/{next(iter(TASKS))}-v0", train=1000 * len(TASKS), test=100 * len(TASKS),
                   description=f"The {len(TASKS)} MiniWoB tasks with oracles, in turn.", task_factory=miniwob_tasks)
