"""Rebuilding the passport state of assigned partitions from ``pn.passports.v1``.

The passport topic is compacted and every snapshot is a business's whole state
(services/passport/outputs.py), so the latest snapshot per SIREN is the state.
On assignment of partition ``p`` its inputs stay paused while the store is
checked: it is trusted if the last snapshot on ``pn.passports.v1/p`` is the last
one this store emitted (nobody else wrote there since); otherwise the state of
``p`` is dropped and restored. The check and the restore both run in steps of
about a second that the loop takes between its polls (``hub.restoring``: a
large partition, or a broker that does not answer, no longer costs the member
its place in the group):

1. read ``pn.passports.v1/p`` from the beginning to its end, each snapshot
   overwriting the one before for its SIREN (one record in memory at a time);
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
from collections.abc import Iterator, Sequence
from typing import Any

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

#: Restored passport rows written per statement.
_ROWS_PER_STATEMENT = 500
#: The least a broker call of a step may wait, even at the end of its slice.
_MIN_CALL_MS = 1000
#: A poll's wait: kafka-python's poll waits its whole timeout for records, so at the
#: end of a partition (where the check always is) a long one is time lost.
_POLL_MS = 50


class PassportRestorer:
    """The passport service's ``hub.restoring.Restorer``."""

    checkpoints: tuple[str, ...] = (catalog.PASSPORTS,)

    def __init__(self, settings: Settings, *, codec: Codec | None = None,
                 timeout_s: float = 300.0) -> None:
        """``timeout_s``: how long a partition's restore may keep failing (its broker
        unreachable) before the service gives up with ``BrokerUnavailable``."""
        self.settings = settings
        self.codec = codec or Codec.default()
        self.timeout_s = timeout_s
        self.log = logs.get().bind(component="passport")
        self.last_restore: dict[int, int] = {}
        """Partition -> passports restored by the last restore (for tests and the bench)."""

    def begin(self, store: Store, partition: int) -> _PartitionRestore:
        """The task that checks ``partition`` and restores it if the store is not current.

        No broker call here: this runs in the rebalance callback, where a broker
        that does not answer (a leader just lost) once held the member for minutes,
        past its poll interval and deaf to SIGTERM. The check is the task's first step.
        """
        return _PartitionRestore(self, store, partition)

    def restore(self, store: Store, partitions: Sequence[int]) -> None:
        """Restore ``partitions`` to completion (the benchmark; the loop steps the tasks)."""
        restore_all(self, store, partitions)


class _PartitionRestore:
    """One partition's check, then (if need be) its restore, in steps.

    The check reads the last snapshot on the topic: if it is the last one this
    store emitted, the store is current and the task is done. Otherwise each
    restore step commits the snapshots it read; the last sets the positions and
    the last-snapshot marker, so the state counts as current only once all of it
    is in (a restore cut short starts over next time).

    A broker error ends the step: the consumer is closed (the next step opens a
    fresh one, with new metadata and connections) and the phase starts over. Only
    after ``timeout_s`` of failing steps does the task give up.
    """

    def __init__(self, restorer: PassportRestorer, store: Store, partition: int) -> None:
        self.restorer = restorer
        self.store = store
        self.tp = TopicPartition(restorer.settings.topic(catalog.PASSPORTS), partition)
        self.log = restorer.log
        self._consumer: KafkaConsumer | None = None
        self._restoring = False
        self._tail: Any = None  # the check: the last record read so far
        self._started: float | None = None
        self._restored: set[str] = set()
        self._last: dict[str, Any] | None = None
        self._failing_since: float | None = None

    def step(self, deadline: float) -> bool:
        try:
            done = self._restore(deadline) if self._restoring else self._check(deadline)
        except (KafkaError, BrokerUnavailable) as exc:
            self._close()
            self._tail, self._started = None, None  # the phase starts over
            now = time.monotonic()
            self._failing_since = self._failing_since or now
            if now - self._failing_since > self.restorer.timeout_s:
                raise BrokerUnavailable(f"restore of {self.tp.topic}/{self.tp.partition} "
                                        f"failed for {self.restorer.timeout_s:.0f}s: "
                                        f"{exc}") from exc
            self.log.warning("restore.retry", partition=self.tp.partition,
                             phase="restore" if self._restoring else "check",
                             error=type(exc).__name__, detail=str(exc))
            return False
        self._failing_since = None
        if done:
            self._close()
        return done

    def abandon(self) -> None:
        self._close()

    def _open(self, deadline: float) -> KafkaConsumer:
        """The step's consumer, opened at the start of its phase."""
        if self._consumer is None:
            # At the end of a partition a fetch waits for data up to fetch_max_wait_ms:
            # the check reaches it at once, so 100 ms rather than the 500 ms default.
            consumer = kafka.consumer(self.restorer.settings, group=None,
                                      enable_auto_commit=False, fetch_max_wait_ms=100,
                                      bootstrap_timeout_ms=self._call_ms(deadline))
            consumer.assign([self.tp])
            self._consumer = consumer
            if self._restoring:
                consumer.seek_to_beginning(self.tp)
            else:
                # The listed end offset is a hint: the embedded broker's can lag behind
                # the records actually there, so read on from just before it.
                listed = consumer.end_offsets([self.tp], timeout_ms=self._call_ms(deadline))
                consumer.seek(self.tp, max(0, listed[self.tp] - 1))
        return self._consumer

    def _close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close(autocommit=False)

    def _call_ms(self, deadline: float) -> int:
        return min(max(_ms_left(deadline), _MIN_CALL_MS), self.restorer.settings.request_timeout_ms)

    def _check(self, deadline: float) -> bool:
        """Read to the end of the topic partition: True if the store is current; else
        begin the restore."""
        consumer = self._open(deadline)
        for record in _records(consumer, self.tp, deadline):
            if record is None:
                break
            self._tail = record
        else:
            return False  # not at the end yet: on at the next step
        with self.store.transaction() as txn:
            mine = txn.get(LAST_SNAPSHOT_NS, str(self.tp.partition))
        if self._tail_id() == mine:
            # Nothing anywhere (a fresh partition), or the topic ends with this store's
            # own last snapshot: the store is current.
            return True
        consumer.seek_to_beginning(self.tp)
        self._restoring = True
        return self._restore(deadline)

    def _tail_id(self) -> str | None:
        """The event id of the partition's last snapshot (None if it has none)."""
        if self._tail is None:
            return None
        try:
            return str(self.restorer.codec.decode(self._tail.value).datum["event_id"])
        except ContractError:
            return None

    def _restore(self, deadline: float) -> bool:
        partition = self.tp.partition
        if self._started is None:
            self._started = time.perf_counter()
            self._restored.clear()
            self._last = None
            with self.store.transaction() as txn:
                txn.drop_partition(partition)
        consumer = self._open(deadline)
        at_end = False
        with self.store.transaction() as txn:
            # Streamed: each snapshot overwrites the one before for its SIREN, so the
            # store ends with the latest of each; rows go in by the few hundred, in order.
            rows: list[tuple[str, Any, int]] = []
            for record in _records(consumer, self.tp, deadline):
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


def _records(consumer: KafkaConsumer, tp: TopicPartition,
             deadline: float) -> Iterator[Any]:
    """The records from the current position, then a None once at the end the fetches
    report; stops without the None at ``deadline``."""
    while time.monotonic() < deadline:
        yield from consumer.poll(timeout_ms=min(_POLL_MS, _ms_left(deadline))).get(tp, [])
        end = consumer.highwater(tp)  # known once a fetch answered
        if end is not None and consumer.position(tp) >= end:
            yield None
            return


def _ms_left(deadline: float) -> int:
    return max(0, int(min(deadline - time.monotonic(), 3600.0) * 1000))
