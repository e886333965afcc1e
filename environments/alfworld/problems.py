"""ALFWorld game problems built offline from the scene layouts the `alfworld` wheel ships.

The official ALFWorld games are PDDL problems recorded in the AI2-THOR scenes; only
the scenes' metadata comes with the wheel: per FloorPlan, the object types present
(`objects.json`), the receptacles with the pose the agent takes to use them
(`openable.json`) and the floor's reachable points (`layout.npy`). From these a
problem is built the way ALFRED's are: every receptacle at its pose's location (named
`loc|x|z|rotation|horizon` on the 0.25 m grid), the scene's small objects placed in
receptacles that can hold them (ALFRED's `VAL_RECEPTACLE_OBJECTS`), their affordances
(heatable, coolable, cleanable, sliceable, toggleable), the agent at a free spot, and
the goal of one of the six task types, written with ALFRED's goal library (its PDDL
goal and text templates). Receptacle types a scene has but no pose for (stove burners,
coffee machines, toasters) get a pose at a reachable point.

Train seeds use ALFRED's training scenes, other splits its held-out ones, as ALFWorld's
"unseen" evaluation does. The layouts are not the recorded ALFRED episodes, so scores
are not comparable with published ALFWorld numbers.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from agenthub.suites import SPLIT_STRIDE

# agenthub name -> ALFWorld task type
TASK_TYPES = {
    "pick-and-place": "pick_and_place_simple",
    "look-at-obj-in-light": "look_at_obj_in_light",
    "pick-clean-then-place": "pick_clean_then_place_in_recep",
    "pick-heat-then-place": "pick_heat_then_place_in_recep",
    "pick-cool-then-place": "pick_cool_then_place_in_recep",
    "pick-two-obj-and-place": "pick_two_obj_and_place",
}
# What each task type needs: the receptacle type whose action changes the object's state,
# and the affordance the object must have.
_STATE_CHANGE = {
    "pick_clean_then_place_in_recep": ("SinkBasin", "Cleanable"),
    "pick_heat_then_place_in_recep": ("Microwave", "Heatable"),
    "pick_cool_then_place_in_recep": ("Fridge", "Coolable"),
}
LAMPS = ("DeskLamp", "FloorLamp")
LAMP_HOLDERS = ("SideTable", "Desk", "Dresser", "DiningTable", "CoffeeTable", "Shelf", "TVStand")
# Distractors: up to this many other object types of the scene, 1-2 of each. The engine's cost
# per step grows with the number of objects, and a real ALFRED scene's 25-40 object types
# would make every step several times slower without making the task different in kind.
DISTRACTOR_TYPES = 10
MAX_INSTANCES = 2
GRID = 0.25  # metres per step of ALFRED's navigation grid
GENERATOR_VERSION = 1  # part of the cache key: bump it when a change here changes the games


class Infeasible(Exception):
    """This scene cannot host this task; the caller draws another."""


@dataclass
class Receptacle:
    id: str  # ALFRED's name, e.g. "Sink|-01.90|+00.97|-01.50|SinkBasin"
    type: str
    location: str


@dataclass
class Problem:
    task_type: str
    scene: str
    pddl: str
    params: dict[str, Any]  # ALFRED's pddl_params: object_target, parent_target, toggle_target, ...
    goal_text: str

    def traj_data(self) -> dict[str, Any]:
        """The `traj_data.json` ALFWorld's tools read beside a game (task type and parameters)."""
        return {"task_type": self.task_type, "pddl_params": self.params, "scene": {"floor_plan": self.scene},
                "task_desc": self.goal_text, "source": "agenthub synthetic (alfworld packaged layouts)"}


def make_problem(task_type: str, seed: int, attempt: int = 0) -> Problem:
    """The problem of `task_type` for (seed, attempt), the same on every machine; raises
    `Infeasible` when the scene drawn cannot host the task (the caller tries the next attempt)."""
    rng = random.Random(f"alfworld:{task_type}:{seed}:{attempt}")
    scene = rng.choice(_scenes_for(task_type, held_out=seed // SPLIT_STRIDE > 0))
    return _build(task_type, scene, rng)


# -- scenes ------------------------------------------------------------------------------

def _constants() -> Any:
    import alfworld.gen.constants as constants
    return constants


def _layouts_dir() -> Path:
    import alfworld.gen
    return Path(alfworld.gen.__file__).parent / "layouts"


def _scenes_for(task_type: str, held_out: bool) -> list[str]:
    c = _constants()
    numbers = c.TEST_SCENE_NUMBERS if held_out else c.TRAIN_SCENE_NUMBERS
    rooms = c.GOALS_VALID[task_type]
    return [f"FloorPlan{n}" for n in sorted(numbers) if any(n in c.SCENE_TYPE[room] for room in rooms)
            and (_layouts_dir() / f"FloorPlan{n}-objects.json").exists()]


@lru_cache(maxsize=None)
def _scene_data(scene: str) -> tuple[list[str], dict[str, list[float]], list[tuple[float, float]]]:
    import numpy as np

    d = _layouts_dir()
    object_types = json.loads((d / f"{scene}-objects.json").read_text())
    poses = json.loads((d / f"{scene}-openable.json").read_text())
    points = [tuple(map(float, p)) for p in np.load(d / f"{scene}-layout.npy")]
    return object_types, poses, points


def _location(x: float, z: float, rotation: float, horizon: float) -> str:
    return f"loc|{round(x / GRID)}|{round(z / GRID)}|{round(rotation / 90) % 4}|{round(horizon)}"


def _coords(x: float, y: float, z: float) -> str:
    return f"{x:+06.2f}|{y:+06.2f}|{z:+06.2f}"


def _receptacles(scene: str, rng: random.Random) -> list[Receptacle]:
    c = _constants()
    object_types, poses, points = _scene_data(scene)
    receptacles = []
    for rid, (x, z, rotation, horizon) in sorted(poses.items()):
        parts = rid.split("|")
        receptacles.append(Receptacle(rid, parts[4] if len(parts) > 4 else parts[0],
                                      _location(x, z, rotation, horizon)))
    present = {r.type for r in receptacles}
    static = set(c.VAL_RECEPTACLE_OBJECTS) - set(c.MOVABLE_RECEPTACLES)
    for rtype in sorted(static & set(object_types) - present):  # types with no recorded pose
        for _ in range(rng.randint(2, 4) if rtype == "StoveBurner" else 1):
            x, z = rng.choice(points)
            rid = f"{rtype}|{_coords(x + rng.uniform(-0.5, 0.5), rng.uniform(0, 1.5), z + rng.uniform(-0.5, 0.5))}"
            receptacles.append(Receptacle(rid, rtype, _location(x, z, rng.choice((0, 90, 180, 270)), 30)))
    return receptacles


# -- tasks -------------------------------------------------------------------------------

def _build(task_type: str, scene: str, rng: random.Random) -> Problem:
    c = _constants()
    object_types, _, points = _scene_data(scene)
    receptacles = _receptacles(scene, rng)
    rtypes = {r.type for r in receptacles}
    holders = {o: sorted(rt for rt in rtypes if o in c.VAL_RECEPTACLE_OBJECTS.get(rt, ())) for o in object_types}
    movable = [o for o in sorted(set(object_types)) if holders[o] and o not in LAMPS]

    toggle, state_change = "", _STATE_CHANGE.get(task_type)
    candidates = movable
    if state_change:
        appliance, affordance = state_change
        if appliance not in rtypes:
            raise Infeasible
        candidates = [o for o in movable if o in c.VAL_ACTION_OBJECTS[affordance]]
    if task_type == "look_at_obj_in_light":
        lamps = [lamp for lamp in LAMPS if lamp in object_types]
        if not lamps or not candidates or not any(r.type in LAMP_HOLDERS for r in receptacles):
            raise Infeasible
        toggle, target, parent = rng.choice(lamps), rng.choice(candidates), ""
    else:
        # The goal's receptacle type must hold the target, and the target must have somewhere else to start.
        pairs = [(o, rt) for o in candidates for rt in holders[o]
                 if len(holders[o]) > 1 and not (state_change and rt == state_change[0])]
        if not pairs:
            raise Infeasible
        target, parent = rng.choice(pairs)

    # Place the objects: the target (two or more for pick-two) never starts in the goal's receptacle type.
    placements: dict[str, str] = {}
    used_ids: set[str] = set()
    n_target = rng.randint(2, 3) if task_type == "pick_two_obj_and_place" else rng.randint(1, 2)
    others = [o for o in movable if o != target]
    for otype in [target, *rng.sample(others, min(DISTRACTOR_TYPES, len(others)))]:
        n = n_target if otype == target else rng.randint(1, MAX_INSTANCES)
        allowed = [r for r in receptacles if r.type in holders[otype] and not (otype == target and r.type == parent)]
        if not allowed:
            raise Infeasible
        for _ in range(n):
            _place(otype, rng.choice(allowed), rng, placements, used_ids)
    if toggle:
        _place(toggle, rng.choice([r for r in receptacles if r.type in LAMP_HOLDERS]), rng, placements, used_ids)

    taken = {r.location for r in receptacles}
    free = [(x, z) for x, z in points if _location(x, z, 0, 30) not in taken]
    if not free:
        raise Infeasible
    start = _location(*rng.choice(free), 0, 30)
    params = {"object_target": target, "parent_target": parent, "toggle_target": toggle,
              "mrecep_target": "", "object_sliced": False}
    from alfworld.gen.goal_library import gdict

    template = rng.choice(gdict[task_type]["templates"])
    goal_text = template.format(obj=target.lower(), recep=parent.lower(), toggle=toggle.lower(), mrecep="")
    goal = gdict[task_type]["pddl"].replace("#", "-").format(obj=target, recep=parent, toggle=toggle, mrecep="")
    pddl = _pddl(f"agenthub_{task_type}_{scene}", receptacles, placements, start, goal)
    return Problem(task_type, scene, pddl, params, goal_text)


def _place(otype: str, receptacle: Receptacle, rng: random.Random, placements: dict[str, str],
           used_ids: set[str]) -> None:
    """A new instance of `otype` in `receptacle`, with coordinates near the receptacle's."""
    x, y, z = map(float, receptacle.id.split("|")[1:4])
    while True:
        coords = _coords(x + rng.uniform(-0.4, 0.4), y + rng.uniform(0, 0.3), z + rng.uniform(-0.4, 0.4))
        oid = f"{otype}|{coords}"
        if oid not in used_ids:
            break
    used_ids.add(oid)
    placements[oid] = receptacle.id


# -- PDDL --------------------------------------------------------------------------------

def mangle(name: str) -> str:
    """ALFRED's PDDL-safe names: 'Apple|+01.59|...' -> 'Apple_bar__plus_01_dot_59...'."""
    for char, word in (("|", "_bar_"), ("+", "_plus_"), ("-", "_minus_"), (".", "_dot_"), (",", "_comma_")):
        name = name.replace(char, word)
    return name


def _pddl(name: str, receptacles: list[Receptacle], placements: dict[str, str], start: str, goal: str) -> str:
    c = _constants()
    by_id = {r.id: r for r in receptacles}
    otypes = {oid.split("|")[0] for oid in placements} | {"Knife", "ButterKnife"}
    rtypes = {r.type for r in receptacles} | {"SinkBasin", "Microwave", "Fridge"}  # named by the domain's actions
    locations = sorted({r.location for r in receptacles} | {start})
    affordances = {"heatable": "Heatable", "coolable": "Coolable", "cleanable": "Cleanable",
                   "sliceable": "Sliceable", "toggleable": "Toggleable"}

    objects = ["agent1 - agent"]
    objects += [f"{t}Type - otype" for t in sorted(otypes)] + [f"{t}Type - rtype" for t in sorted(rtypes)]
    objects += [f"{mangle(o)} - object" for o in sorted(placements)]
    objects += [f"{mangle(r.id)} - receptacle" for r in receptacles]
    objects += [f"{mangle(loc)} - location" for loc in locations]

    init = [f"(atLocation agent1 {mangle(start)})"]
    for r in receptacles:
        init += [f"(receptacleType {mangle(r.id)} {r.type}Type)",
                 f"(receptacleAtLocation {mangle(r.id)} {mangle(r.location)})"]
        if r.type in c.OPENABLE_CLASS_SET:
            init.append(f"(openable {mangle(r.id)})")
    for oid, rid in sorted(placements.items()):
        otype, o = oid.split("|")[0], mangle(oid)
        init += [f"(objectType {o} {otype}Type)", f"(inReceptacle {o} {mangle(rid)})",
                 f"(objectAtLocation {o} {mangle(by_id[rid].location)})"]
        if otype not in LAMPS:
            init.append(f"(pickupable {o})")
        init += [f"({fact} {o})" for fact, group in affordances.items() if otype in c.VAL_ACTION_OBJECTS[group]]
    for rtype in sorted(rtypes):
        init += [f"(canContain {rtype}Type {otype}Type)" for otype in sorted(otypes)
                 if otype in c.VAL_RECEPTACLE_OBJECTS.get(rtype, ())]
    lines = [f"(define (problem {name})", "(:domain alfred)", "(:objects", *objects, ")", "(:init", *init, ")", goal]
    return "\n".join(lines) + "\n"
