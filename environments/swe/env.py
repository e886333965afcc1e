"""The SWE env: fix a real library's bug in a sandbox, judged by the library's own tests.

On reset the seed picks an instance (split k of the suite holds seeds from
k * SPLIT_STRIDE, as every agenthub suite), a sandbox starts, and the library's pinned
snapshot goes in with the bug applied. The agent works with the tools of `tools.py`
until it calls `submit`. Evaluation never trusts the agent's sandbox: its working copy
is diffed against the snapshot (tests and test configuration excluded), and that diff
is applied to the snapshot in a FRESH sandbox where the whole suite runs under the
judge (`testrun.run`), which believes nothing the code under test prints.

Rewards, ready for gated accumulation (G-RA):
- every turn, `reward_components` has `tool_format` (1 if the turn called tools, 0 for
  plain text; malformed calls never get here, the episode contract answers them) and
  `tool_success` (the share of calls that did what was asked); the turn's reward is
  `TURN_REWARD * tool_success`, an immediate reward;
- on submit, also `outcome`, `f2p_pass_ratio`, `p2p_pass_ratio` and `pass_ratio` (the
  mean of the two, so the few FAIL_TO_PASS tests weigh as much as the many
  PASS_TO_PASS ones). The turn's reward stays the immediate one: the outcome reaches
  reward modules through `info["outcome"]` / `trajectory.outcome`, so G-RA pays it once.

Outcome levels (`info["outcome"]`, hence `trajectory.outcome`): 0.0 no submit (turns or
wall budget ran out), 0.25 empty patch, 0.5 a patch that fails tests, 1.0 a patch that
passes all FAIL_TO_PASS and PASS_TO_PASS tests (`info["success"]`: resolved).
"""

from __future__ import annotations

import atexit
import json
import tarfile
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from agenthub import sandbox
from agenthub.actions import Action
from agenthub.env import Env, StepResult
from agenthub.sandbox import Pool, Sandbox, SandboxError
from agenthub.sandbox.images import docker_client
from agenthub.suites import SPLIT_STRIDE, SPLITS
from agenthub.types import Message

from . import patches, submission, testrun
from .image import ensure_image
from .instances import DEFAULT_SUITE, Instance, load
from .libraries import library, snapshot
from .tools import TOOLS, RepoTools

WORKDIR = "/workspace"
TURN_REWARD = 0.02
OUTCOME_NO_SUBMIT, OUTCOME_EMPTY_PATCH, OUTCOME_FAILS_TESTS, OUTCOME_RESOLVED = 0.0, 0.25, 0.5, 1.0

SYSTEM_PROMPT = (
    "You are a software engineer fixing a bug in a Python library. The repository is checked out at "
    "/workspace in a sandbox without network access. Use the tools to read the code, reproduce the "
    "problem, edit the library's source files and run the tests. Do not change the tests or their "
    "configuration: they are restored before your fix is judged. When you are done, call `submit`: your changes to the "
    "repository's non-test files are applied to a fresh copy and its whole test suite is run.")


class SweEnv(Env):
    tools = TOOLS
    version = "0"

    def __init__(self, suite: str = DEFAULT_SUITE, backend: str = "docker", max_turns: int = 50,
                 wall_budget: float = 1800.0, test_timeout: float = 300.0, memory: str = "1g", cpus: float = 1.0,
                 pool_size: int = 0, instance_id: str | None = None):
        """`backend`: docker (default; falls back to bwrap with `info["sandbox_warning"]`
        when no Docker daemon answers), bwrap or local. `pool_size` > 0 keeps that many
        sandboxes started ahead of need, shared by every env of this process."""
        self.suite = load(suite)
        self.backend, self.max_turns, self.wall_budget = backend, max_turns, wall_budget
        self.test_timeout, self.memory, self.cpus, self.pool_size = test_timeout, memory, cpus, pool_size
        self.instance_id = instance_id
        self.instance: Instance | None = None
        self.box: Sandbox | None = None
        self.repo: RepoTools | None = None
        self.started = 0.0
        self.sandbox_warning: str | None = None
        self.resolved_backend: str | None = None  # what `backend` turned into (docker may fall back to bwrap)

    # -- episode
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[list[Message], dict[str, Any]]:
        super().reset(seed=seed)
        self._close_box(wait=False)
        inst = self.instance = self._pick(seed, options or {})
        lib = library(inst.library)
        root = snapshot(lib)
        self.box = self._new_box()
        self._checkout(self.box, root, buggy_files(inst, root))
        self.repo = RepoTools(self.box, lib, WORKDIR, self.test_timeout)
        self.started = time.monotonic()
        prompt = (f"<issue>\n{inst.problem_statement}\n</issue>\n\nThe repository ({lib.name} {lib.version}) is "
                  f"at {WORKDIR}. Find and fix the cause of the issue in the library, check it with `run_tests`, "
                  f"then call `submit`.")
        info: dict[str, Any] = {"task_id": inst.instance_id, "library": lib.name, "snapshot_id": lib.snapshot_id,
                                "backend": self.box.backend, "reward_components": {}}
        if self.sandbox_warning:
            info["sandbox_warning"] = self.sandbox_warning
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}], info

    def step(self, action: Action) -> StepResult:  # type: ignore[override]
        if self.repo is None or self.instance is None:
            return [{"role": "user", "content": "Error: call reset() first."}], 0.0, True, False, {}
        if self._out_of_time():  # the agent's own thinking time counts too
            text = f"Not run: the episode's wall budget of {self.wall_budget:g} s is spent."
            obs = [_tool_message(c.id, text) for c in action.calls] or [{"role": "user", "content": text}]
            return obs, 0.0, False, True, {"reward_components": {"tool_format": float(bool(action.calls)),
                                                                 "tool_success": 0.0}, "wall_budget_spent": True}
        if not action.calls:
            obs: list[Message] = [{"role": "user", "content":
                                   "No tool was called. Use the tools to work on the repository; call `submit` "
                                   "when your fix is ready."}]
            return obs, 0.0, False, self._out_of_time(), {"reward_components": {"tool_format": 0.0,
                                                                                 "tool_success": 0.0}}
        obs, succeeded, submitted = [], 0, False
        for call in action.calls:
            if submitted:
                obs.append(_tool_message(call.id, "Not run: `submit` ended the episode."))
            elif call.name == "submit":
                submitted = True
                succeeded += 1
                obs.append(_tool_message(call.id, ""))  # filled in with the verdict below
                verdict_at = len(obs) - 1
            else:
                result = self.repo.call(call.name, call.arguments, self._time_left())
                succeeded += result.ok
                obs.append(_tool_message(call.id, result.text))
        share = succeeded / len(action.calls)
        components = {"tool_format": 1.0, "tool_success": share}
        reward = TURN_REWARD * share
        info: dict[str, Any] = {}
        if submitted:
            verdict = self._evaluate()
            obs[verdict_at]["content"] = verdict.pop("message")
            components.update({k: verdict[k] for k in ("outcome", "f2p_pass_ratio", "p2p_pass_ratio", "pass_ratio")})
            info.update(verdict)
            info["reward_components"] = components
            return obs, reward, True, False, info
        info["reward_components"] = components
        if self._out_of_time():
            info["wall_budget_spent"] = True
        return obs, reward, False, self._out_of_time(), info

    def oracle_actions(self) -> list[str | Message]:
        """The gold patch typed in through the editor (`str_replace` per hunk, or `create`
        where a hunk's text is not unique), then `submit`."""
        if self.instance is None:
            raise RuntimeError("reset() the env before asking for its oracle")
        buggy = buggy_files(self.instance, snapshot(library(self.instance.library)))
        calls: list[tuple[str, dict]] = []
        for fp in patches.parse(self.instance.gold_patch):
            text = buggy[fp.path] or ""
            if all(h.old and text.count(h.old) == 1 for h in fp.hunks):
                calls += [("str_replace", {"path": fp.path, "old_str": h.old, "new_str": h.new}) for h in fp.hunks]
            else:
                calls.append(("create", {"path": fp.path, "content": patches.apply_file(text, fp) or ""}))
        calls.append(("submit", {}))
        return [{"role": "assistant", "content": "", "tool_calls": [{
            "id": f"oracle_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}
            for i, (name, args) in enumerate(calls)]

    def close(self) -> None:
        self._close_box()

    # -- evaluation
    def _evaluate(self) -> dict[str, Any]:
        """Judge the working copy's diff in a fresh sandbox."""
        with tempfile.TemporaryDirectory(prefix="agenthub-swe-submission-") as tmp:
            try:
                # links are never part of a submission; left in, one pointing outside would stop the copy
                box: Sandbox = self.box  # type: ignore[assignment]
                box.exec(["find", ".", "-type", "l", "-delete"], timeout=60, cwd=WORKDIR)
                box.download_dir(WORKDIR, tmp)
            except (SandboxError, tarfile.TarError, OSError) as e:
                return _verdict(OUTCOME_FAILS_TESTS, 0.0, 0.0, "", f"the working copy could not be read: {e}")
            return self.judge(Path(tmp))

    def judge(self, working: Path, instance: Instance | None = None) -> dict[str, Any]:
        """The verdict on `working`, a host copy of the repository of `instance` (default:
        the current episode's) as an agent left it: its changes outside tests and test
        configuration are applied to the snapshot with the bug in, in a fresh sandbox, and
        the whole suite runs under the judge (`testrun.run`). Keys: those of `info` on the
        submit turn, and `message`."""
        inst = instance or self.instance
        if inst is None:
            raise RuntimeError("judge() needs an instance: reset() the env or pass one")
        lib = library(inst.library)
        root = snapshot(lib)
        bug = buggy_files(inst, root)
        changed = submission.changes(root, bug, working)
        protected = submission.protected_changes(root, working)
        patch = submission.as_patch(root, bug, changed)
        not_judged = (f" Changes to tests and test configuration are not judged (the originals are used): "
                      f"{', '.join(protected[:5])}{' ...' if len(protected) > 5 else ''}." if protected else "")
        if not changed:
            # the bug is still there: validation showed FAIL_TO_PASS failing, PASS_TO_PASS passing
            return _verdict(OUTCOME_EMPTY_PATCH, 0.0, 1.0, "", "Submitted an empty patch: nothing was changed "
                            "outside the tests and their configuration." + not_judged) | {"not_judged": protected}
        t0 = time.monotonic()
        with self._new_box() as fresh:
            backend = fresh.backend
            self._checkout(fresh, root, bug)
            try:
                for path, data in changed.items():
                    if data is None:
                        fresh.exec(["rm", "-rf", "--", path], timeout=30)
                    else:
                        fresh.write_file(path, data)
            except SandboxError as e:  # e.g. a file where the snapshot has a directory
                return _verdict(OUTCOME_FAILS_TESTS, 0.0, 0.0, patch, f"Submitted. The patch could not be "
                                f"applied: {e}.{not_judged}") | {"not_judged": protected, "backend": backend}
            results = testrun.run(fresh, lib, timeout=self.test_timeout)
        passed = results.passing(self.suite.libraries[inst.library].expected)
        f2p = _share(inst.FAIL_TO_PASS, passed)
        p2p = _share(inst.PASS_TO_PASS, passed)
        resolved = f2p == 1.0 and p2p == 1.0
        failing = [t for t in inst.FAIL_TO_PASS + inst.PASS_TO_PASS if t not in passed]
        note = results.problem or testrun.summary_line(results.output)
        message = ("Submitted. The tests pass: the issue is resolved." if resolved else
                   f"Submitted. {len(failing)} of the tests that should pass do not ({note}).")
        verdict = _verdict(OUTCOME_RESOLVED if resolved else OUTCOME_FAILS_TESTS, f2p, p2p, patch, message + not_judged)
        verdict.update(failing_tests=failing[:20], eval_seconds=round(time.monotonic() - t0, 2), backend=backend,
                       not_judged=protected, test_run=note)
        return verdict

    # -- sandboxes
    @property
    def pool(self) -> Pool | None:
        """The warm pool this env draws sandboxes from (None when `pool_size` is 0)."""
        if self.pool_size <= 0:
            return None
        backend, args = self._sandbox_args()
        return _shared_pool(backend, self.pool_size, args)

    def _new_box(self) -> Sandbox:
        pool = self.pool
        if pool is not None:
            return pool.acquire()
        backend, args = self._sandbox_args()
        return sandbox.open(backend, **args)

    def _sandbox_args(self) -> tuple[str, dict[str, Any]]:
        args: dict[str, Any] = {"memory": self.memory, "cpus": self.cpus, "workdir": WORKDIR}
        if self.resolved_backend is None:  # decided once per env, at its first sandbox
            self.resolved_backend = self._usable_backend()
        if self.resolved_backend == "docker":
            args["image"] = ensure_image()
        return self.resolved_backend, args

    def _usable_backend(self) -> str:
        """The requested backend, or bwrap (with a warning) when docker is requested and unusable."""
        if self.backend != "docker":
            return self.backend
        try:
            docker_client()  # a daemon answers now, not just when the image was first seen
            ensure_image()
            return "docker"
        except SandboxError as e:
            self.sandbox_warning = f"docker is not usable ({e}); running in the bwrap sandbox instead"
            warnings.warn(self.sandbox_warning, stacklevel=4)
            return "bwrap"

    @staticmethod
    def _checkout(box: Sandbox, root: Path, bug: dict[str, str | None]) -> None:
        """The task's starting state: the snapshot with the bug in."""
        box.upload_dir(root, WORKDIR)
        for path, text in bug.items():
            if text is None:
                box.exec(["rm", "-f", "--", path], timeout=30)
            else:
                box.write_file(path, text)

    def _close_box(self, wait: bool = True) -> None:
        box, self.box, self.repo = self.box, None, None
        if box is not None and wait:
            box.close()
        elif box is not None:  # removing a container takes a few hundred ms: not on reset's path
            threading.Thread(target=box.close, daemon=True).start()

    # -- budgets and instances
    def _time_left(self) -> float:
        return max(0.0, self.wall_budget - (time.monotonic() - self.started))

    def _out_of_time(self) -> bool:
        return self._time_left() <= 0

    def _pick(self, seed: int | None, options: dict[str, Any]) -> Instance:
        wanted = options.get("instance_id") or self.instance_id
        if wanted:
            return self.suite.get(wanted)
        if seed is None:
            split, index = "train", int(self.np_random.integers(0, 2**31))
        else:
            k = seed // SPLIT_STRIDE
            split, index = (SPLITS[k] if k < len(SPLITS) else "train"), seed % SPLIT_STRIDE
        candidates = self.suite.split(split) or self.suite.split("train") or self.suite.instances
        return candidates[index % len(candidates)]


def buggy_files(inst: Instance, root: Path) -> dict[str, str | None]:
    """The files the bug patch changes, as they read with the bug in."""
    originals = {p: (root / p).read_text() for p in patches.changed_paths(inst.bug_patch) if (root / p).is_file()}
    return patches.apply(originals, inst.bug_patch)


def _tool_message(call_id: str, content: str) -> Message:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _share(tests: list[str], passed: set[str]) -> float:
    return sum(t in passed for t in tests) / len(tests) if tests else 1.0


def _verdict(outcome: float, f2p: float, p2p: float, patch: str, message: str) -> dict[str, Any]:
    return {"outcome": outcome, "success": outcome == OUTCOME_RESOLVED, "f2p_pass_ratio": f2p,
            "p2p_pass_ratio": p2p, "pass_ratio": (f2p + p2p) / 2, "patch": patch, "message": message}


_pools: dict[str, Pool] = {}
_pools_lock = threading.Lock()


def _shared_pool(backend: str, size: int, args: dict[str, Any]) -> Pool:
    """One warm pool per sandbox configuration, shared by the process's envs."""
    key = json.dumps([backend, size, args], sort_keys=True)
    with _pools_lock:
        if key not in _pools:
            _pools[key] = Pool.of_sandboxes(backend, size=size, **args)
        return _pools[key]


@atexit.register
def _close_pools() -> None:
    for pool in _pools.values():
        pool.close()
