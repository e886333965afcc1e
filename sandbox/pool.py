"""A warm pool: members (sandboxes, env containers) started ahead of need.

Starting a container costs a fraction of a second; an episode's reset should not pay
it. A background thread keeps `size` members started and healthy: it checks the idle
ones every `check_interval` seconds and replaces any that died. A member is handed out
once and never returned (it is dirty after use): the caller closes it, and the pool
starts a fresh one in its place. When the pool is empty, `acquire` starts a member in
the caller's thread, so demand above `size` is served cold but never waits on the pool.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Generic, Iterator, Protocol, TypeVar

if TYPE_CHECKING:
    from agenthub.sandbox.base import Sandbox


class Member(Protocol):
    def is_alive(self) -> bool: ...

    def close(self) -> None: ...


M = TypeVar("M", bound=Member)


class Pool(Generic[M]):
    def __init__(self, factory: Callable[[], M], size: int = 2, check_interval: float = 5.0):
        if size < 0:
            raise ValueError("pool size must be >= 0")
        self.factory, self.size, self.check_interval = factory, size, check_interval
        self.hits = self.misses = self.replaced = 0
        self._idle: list[M] = []
        self._starting = 0
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._keep_filled, name="agenthub-pool", daemon=True)
        self._thread.start()

    @classmethod
    def of_sandboxes(cls, backend: str, size: int = 2, check_interval: float = 5.0, **open_args: Any) -> Pool:
        """A pool of `sandbox.open(backend, **open_args)` sandboxes, warmed (`Sandbox.warm`)."""
        from agenthub.sandbox.backends import open as open_sandbox

        def warmed() -> Sandbox:
            box = open_sandbox(backend, **open_args)
            try:
                return box.warm()
            except BaseException:
                box.close()
                raise
        return cls(warmed, size, check_interval)

    def acquire(self) -> M:
        """A started, healthy member, now the caller's to use and close."""
        while True:
            with self._cond:
                if self._closed:
                    raise RuntimeError("the pool is closed")
                member = self._idle.pop(0) if self._idle else None
                self._cond.notify_all()  # the filler starts a replacement
            if member is None:
                self.misses += 1
                return self.factory()
            if member.is_alive():
                self.hits += 1
                return member
            self.replaced += 1
            member.close()

    @contextmanager
    def member(self) -> Iterator[M]:
        """`with pool.member() as box:` acquire, and close it afterwards."""
        m = self.acquire()
        try:
            yield m
        finally:
            m.close()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until `size` members are idle (e.g. before timing anything)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._closed or len(self._idle) >= self.size, timeout)

    @property
    def idle(self) -> int:
        return len(self._idle)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for m in idle:
            m.close()
        self._thread.join(timeout=30)

    def __enter__(self) -> Pool[M]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _keep_filled(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or len(self._idle) + self._starting < self.size,
                                    timeout=self.check_interval)
                if self._closed:
                    return
                need = len(self._idle) + self._starting < self.size
                if need:
                    self._starting += 1
                    # checked outside the lock: a health check may take a while
                to_check = [] if need else list(self._idle)
            if need:
                self._start_one()
            else:
                self._drop_dead(to_check)

    def _start_one(self) -> None:
        try:
            member: M | None = self.factory()
        except Exception:  # a failing start must not kill the filler; acquire() will surface the error
            member = None
            threading.Event().wait(self.check_interval)
        with self._cond:
            self._starting -= 1
            if member is not None and not self._closed:
                self._idle.append(member)
                member = None
            self._cond.notify_all()
        if member is not None:  # the pool closed while it started
            member.close()

    def _drop_dead(self, members: list[M]) -> None:
        dead = [m for m in members if not m.is_alive()]
        with self._cond:
            dead = [m for m in dead if m in self._idle]
            for m in dead:
                self._idle.remove(m)
            self.replaced += len(dead)
            self._cond.notify_all()
        for m in dead:
            m.close()
