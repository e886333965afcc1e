"""The pytest plugin the SWE judge loads into the test run (`-p agenthub_swe_judge`).

It runs INSIDE the sandbox, under the sandbox's python3 and pytest (Debian's 3.11 and
7.2), in the same process as the code under test, so it trusts nothing that code can
reach after it is imported. The plugin is imported by `-p` before any conftest or test
module, i.e. before a line of the library runs, and at that moment it:

- reads the run's secret key from the file beside it and deletes that file, keeping the
  key only in a closure: every record it writes carries an HMAC of the record, so a
  line written by anyone else (a forged or replayed report) does not verify;
- opens its report file (O_EXCL: a file planted at that path makes the run fail) and
  keeps the descriptor and the functions it writes with;
- captures pytest's own function that calls a test function, and calls it itself
  (`pytest_pyfunc_call`, tried first): a test function counts as run only when this
  plugin ran it, so patching pytest's runner to skip test bodies leaves no record of a run;
- remembers the identity of the pytest, pluggy, unittest and importlib internals that
  decide outcomes and where test modules come from; at the end it reports every one
  that was replaced, and a trace or profile function left installed (a library that
  rewrites test modules on import or patches reports makes the run count as tampered);
- remembers each test function and its code object when collection ends, and before
  calling a test checks that it is still the same (swapping a test's `__code__` for a
  no-op from library code is tampering).

Exceptions are recorded as the test's own call raised them ("raw"), next to the outcome
pytest's report states: a `pytest.xfail()` or `pytest.skip()` called by library code is
an XFailed / Skipped exception there, whatever the report says.

Records (one JSON object per line, numbered from 0 in "seq", then a tab and the hex
HMAC-SHA256; the last one is "end"):
  {"phase": "setup"|"call"|"teardown", "node": ID, "raw": EXC|null, "outcome": ..., "wasxfail": bool}
  {"ran": ID, "raw": EXC|null, "body": bool}   the call phase; body: the judge itself called the test function
  {"collect_error": ID, "outcome": ...}   a collector (module) that failed or was skipped
  {"replaced_test": ID}   the test function (or its code) is not the one collected
  {"end": EXITSTATUS, "changed": [NAME, ...]}
The host side (`testrun.read_report`) verifies and interprets them.
"""

import builtins
import hashlib
import hmac
import json
import os
import sys
import zipimport
from importlib import _bootstrap_external

import _pytest.assertion.rewrite  # noqa: F401  (watched below)
import _pytest.unittest  # noqa: F401
import pytest
from _pytest import python as _python

_HERE = os.path.dirname(os.path.abspath(__file__))


def _setup():
    key_path = os.path.join(_HERE, "key")
    with open(key_path, "rb") as f:
        key = f.read()
    os.unlink(key_path)
    fd = os.open(os.path.join(_HERE, "report.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
    write, dumps, new_mac, sha256 = os.write, json.dumps, hmac.new, hashlib.sha256
    written = [0]

    def record(obj):
        obj["seq"] = written[0]  # numbered: a record deleted or replayed leaves a gap or a repeat
        written[0] += 1
        payload = dumps(obj, sort_keys=True)
        mac = new_mac(key, payload.encode(), sha256).hexdigest()
        write(fd, (payload + "\t" + mac + "\n").encode())

    return record


_record = _setup()
_call_test_function = _python.pytest_pyfunc_call  # pytest's own, before any library can replace it
_Function, _UnittestItem = _python.Function, _pytest.unittest.TestCaseFunction
_WATCHED = tuple(sys.modules.get(name) for name in (
    "_pytest.runner", "_pytest.reports", "_pytest.python", "_pytest.skipping", "_pytest.outcomes", "_pytest.main",
    "_pytest.unittest", "_pytest.fixtures", "_pytest.nodes", "_pytest.assertion.rewrite", "unittest.case",
    "pluggy", "pluggy._hooks", "pluggy._callers", "pluggy._manager", "pluggy._result",
    "_frozen_importlib", "_frozen_importlib_external", "importlib", "importlib.util"))
_FINDER_TYPES = (type(None), _bootstrap_external.FileFinder, zipimport.zipimporter)


def _identities():
    """name -> id() of every function and class (and their members) of the watched modules."""
    seen = {"builtins.__import__": id(builtins.__import__)}
    for module in _WATCHED:
        if module is None:
            continue
        for name, value in list(vars(module).items()):
            if isinstance(value, type) or callable(value):
                seen[f"{module.__name__}.{name}"] = id(value)
            if isinstance(value, type) and value.__module__ == module.__name__:
                for attr, member in list(vars(value).items()):
                    if callable(member) or isinstance(member, (property, staticmethod, classmethod)):
                        seen[f"{module.__name__}.{name}.{attr}"] = id(member)
    return seen


def _import_machinery_changes():
    """The finders that decide where test modules come from: those present now must still
    come first (a library may append its own, as toolz's tlz does), and the per-directory
    cache holds only the standard finders."""
    changed = []
    for name, before in (("sys.meta_path", _META_PATH), ("sys.path_hooks", _PATH_HOOKS)):
        if [id(f) for f in getattr(sys, name.split(".")[1])[:len(before)]] != before:
            changed.append(name)
    if not all(isinstance(f, _FINDER_TYPES) for f in list(sys.path_importer_cache.values())):
        changed.append("sys.path_importer_cache")
    return changed


_BEFORE = _identities()
_META_PATH, _PATH_HOOKS = [id(f) for f in sys.meta_path], [id(f) for f in sys.path_hooks]
_bodies = set()  # node ids whose test function this plugin called
_collected = {}  # node id -> (function, code object) of each test function when collection finished


def _exc_name(excinfo):
    return None if excinfo is None else type(excinfo[1] if isinstance(excinfo, tuple) else excinfo.value).__name__


def _function_and_code(item):
    func = getattr(item.obj, "__func__", item.obj)  # a test method's underlying function
    return func, getattr(func, "__code__", None)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    for item in session.items:
        if isinstance(item, _Function):
            _collected[item.nodeid] = _function_and_code(item)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    collected = _collected.get(pyfuncitem.nodeid)
    now = _function_and_code(pyfuncitem)
    if collected is None or collected[0] is not now[0] or collected[1] is not now[1]:
        _record({"replaced_test": pyfuncitem.nodeid})  # e.g. its __code__ swapped for a no-op since collection
    _bodies.add(pyfuncitem.nodeid)
    _call_test_function(pyfuncitem)
    return True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    outcome = yield
    # unittest items run their body through unittest.case (watched), not pytest_pyfunc_call
    body = item.nodeid in _bodies or isinstance(item, _UnittestItem) or not isinstance(item, _Function)
    _record({"ran": item.nodeid, "raw": _exc_name(outcome.excinfo), "body": body})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    _record({"phase": call.when, "node": item.nodeid, "raw": _exc_name(call.excinfo),
             "outcome": report.outcome, "wasxfail": hasattr(report, "wasxfail")})


def pytest_collectreport(report):
    if report.outcome != "passed":
        _record({"collect_error": report.nodeid, "outcome": report.outcome})


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    after = _identities()
    changed = sorted(name for name, ident in _BEFORE.items() if after.get(name) != ident)
    tracers = ["sys.settrace"] * (sys.gettrace() is not None) + ["sys.setprofile"] * (sys.getprofile() is not None)
    _record({"end": int(exitstatus), "changed": changed + _import_machinery_changes() + tracers})
