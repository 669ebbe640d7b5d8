"""A component's local SQLite store: state, input positions and the outbox, together.

Everything a processor decides for one polled batch is written in ONE SQLite
transaction: the new state, the next input offset per partition, and the
records it will emit. That single commit is what makes a crash at any point
safe (docs/architecture.md, Guarantees): after a restart the positions say where to
resume, and the outbox still holds whatever had not been acknowledged.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from hub.sqlite import connect, failure, rollback, unwritable
from schemas.frozen import frozen

# ``state`` is a rowid table with a unique index on (ns, key), not a WITHOUT ROWID
# table keyed by it: its values (a passport is ~1 KB of JSON) are large for a
# clustered key, and there an upsert cost 17 µs against 6 µs, a read 12 against 6
# (20,000 passports, batches of 5,000). Files of the earlier layout are migrated.
_STATE_TABLE = """
CREATE TABLE IF NOT EXISTS state (
    ns TEXT NOT NULL, key TEXT NOT NULL, partition INTEGER NOT NULL, value TEXT NOT NULL,
    UNIQUE (ns, key))"""
_SCHEMA = _STATE_TABLE + """;
CREATE INDEX IF NOT EXISTS state_partition ON state (partition);
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key BLOB,
    value BLOB NOT NULL, headers TEXT NOT NULL);
"""

Headers = Sequence[tuple[str, bytes]]

#: State values are JSON text. orjson writes and reads it ~5x faster than the json
#: module, and the processors write every touched key once per batch. (Non-ASCII
#: is stored as UTF-8 rather than escaped: the same values either way.)
_loads = orjson.loads


def dumps(value: Any) -> str:
    """A state value as the store keeps it (``Txn.put_many_json`` takes this text)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


_NO_HEADERS = "[]"
#: Keys per ``IN (...)`` query: well under SQLite's bound on parameters (999 before 3.32).
_KEYS_PER_QUERY = 500


@frozen
class OutboxRecord:
    """One record committed for emission and not yet acknowledged by the broker."""

    seq: int
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class Txn:
    """The writes of one batch; visible to later reads in the same batch."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.emitted: list[OutboxRecord] = []
        """The outbox records written, with their seqs: the store keeps them once committed."""

    def get(self, ns: str, key: str) -> Any | None:
        """The JSON value stored under (ns, key), or None."""
        row = self._conn.execute(
            "SELECT value FROM state WHERE ns = ? AND key = ?", (ns, key)).fetchone()
        return None if row is None else _loads(row[0])

    def put(self, ns: str, key: str, value: Any, *, partition: int) -> None:
        """Store a JSON-serialisable value; ``partition`` says which input partition owns it."""
        self._conn.execute(
            "INSERT INTO state (ns, key, partition, value) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, "
            "partition = excluded.partition",
            (ns, key, partition, dumps(value)))

    def get_many(self, ns: str, keys: Iterable[str]) -> dict[str, Any]:
        """The JSON values stored under ``keys`` of ``ns`` (those that exist), in few queries."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        for start in range(0, len(wanted), _KEYS_PER_QUERY):
            chunk = wanted[start:start + _KEYS_PER_QUERY]
            marks = ",".join("?" * len(chunk))  # placeholders only: the keys are parameters
            rows = self._conn.execute(
                f"SELECT key, value FROM state WHERE ns = ? AND key IN ({marks})",  # noqa: S608
                (ns, *chunk))
            found.update((key, _loads(value)) for key, value in rows)
        return found

    def put_many(self, ns: str, items: Iterable[tuple[str, Any, int]]) -> None:
        """``put`` for many (key, value, partition) of one namespace, with one statement."""
        self.put_many_json(ns, ((key, dumps(value), partition) for key, value, partition in items))

    def put_many_json(self, ns: str, items: Iterable[tuple[str, str, int]]) -> None:
        """``put_many`` of values already serialised by ``dumps`` (elsewhere: a restore's
        helper process)."""
        self._conn.executemany(
            "INSERT INTO state (ns, key, partition, value) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, "
            "partition = excluded.partition",
            ((ns, key, partition, text) for key, text, partition in items))

    def items(self, ns: str) -> Iterator[tuple[str, Any]]:
        """Every (key, value) of a namespace, in key order."""
        rows = self._conn.execute("SELECT key, value FROM state WHERE ns = ? ORDER BY key", (ns,))
        for key, value in rows.fetchall():
            yield key, _loads(value)

    def drop_partition(self, partition: int) -> None:
        """Forget the state and the input positions of one partition number."""
        self._conn.execute("DELETE FROM state WHERE partition = ?", (partition,))
        self._conn.execute("DELETE FROM positions WHERE partition = ?", (partition,))

    def drop_outbox(self) -> None:
        """Forget every record the relay has not had acknowledged."""
        self._conn.execute("DELETE FROM outbox")

    def delete(self, ns: str, key: str) -> None:
        self._conn.execute("DELETE FROM state WHERE ns = ? AND key = ?", (ns, key))

    def set_position(self, topic: str, partition: int, next_offset: int) -> None:
        self._conn.execute(
            "INSERT INTO positions (topic, partition, next_offset) VALUES (?, ?, ?) "
            "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
            (topic, partition, next_offset))

    def emit(self, topic: str, key: bytes | None, value: bytes, headers: Headers = ()) -> None:
        """Queue a record for the relay; it leaves only if this transaction commits."""
        self.emit_many([(topic, key, value, headers)])

    def emit_many(self, records: Iterable[tuple[str, bytes | None, bytes, Headers]]) -> None:
        """``emit`` for many records, in order, with one statement."""
        rows = [(topic, key, value, _NO_HEADERS if not headers
                 else json.dumps([[name, raw.hex()] for name, raw in headers]), headers)
                for topic, key, value, headers in records]
        if not rows:
            return
        self._conn.executemany(
            "INSERT INTO outbox (topic, key, value, headers) VALUES (?, ?, ?, ?)",
            (row[:4] for row in rows))
        # One writer, one statement: the rows took consecutive seqs, ending at the last.
        first = self._conn.execute("SELECT last_insert_rowid()").fetchone()[0] - len(rows) + 1
        self.emitted.extend(OutboxRecord(seq, topic, key, value, list(headers))
                            for seq, (topic, key, value, _, headers)
                            in enumerate(rows, start=first))


def _migrate_clustered_state(conn: sqlite3.Connection) -> None:
    """Move a ``state`` table of the earlier WITHOUT ROWID layout into the current one,
    in one transaction (a crash midway leaves the old table whole)."""
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'state'").fetchone()
    if row is None or "WITHOUT ROWID" not in row[0].upper():
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DROP INDEX IF EXISTS state_partition")
        conn.execute("ALTER TABLE state RENAME TO state_clustered")
        conn.execute(_STATE_TABLE)
        conn.execute("INSERT INTO state (ns, key, partition, value) "
                     "SELECT ns, key, partition, value FROM state_clustered")
        conn.execute("DROP TABLE state_clustered")
    except BaseException as exc:
        rollback(conn, exc)
        raise
    conn.execute("COMMIT")


class _Unsent:
    """The outbox records committed since the store opened and not acknowledged, in memory,
    so the relay sends what a batch just wrote without reading it back.

    Every row with a seq past ``complete_after`` is held, while they number at most
    ``cap``; past that (a broker away for long) they are let go, and the relay reads
    the table until it has sent what was let go.
    """

    def __init__(self, complete_after: int, cap: int) -> None:
        self.complete_after = complete_after
        self.cap = cap
        self.records: list[OutboxRecord] = []

    def covers(self, after: int) -> bool:
        return after >= self.complete_after

    def since(self, after: int, limit: int) -> list[OutboxRecord]:
        start = bisect.bisect_right(self.records, after, key=_seq)
        return self.records[start:start + limit]

    def add(self, records: list[OutboxRecord]) -> None:
        if not records:
            return
        self.records.extend(records)
        if len(self.records) > self.cap:
            self.complete_after = self.records[-1].seq
            self.records.clear()

    def forget(self, up_to_seq: int) -> None:
        del self.records[:bisect.bisect_right(self.records, up_to_seq, key=_seq)]


def _seq(record: OutboxRecord) -> int:
    return record.seq


class Store:
    """One SQLite file per component instance (WAL; one writer: the processor thread)."""

    def __init__(self, path: Path, *, unsent_cap: int = 50_000, cache_mb: int = 32,
                 max_mb: int | None = None) -> None:
        """``unsent_cap``: unacknowledged records kept in memory for the relay (``_Unsent``);
        ``cache_mb``: SQLite's page cache. Its default, 2 MB, holds ~2,000 passports: a
        backlog's working set is larger, and at 32 MB upserts and reads cost ~17% less.
        ``max_mb``: the file's size cap (``connect``; default: the process's)."""
        self.path = path
        # WAL + synchronous=NORMAL survives a process kill (the -9 we test); FULL
        # would only add safety against power loss, at a large cost.
        self._conn = connect(path, durable=True, what="state store", max_mb=max_mb)
        self._conn.execute(f"PRAGMA cache_size = -{int(cache_mb) * 1024}")
        try:
            _migrate_clustered_state(self._conn)
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._conn.close()
            raise failure(exc, path, f"cannot open state store {path}") from exc
        last = self._conn.execute("SELECT max(seq) FROM outbox").fetchone()[0]
        self._unsent = _Unsent(last or 0, unsent_cap)

    def size_bytes(self) -> int:
        """The store's size on disk: the database file and its write-ahead log (a stat
        each, safe from any thread)."""
        total = 0
        for suffix in ("", "-wal"):
            # No WAL between checkpoints, or the file went away: it counts nothing.
            with contextlib.suppress(OSError):
                total += os.stat(f"{self.path}{suffix}").st_size
        return total

    @contextmanager
    def transaction(self) -> Iterator[Txn]:
        """One atomic unit: everything written in the block commits, or nothing does.

        A write the file cannot take (its disk or cap full, the file read-only) raises
        ``StoreUnwritable``, whether it failed in the block or at the commit; any
        other error comes out as it was raised. Either way nothing was written.
        """
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._raise_if_unwritable(exc)
            raise
        txn = Txn(self._conn)
        try:
            yield txn
            self._conn.execute("COMMIT")
        except BaseException as exc:
            rollback(self._conn, exc)
            self._raise_if_unwritable(exc)
            raise
        self._unsent.add(txn.emitted)

    def _raise_if_unwritable(self, exc: BaseException) -> None:
        """Raise ``StoreUnwritable`` if ``exc`` means the file takes no write."""
        full = unwritable(exc, self.path)
        if full is not None:
            raise full from exc

    def positions(self) -> dict[tuple[str, int], int]:
        """Next offset to read per (topic, partition), as last committed."""
        rows = self._conn.execute("SELECT topic, partition, next_offset FROM positions")
        return {(topic, partition): offset for topic, partition, offset in rows}

    def pending(self, limit: int = 10_000, *, after: int = 0) -> list[OutboxRecord]:
        """The oldest records not yet acknowledged (of those past ``after``), in commit order."""
        if self._unsent.covers(after):
            return self._unsent.since(after, limit)
        rows = self._conn.execute(
            "SELECT seq, topic, key, value, headers FROM outbox WHERE seq > ? ORDER BY seq "
            "LIMIT ?", (after, limit))
        return [
            OutboxRecord(seq, topic, key, value,
                         [] if headers == _NO_HEADERS else
                         [(name, bytes.fromhex(raw)) for name, raw in json.loads(headers)])
            for seq, topic, key, value, headers in rows
        ]

    def pending_count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def acknowledge(self, up_to_seq: int) -> None:
        """Forget every outbox record up to ``up_to_seq``: the broker has them."""
        try:
            self._conn.execute("DELETE FROM outbox WHERE seq <= ?", (up_to_seq,))
        except sqlite3.Error as exc:
            self._raise_if_unwritable(exc)
            raise
        self._unsent.forget(up_to_seq)

    def drop_partition(self, partition: int) -> None:
        """Forget the state and positions of one input partition (it moved elsewhere)."""
        with self.transaction() as txn:
            txn.drop_partition(partition)

    def forget_unpublished(self, partitions: Iterable[int]) -> None:
        """Forget the outbox, and the state and positions of ``partitions``, in one
        transaction: what this instance applied but may no longer publish (its relay was
        fenced: hub.relay). The partitions' next owner, this one included, restores them."""
        with self.transaction() as txn:
            for partition in partitions:
                txn.drop_partition(partition)
            txn.drop_outbox()
        self._unsent.forget(sys.maxsize)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
