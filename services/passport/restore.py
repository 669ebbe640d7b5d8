"""Rebuilding the passport state of assigned partitions from ``pn.passports.v1``.

The passport topic is compacted and every snapshot is a business's whole state
(services/passport/outputs.py), so the latest snapshot per SIREN is the state.
On assignment of partition ``p`` the store is trusted if the last snapshot on
``pn.passports.v1/p`` is the last one this store emitted (nobody else wrote
there since); otherwise the state of ``p`` is dropped and restored:

1. read ``pn.passports.v1/p`` from the beginning to its end, each snapshot
   overwriting the one before for its SIREN (one record in memory at a time);
2. set the input positions of ``p`` to the LAST snapshot's ``replay_from``,
   where its batch began. The relay writes a batch's snapshots only after its
   leads and after every earlier record, so what is on the topic is a prefix of
   what the previous owner emitted, cut at worst inside the last batch: replaying
   that batch and what follows re-applies the events whose effects are missing,
   and the applied event ids make the rest no-ops. A lead re-derived this way
   has the same id as the first time.

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
from hub.store import Store
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


class PassportRestorer:
    """The passport service's ``hub.processor.Restorer``."""

    checkpoints: tuple[str, ...] = (catalog.PASSPORTS,)

    def __init__(self, settings: Settings, *, codec: Codec | None = None,
                 timeout_s: float = 300.0) -> None:
        self.settings = settings
        self.codec = codec or Codec.default()
        self.timeout_s = timeout_s
        self.log = logs.get().bind(component="passport")
        self.last_restore: dict[int, int] = {}
        """Partition -> passports restored by the last restore (for tests and the bench)."""

    def restore(self, store: Store, partitions: Sequence[int]) -> None:
        topic = self.settings.topic(catalog.PASSPORTS)
        consumer = kafka.consumer(self.settings, group=None, enable_auto_commit=False)
        try:
            for partition in partitions:
                self._restore_with_retries(store, consumer, TopicPartition(topic, partition))
        finally:
            consumer.close(autocommit=False)

    def _restore_with_retries(self, store: Store, consumer: KafkaConsumer,
                              tp: TopicPartition) -> None:
        """Retry a partition whose broker is not answering yet (a cluster that just
        started, a leader moving); each attempt commits whole or not at all."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                self._restore_one(store, consumer, tp)
                return
            except KafkaError as exc:
                if time.monotonic() > deadline:
                    raise BrokerUnavailable(
                        f"restore of {tp.topic}/{tp.partition} failed: {exc}") from exc
                self.log.warning("restore.retry", partition=tp.partition,
                                 error=type(exc).__name__)
                time.sleep(1.0)

    def _restore_one(self, store: Store, consumer: KafkaConsumer, tp: TopicPartition) -> None:
        consumer.assign([tp])
        with store.transaction() as txn:
            mine = txn.get(LAST_SNAPSHOT_NS, str(tp.partition))
        last_on_topic = self._last_id(consumer, tp)
        if last_on_topic is None and mine is None:
            return  # nothing anywhere: a fresh partition
        if last_on_topic == mine:
            return  # the topic ends with this store's own last snapshot: it is current
        started = time.perf_counter()
        restored: set[str] = set()
        last: dict[str, Any] | None = None
        with store.transaction() as txn:
            txn.drop_partition(tp.partition)
            # Streamed: each snapshot overwrites the one before for its SIREN, so the
            # store ends with the latest of each, and memory holds one record at a time.
            for datum in self._snapshots(consumer, tp):
                siren = str(datum["siren"])
                passport = outputs.restore(datum)
                txn.put(PASSPORTS_NS, siren, persist.dump(passport), partition=tp.partition)
                if passport.parked:
                    txn.put(PARKED_NS, siren,
                            {"at": min(p.occurred_at for p in passport.parked),
                             "partition": tp.partition}, partition=tp.partition)
                elif siren in restored:
                    txn.delete(PARKED_NS, siren)
                restored.add(siren)
                last = datum
            if last is not None:
                replay_from: dict[str, int] = dict(last["replay_from"] or last["input_offsets"])
                txn.put(OFFSETS_NS, str(tp.partition), replay_from, partition=tp.partition)
                for where, offset in replay_from.items():  # "pn.training.v1/3" -> 1042
                    name, _, number = where.rpartition("/")
                    txn.set_position(self.settings.topic(name), int(number), offset)
                txn.put(LAST_SNAPSHOT_NS, str(tp.partition), str(last["event_id"]),
                        partition=tp.partition)
        self.last_restore[tp.partition] = len(restored)
        self.log.info("partition.restored", partition=tp.partition, passports=len(restored),
                      seconds=round(time.perf_counter() - started, 3))

    def _last_id(self, consumer: KafkaConsumer, tp: TopicPartition) -> str | None:
        """The event id of the partition's last snapshot (None if it has none)."""
        # The listed end offset is a hint: the embedded broker's can lag behind the
        # records actually there, so read on from just before it to the fetched end.
        listed = consumer.end_offsets([tp])[tp]
        consumer.seek(tp, max(0, listed - 1))
        last = None
        for record in self._records(consumer, tp):
            last = record
        if last is None:
            return None
        try:
            return str(self.codec.decode(last.value).datum["event_id"])
        except ContractError:
            return None

    def _snapshots(self, consumer: KafkaConsumer, tp: TopicPartition) -> Iterator[dict[str, Any]]:
        """The decodable snapshots of the partition, in log order."""
        consumer.seek_to_beginning(tp)
        for record in self._records(consumer, tp):
            try:
                yield self.codec.decode(record.value).datum
            except ContractError as exc:  # not ours to fix here: the materialiser letters it
                self.log.warning("restore.undecodable", partition=tp.partition,
                                 offset=record.offset, error=str(exc))

    def _records(self, consumer: KafkaConsumer, tp: TopicPartition) -> Iterator[Any]:
        """The records from the current position to the end the fetches report."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"restore of {tp.topic}/{tp.partition} timed out")
            yield from consumer.poll(timeout_ms=500).get(tp, [])
            end = consumer.highwater(tp)  # known once a fetch answered
            if end is not None and consumer.position(tp) >= end:
                return
