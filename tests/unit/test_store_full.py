"""A store that takes no write: which errors mean it, and what the store does then.

The errors are SQLite's own: a size cap (``PRAGMA max_page_count``) gives the
SQLITE_FULL of a full disk, a read-only connection (``mode=ro``, ``query_only``) the
SQLITE_READONLY of a read-only file. Only the filesystem's answer to an I/O error
is played (``statvfs``), since a read-only remount needs ``mount``.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from connectors.api.idempotency import Accepted, AcceptedStore
from hub import sqlite
from hub.errors import StoreError, StoreUnwritable
from hub.service import StoreHealth
from hub.sqlite import connect, unwritable
from hub.store import Store

# -- genuine SQLite errors ---------------------------------------------------------------------


def _full_error(tmp_path: Path) -> sqlite3.Error:
    conn = sqlite3.connect(tmp_path / "full.sqlite", isolation_level=None)
    conn.execute("CREATE TABLE t (v BLOB)")
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    try:
        conn.execute("INSERT INTO t VALUES (?)", (b"x" * 100_000,))
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("the capped file took the row")


def _read_only_error(tmp_path: Path) -> sqlite3.Error:
    path = tmp_path / "ro.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE t (v)").connection.close()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.execute("INSERT INTO t VALUES (1)")
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("the read-only file took the row")


def test_sqlite_full_means_a_full_store(tmp_path: Path) -> None:
    exc = _full_error(tmp_path)
    found = unwritable(exc, tmp_path / "s.sqlite")
    assert found is not None
    assert (found.reason, found.event, found.path) == ("full", "store.full", tmp_path / "s.sqlite")
    assert "database or disk is full" in found.detail
    assert "PASSPORT_HUB_STORE_MAX_MB" in found.hint
    assert found.exit_code == 75


def test_sqlite_readonly_means_a_read_only_store(tmp_path: Path) -> None:
    found = unwritable(_read_only_error(tmp_path), tmp_path / "ro.sqlite")
    assert found is not None
    assert (found.reason, found.event) == ("read_only", "store.read_only")
    assert "readonly" in found.detail
    assert "writable" in found.hint


def test_other_failures_are_not_the_stores_condition(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "c.sqlite")
    conn.execute("CREATE TABLE t (k PRIMARY KEY)")
    conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError) as constraint:
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(sqlite3.DatabaseError) as not_a_db:
        sqlite3.connect(garbage).execute("SELECT * FROM sqlite_master")
    assert unwritable(constraint.value, tmp_path / "c.sqlite") is None
    assert unwritable(not_a_db.value, garbage) is None
    assert unwritable(ValueError("a bug"), garbage) is None


@pytest.mark.parametrize(("code", "reason"), [
    (errno.ENOSPC, "full"), (errno.EDQUOT, "full"),
    (errno.EROFS, "read_only"), (errno.EACCES, "read_only"), (errno.EPERM, "read_only")])
def test_the_systems_errors_name_the_condition(tmp_path: Path, code: int, reason: str) -> None:
    found = unwritable(OSError(code, os.strerror(code)), tmp_path / "s.sqlite")
    assert found is not None
    assert found.reason == reason


def _statvfs(*, read_only: bool = False, free_bytes: int = 10 << 30) -> os.statvfs_result:
    # (bsize, frsize, blocks, bfree, bavail, files, ffree, favail, flag, namemax)
    return os.statvfs_result((4096, 4096, 1 << 20, free_bytes // 4096, free_bytes // 4096,
                              1000, 1000, 1000, os.ST_RDONLY if read_only else 0, 255))


def _io_error() -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("disk I/O error")
    exc.sqlite_errorname = "SQLITE_IOERR_WRITE"  # what a write under a remount gives
    return exc


def test_an_io_error_is_judged_by_what_the_filesystem_says(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    read_only = unwritable(_io_error(), path, statvfs=lambda _: _statvfs(read_only=True))
    full = unwritable(_io_error(), path, statvfs=lambda _: _statvfs(free_bytes=0))
    healthy = unwritable(_io_error(), path, statvfs=lambda _: _statvfs())
    assert read_only is not None
    assert read_only.reason == "read_only"
    assert "filesystem is read-only" in read_only.detail
    assert full is not None
    assert full.reason == "full"
    assert healthy is None  # a disk that has room and takes writes: some other I/O failure


# -- the store ---------------------------------------------------------------------------------


def _fill(store: Store, start: int, count: int) -> None:
    """One batch per key: a big value, the input's next position and an outbox record."""
    for i in range(start, start + count):
        with store.transaction() as txn:
            txn.put("ns", f"k{i}", "x" * 20_000, partition=0)
            txn.set_position("in", 0, i + 1)
            txn.emit("out", b"k", f"v{i}".encode())


def test_a_batch_past_the_cap_rolls_back_whole_and_says_the_store_is_full(
        tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, max_mb=1) as store:
        with pytest.raises(StoreUnwritable) as raised:
            _fill(store, 0, 200)  # 4 MB of values: the cap is reached on the way
        assert raised.value.reason == "full"
        assert raised.value.path == path
        # The cause is SQLite's, not the "no transaction is active" of a second ROLLBACK.
        assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
        assert "full" in str(raised.value.__cause__)
        done = store.positions()[("in", 0)]
        assert 0 < done < 200
        # Every committed batch is whole, the failed one left nothing.
        assert store.pending_count() == done
        assert [r.value for r in store.pending()][-1] == f"v{done - 1}".encode()
        with store.transaction() as txn:
            assert txn.get("ns", f"k{done - 1}") is not None
            assert txn.get("ns", f"k{done}") is None
        store.acknowledge(done)  # what the broker has can be let go, at the cap as ever
        assert store.pending_count() == 0
    with Store(path, max_mb=0) as reopened:  # room again: it goes on from there
        _fill(reopened, done, 200 - done)
        assert reopened.positions()[("in", 0)] == 200


def test_a_bug_in_a_batch_still_comes_out_as_itself(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite", max_mb=1) as store:
        with pytest.raises(ZeroDivisionError), store.transaction() as txn:
            txn.set_position("in", 0, 5)
            _ = 1 / 0
        assert store.positions() == {}


def test_a_read_only_store_refuses_the_batch_and_the_acknowledgement(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        _fill(store, 0, 1)
        # SQLite's own read-only connection (the test reaches in): SQLITE_READONLY on writes.
        store._conn.execute("PRAGMA query_only = ON")
        with pytest.raises(StoreUnwritable) as batch:
            _fill(store, 1, 1)
        with pytest.raises(StoreUnwritable) as ack:
            store.acknowledge(1)
        assert (batch.value.reason, ack.value.reason) == ("read_only", "read_only")
        assert store.positions() == {("in", 0): 1}
        assert store.pending_count() == 1


def test_the_process_cap_applies_to_every_file_opened_after_it(tmp_path: Path) -> None:
    def max_pages(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA max_page_count").fetchone()[0])

    uncapped = connect(tmp_path / "a.sqlite", durable=True)
    sqlite.set_size_cap(2)
    try:
        capped = connect(tmp_path / "b.sqlite", durable=True)
        own = connect(tmp_path / "c.sqlite", durable=True, max_mb=0)
    finally:
        sqlite.set_size_cap(0)
    assert max_pages(capped) == 2 * 1024 * 1024 // 4096
    assert max_pages(own) == max_pages(uncapped) > 1_000_000
    for conn in (uncapped, capped, own):
        conn.close()


def test_a_file_already_past_the_cap_opens_and_stops_at_its_next_growth(
        tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, max_mb=0) as store:
        _fill(store, 0, 100)  # ~2 MB
    with Store(path, max_mb=1) as store:
        assert store.positions()[("in", 0)] == 100  # reads go on
        with pytest.raises(StoreUnwritable):
            _fill(store, 100, 5)


def test_a_store_in_a_directory_it_cannot_make_is_read_only(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError) as raised:  # ENOTDIR: no condition of the disk
        Store(blocker / "s.sqlite")
    assert not isinstance(raised.value, StoreUnwritable)
    assert "cannot open state store" in str(raised.value)


# -- who says it -------------------------------------------------------------------------------


def test_the_process_says_it_once_and_is_not_ready_from_then_on(tmp_path: Path) -> None:
    health = StoreHealth()
    first = StoreUnwritable(tmp_path / "s.sqlite", "full", "database or disk is full")
    assert health.writable()
    with capture_logs() as logged:
        health.failed(first)
        health.failed(StoreUnwritable(tmp_path / "s.sqlite", "read_only", "again, at close"))
    assert not health.writable()
    assert [(e["event"], e["log_level"], e["path"], e["exit_code"]) for e in logged] == [
        ("store.full", "error", str(tmp_path / "s.sqlite"), 75)]
    assert "PASSPORT_HUB_STORE_MAX_MB" in logged[0]["hint"]


def accepted_at_cap(path: Path) -> AcceptedStore:
    """An idempotency store whose file is at its 1 MiB cap (another table fills it): only
    its table's last page has room left, for a few dozen rows."""
    AcceptedStore(path, retention_s=3600).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA max_page_count = {1024 * 1024 // 4096}")
    conn.execute("CREATE TABLE filler (v BLOB)")
    with pytest.raises(sqlite3.OperationalError, match="full"):
        while True:
            conn.execute("INSERT INTO filler VALUES (?)", (b"f" * 3000,))
    conn.close()
    sqlite.set_size_cap(1)
    try:
        return AcceptedStore(path, retention_s=3600)
    finally:
        sqlite.set_size_cap(0)


@pytest.fixture(name="accepted_at_cap")
def _accepted_at_cap(tmp_path: Path) -> Iterator[tuple[AcceptedStore, Path]]:
    path = tmp_path / "accepted.sqlite"
    store = accepted_at_cap(path)
    yield store, path
    store.close()


def _accepted(n: int, start: int = 0) -> list[Accepted]:
    return [Accepted(f"event-{i}", "a" * 64, "pn.enrolments.v1", 0, i)
            for i in range(start, start + n)]


def _wait(until: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not until():  # type: ignore[operator]
        time.sleep(0.02)


def test_the_apis_store_at_its_cap_keeps_what_it_holds_and_says_it_once(
        accepted_at_cap: tuple[AcceptedStore, Path]) -> None:
    store, path = accepted_at_cap
    with capture_logs() as logged:
        for round_ in range(10):  # a leaf page's worth of rows still fits: more than that
            store.remember(_accepted(100, start=round_ * 100))
        _wait(lambda: not store.writable())
        assert not store.writable()
        time.sleep(1.5)  # a retry, at least, fails too: said once all the same
    full = [e for e in logged if e["event"] == "store.full"]
    assert len(full) == 1
    assert full[0]["path"] == str(path)
    assert not [e for e in logged if e["event"] == "idempotency.write_failed"]
    # What it could not write it holds (and keeps trying): a retry is still known.
    assert set(store.lookup([f"event-{i}" for i in range(1000)])) == {
        f"event-{i}" for i in range(1000)}
    assert store.unwritable is not None
    assert store.unwritable.reason == "full"


def test_the_apis_store_takes_events_again_by_itself_once_it_has_room(
        accepted_at_cap: tuple[AcceptedStore, Path]) -> None:
    store, path = accepted_at_cap
    for round_ in range(10):
        store.remember(_accepted(100, start=round_ * 100))
    _wait(lambda: not store.writable())
    assert not store.writable()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("DROP TABLE filler")  # room inside the cap: its pages are free again
    other.close()
    with capture_logs() as logged:
        _wait(store.writable)
        assert store.flush(timeout_s=10)
    assert store.writable()
    assert [e["event"] for e in logged if e["event"].startswith("store.")] == ["store.writable"]
    check = sqlite3.connect(path)
    assert check.execute("SELECT count(*) FROM accepted_log").fetchone()[0] == 1000
    check.close()
