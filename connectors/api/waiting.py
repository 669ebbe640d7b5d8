"""Long polls without a thread each: one watcher of the read model wakes every waiting request.

A request that waits (the pull feed's ``wait``, a read's ``after``) must not
hold a worker thread for its seconds: the thread pool is small (40) and shared
with the ingest's publishing, so a few dozen long polls would stall the
accepting of events. Instead each waiter awaits a future on its own event
loop, and a single thread blocks in ``wait_for_change`` on the read model's
behalf, settling every registered future after each of its commits; woken,
a waiter runs its check again (a short read, in the pool) and goes back to
sleep if it still does not hold. The thread runs only while someone waits: it
stops by itself a beat after the last waiter left, so no app ever leaks one.

A commit that falls between two ``wait_for_change`` calls of the watcher is
not seen by it; every waiter therefore also re-checks at least every
``NAP_S``, which bounds how late such a miss answers.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import TypeVar

from fastapi.concurrency import run_in_threadpool

from hub import logs

T = TypeVar("T")

#: How long the watcher blocks in one ``wait_for_change``: also how soon it stops once idle.
BEAT_S = 0.5
#: The longest a waiter sleeps without checking again, woken or not.
NAP_S = 1.0

_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class Changes:
    """Wakes the requests waiting for the read model to change (``until``)."""

    def __init__(self, wait_for_change: Callable[[float], bool], *,
                 beat_s: float = BEAT_S, nap_s: float = NAP_S) -> None:
        self._wait_for_change = wait_for_change
        self._beat_s = beat_s
        self._nap_s = nap_s
        self._lock = threading.Lock()
        self._waiters: set[_Waiter] = set()
        self._thread: threading.Thread | None = None
        self.log = logs.get().bind(component="api.waiting")

    @property
    def watching(self) -> bool:
        """Whether the watcher thread runs now (someone waits, or did a beat ago)."""
        with self._lock:
            return self._thread is not None

    async def until(self, probe: Callable[[], T | None], timeout_s: float) -> T | None:
        """``probe()``'s first truthy answer, or its last (falsy) one after ``timeout_s``.

        ``probe`` runs in a worker thread (it reads SQLite): first at once, then
        after every commit of the read model, or every ``nap_s`` at the latest.
        """
        if timeout_s <= 0:
            return await run_in_threadpool(probe)  # no wait: no watcher either
        deadline = time.monotonic() + timeout_s
        while True:
            # Registered before the check: a commit during the check wakes us at once.
            waiter = self._register()
            try:
                found = await run_in_threadpool(probe)
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    return found
                with suppress(TimeoutError):
                    await asyncio.wait_for(waiter[1], min(remaining, self._nap_s))
            finally:
                self._unregister(waiter)

    def _register(self) -> _Waiter:
        loop = asyncio.get_running_loop()
        waiter: _Waiter = (loop, loop.create_future())
        with self._lock:
            self._waiters.add(waiter)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="api-waiting",
                                                daemon=True)
                self._thread.start()
        return waiter

    def _unregister(self, waiter: _Waiter) -> None:
        with self._lock:
            self._waiters.discard(waiter)

    def _watch(self) -> None:
        while True:
            with self._lock:
                if not self._waiters:
                    self._thread = None  # under the lock: a new waiter starts a new watcher
                    return
            try:
                changed = self._wait_for_change(self._beat_s)
            except Exception as exc:
                self.log.warning("waiting.watch_failed", error=type(exc).__name__)
                time.sleep(self._beat_s)
                continue
            if changed:
                self._wake_all()

    def _wake_all(self) -> None:
        # The waiters stay registered until they leave (``until`` unregisters them): the
        # set is not emptied here, or the watcher would stop and restart at every commit.
        with self._lock:
            woken = list(self._waiters)
        for loop, future in woken:
            with suppress(RuntimeError):  # that loop has closed: nobody is waiting there
                loop.call_soon_threadsafe(_settle, future)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
