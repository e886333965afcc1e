"""The env server's worker threads: env calls run off the event loop, on a bounded set
of threads, each with an optional deadline.

Why not `loop.run_in_executor` plus `asyncio.wait_for(asyncio.shield(...))`: at 1,024
sessions each stepping once a second, that path (a concurrent Future with its Condition,
an asyncio Future chained to it, a Task, a shield and a waiter per call) cost 60 µs of
CPU per step on this machine, more than the env step, the JSON and the request checks
together. Here a call is one asyncio Future, one queue put, one timer and one loop
wake-up (bench/server.py --open-loop measures the server's CPU per answer).

A call that outlives its deadline keeps its thread (Python cannot stop it); its caller
gets `Overdue` at once, whose `returned` future completes when the call finally returns.
Stuck calls do not count against `size`: every other call still finds a thread.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
from typing import Any, Callable


class Overdue(Exception):
    """The call ran past its deadline and is still running on its thread; `returned`
    completes (with None) once it returns."""

    def __init__(self, returned: asyncio.Future[None]):
        super().__init__("the call ran past its deadline")
        self.returned = returned


class EnvCallRaised(RuntimeError):
    """The call raised something its caller must not see raised as is: StopIteration
    (which an awaiting coroutine would take for its own end), or a BaseException such as
    SystemExit or KeyboardInterrupt (which would end the caller, not just the call)."""


class _Call:
    __slots__ = ("fn", "future", "timer", "returned")

    def __init__(self, fn: Callable[[], Any], future: asyncio.Future[Any]):
        self.fn, self.future = fn, future
        self.timer: asyncio.TimerHandle | None = None
        self.returned: asyncio.Future[None] | None = None  # set once overdue


class EnvWorkers:
    """Up to `size` threads (started as calls need them, plus one per overdue call still
    running) taking calls from one queue. All bookkeeping happens on the event loop's
    thread, so it needs no lock; `run` must be called from that loop (one loop per
    EnvWorkers)."""

    def __init__(self, size: int, name: str = "agenthub-env"):
        if size < 1:
            raise ValueError(f"EnvWorkers needs at least one thread, not {size}")
        self.size, self.name = size, name
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self.threads = 0  # started and not yet told to exit
        self.pending = 0  # calls submitted that have not returned (queued, running or overdue)
        self.overdue = 0  # calls past their deadline that have not returned
        # Returned calls wait here for the loop; one wake-up (a write to the loop's
        # self-pipe) serves all that return before the loop gets to them.
        self._returned: collections.deque[tuple[_Call, Any, BaseException | None]] = collections.deque()
        self._wake_pending = False

    def run(self, fn: Callable[[], Any], timeout: float | None = None) -> asyncio.Future[Any]:
        """A future for `fn()` run on a worker thread: its result, or the exception it
        raised (`EnvCallRaised` for StopIteration and non-Exception ones); `Overdue` once
        `timeout` seconds pass first. Cancelling the future does not stop `fn` (nothing
        can): its outcome is then dropped. Call from the event loop that awaits it."""
        loop = asyncio.get_running_loop()
        call = _Call(fn, loop.create_future())
        self.pending += 1
        self._grow()
        if timeout is not None:
            call.timer = loop.call_later(timeout, self._expire, call)
        self._queue.put(call)
        return call.future

    def close(self) -> None:
        """Let every thread exit once the calls queued before this have run."""
        for _ in range(self.threads):
            self._queue.put(None)
        self.threads = 0

    def _grow(self) -> None:
        if self.pending > self.threads and self.threads < self.size + self.overdue:
            self.threads += 1
            threading.Thread(target=self._work, name=f"{self.name}-{self.threads}", daemon=True).start()

    def _work(self) -> None:
        while (call := self._queue.get()) is not None:
            try:
                outcome: tuple[Any, BaseException | None] = (call.fn(), None)
            except BaseException as e:  # whatever an env raises goes back to its caller
                outcome = (None, e)
            self._returned.append((call, *outcome))
            if not self._wake_pending:
                # Set before the loop can clear it (in _drain), so a call appended after
                # _drain's last look always schedules another _drain.
                self._wake_pending = True
                try:
                    call.future.get_loop().call_soon_threadsafe(self._drain)
                except RuntimeError:
                    return  # the loop is closed: the server has stopped

    def _drain(self) -> None:
        self._wake_pending = False
        while self._returned:
            self._finish(*self._returned.popleft())

    def _finish(self, call: _Call, result: Any, error: BaseException | None) -> None:
        self.pending -= 1
        if call.returned is not None:
            self.overdue -= 1
            if not call.returned.done():  # (a waiter cancelled at shutdown cancels it)
                call.returned.set_result(None)
            if self.threads > self.size + self.overdue:
                self._queue.put(None)  # the extra thread it needed is no longer needed
                self.threads -= 1
            return
        if call.timer is not None:
            call.timer.cancel()
        if call.future.done():
            return  # cancelled by its caller
        if error is None:
            call.future.set_result(result)
        elif isinstance(error, Exception) and not isinstance(error, (StopIteration, StopAsyncIteration)):
            call.future.set_exception(error)
        else:  # an asyncio future refuses StopIteration, and SystemExit & co. would end the caller itself
            why = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            call.future.set_exception(EnvCallRaised(why))

    def _expire(self, call: _Call) -> None:
        if call.future.done():
            return
        call.returned = call.future.get_loop().create_future()
        self.overdue += 1
        self._grow()  # its thread is taken for as long as the call runs
        call.future.set_exception(Overdue(call.returned))
