"""Restoring the state of newly assigned partitions between polls, a slice at a time.

A member that takes partitions over may have to rebuild their state from a
topic (the passport service: a million passports took 150 s). Done inside the
rebalance callback, as it first was, the member stopped polling for that long,
and past ``max_poll_interval_ms`` the group threw it out. So a restore is a
task: begun on assignment (with no broker call: a leader that does not answer
once held the member inside the callback for minutes), stepped by the loop for
about a second between two polls while the partition's inputs stay paused, and
dropped if the partition is revoked meanwhile. Its first steps decide whether
there is anything to restore at all. The tasks take their slices in turn, so a
long or failing restore does not hold up the others. Each step commits what it
wrote; the positions and the marker that the state is current are written by
the last one, so a restore cut short by a crash or a revocation is simply done
again from the start.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from hub.store import Store

__all__ = ["Restorations", "RestoreTask", "Restorer", "restore_all"]

#: How long the loop restores before it polls again.
SLICE_S = 1.0


class RestoreTask(Protocol):
    """The restore of one partition, in steps."""

    def step(self, deadline: float) -> bool:
        """Restore until ``deadline`` (``time.monotonic``); True once the partition is current."""
        ...

    def abandon(self) -> None:
        """Stop here (the partition was revoked); a later assignment restores it anew."""
        ...


class Restorer(Protocol):
    """Rebuilds a processor's state for partitions it is assigned (the shell's I/O part)."""

    checkpoints: tuple[str, ...]
    """Catalog topics the state is restored from. The relay never lets a record
    of these overtake an earlier record of another topic: a checkpoint on the
    broker implies everything emitted before it is there too."""

    def begin(self, store: Store, partition: int) -> RestoreTask | None:
        """The restore ``partition`` may need, or None when the store is known to be
        current for it. Called in the rebalance callback: no blocking I/O."""
        ...


def restore_all(restorer: Restorer, store: Store, partitions: Iterable[int]) -> None:
    """Restore ``partitions`` to completion, one after the other (tools, benchmarks)."""
    for partition in partitions:
        task = restorer.begin(store, partition)
        while task is not None and not task.step(math.inf):
            pass


class Restorations:
    """The restores under way in one loop."""

    def __init__(self, restorer: Restorer, store: Store, *, slice_s: float = SLICE_S,
                 clock: Callable[[], float] = time.monotonic,
                 on_restored: Callable[[float], None] | None = None) -> None:
        """``on_restored``: told how many seconds each finished restore took, from its
        beginning (slices of other work between its steps included)."""
        self.restorer = restorer
        self._store = store
        self._slice_s = slice_s
        self._clock = clock
        self._on_restored = on_restored
        self._tasks: dict[int, RestoreTask] = {}
        self._began: dict[int, float] = {}

    @property
    def partitions(self) -> set[int]:
        """The partition numbers being restored."""
        return set(self._tasks)

    @property
    def count(self) -> int:
        """How many restores are under way (read from other threads: no iteration)."""
        return len(self._tasks)

    def begin(self, partitions: Iterable[int]) -> set[int]:
        """Start the restores the newly assigned ``partitions`` need; return theirs."""
        for partition in sorted(set(partitions) - set(self._tasks)):
            task = self.restorer.begin(self._store, partition)
            if task is not None:
                self._tasks[partition] = task
                self._began[partition] = self._clock()
        return self.partitions

    def abandon(self, partitions: Iterable[int]) -> None:
        """Drop the restores of revoked partitions."""
        for partition in partitions:
            task = self._tasks.pop(partition, None)
            self._began.pop(partition, None)
            if task is not None:
                task.abandon()

    def step(self) -> list[int]:
        """Work on the next restore in turn for one slice; return the partitions now current."""
        if not self._tasks:
            return []
        partition, task = next(iter(self._tasks.items()))
        done = task.step(self._clock() + self._slice_s)  # if it raises, it stays to be abandoned
        del self._tasks[partition]
        if done:
            began = self._began.pop(partition, None)
            if began is not None and self._on_restored is not None:
                self._on_restored(self._clock() - began)
            return [partition]
        self._tasks[partition] = task  # to the back of the line
        return []
