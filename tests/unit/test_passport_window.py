"""Snapshot windows (services/passport/window.py), on a real SQLite store: one snapshot
per business per window, sent when caught up, when overdue or when full; kept across a
crash; dropped with a restored partition."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hub.processor import Emit, Inbound, Outbound
from hub.store import Store
from schemas import catalog
from schemas.codec import Codec
from services.passport import outputs, persist
from services.passport.processor import LAST_SNAPSHOT_NS, PASSPORTS_NS, PassportProcessor
from tests.unit.test_passport_processor import OTHER, Offsets
from tests.unit.test_passport_rules import SIREN, THREE, enrolled

WINDOW_MS = 60_000
ENROL, TRAIN = f"{catalog.ENROLMENTS}/2", f"{catalog.TRAINING}/2"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def _processor(clock: Clock, **options: int) -> PassportProcessor:
    return PassportProcessor(clock=clock, snapshot_window_ms=options.get("window", WINDOW_MS),
                             max_dirty=options.get("max_dirty", 50_000))


def _apply(store: Store, processor: PassportProcessor, batch: Sequence[Inbound]) -> list[Emit]:
    with store.transaction() as txn:
        out = processor.apply(txn, batch)
        out.extend(processor.flush(txn, frozenset({2}), caught_up=False))  # as the loop does
    return out


def _flush(store: Store, processor: PassportProcessor, partitions: frozenset[int] = frozenset({2}),
           *, caught_up: bool = True) -> list[Outbound]:
    with store.transaction() as txn:
        out = processor.flush(txn, partitions, caught_up=caught_up)
    assert all(isinstance(e, Outbound) for e in out)
    codec = Codec.default()
    for emit in out:
        assert isinstance(emit, Outbound)
        codec.encode(emit.record, emit.datum)  # every snapshot fits its schema
    return [e for e in out if isinstance(e, Outbound)]


def _snapshots(out: Sequence[Emit]) -> list[Outbound]:
    return [e for e in out if isinstance(e, Outbound) and e.topic == catalog.PASSPORTS]


def _two_batches(store: Store, processor: PassportProcessor, offsets: Offsets) -> None:
    other = ("BusinessEnrolled", {**enrolled()[1], "siren": OTHER})
    assert _snapshots(_apply(store, processor, [offsets.inbound(enrolled()),
                                                offsets.inbound(other, key=OTHER)])) == []
    assert _snapshots(_apply(store, processor, [offsets.inbound(THREE[0])])) == []


def test_a_window_sends_one_snapshot_per_business_once_caught_up(tmp_path: Path) -> None:
    clock, offsets = Clock(), Offsets()
    with Store(tmp_path / "s.sqlite") as store:
        processor = _processor(clock)
        _two_batches(store, processor, offsets)
        first, second = _flush(store, processor)
        assert (first.key, second.key) == (SIREN, OTHER)  # in the order first changed
        assert first.datum["modules_completed"] == ["website-create"]
        with store.transaction() as txn:
            first_state, second_state = (persist.load(txn.get(PASSPORTS_NS, s))
                                         for s in (SIREN, OTHER))
        assert first.datum["event_id"] == outputs.snapshot_id(SIREN, f"{TRAIN}/0", first_state)
        assert second.datum["event_id"] == outputs.snapshot_id(OTHER, f"{ENROL}/1", second_state)
        # Where the window's first batch began, and the input first seen later in it.
        assert first.datum["replay_from"] == {ENROL: 0, TRAIN: 0}
        assert first.datum["input_offsets"] == {ENROL: 2, TRAIN: 1}
        with store.transaction() as txn:
            assert txn.get(LAST_SNAPSHOT_NS, "2") == second.datum["event_id"]
        assert _flush(store, processor) == []  # closed


def test_a_window_closes_when_overdue_and_only_for_owned_partitions(tmp_path: Path) -> None:
    clock, offsets = Clock(), Offsets()
    with Store(tmp_path / "s.sqlite") as store:
        processor = _processor(clock)
        _two_batches(store, processor, offsets)
        clock.now += WINDOW_MS - 1
        assert _flush(store, processor, caught_up=False) == []
        clock.now += 1
        assert _flush(store, processor, frozenset({3}), caught_up=False) == []  # not ours
        assert [s.key for s in _flush(store, processor, caught_up=False)] == [SIREN, OTHER]


def test_a_full_window_closes_within_the_batch(tmp_path: Path) -> None:
    clock, offsets = Clock(), Offsets()
    with Store(tmp_path / "s.sqlite") as store:
        processor = _processor(clock, max_dirty=2)
        other = ("BusinessEnrolled", {**enrolled()[1], "siren": OTHER})
        assert _snapshots(_apply(store, processor, [offsets.inbound(enrolled())])) == []
        out = _snapshots(_apply(store, processor, [offsets.inbound(other, key=OTHER)]))
        assert [s.key for s in out] == [SIREN, OTHER]
        assert _flush(store, processor) == []


def test_no_window_is_one_snapshot_per_batch(tmp_path: Path) -> None:
    clock, offsets = Clock(), Offsets()
    with Store(tmp_path / "s.sqlite") as store:
        processor = _processor(clock, window=0)
        assert len(_snapshots(_apply(store, processor, [offsets.inbound(enrolled())]))) == 1
        [snapshot] = _snapshots(_apply(store, processor, [offsets.inbound(THREE[0])]))
        assert snapshot.datum["replay_from"] == {ENROL: 1, TRAIN: 0}
        assert _flush(store, processor) == []


def test_an_open_window_outlives_a_crash(tmp_path: Path) -> None:
    clock, offsets = Clock(), Offsets()
    with Store(tmp_path / "s.sqlite") as store:
        _two_batches(store, _processor(clock), offsets)
    with Store(tmp_path / "s.sqlite") as reopened:  # a new process, the same file
        assert [s.key for s in _flush(reopened, _processor(clock))] == [SIREN, OTHER]


def test_a_window_goes_with_its_partition_state(tmp_path: Path) -> None:
    clock, offsets = Clock(), Offsets()
    with Store(tmp_path / "s.sqlite") as store:
        processor = _processor(clock)
        _two_batches(store, processor, offsets)
        store.drop_partition(2)  # a restore starts over from the passport topic
        assert _flush(store, processor) == []
