"""ALFWorld environments: household tasks in text, on the real ALFWorld engine, offline.

One id per ALFWorld task type (`alfworld/pick-and-place-v0`, ...,
`alfworld/pick-two-obj-and-place-v0`) and `alfworld/all-v0` (the seed picks the type).
Games are generated from the scene layouts in the alfworld wheel and checked solvable
by ALFWorld's expert (see `problems`, `games`); with the official data in
`$ALFWORLD_DATA`, the same ids serve it. Each id has a suite of the same name.
"""

from agenthub.environments.textworld.cache import pregenerate
from agenthub.registry import register
from agenthub.suites import register_suite

from .problems import TASK_TYPES

__all__ = ["pregenerate", "register_envs"]

ENTRY_POINT = "agenthub.environments.alfworld.env:AlfworldEnv"
MAX_TURNS = 100  # episodes end earlier: at twice the expert's walkthrough (at most 50 steps), or 20 turns
DESCRIPTIONS = {
    "pick_and_place_simple": "Find an object and put it in a receptacle.",
    "look_at_obj_in_light": "Find an object and examine it under a lamp.",
    "pick_clean_then_place_in_recep": "Find an object, clean it in the sink, put it in a receptacle.",
    "pick_heat_then_place_in_recep": "Find an object, heat it in the microwave, put it in a receptacle.",
    "pick_cool_then_place_in_recep": "Find an object, cool it in the fridge, put it in a receptacle.",
    "pick_two_obj_and_place": "Find two objects of a kind and put both in a receptacle.",
}


def register_envs() -> None:
    for name, task_type in [*TASK_TYPES.items(), ("all", None)]:
        env_id = f"alfworld/{name}-v0"
        description = DESCRIPTIONS[task_type] if task_type else "All six ALFWorld task types (the seed picks one)."
        register(env_id, ENTRY_POINT, max_turns=MAX_TURNS, task_type=task_type,
                 description=f"ALFWorld: {description} Episodes end at twice the expert's walkthrough "
                             "(at least 20 turns).")
        register_suite(f"alfworld/{name}", env_id, train=1000 if task_type else 3000, test=100 if task_type else 300,
                       description=f"ALFWorld: {description} Train seeds use ALFRED's training scenes, test "
                                   "seeds its held-out scenes.")
