"""Snapshot windows: one snapshot per business per window of batches, not per batch.

While the service catches up on a backlog, a business's story (enrolment,
sessions, completions, feedback, an offer) spreads over several batches, and a
snapshot per business per batch sent most of them two or three times; each
costs ~50 µs (built, encoded, put in the outbox, sent: ~25 of them in
kafka-python's producer). So a partition's changed businesses are noted in its
*window*, and their snapshots leave together when the window closes:

- when the loop is caught up with its inputs, or polled nothing (``flush``);
- when the window is older than ``window_ms`` (injected clock), or names
  ``max_dirty`` businesses;
- at the end of every batch with ``window_ms = 0`` (the behaviour before windows).

The window is kept in the store, in the batch's transaction, so a crash neither
loses nor repeats it. Its snapshots carry ``replay_from`` = where the window's
first batch began (Kafka Streams' record cache does the same with its commit
interval): on takeover, the new owner restores the last snapshots and replays
from there, which re-applies every change whose snapshot may be missing
(services/passport/restore.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.store import Txn

#: Store namespace: partition number -> its open window.
WINDOW_NS = "passport-window"


@dataclass(slots=True)
class Window:
    """A partition's open window (mutable: it grows with each batch until closed)."""

    replay_from: dict[str, int]
    """Input positions where the window's first batch began, per "topic/partition"."""
    opened_at: int
    """Injected clock, epoch ms."""
    dirty: dict[str, str]
    """SIREN -> where its last change came from (the snapshot id's cause), in order."""

    def to_json(self) -> dict[str, Any]:
        return {"replay_from": self.replay_from, "opened_at": self.opened_at,
                "dirty": self.dirty}

    @staticmethod
    def from_json(value: dict[str, Any]) -> Window:
        return Window(dict(value["replay_from"]), int(value["opened_at"]), dict(value["dirty"]))


class Windows:
    """The open windows: rows in the store, and in memory which partitions have one and
    since when (a hint read from the store once per process; the rows are the truth:
    a restore drops a partition's row with the rest of its state)."""

    def __init__(self, *, window_ms: int, max_dirty: int) -> None:
        self.window_ms = window_ms
        self.max_dirty = max_dirty
        self._opened: dict[int, int] = {}
        self._read = False

    def open(self, state: Txn, partition: int, starts: dict[str, int], now: int) -> Window:
        """The partition's open window, or a new one beginning at ``starts``; positions
        of inputs first seen since it opened are added to where it begins."""
        stored = state.get(WINDOW_NS, str(partition))
        if stored is None:
            return Window(dict(starts), now, {})
        window = Window.from_json(stored)
        for where, offset in starts.items():
            window.replay_from.setdefault(where, offset)
        return window

    def full(self, window: Window) -> bool:
        """Close it now, whatever its age: no windows, or too many businesses in it."""
        return self.window_ms == 0 or len(window.dirty) >= self.max_dirty

    def keep(self, state: Txn, partition: int, window: Window) -> None:
        state.put(WINDOW_NS, str(partition), window.to_json(), partition=partition)
        self._opened[partition] = window.opened_at

    def close(self, state: Txn, partition: int) -> None:
        state.delete(WINDOW_NS, str(partition))
        self._opened.pop(partition, None)

    def due(self, state: Txn, partitions: frozenset[int], now: int, *,
            caught_up: bool) -> list[tuple[int, Window]]:
        """The open windows of ``partitions`` to close: all of them if ``caught_up``,
        else those opened ``window_ms`` ago or more."""
        if not self._read:
            self._read = True
            for key, value in state.items(WINDOW_NS):
                self._opened[int(key)] = int(value["opened_at"])
        out: list[tuple[int, Window]] = []
        for partition, opened_at in sorted(self._opened.items()):
            if partition not in partitions or not (caught_up
                                                   or now - opened_at >= self.window_ms):
                continue
            stored = state.get(WINDOW_NS, str(partition))
            if stored is None:  # dropped with the partition's state (a restore)
                self._opened.pop(partition)
            else:
                out.append((partition, Window.from_json(stored)))
        return out
