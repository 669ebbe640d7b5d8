"""The passport restore task, step by step: against a broker, and against none.

Its check (is the store current?) used to run inside the rebalance callback and
retry there for up to 300 s. When the leader of a ``pn.passports.v1`` partition
had just died, the member sat in the callback past its poll interval, deaf to
SIGTERM, and applied nothing for minutes (the broker-fault test, in CI).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub import checkpoint, kafka
from hub.broker import free_port
from hub.checkpoint import Converted
from hub.config import Settings
from hub.errors import BrokerUnavailable
from hub.store import Store
from schemas import catalog
from schemas.codec import Codec
from services.passport import outputs, persist
from services.passport import restore as restore_module
from services.passport.processor import LAST_SNAPSHOT_NS, PARKED_NS, PASSPORTS_NS
from services.passport.restore import PassportRestorer, convert
from services.passport.rules import Parked, Passport

PARTITION = 0
STALE = "a business the topic does not know"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "passport.sqlite") as opened:
        yield opened


def _snapshot(siren: str, at: int) -> dict[str, object]:
    passport = Passport(siren=siren, modules={"email-pro": at}, last_event_at=at)
    where = f"{catalog.TRAINING}/{PARTITION}"
    return outputs.snapshot(passport, event_id=outputs.snapshot_id(siren, f"{where}/{at}"),
                            input_offsets={where: at + 1}, replay_from={where: at})


def _publish(settings: Settings, snapshots: list[dict[str, object]]) -> None:
    codec, producer = Codec.default(), kafka.producer(settings)
    try:
        for datum in snapshots:
            producer.send(settings.topic(catalog.PASSPORTS), key=str(datum["siren"]).encode(),
                          value=codec.encode("PassportSnapshot", datum), partition=PARTITION)
        producer.flush(timeout=30)
    finally:
        producer.close()


def _seed(store: Store, last_snapshot: str) -> None:
    """A store holding one business of its own, whose last emitted snapshot is given."""
    with store.transaction() as txn:
        txn.put(PASSPORTS_NS, STALE, persist.dump(Passport(siren=STALE, last_event_at=1)),
                partition=PARTITION)
        txn.put(LAST_SNAPSHOT_NS, str(PARTITION), last_snapshot, partition=PARTITION)


def _run(restorer: PassportRestorer, store: Store, timeout_s: float = 60) -> int:
    """Step the partition's task to the end, a one-second slice at a time; return the steps."""
    task = restorer.begin(store, PARTITION)
    deadline = time.monotonic() + timeout_s
    steps = 1
    while not task.step(time.monotonic() + 1.0):
        assert time.monotonic() < deadline, "the restore never finished"
        steps += 1
    return steps


def _stored(store: Store) -> dict[str, object]:
    with store.transaction() as txn:
        return dict(txn.items(PASSPORTS_NS))


def test_a_store_that_emitted_the_last_snapshot_is_kept(topics: Settings, store: Store) -> None:
    snapshots = [_snapshot("111111111", 5), _snapshot("222222222", 6)]
    _publish(topics, snapshots)
    _seed(store, last_snapshot=str(snapshots[-1]["event_id"]))
    restorer = PassportRestorer(topics)
    _run(restorer, store)
    assert restorer.last_restore == {}
    assert set(_stored(store)) == {STALE}


def test_a_store_behind_the_topic_is_rebuilt_from_it(topics: Settings, store: Store) -> None:
    snapshots = [_snapshot("111111111", 5), _snapshot("222222222", 6), _snapshot("111111111", 9)]
    _publish(topics, snapshots)
    _seed(store, last_snapshot="not the topic's last")
    restorer = PassportRestorer(topics)
    _run(restorer, store)
    assert restorer.last_restore == {PARTITION: 2}
    stored = _stored(store)
    assert set(stored) == {"111111111", "222222222"}
    assert persist.load(stored["111111111"]).modules == {"email-pro": 9}
    # The inputs resume where the last snapshot's window began.
    assert store.positions() == {(topics.topic(catalog.TRAINING), PARTITION): 9}
    with store.transaction() as txn:
        assert txn.get(LAST_SNAPSHOT_NS, str(PARTITION)) == snapshots[-1]["event_id"]


def test_a_fresh_store_and_an_empty_topic_need_no_restore(topics: Settings, store: Store) -> None:
    restorer = PassportRestorer(topics)
    _run(restorer, store)
    assert restorer.last_restore == {}
    assert _stored(store) == {}


def test_with_no_broker_begin_returns_and_each_step_gives_up_until_the_timeout(
        store: Store) -> None:
    nobody = Settings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", request_timeout_ms=2000)
    _seed(store, last_snapshot="mine")
    restorer = PassportRestorer(nobody, timeout_s=0.5)
    task = restorer.begin(store, PARTITION)  # the rebalance callback's part: no broker call
    started = time.monotonic()
    assert task.step(time.monotonic() + 1.0) is False
    # Bounded by its slice (and a floor of one second per call), not by kafka-python's
    # 30 s bootstrap or the restore's 300 s: the loop polls, and hears SIGTERM, between.
    assert time.monotonic() - started < 10
    time.sleep(0.6)
    with pytest.raises(BrokerUnavailable, match="failed for"):
        task.step(time.monotonic() + 1.0)
    # Nothing was dropped: the check never got as far as the restore.
    assert set(_stored(store)) == {STALE}


def _parked(siren: str, at: int) -> dict[str, object]:
    """A snapshot of a business known only by an event waiting for its enrolment."""
    passport = Passport(siren=siren, last_event_at=at, parked=(Parked("ModuleCompleted", {
        "event_id": f"00000000-0000-0000-0000-{at:012d}", "occurred_at": at, "siren": siren,
        "module_id": "email-pro", "source": "t"}),))
    where = f"{catalog.TRAINING}/{PARTITION}"
    return outputs.snapshot(passport, event_id=outputs.snapshot_id(siren, f"{where}/{at}"),
                            input_offsets={where: at + 1}, replay_from={where: at})


def _fails_in_the_helper(chunk: list[tuple[int, bytes]]) -> Converted:
    """The passport's converter, except in a helper process, where it fails."""
    if multiprocessing.parent_process() is not None:
        raise RuntimeError("the helper broke")
    return convert(chunk)


def _everything(store: Store) -> tuple[object, ...]:
    with store.transaction() as txn:
        return (dict(txn.items(PASSPORTS_NS)), dict(txn.items(PARKED_NS)),
                txn.get(LAST_SNAPSHOT_NS, str(PARTITION)), store.positions())


@pytest.mark.parametrize("helper", ["works", "fails"])
def test_a_restore_converted_in_a_helper_process_writes_what_one_converted_here_does(
        topics: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helper: str) -> None:
    # 5,000 snapshots of 1,500 businesses (each seen again and again), one in ten
    # parked, those of the first half out of it later (their parked index entry goes),
    # and a record that does not decode: in chunks of 2,000, two in the helper at once.
    snapshots = [(_parked if n % 10 == 3 and not 2500 <= n < 3500 else _snapshot)(
        f"{100_000_000 + n % 1500}", n) for n in range(5000)]
    _publish(topics, snapshots)
    producer = kafka.producer(topics)
    producer.send(topics.topic(catalog.PASSPORTS), key=b"x", value=b"not avro",
                  partition=PARTITION)
    producer.send(topics.topic(catalog.PASSPORTS), key=b"y",
                  value=Codec.default().encode("PassportSnapshot", _snapshot("999999999", 6000)),
                  partition=PARTITION)
    producer.flush(timeout=30)
    producer.close()
    results = []
    for parallel_from in (10**9, 1_000):  # here, then in the helper
        monkeypatch.setattr(checkpoint, "PARALLEL_MIN_RECORDS", parallel_from)
        if helper == "fails" and parallel_from == 1_000:
            monkeypatch.setattr(restore_module._PartitionRestore, "converter",
                                lambda self: _fails_in_the_helper)
        with Store(tmp_path / f"restored-{parallel_from}.sqlite") as store:
            restorer = PassportRestorer(topics)
            _run(restorer, store, timeout_s=120)
            assert restorer.last_restore == {PARTITION: 1501}
            results.append(_everything(store))
    here, helped = results
    assert helped == here
    passports, parked, last, positions = here
    assert len(passports) == 1501
    assert len(parked) == 150  # those whose last snapshot is parked
    assert last is not None
    assert positions == {(topics.topic(catalog.TRAINING), PARTITION): 6000}
