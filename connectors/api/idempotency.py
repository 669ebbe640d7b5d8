"""Idempotent ingest: the event ids this API instance accepted, and the requests in flight.

A partner that did not get our answer retries with the same ``event_id``.
The same event again answers 202 as the first time and is not published
twice; another event under an id already taken answers 409. "The same" means
the same Avro record once validated (so whitespace, key order or a time
zone's spelling do not matter): the store keeps each accepted record's
SHA-256, written only after the broker acknowledged it.

The store is one SQLite file in the data directory, shared by the API instances on
that directory (behind one address): each looks up what the others appended too,
so a retry that lands on another instance answers as the first. The limits, stated
plainly: an instance writes what it accepted behind its answers (within ~50 ms), so
a retry on another instance inside that window is published again; and instances
on different data directories share nothing. Such a copy is dropped downstream,
where every reader deduplicates by event id (docs/architecture.md, Guarantees).
Ids are remembered for ``api_idempotency_days``.

With each id the store keeps where the broker wrote the event (partition and
offset), so a retry answers the first write's consistency token: reading
after it waits for the write that was made, not for one that never was.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from hub import logs
from hub.errors import StoreError, StoreUnwritable
from hub.sqlite import connect, failure, rollback, unwritable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accepted_log (
    event_id TEXT NOT NULL, body_sha256 TEXT NOT NULL, topic TEXT NOT NULL,
    accepted_at INTEGER NOT NULL, kafka_partition INTEGER, kafka_offset INTEGER
);
"""
# Files written before consistency tokens lack the place of each write: their rows
# answer a null token, new rows fill the columns in.
_POSITIONS = (
    "ALTER TABLE accepted_log ADD COLUMN kafka_partition INTEGER",
    "ALTER TABLE accepted_log ADD COLUMN kafka_offset INTEGER",
)
# The layout before 2026-11-30: one B-tree keyed by the (random) event id. Its rows move
# into the log, oldest first, the first time a store opens the file.
_MIGRATE = """
INSERT INTO accepted_log (event_id, body_sha256, topic, accepted_at)
    SELECT event_id, body_sha256, topic, accepted_at FROM accepted ORDER BY accepted_at;
DROP TABLE accepted;
"""
# Well under SQLite's bound on a statement's parameters.
_CHUNK = 500
_PRUNE_EVERY_S = 3600.0
# The writer gathers what arrives for this long, then commits it in one transaction:
# one wake-up and one commit per interval, however many requests it spans.
_WRITE_EVERY_S = 0.05
# While the file takes no write (its disk or cap full, read-only), the writer tries
# again this often, with what it holds.
_RETRY_UNWRITABLE_S = 1.0
_MAX_ROWID = 2**63 - 1

class Accepted(NamedTuple):
    """What the store remembers of an accepted event."""

    event_id: str
    body_sha256: str
    topic: str
    partition: int | None = None
    """Where the broker wrote it (None: not known, e.g. accepted before this was kept)."""
    offset: int | None = None


class AcceptedStore:
    """The accepted events of one SQLite file, and the ids being published right now.

    The file is a log: rows are appended in the order they were accepted, so a
    commit writes the few pages at its end, however large the table. Event ids
    are random, and a table keyed by them put each new row on a page of its own:
    a commit wrote (and a checkpoint copied back) one page per row, ~14 CPU µs a
    row at 100,000 rows and dearer as it grew. An id is found by the row number
    kept in memory under the id's hash (``_rows``, ~100 bytes an id: some 100 MB
    for a million a week), so a new event, the common case, costs no read of the
    file, and a retry one read by row number.

    Writes are behind: ``remember`` puts the acknowledged events in memory, where
    ``lookup`` finds them at once, and a writer thread appends them, a batch per
    transaction (SQLite does its work without holding Python's lock, so this runs
    beside the requests rather than in their way). ``close`` writes what is
    left. A crash loses the last milliseconds of it: their retries are published
    again, and dropped downstream.

    A write the file cannot take (``StoreUnwritable``: its disk or cap full, or it is
    read-only) is logged once (``store.full``, ``store.read_only``); the batch is kept
    and tried again every second, and ``writable`` is False until a write succeeds:
    meanwhile the API accepts no new event (503) and is not ready.
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
        # hash(event id) -> its row, or the rows of the few ids that share a hash.
        self._rows: dict[int, int | tuple[int, ...]] = {}
        self._changed = threading.Condition()
        self._closing = False
        self._hurry = False  # a flush() waits: write without gathering
        self.unwritable: StoreUnwritable | None = None
        """Why the last write failed, while the file takes no write (None: it does)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = _connect(path)
            self._writer.executescript(_SCHEMA)
            if self._writer.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                    "AND name = 'accepted'").fetchone():
                self._writer.executescript(f"BEGIN IMMEDIATE; {_MIGRATE} COMMIT;")
            _add_positions(self._writer)
            # A second connection for lookups: WAL lets it read while the writer commits.
            self._reader = _connect(path)
        except (OSError, sqlite3.Error) as exc:
            raise failure(exc, path, f"cannot open the idempotency store {path}") from exc
        self._write_lock = threading.Lock()  # one transaction at a time on the writer
        self.log = logs.get().bind(component="idempotency")
        self._pruned = 0.0
        self._caught_up = 0
        """The last row number indexed by a catch-up or at load (``_catch_up``)."""
        self._prune()
        self._load()
        self._thread = threading.Thread(target=self._write_behind, name="idempotency-writer",
                                        daemon=True)
        self._thread.start()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def writable(self) -> bool:
        """Whether the file takes writes (as far as the last one tells): the API accepts
        new events only then, since it could not remember them otherwise."""
        return self.unwritable is None

    def lookup(self, event_ids: Iterable[str]) -> dict[str, Accepted]:
        """The accepted events among ``event_ids``, by id."""
        found: dict[str, Accepted] = {}
        wanted: set[str] = set()
        rows: list[int] = []
        self._catch_up()
        with self._changed:
            for event_id in event_ids:
                accepted = self._unwritten.get(event_id)
                if accepted is not None:
                    found[event_id] = accepted
                    continue
                at = self._rows.get(hash(event_id))
                if at is not None:
                    wanted.add(str(event_id))  # as the file gives it back: a plain str
                    rows.extend((at,) if isinstance(at, int) else at)
        if not rows:
            return found
        try:
            with self._read_lock:
                for start in range(0, len(rows), _CHUNK):
                    chunk = rows[start:start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    for row in self._reader.execute(
                            "SELECT event_id, body_sha256, topic, kafka_partition, "  # noqa: S608 - marks only
                            "kafka_offset FROM accepted_log "
                            f"WHERE rowid IN ({marks})", chunk):
                        if row[0] in wanted:
                            found[row[0]] = Accepted(*row)
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
        """Delete the rows past retention, the oldest first, and forget their ids.

        Rows are in the order they were written, so the expired ones are the
        first: the scan stops at the first row still within the retention.
        """
        self._pruned = self._clock()
        cutoff = self._now_ms() - self._retention_ms
        conn = self._writer
        try:
            with self._write_lock:
                first_kept = conn.execute(
                    "SELECT rowid FROM accepted_log WHERE accepted_at >= ? ORDER BY rowid "
                    "LIMIT 1", (cutoff,)).fetchone()
                bound = first_kept[0] if first_kept else _MAX_ROWID
                gone = conn.execute("SELECT rowid, event_id FROM accepted_log WHERE rowid < ?",
                                    (bound,)).fetchall()
                if gone:
                    conn.execute("DELETE FROM accepted_log WHERE rowid < ?", (bound,))
        except sqlite3.Error as exc:
            raise failure(exc, self.path, "idempotency store not pruned") from exc
        with self._changed:
            for rowid, event_id in gone:
                self._forget(hash(event_id), rowid)
        return len(gone)

    def _load(self) -> None:
        """Index the ids the file holds (at start, before any writes)."""
        try:
            rows = self._writer.execute("SELECT rowid, event_id FROM accepted_log").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"idempotency store unreadable: {exc}") from exc
        with self._changed:
            for rowid, event_id in rows:
                self._index(hash(event_id), rowid)
            self._caught_up = max((rowid for rowid, _ in rows), default=0)

    def _catch_up(self) -> None:
        """Index the rows appended since the last look, by this instance or another one
        on the same file: the rows are numbered in order, so only the new ones are read
        (none, mostly: one short range read of the table's end)."""
        try:
            with self._read_lock:
                rows = self._reader.execute(
                    "SELECT rowid, event_id FROM accepted_log WHERE rowid > ?",
                    (self._caught_up,)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"idempotency store unreadable: {exc}") from exc
        if rows:
            with self._changed:
                for rowid, event_id in rows:
                    self._index(hash(event_id), rowid)
                self._caught_up = max(self._caught_up, rows[-1][0])

    def _index(self, key: int, rowid: int) -> None:
        """Note ``rowid`` under ``key`` (again is a no-op: a catch-up re-reads own rows)."""
        at = self._rows.get(key)
        if at == rowid or (isinstance(at, tuple) and rowid in at):
            return
        if at is None:
            self._rows[key] = rowid
        else:  # another id with the same hash: keep both, lookup tells them apart
            self._rows[key] = (*((at,) if isinstance(at, int) else at), rowid)

    def _forget(self, key: int, rowid: int) -> None:
        at = self._rows.get(key)
        if at == rowid:
            del self._rows[key]
        elif isinstance(at, tuple):
            rest = tuple(r for r in at if r != rowid)
            self._rows[key] = rest[0] if len(rest) == 1 else rest

    def _write_behind(self) -> None:
        while True:
            with self._changed:
                while not self._queue and not self._closing:
                    self._changed.wait()
                if not (self._closing or self._hurry):
                    # Let more arrive; or, while the file takes no write, let time pass.
                    self._changed.wait(_WRITE_EVERY_S if self.unwritable is None
                                       else _RETRY_UNWRITABLE_S)
                self._hurry = False
                batch, self._queue = self._queue, []
                if not batch and self._closing:
                    return
            first = self._write(batch)
            with self._changed:
                if first is None and self.unwritable is not None and not self._closing:
                    self._queue[:0] = batch  # kept, in order, for the next try
                    continue
                for offset, (one, _at) in enumerate(batch):
                    if first is not None:
                        self._index(hash(one.event_id), first + offset)
                    if self._unwritten.get(one.event_id) is one:
                        del self._unwritten[one.event_id]
                self._changed.notify_all()
            if self._clock() - self._pruned > _PRUNE_EVERY_S:
                try:
                    self._prune()
                except StoreError as exc:
                    self.log.warning("idempotency.prune_failed", error=str(exc))

    def _write(self, batch: list[tuple[Accepted, int]]) -> int | None:
        """Append a batch in one transaction; the row number of its first (None: failed)."""
        conn = self._writer
        try:
            with self._write_lock:
                # IMMEDIATE: another process on the same file waits, so the rows it
                # appends never take numbers this batch counted on.
                conn.execute("BEGIN IMMEDIATE")
                try:
                    (last,) = conn.execute(
                        "SELECT coalesce(max(rowid), 0) FROM accepted_log").fetchone()
                    conn.executemany(
                        "INSERT INTO accepted_log (rowid, event_id, body_sha256, topic, "
                        "accepted_at, kafka_partition, kafka_offset) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [(last + 1 + i, a.event_id, a.body_sha256, a.topic, at, a.partition,
                          a.offset) for i, (a, at) in enumerate(batch)])
                    conn.execute("COMMIT")
                except BaseException as exc:
                    rollback(conn, exc)
                    raise
        except sqlite3.Error as exc:
            self._write_failed(exc, len(batch))
            return None
        if self.unwritable is not None:
            self.unwritable = None
            self.log.info("store.writable", path=str(self.path), events=len(batch))
        return int(last) + 1

    def _write_failed(self, exc: sqlite3.Error, events: int) -> None:
        """Note a failed write: the file's own condition (said once, kept until a write
        succeeds), or another failure, whose ids are forgotten."""
        full = unwritable(exc, self.path)
        if full is not None and not self._closing:
            if self.unwritable is None:
                self.log.error(full.event, events=events, **full.fields())
            self.unwritable = full
            return
        # Those ids are forgotten: their retries are published again, and dropped
        # downstream by event id.
        self.log.warning("idempotency.write_failed", events=events, error=str(exc))

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


def _add_positions(conn: sqlite3.Connection) -> None:
    """Give a file from before consistency tokens its position columns (once, whoever first)."""
    def present() -> bool:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(accepted_log)")}
        return "kafka_offset" in columns

    if present():
        return
    conn.execute("BEGIN IMMEDIATE")  # another process on the file may be adding them too
    try:
        if not present():
            for statement in _POSITIONS:
                conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _connect(path: Path) -> sqlite3.Connection:
    # Losing the last commits on a power cut costs a duplicate that readers drop.
    return connect(path, durable=True, what="idempotency store")
