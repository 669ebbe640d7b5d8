"""The kernel's processor loop against a real broker, with a small processor of the test's own."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry

from hub import deadletter, kafka
from hub.config import Settings
from hub.processor import Emit, Inbound, Outbound, ProcessorLoop, store_path
from hub.reader import TopicReader
from hub.restoring import Restorer
from hub.store import Store, Txn
from schemas import catalog
from schemas.codec import Codec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SIRENS = ("732829320", "542051180", "552100554")


class CountingProcessor:
    """Counts offer requests per SIREN; echoes each with its running count as the source."""

    name = "counting"
    inputs = (catalog.OFFER_REQUESTS,)

    def __init__(self, fail_once: bool = False) -> None:
        self.fail_once = fail_once

    def apply(self, state: Txn, batch: Sequence[Inbound]) -> Iterable[Emit]:
        out: list[Emit] = []
        for record in batch:
            siren = record.datum["siren"]
            count = (state.get("count", siren) or 0) + 1
            state.put("count", siren, count, partition=record.partition)
            out.append(Outbound(catalog.LEAD_RESPONSES, siren, "OfferRequested",
                                {**record.datum, "source": f"count-{count}"}))
        if self.fail_once:
            self.fail_once = False
            raise RuntimeError("crash after applying, before the commit")
        return out


def _offer(siren: str) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": datetime.now(UTC), "source": "test",
            "schema_version": 1, "siren": siren, "category": "e-commerce"}


def _produce(settings: Settings, values: list[bytes], keys: list[str]) -> None:
    producer = kafka.producer(settings)
    for key, value in zip(keys, values, strict=True):
        producer.send(settings.topic(catalog.OFFER_REQUESTS), key=key.encode(), value=value)
    producer.flush()
    producer.close()


def _offered(settings: Settings) -> TopicReader:
    """Put an offer request of each of SIRENS on the input; return a started reader of
    what the counting processor emits."""
    codec = Codec.default()
    _produce(settings, [codec.encode("OfferRequested", _offer(s)) for s in SIRENS], list(SIRENS))
    reader = TopicReader(settings, [catalog.LEAD_RESPONSES])
    reader.start()
    return reader


def _run_until(loop: ProcessorLoop, reader: TopicReader, want: int,
               seen: list[Inbound], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while len(seen) < want:
        assert time.monotonic() < deadline, f"only {len(seen)} of {want} outputs"
        loop.run_once(timeout_ms=200)
        seen.extend(reader.poll(timeout_ms=50))


def _loop(settings: Settings, store: Store, processor: CountingProcessor,
          restorer: Restorer | None = None) -> ProcessorLoop:
    loop = ProcessorLoop(processor, settings=settings, store=store, registry=CollectorRegistry(),
                         restorer=restorer)
    loop.start()
    return loop


def _restarted(settings: Settings, store: Store, processor: CountingProcessor) -> ProcessorLoop:
    """A loop on the same store under a NEW consumer group.

    The store, not the group, says where to resume, and a fresh group (which would
    otherwise start from the beginning) proves it.
    """
    fresh = settings.model_copy(update={"group_prefix": f"{settings.group_prefix}-again"})
    return _loop(fresh, store, processor)


def test_outputs_once_resumes_from_store_and_dead_letters_garbage(topics: Settings) -> None:
    codec = Codec.default()
    keys = [SIRENS[i % 3] for i in range(9)]
    values = [codec.encode("OfferRequested", _offer(k)) for k in keys]
    values[4] = b"not avro at all"
    _produce(topics, values, keys)
    reader = TopicReader(topics, [catalog.LEAD_RESPONSES])
    dlq = kafka.consumer(topics, group=None)
    dlq_topic = topics.topic(catalog.DLQ)
    dlq.assign([TopicPartition(dlq_topic, p) for p in
                kafka.await_partitions(dlq, [dlq_topic])[dlq_topic]])
    reader.start()
    seen: list[Inbound] = []
    with Store(store_path(topics, "counting")) as store:
        loop = _loop(topics, store, CountingProcessor())
        _run_until(loop, reader, 8, seen)
        loop.close()
        # A second run on the same store resumes after what was applied: nothing new.
        _produce(topics, [codec.encode("OfferRequested", _offer(SIRENS[0]))], [SIRENS[0]])
        loop = _restarted(topics, store, CountingProcessor())
        _run_until(loop, reader, 9, seen)
        loop.close()
    counts = sorted(int(r.datum["source"].removeprefix("count-")) for r in seen
                    if r.datum["siren"] == SIRENS[0])
    assert counts == [1, 2, 3, 4]  # key 0 had 3 (one slot was garbage for key 1) + 1 later
    assert len(seen) == 9
    letters = _drain(dlq, 1)
    headers = dict(letters[0].headers)
    assert letters[0].value == b"not avro at all"
    assert headers[deadletter.STAGE] == b"decode"
    assert headers[deadletter.SOURCE_TOPIC] == topics.topic(catalog.OFFER_REQUESTS).encode()
    assert headers[deadletter.ERROR_CLASS]
    reader.close()
    dlq.close()


def test_a_poll_that_raises_while_the_brokers_are_down_is_waited_out(topics: Settings) -> None:
    # With every broker down kafka-python's poll can raise KafkaConnectionError (about one
    # run in six of tests/faults, where the passport service then exited 1). The loop
    # waits, as for an empty poll, and takes the records up once a poll answers again.
    reader, seen = _offered(topics), list[Inbound]()
    with Store(store_path(topics, "counting")) as store:
        loop = _loop(topics, store, CountingProcessor())
        assert loop._consumer is not None
        answering, failures = loop._consumer.poll, [0]

        def refused(**kwargs: Any) -> Any:
            if failures[0] < 3:
                failures[0] += 1
                raise KafkaConnectionError("111 ECONNREFUSED")
            return answering(**kwargs)

        loop._consumer.poll = refused
        for _ in range(3):
            loop.run_once(timeout_ms=100)
        assert failures == [3]
        _run_until(loop, reader, len(SIRENS), seen)
        loop.close()
    assert sorted(r.datum["siren"] for r in seen) == sorted(SIRENS)
    reader.close()


def test_after_a_transactional_input_the_group_stands_at_its_end(topics: Settings) -> None:
    # A topic written in transactions (the hub's own outputs, when fencing is on) has a
    # marker after each commit's records. The group mirror once committed the offset after
    # the last record, one short of the end: every partition stayed one behind for good, on
    # the lag dashboards and in the reliability campaign's drain.
    codec, topic = Codec.default(), topics.topic(catalog.OFFER_REQUESTS)
    producer = kafka.producer(topics, transactional_id=f"test-{uuid.uuid4().hex[:8]}")
    producer.init_transactions()
    for siren in SIRENS:
        producer.begin_transaction()
        producer.send(topic, key=siren.encode(), value=codec.encode("OfferRequested",
                                                                    _offer(siren)))
        producer.commit_transaction()
    producer.close()
    reader, seen = TopicReader(topics, [catalog.LEAD_RESPONSES]), list[Inbound]()
    reader.start()
    with Store(store_path(topics, "counting")) as store:
        loop = _loop(topics, store, CountingProcessor())
        _run_until(loop, reader, len(SIRENS), seen)
        admin = kafka.admin(topics)
        try:
            deadline = time.monotonic() + 30
            while True:
                loop.run_once(timeout_ms=100)
                group = topics.group("counting")
                committed = {tp: o.offset for tp, o in admin.list_group_offsets(
                    {group: None}).get(group, {}).items()}
                ends = {tp: o.offset for tp, o in admin.list_partition_offsets(
                    dict.fromkeys(committed, OffsetSpec.LATEST)).items()}
                behind = {tp: ends[tp] - offset for tp, offset in committed.items()
                          if ends[tp] != offset}
                if (committed and not behind) or time.monotonic() > deadline:
                    break
        finally:
            admin.close()
        loop.close()
    assert committed, "the group committed nothing"
    assert behind == {}
    reader.close()


def test_a_crash_before_commit_applies_the_batch_exactly_once_on_restart(topics: Settings) -> None:
    codec = Codec.default()
    _produce(topics, [codec.encode("OfferRequested", _offer(SIRENS[1])) for _ in range(3)],
             [SIRENS[1]] * 3)
    reader = TopicReader(topics, [catalog.LEAD_RESPONSES])
    reader.start()
    seen: list[Inbound] = []
    with Store(store_path(topics, "counting")) as store:
        loop = _loop(topics, store, CountingProcessor(fail_once=True))
        deadline = time.monotonic() + 30
        with pytest.raises(RuntimeError):
            while time.monotonic() < deadline:
                loop.run_once(timeout_ms=200)
        loop.close()
        assert store.positions() == {}
        loop = _restarted(topics, store, CountingProcessor())
        _run_until(loop, reader, 3, seen)
        loop.close()
    assert sorted(r.datum["source"] for r in seen) == ["count-1", "count-2", "count-3"]
    reader.close()


def _drain(consumer: Any, want: int, timeout_s: float = 15) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < want and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            out.extend(records)
    return out


class SlowRestore:
    """A restore that works through ``slices`` whole slices (hub.restoring.RestoreTask)."""

    def __init__(self, slices: int) -> None:
        self.left = slices

    def step(self, deadline: float) -> bool:
        time.sleep(max(0.0, deadline - time.monotonic()))
        self.left -= 1
        return self.left == 0

    def abandon(self) -> None:
        self.left = -1


class SlowRestorer:
    """Every partition needs a restore longer than max_poll_interval_ms, in all."""

    checkpoints = (catalog.LEAD_RESPONSES,)

    def __init__(self, slices: int) -> None:
        self.slices = slices
        self.begun: list[int] = []
        self.tasks: list[tuple[int, SlowRestore]] = []

    def begin(self, store: Store, partition: int) -> SlowRestore | None:
        self.begun.append(partition)
        task = SlowRestore(self.slices)
        self.tasks.append((partition, task))
        return task

    def done(self) -> set[int]:
        return {partition for partition, task in self.tasks if task.left == 0}


def test_a_restore_longer_than_the_poll_interval_keeps_the_member_in_its_group(
        topics: Settings) -> None:
    # Restored in the rebalance callback, a member that did not poll for longer than
    # max_poll_interval_ms was put out of the group, and began again on rejoining.
    settings = topics.model_copy(update={"max_poll_interval_ms": 3000})
    restorer = SlowRestorer(slices=4)  # 4 x 1 s per partition: 24 s in all, 8x the interval
    reader = _offered(settings)
    seen: list[Inbound] = []
    with Store(store_path(settings, "counting")) as store:
        loop = _loop(settings, store, CountingProcessor(), restorer)
        _run_until(loop, reader, 3, seen, timeout_s=120)
        deadline = time.monotonic() + 60
        while restorer.done() != set(range(6)) and time.monotonic() < deadline:
            loop.run_once(timeout_ms=200)
        loop.close()
    reader.close()
    # Each partition restored to the end, and the records then applied. (A partition
    # may be begun twice: kafka-python rebalances once more just after its first join.
    # In the callback, each round took 24 s, the member was put out, and it never
    # applied anything.)
    assert restorer.done() == set(range(6))
    assert max(restorer.begun.count(p) for p in range(6)) <= 2
    assert sorted(r.datum["siren"] for r in seen) == sorted(SIRENS)


class StuckRestore:
    """A restore whose broker never answers: each step gives up at once (RestoreTask)."""

    def __init__(self) -> None:
        self.steps = 0
        self.abandoned = False

    def step(self, deadline: float) -> bool:
        self.steps += 1
        return False

    def abandon(self) -> None:
        self.abandoned = True


class OneStuckRestorer:
    """One partition's restore never ends; the others' stores are current."""

    checkpoints = (catalog.LEAD_RESPONSES,)

    def __init__(self, stuck: int) -> None:
        self.stuck = stuck
        self.tasks: list[StuckRestore] = []

    def begin(self, store: Store, partition: int) -> StuckRestore | None:
        if partition != self.stuck:
            return None
        self.tasks.append(StuckRestore())
        return self.tasks[-1]


def test_a_restore_that_never_ends_holds_only_its_partition_and_is_let_go_on_close(
        topics: Settings) -> None:
    # SIRENS[0] is on partition 4, the others on 0 and 2 (murmur2, six partitions).
    restorer = OneStuckRestorer(stuck=4)
    reader = _offered(topics)
    seen: list[Inbound] = []
    with Store(store_path(topics, "counting")) as store:
        loop = _loop(topics, store, CountingProcessor(), restorer)
        _run_until(loop, reader, 2, seen)
        for _ in range(30):  # the held partition's record never comes through
            if sum(task.steps for task in restorer.tasks) >= 10:
                break
            loop.run_once(timeout_ms=100)
            seen.extend(reader.poll(timeout_ms=50))
        loop.close()
    reader.close()
    assert sorted(r.datum["siren"] for r in seen) == sorted(SIRENS[1:])
    # A join that raced the topic's metadata is followed by a second one (kafka-python),
    # which abandons the first task and begins another: the steps add up across them.
    assert sum(task.steps for task in restorer.tasks) >= 10
    assert all(task.abandoned for task in restorer.tasks)



class CurrentRestorer:
    """Every partition's store is current: nothing to restore."""

    checkpoints = (catalog.LEAD_RESPONSES,)

    def __init__(self) -> None:
        self.begun: list[int] = []

    def begin(self, store: Store, partition: int) -> None:
        self.begun.append(partition)


@pytest.mark.parametrize(("restores", "unpublished"),
                         [(True, True), (True, False), (False, True)],
                         ids=["restorer", "restorer-nothing-held", "no-restorer"])
def test_a_member_evicted_for_not_polling_does_not_publish_what_it_held(
        topics: Settings, restores: bool, unpublished: bool) -> None:
    # A member paused past its poll interval is put out of the group; its partitions are
    # another's by the time it runs again. It once relayed its outbox in the rebalance
    # callback (kafka-python delegates on_partitions_lost to on_partitions_revoked), and
    # under a lost membership the broker does not check a transactional offset commit:
    # the stale snapshots of the zombie test went out after their successors'.
    settings = topics.model_copy(update={"max_poll_interval_ms": 1500})
    codec, restorer = Codec.default(), CurrentRestorer() if restores else None
    reader, seen = _offered(settings), list[Inbound]()
    with Store(store_path(settings, "counting")) as store:
        loop = _loop(settings, store, CountingProcessor(), restorer)
        _run_until(loop, reader, len(SIRENS), seen)
        if unpublished:
            with store.transaction() as txn:
                txn.emit(settings.topic(catalog.LEAD_RESPONSES), SIRENS[0].encode(),
                         codec.encode("OfferRequested", {**_offer(SIRENS[0]), "source": "stale"}))
        held = store.positions()
        time.sleep(4)  # no poll: the heartbeat thread leaves the group
        deadline = time.monotonic() + 60
        while loop.evicted == 0 and time.monotonic() < deadline:
            loop.run_once(timeout_ms=200)
        pending, positions = store.pending(), store.positions()
        for _ in range(10):
            loop.run_once(timeout_ms=200)
            seen.extend(reader.poll(timeout_ms=50))
        loop.close()
    reader.close()
    stale = [r for r in seen if r.datum["source"] == "stale"]
    assert loop.evicted == 1, "the member was never put out of its group"
    if not restores:  # no state to restore from the topics: it hands over as on a revocation
        assert (loop.fenced, pending, len(stale)) == (0, [], 1)
    elif unpublished:
        # Forgotten: the outbox row gone, never published. (Its positions were dropped
        # too, but on Apache Kafka the member is back within the same poll and has
        # applied its inputs again before they can be looked at.)
        assert (loop.fenced, pending, stale) == (1, [], [])
    else:  # nothing unpublished: the store is kept, and no restore is forced
        assert (loop.fenced, positions) == (0, held)
