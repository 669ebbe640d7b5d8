"""Reading whole topics without a group: every partition, from the beginning, then following.

For tables every instance must hold entirely (the reseller table in each router)
and for the read model. A record that does not decode is never handed on as data:
a reader given ``on_undecodable`` passes it there (as the ``Inbound`` shape the
processor loop dead-letters: record ``""``, the raw value under ``"__raw__"``), so
the table and the read model send it to the dead letters with its cause
(docs/architecture.md, "Bad input never blocks a partition"); the others (tests,
tools, the demo's CRMs) log and skip it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from hub import kafka, logs
from hub.config import Settings
from hub.errors import BrokerUnavailable
from hub.processor import Inbound
from schemas.codec import Codec
from schemas.errors import ContractError

#: Where an undecodable record goes: the record (raw value in its datum) and why.
Undecodable = Callable[[Inbound, ContractError], None]


class TopicReader:
    """Follows a set of catalog topics in full."""

    def __init__(self, settings: Settings, topics: Sequence[str], *,
                 codec: Codec | None = None, on_undecodable: Undecodable | None = None) -> None:
        self.settings = settings
        self.codec = codec or Codec.default()
        self._on_undecodable = on_undecodable
        self._base = {settings.topic(name): name for name in topics}
        self._consumer: KafkaConsumer | None = None
        self.log = logs.get().bind(reader=",".join(topics))

    def start(self, timeout_s: float = 30.0) -> None:
        """Assign every partition of the topics and seek to their beginning."""
        consumer = kafka.consumer(self.settings, group=None)
        try:
            found = kafka.await_partitions(consumer, self._base, timeout_s)
        except BrokerUnavailable:
            consumer.close()
            raise
        partitions = [TopicPartition(topic, p) for topic, ids in found.items()
                      for p in sorted(ids)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        self._consumer = consumer

    def poll(self, timeout_ms: int = 0) -> list[Inbound]:
        """The records that arrived since the last call, decoded, in partition order."""
        assert self._consumer is not None, "start() first"
        try:
            polled = self._consumer.poll(timeout_ms=timeout_ms)
        except KafkaError as exc:
            self.log.warning("reader.poll_failed", error=type(exc).__name__)
            return []
        out: list[Inbound] = []
        for tp, records in polled.items():
            for rec in records:
                try:
                    decoded = self.codec.decode(rec.value)
                except ContractError as exc:
                    self.log.warning("reader.undecodable", topic=tp.topic, partition=tp.partition,
                                     offset=rec.offset, error=type(exc).__name__)
                    if self._on_undecodable is not None:
                        self._on_undecodable(
                            Inbound(self._base[tp.topic], tp.partition, rec.offset, rec.key, "",
                                    {"__raw__": rec.value or b""}, rec.timestamp), exc)
                    continue
                out.append(Inbound(self._base[tp.topic], tp.partition, rec.offset, rec.key,
                                   decoded.record, decoded.datum, rec.timestamp))
        return out

    def catch_up(self, apply: Callable[[list[Inbound]], None], timeout_s: float = 60.0) -> int:
        """Read until the end offsets seen at the call, applying each batch; return the count."""
        assert self._consumer is not None, "start() first"
        consumer = self._consumer
        deadline = time.monotonic() + timeout_s
        ends = kafka.retrying(lambda: consumer.end_offsets(list(consumer.assignment())),
                             what=f"the end offsets of {list(self._base)}", timeout_s=timeout_s)
        total = 0

        def behind(tp: TopicPartition, end: int) -> bool:
            # The listed end can lag the records there (seen on the embedded broker):
            # the highwater the fetches report counts too, once known.
            return bool(consumer.position(tp) < max(end, consumer.highwater(tp) or 0))

        while any(behind(tp, end) for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"could not catch up with {list(self._base)} in {timeout_s}s")
            batch = self.poll(timeout_ms=200)
            if batch:
                apply(batch)
                total += len(batch)
        return total

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
            self._consumer = None
