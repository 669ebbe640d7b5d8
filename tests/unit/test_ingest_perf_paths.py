"""The ingest's faster ways keep every check: one clock per batch, the writer's tuning."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.api import bodies
from connectors.api.idempotency import Accepted, AcceptedStore
from schemas.models import EXAMPLES, EventModel


def enrolment(**changes: Any) -> dict[str, Any]:
    return {**EXAMPLES["business_enrolled"], **changes}


def test_a_batch_refuses_an_event_from_the_future_by_its_own_clock_reading() -> None:
    ahead = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    body = json.dumps({"events": [enrolment(), enrolment(occurred_at=ahead)]}).encode()
    first, second = bodies.batch(body)
    assert isinstance(first, EventModel)
    assert isinstance(second, dict)
    assert second["status"] == 422
    assert [e["field"] for e in second["errors"]] == ["occurred_at"]
    assert "ahead of now" in second["errors"][0]["message"]


def test_a_batch_takes_an_event_just_inside_the_tolerance() -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=4)).isoformat()
    (event,) = bodies.batch(json.dumps({"events": [enrolment(occurred_at=soon)]}).encode())
    assert isinstance(event, EventModel)


def test_what_the_store_remembers_outlives_it(tmp_path: Path) -> None:
    # The writer checkpoints rarely: closing must still leave every row in the file.
    path = tmp_path / "accepted.sqlite"
    store = AcceptedStore(path, retention_s=3600)
    accepted = [Accepted(f"00000000-0000-4000-8000-{i:012d}", "ab" * 32, "t") for i in range(3000)]
    try:
        store.remember(accepted)
        assert store.flush()
    finally:
        store.close()
    again = AcceptedStore(path, retention_s=3600)
    try:
        assert again.lookup([a.event_id for a in accepted]) == {a.event_id: a for a in accepted}
    finally:
        again.close()


def test_pruning_forgets_only_the_expired_rows_and_they_stay_forgotten(tmp_path: Path) -> None:
    now = [1_000_000.0]
    path = tmp_path / "accepted.sqlite"
    store = AcceptedStore(path, retention_s=60, clock=lambda: now[0])
    old = [Accepted(f"old-{i}", "a" * 64, "t") for i in range(700)]
    new = [Accepted(f"new-{i}", "b" * 64, "t") for i in range(700)]
    try:
        store.remember(old)
        assert store.flush()
        now[0] += 30
        store.remember(new)
        now[0] += 31  # the old ones are 61 s old, the new ones 31 s
        assert store.prune() == 700
        assert store.lookup([a.event_id for a in old]) == {}
        assert store.lookup([a.event_id for a in new]) == {a.event_id: a for a in new}
    finally:
        store.close()
    again = AcceptedStore(path, retention_s=60, clock=lambda: now[0])
    try:
        assert again.lookup([a.event_id for a in old + new]) == {a.event_id: a for a in new}
        assert again.prune() == 0
    finally:
        again.close()


def test_a_store_in_the_earlier_layout_is_carried_over(tmp_path: Path) -> None:
    # Before the log, accepted events were one table keyed by event id.
    path = tmp_path / "accepted.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            CREATE TABLE accepted (event_id TEXT PRIMARY KEY, body_sha256 TEXT NOT NULL,
                                   topic TEXT NOT NULL, accepted_at INTEGER NOT NULL)
                WITHOUT ROWID;
            CREATE INDEX accepted_at ON accepted (accepted_at);
        """)
        conn.executemany("INSERT INTO accepted VALUES (?, ?, ?, ?)",
                         [(f"id-{i}", "c" * 64, "pn.enrolments.v1", 1_000_000_000 + i)
                          for i in range(3)])
    conn.close()
    store = AcceptedStore(path, retention_s=3600, clock=lambda: 1_000_000.0)
    try:
        assert store.lookup(["id-0", "id-2", "id-9"]) == {
            f"id-{i}": Accepted(f"id-{i}", "c" * 64, "pn.enrolments.v1") for i in (0, 2)}
        store.remember([Accepted("id-3", "d" * 64, "t")])
        assert store.flush()
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        rows = conn.execute("SELECT event_id FROM accepted_log ORDER BY rowid").fetchall()
    conn.close()
    assert "accepted" not in tables
    assert [row[0] for row in rows] == ["id-0", "id-1", "id-2", "id-3"]


class _SameHash(str):
    """An id whose hash collides with every other one's."""

    __slots__ = ()

    def __hash__(self) -> int:
        return 7


def test_ids_sharing_a_hash_are_told_apart(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = AcceptedStore(tmp_path / "accepted.sqlite", retention_s=60, clock=lambda: now[0])
    first, second, never = _SameHash("first"), _SameHash("second"), _SameHash("never")
    try:
        store.remember([Accepted(first, "a" * 64, "t")])
        assert store.flush()
        now[0] += 30
        store.remember([Accepted(second, "b" * 64, "t")])
        assert store.flush()
        assert store.lookup([first, second, never]) == {
            "first": Accepted("first", "a" * 64, "t"), "second": Accepted("second", "b" * 64, "t")}
        now[0] += 31
        assert store.prune() == 1
        assert store.lookup([first, second]) == {"second": Accepted("second", "b" * 64, "t")}
    finally:
        store.close()
