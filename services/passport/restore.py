"""Rebuilding the passport state of assigned partitions from ``pn.passports.v1``.

The passport topic is compacted and every snapshot is a business's whole state
(services/passport/outputs.py), so the latest snapshot per SIREN is the state.
On assignment of partition ``p`` the store is trusted if the last snapshot on
``pn.passports.v1/p`` is the last one this store emitted (nobody else wrote
there since); otherwise the state of ``p`` is dropped and restored:

1. read ``pn.passports.v1/p`` from the beginning to its end, each snapshot
   overwriting the one before for its SIREN (one record in memory at a time),
   in steps of about a second that the loop runs between its polls
   (``hub.restoring``: a large partition no longer costs the member its place
   in the group);
2. set the input positions of ``p`` to the LAST snapshot's ``replay_from``,
   where its window's first batch began (services/passport/window.py). The
   relay writes a window's snapshots only after the leads of its batches and
   after every earlier record, so what is on the topic is a prefix of what the
   previous owner emitted, cut at worst inside the last window (or with a window
   never sent): replaying from there re-applies the events whose effects are
   missing, and the applied event ids make the rest no-ops. A lead re-derived
   this way has the same id as the first time.

Both input topics and the passport topic have the same partition count and key
(the SIREN), so ``pn.passports.v1/p`` holds exactly the businesses of inputs ``p``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from hub import kafka, logs
from hub.config import Settings
from hub.errors import BrokerUnavailable
from hub.restoring import restore_all
from hub.store import Store, Txn
from schemas import catalog
from schemas.codec import Codec
from schemas.errors import ContractError
from services.passport import outputs, persist
from services.passport.processor import (
    LAST_SNAPSHOT_NS,
    OFFSETS_NS,
    PARKED_NS,
    PASSPORTS_NS,
)

_T = TypeVar("_T")
#: Restored passport rows written per statement.
_ROWS_PER_STATEMENT = 500


class PassportRestorer:
    """The passport service's ``hub.restoring.Restorer``."""

    checkpoints: tuple[str, ...] = (catalog.PASSPORTS,)

    def __init__(self, settings: Settings, *, codec: Codec | None = None,
                 timeout_s: float = 300.0) -> None:
        self.settings = settings
        self.codec = codec or Codec.default()
        self.timeout_s = timeout_s
        self.log = logs.get().bind(component="passport")
        self.last_restore: dict[int, int] = {}
        """Partition -> passports restored by the last restore (for tests and the bench)."""

    def begin(self, store: Store, partition: int) -> _PartitionRestore | None:
        """The restore of ``partition``, or None if the store holds its current state."""
        tp = TopicPartition(self.settings.topic(catalog.PASSPORTS), partition)
        consumer = kafka.consumer(self.settings, group=None, enable_auto_commit=False)
        try:
            consumer.assign([tp])
            with store.transaction() as txn:
                mine = txn.get(LAST_SNAPSHOT_NS, str(partition))
            last_on_topic = self._retrying(tp, lambda: self._last_id(consumer, tp))
        except BaseException:
            consumer.close(autocommit=False)
            raise
        if last_on_topic == mine:
            # Nothing anywhere (a fresh partition), or the topic ends with this store's
            # own last snapshot: the store is current.
            consumer.close(autocommit=False)
            return None
        return _PartitionRestore(self, store, consumer, tp)

    def restore(self, store: Store, partitions: Sequence[int]) -> None:
        """Restore ``partitions`` to completion (the benchmark; the loop steps the tasks)."""
        restore_all(self, store, partitions)

    def _retrying(self, tp: TopicPartition, read: Callable[[], _T]) -> _T:
        """Retry a read while the partition's broker is not answering yet (a cluster
        that just started, a leader moving)."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                return read()
            except KafkaError as exc:
                if time.monotonic() > deadline:
                    raise BrokerUnavailable(
                        f"restore of {tp.topic}/{tp.partition} failed: {exc}") from exc
                self.log.warning("restore.retry", partition=tp.partition,
                                 error=type(exc).__name__)
                time.sleep(1.0)

    def _last_id(self, consumer: KafkaConsumer, tp: TopicPartition) -> str | None:
        """The event id of the partition's last snapshot (None if it has none)."""
        # The listed end offset is a hint: the embedded broker's can lag behind the
        # records actually there, so read on from just before it to the fetched end.
        listed = consumer.end_offsets([tp])[tp]
        consumer.seek(tp, max(0, listed - 1))
        last = None
        for record in _records(consumer, tp, time.monotonic() + self.timeout_s):
            last = record
        if last is None:
            return None
        try:
            return str(self.codec.decode(last.value).datum["event_id"])
        except ContractError:
            return None


class _PartitionRestore:
    """One partition's restore, in steps: each commits the snapshots it read; the last
    sets the positions and the last-snapshot marker, so the state counts as current
    only once all of it is in (a restore cut short starts over next time)."""

    def __init__(self, restorer: PassportRestorer, store: Store, consumer: KafkaConsumer,
                 tp: TopicPartition) -> None:
        self.restorer = restorer
        self.store = store
        self.consumer = consumer
        self.tp = tp
        self.log = restorer.log
        self._started: float | None = None
        self._restored: set[str] = set()
        self._last: dict[str, Any] | None = None
        self._failing_since: float | None = None

    def step(self, deadline: float) -> bool:
        try:
            done = self._step(deadline)
        except KafkaError as exc:
            # Start over on the next step: what this one committed is dropped then.
            now = time.monotonic()
            self._failing_since = self._failing_since or now
            if now - self._failing_since > self.restorer.timeout_s:
                self.abandon()
                raise BrokerUnavailable(f"restore of {self.tp.topic}/{self.tp.partition} "
                                        f"failed: {exc}") from exc
            self.log.warning("restore.retry", partition=self.tp.partition,
                             error=type(exc).__name__)
            self._started = None
            return False
        self._failing_since = None
        if done:
            self.consumer.close(autocommit=False)
        return done

    def abandon(self) -> None:
        self.consumer.close(autocommit=False)

    def _step(self, deadline: float) -> bool:
        partition = self.tp.partition
        if self._started is None:
            self._started = time.perf_counter()
            self._restored.clear()
            self._last = None
            with self.store.transaction() as txn:
                txn.drop_partition(partition)
            self.consumer.seek_to_beginning(self.tp)
        at_end = False
        with self.store.transaction() as txn:
            # Streamed: each snapshot overwrites the one before for its SIREN, so the
            # store ends with the latest of each; rows go in by the few hundred, in order.
            rows: list[tuple[str, Any, int]] = []
            for record in _records(self.consumer, self.tp, deadline, ends=True):
                if record is None:
                    at_end = True
                    break
                datum = self._decoded(record)
                if datum is not None:
                    rows.append(self._row(txn, datum))
                if len(rows) >= _ROWS_PER_STATEMENT:
                    txn.put_many(PASSPORTS_NS, rows)
                    rows.clear()
            txn.put_many(PASSPORTS_NS, rows)
            if at_end:
                self._finish(txn)
        if at_end:
            self.restorer.last_restore[partition] = len(self._restored)
            self.log.info("partition.restored", partition=partition,
                          passports=len(self._restored),
                          seconds=round(time.perf_counter() - self._started, 3))
        return at_end

    def _decoded(self, record: Any) -> dict[str, Any] | None:
        try:
            return self.restorer.codec.decode(record.value, millis=True).datum
        except ContractError as exc:  # not ours to fix here: the materialiser letters it
            self.log.warning("restore.undecodable", partition=self.tp.partition,
                             offset=record.offset, error=str(exc))
            return None

    def _row(self, txn: Txn, datum: dict[str, Any]) -> tuple[str, Any, int]:
        """The passport row a snapshot gives (its parked index updated now: rare, and
        in order with the snapshots before it)."""
        partition = self.tp.partition
        siren = str(datum["siren"])
        passport = outputs.restore(datum)
        if passport.parked:
            txn.put(PARKED_NS, siren, {"at": min(p.occurred_at for p in passport.parked),
                                       "partition": partition}, partition=partition)
        elif siren in self._restored:
            txn.delete(PARKED_NS, siren)
        self._restored.add(siren)
        self._last = datum
        return siren, persist.dump(passport), partition

    def _finish(self, txn: Txn) -> None:
        last, partition = self._last, self.tp.partition
        if last is None:
            return
        replay_from: dict[str, int] = dict(last["replay_from"] or last["input_offsets"])
        txn.put(OFFSETS_NS, str(partition), replay_from, partition=partition)
        for where, offset in replay_from.items():  # "pn.training.v1/3" -> 1042
            name, _, number = where.rpartition("/")
            txn.set_position(self.restorer.settings.topic(name), int(number), offset)
        txn.put(LAST_SNAPSHOT_NS, str(partition), str(last["event_id"]), partition=partition)


def _records(consumer: KafkaConsumer, tp: TopicPartition, deadline: float, *,
             ends: bool = False) -> Iterator[Any]:
    """The records from the current position to the end the fetches report, until
    ``deadline``; with ``ends``, a None once the end is reached."""
    while time.monotonic() < deadline:
        yield from consumer.poll(timeout_ms=min(500, _ms_left(deadline))).get(tp, [])
        end = consumer.highwater(tp)  # known once a fetch answered
        if end is not None and consumer.position(tp) >= end:
            if ends:
                yield None
            return
    if not ends:
        raise BrokerUnavailable(f"restore of {tp.topic}/{tp.partition} timed out")


def _ms_left(deadline: float) -> int:
    return max(0, int(min(deadline - time.monotonic(), 3600.0) * 1000))
