"""The store's one promise: a batch's state, positions and outbox commit together or not at all."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from hub.store import Store


def test_state_positions_and_outbox_commit_together(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        with store.transaction() as txn:
            txn.put("passport", "732829320", {"modules": ["a"]}, partition=2)
            txn.set_position("pn.training.v1", 2, 41)
            txn.emit("pn.passports.v1", b"732829320", b"v", [("h", b"\x00\x01")])
        assert store.positions() == {("pn.training.v1", 2): 41}
        [record] = store.pending()
        assert (record.topic, record.key, record.value) == ("pn.passports.v1", b"732829320", b"v")
        assert record.headers == [("h", b"\x00\x01")]
    with Store(tmp_path / "s.sqlite") as reopened, reopened.transaction() as txn:
        assert txn.get("passport", "732829320") == {"modules": ["a"]}


def test_a_failing_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        with store.transaction() as txn:
            txn.set_position("t", 0, 10)
        with pytest.raises(RuntimeError), store.transaction() as txn:
            txn.put("ns", "k", 1, partition=0)
            txn.set_position("t", 0, 20)
            txn.emit("out", None, b"x")
            raise RuntimeError("crash in apply")
        assert store.positions() == {("t", 0): 10}
        assert store.pending() == []
        with store.transaction() as txn:
            assert txn.get("ns", "k") is None


def test_acknowledge_forgets_only_what_was_sent(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        with store.transaction() as txn:
            for i in range(5):
                txn.emit("out", None, bytes([i]))
        sent = store.pending(limit=3)
        store.acknowledge(sent[-1].seq)
        assert [r.value for r in store.pending()] == [b"\x03", b"\x04"]
        assert store.pending_count() == 2


def test_drop_partition_forgets_only_that_partition(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        with store.transaction() as txn:
            txn.put("ns", "a", 1, partition=0)
            txn.put("ns", "b", 2, partition=1)
        store.drop_partition(0)
        with store.transaction() as txn:
            assert (txn.get("ns", "a"), txn.get("ns", "b")) == (None, 2)


def test_forget_unpublished_drops_the_outbox_and_the_partitions_named_at_once(
        tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        with store.transaction() as txn:
            txn.put("ns", "a", 1, partition=0)
            txn.put("ns", "b", 2, partition=1)
            txn.put("meta", "id", "kept", partition=-1)  # no input partition's
            txn.set_position("t", 0, 5)
            txn.set_position("t", 1, 7)
            txn.emit("out", None, b"x")
        assert store.pending()  # held in memory too
        store.forget_unpublished([0, 1])
        assert (store.pending(), store.pending_count(), store.positions()) == ([], 0, {})
        with store.transaction() as txn:
            assert (txn.get("ns", "a"), txn.get("ns", "b"), txn.get("meta", "id")) == (
                None, None, "kept")
    with Store(tmp_path / "s.sqlite") as reopened:
        assert reopened.pending() == []


def test_pending_after_a_seq_skips_what_is_in_flight(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        with store.transaction() as txn:
            txn.emit_many([("out", b"k", bytes([i]), [("h", b"\x01")] if i == 3 else [])
                           for i in range(5)])
        first = store.pending(limit=2)
        rest = store.pending(after=first[-1].seq)
        assert [r.value for r in rest] == [b"\x02", b"\x03", b"\x04"]
        assert [r.headers for r in rest] == [[], [("h", b"\x01")], []]


def test_many_keys_are_read_and_written_in_bulk(tmp_path: Path) -> None:
    keys = [f"{i:09d}" for i in range(1200)]  # more than one query's worth
    with Store(tmp_path / "s.sqlite") as store:
        with store.transaction() as txn:
            txn.put_many("ns", ((key, {"n": i}, i % 6) for i, key in enumerate(keys)))
            txn.put("other", keys[0], "not this one", partition=0)
        with store.transaction() as txn:
            found = txn.get_many("ns", [*keys, keys[5], "missing"])
            assert found == {key: {"n": i} for i, key in enumerate(keys)}
        store.drop_partition(1)
        with store.transaction() as txn:
            assert txn.get("ns", keys[1]) is None
            assert txn.get("ns", keys[2]) == {"n": 2}


def test_a_store_of_the_clustered_layout_is_migrated_whole(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE state (
            ns TEXT NOT NULL, key TEXT NOT NULL, partition INTEGER NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (ns, key)) WITHOUT ROWID;
        CREATE INDEX state_partition ON state (partition);
        INSERT INTO state VALUES ('passport', '732829320', 2, '{"n": 1}');
        INSERT INTO state VALUES ('passport', '552100554', 3, '{"n": 2}');
    """)
    conn.close()
    with Store(path) as store:
        with store.transaction() as txn:
            assert txn.get_many("passport", ["732829320", "552100554"]) == {
                "732829320": {"n": 1}, "552100554": {"n": 2}}
            txn.put("passport", "732829320", {"n": 3}, partition=2)  # still one row per key
        store.drop_partition(3)  # and the partition index is there
        with store.transaction() as txn:
            assert list(txn.items("passport")) == [("732829320", {"n": 3})]
    check = sqlite3.connect(path)
    [(sql,)] = check.execute("SELECT sql FROM sqlite_master WHERE name = 'state'").fetchall()
    assert "WITHOUT ROWID" not in sql.upper()
    tables = {name for (name,) in check.execute("SELECT name FROM sqlite_master")}
    assert "state_clustered" not in tables
    assert "state_partition" in tables
    check.close()


@pytest.mark.parametrize("cap", [3, 50_000])
def test_the_relay_reads_from_memory_what_the_table_holds(tmp_path: Path, cap: int) -> None:
    """Whatever ``pending`` answers from memory, the table answers the same: across
    rollbacks, acknowledgements, a cap overflow (cap 3) and records left by a previous run."""
    rng = random.Random(7)
    path = tmp_path / "s.sqlite"
    with Store(path) as first, first.transaction() as txn:
        txn.emit("out", b"left", b"over")  # left by a previous run: only in the table
    with Store(path, unsent_cap=cap) as store:
        sent = 0
        for step in range(60):
            try:
                with store.transaction() as txn:
                    txn.emit_many([("out", b"k", f"{step}/{i}".encode(),
                                    [("h", b"\x01")] if i == 0 else ())
                                   for i in range(rng.randint(0, 4))])
                    if rng.random() < 0.2:
                        raise RuntimeError("rolled back")
            except RuntimeError:
                pass
            with Store(path) as table:  # opened afresh: it reads the table
                expected = table.pending(after=sent)
            assert store.pending(after=sent) == expected
            if expected and rng.random() < 0.5:
                sent = expected[rng.randrange(len(expected))].seq
                store.acknowledge(sent)
        rest = store.pending(after=sent)
        if rest:
            store.acknowledge(rest[-1].seq)
        assert store.pending() == []
        assert store.pending_count() == 0
