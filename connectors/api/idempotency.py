"""Idempotent ingest: the event ids this API instance accepted, and the requests in flight.

A partner that did not get our answer retries with the same ``event_id``.
The same event again answers 202 as the first time and is not published
twice; another event under an id already taken answers 409. "The same" means
the same Avro record once validated (so whitespace, key order or a time
zone's spelling do not matter): the store keeps each accepted record's
SHA-256, written only after the broker acknowledged it.

The limit, stated plainly: the store is per API instance (one SQLite file in
its data directory, shared only by instances on that directory). A retry
that lands on another instance is published again, and is then dropped
downstream, where every reader deduplicates by event id (DESIGN.md,
Guarantees). Ids are remembered for ``api_idempotency_days``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from hub import logs
from hub.errors import StoreError
from hub.store import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accepted (
    event_id TEXT PRIMARY KEY, body_sha256 TEXT NOT NULL, topic TEXT NOT NULL,
    accepted_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS accepted_at ON accepted (accepted_at);
"""
# Well under SQLite's bound on a statement's parameters.
_CHUNK = 500
_PRUNE_EVERY_S = 3600.0
# The writer gathers what arrives for this long, then commits it in one transaction:
# one wake-up and one commit per interval, however many requests it spans.
_WRITE_EVERY_S = 0.05
# Event ids are random: each new row lands on its own leaf page of the table, and each
# commit writes every page it touched to the WAL, then a checkpoint copies them back.
# A larger cache keeps the leaves in memory, and checkpointing every 10,000 pages
# (~40 MB of WAL) rather than 1,000 copies a page touched by many commits once.
# Measured with 600-row commits into 100,000 rows: ~24 to ~14 CPU µs a row (building
# the rows included); in the ingest bench the writer went from ~13 to ~6 µs an event.
_WRITER_PRAGMAS = ("PRAGMA cache_size=-32768", "PRAGMA wal_autocheckpoint=10000")


class Accepted(NamedTuple):
    """What the store remembers of an accepted event."""

    event_id: str
    body_sha256: str
    topic: str


class AcceptedStore:
    """The ``accepted`` table of one SQLite file, and the ids being published right now.

    Writes are behind: ``remember`` puts the acknowledged events in memory, where
    ``lookup`` finds them at once, and a writer thread commits them, a batch per
    transaction (SQLite does its B-tree work without holding Python's lock, so
    this runs beside the requests rather than in their way). ``close`` writes
    what is left. A crash loses the last milliseconds of it: their retries are
    published again, and dropped downstream.
    """

    def __init__(self, path: Path, *, retention_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._retention_ms = int(retention_s * 1000)
        self._clock = clock
        self._busy: dict[str, threading.Event] = {}
        self._busy_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._queue: list[tuple[Accepted, int]] = []  # with when it was accepted (ms)
        self._unwritten: dict[str, Accepted] = {}  # accepted, not yet committed
        # The hashes of every id in the table (or on its way there): an id whose hash
        # is not here was never accepted, and a new event, the common case, costs no
        # read of the file. About 60 bytes an id: some 60 MB for a million a week.
        self._known: set[int] = set()
        self._changed = threading.Condition()
        self._closing = False
        self._hurry = False  # a flush() waits: write without gathering
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = _connect(path)
            self._writer.executescript(_SCHEMA)
            for pragma in _WRITER_PRAGMAS:
                self._writer.execute(pragma)
            # A second connection for lookups: WAL lets it read while the writer commits.
            self._reader = _connect(path)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the idempotency store {path}: {exc}") from exc
        self._write_lock = threading.Lock()  # one transaction at a time on the writer
        self.log = logs.get().bind(component="idempotency")
        self._pruned = 0.0
        self._prune()  # and load the ids kept
        self._thread = threading.Thread(target=self._write_behind, name="idempotency-writer",
                                        daemon=True)
        self._thread.start()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def lookup(self, event_ids: Iterable[str]) -> dict[str, Accepted]:
        """The accepted events among ``event_ids``, by id."""
        found: dict[str, Accepted] = {}
        missing: list[str] = []
        with self._changed:
            for event_id in event_ids:
                accepted = self._unwritten.get(event_id)
                if accepted is not None:
                    found[event_id] = accepted
                elif hash(event_id) in self._known:
                    missing.append(event_id)
        if not missing:
            return found
        try:
            with self._read_lock:
                for start in range(0, len(missing), _CHUNK):
                    chunk = missing[start:start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows = self._reader.execute(
                        "SELECT event_id, body_sha256, topic FROM accepted "  # noqa: S608 - marks only
                        f"WHERE event_id IN ({marks})", chunk).fetchall()
                    found.update((row[0], Accepted(*row)) for row in rows)
        except sqlite3.Error as exc:
            raise StoreError(f"idempotency store unreadable: {exc}") from exc
        return found

    def remember(self, accepted: Sequence[Accepted]) -> None:
        """Record events the broker acknowledged (found by ``lookup`` from now on)."""
        if not accepted:
            return
        now = self._now_ms()
        with self._changed:
            for one in accepted:
                self._unwritten[one.event_id] = one
                self._known.add(hash(one.event_id))
            idle = not self._queue
            self._queue.extend((one, now) for one in accepted)
            if idle:
                self._changed.notify_all()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything remembered is committed; False if it was not in time."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            self._hurry = True
            self._changed.notify_all()
            while self._unwritten and self._thread.is_alive():
                if not self._changed.wait(deadline - time.monotonic()):
                    return False
        return not self._unwritten

    def prune(self) -> int:
        """Forget ids older than the retention; return how many."""
        self.flush()
        return self._prune()

    def _prune(self) -> int:
        """Delete the ids past retention, then rebuild ``_known`` from those kept."""
        self._pruned = self._clock()
        try:
            with self._write_lock:  # nothing is written meanwhile: the set misses nothing
                cursor = self._writer.execute("DELETE FROM accepted WHERE accepted_at < ?",
                                              (self._now_ms() - self._retention_ms,))
                known = {hash(row[0]) for row in
                         self._writer.execute("SELECT event_id FROM accepted")}
        except sqlite3.Error as exc:
            raise StoreError(f"idempotency store not pruned: {exc}") from exc
        with self._changed:
            known.update(hash(event_id) for event_id in self._unwritten)
            self._known = known
        return cursor.rowcount

    def _write_behind(self) -> None:
        while True:
            with self._changed:
                while not self._queue and not self._closing:
                    self._changed.wait()
                if not (self._closing or self._hurry):
                    self._changed.wait(_WRITE_EVERY_S)  # let more arrive
                self._hurry = False
                batch, self._queue = self._queue, []
                if not batch and self._closing:
                    return
            self._write(batch)
            with self._changed:
                for one, _at in batch:
                    if self._unwritten.get(one.event_id) is one:
                        del self._unwritten[one.event_id]
                self._changed.notify_all()
            if self._clock() - self._pruned > _PRUNE_EVERY_S:
                try:
                    self._prune()
                except StoreError as exc:
                    self.log.warning("idempotency.prune_failed", error=str(exc))

    def _write(self, batch: list[tuple[Accepted, int]]) -> None:
        rows = [(a.event_id, a.body_sha256, a.topic, at) for a, at in batch]
        conn = self._writer
        try:
            with self._write_lock:
                conn.execute("BEGIN")
                try:
                    conn.executemany("INSERT OR REPLACE INTO accepted VALUES (?, ?, ?, ?)", rows)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            # Those ids are forgotten: their retries are published again, and dropped
            # downstream by event id.
            self.log.warning("idempotency.write_failed", events=len(batch), error=str(exc))

    # -- in flight ----------------------------------------------------------------------------

    def claim(self, event_ids: Iterable[str], timeout_s: float) -> set[str]:
        """Claim ids for publishing; return those claimed (release them with ``release``).

        An id another request is publishing right now is claimed once that request
        released it (so the store then answers for it), or not at all within
        ``timeout_s``: two retries racing each other never both publish.
        """
        pending = set(event_ids)
        claimed: set[str] = set()
        # One event per call, shared by the ids it claims: a batch claims a thousand.
        mine = threading.Event()
        deadline = time.monotonic() + timeout_s
        while pending:
            with self._busy_lock:
                busy = self._busy
                for event_id in pending:
                    if event_id not in busy:
                        busy[event_id] = mine
                        claimed.add(event_id)
                pending -= claimed
                waiting = next((busy[i] for i in pending), None)
            remaining = deadline - time.monotonic()
            if waiting is None or remaining <= 0:
                break
            waiting.wait(remaining)
        return claimed

    def release(self, event_ids: Iterable[str]) -> None:
        """Give claimed ids back, waking whoever waits for them."""
        done: set[threading.Event] = set()
        with self._busy_lock:
            for event_id in event_ids:
                holder = self._busy.pop(event_id, None)
                if holder is not None:
                    done.add(holder)
        for holder in done:
            holder.set()

    def close(self) -> None:
        """Write what is left, then close the files."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join(30)
        self._reader.close()
        self._writer.close()


def _connect(path: Path) -> sqlite3.Connection:
    # Losing the last commits on a power cut costs a duplicate that readers drop.
    return connect(path, durable=True, what="idempotency store")
