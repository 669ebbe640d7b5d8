"""What a processor loop tells its consumer group: positions, lag, and the fence.

The store, not the group, is the truth about what was applied (hub/processor.py). The
group gets a copy of the positions after each batch, for the lag dashboards and the
broker's own tools; and, on a broker that honours transactions, the positions the
relay commits inside its transaction, under the generation the member holds, which
is what fences a zombie (docs/architecture.md, Zombie fencing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from hub.errors import Fenced
from hub.metrics import ProcessorMetrics


class GroupMirror:
    """The group's copy of one loop's positions; ``mirror`` after each batch."""

    def __init__(self, *, component: str, base: Mapping[str, str], metrics: ProcessorMetrics,
                 log: Any) -> None:
        """``base``: the physical input topic names to their catalog names (metric labels)."""
        self._component = component
        self._base = base
        self._metrics = metrics
        self._log = log
        #: Per partition, where its last batch ended and where the consumer stood after it
        #: (past the transaction markers that followed it): see ``mirror``.
        self._batch_ends: dict[TopicPartition, tuple[int, int]] = {}

    def mirror(self, consumer: KafkaConsumer,
               polled: Mapping[TopicPartition, Sequence[Any]]) -> int:
        """Commit the positions to the group and report the lag; return the records behind.

        The group gets the consumer's position, not the offset after the batch's last
        record: on a topic written in transactions each commit leaves a marker after the
        records, which a read-committed consumer steps over, and the broker counts as
        lag. Mirrored from the last record, every partition of the hub's own output stayed
        one behind for good, as monitoring and ``reliability``'s drain saw it.
        """
        offsets = {}
        for tp, batch in polled.items():
            after = batch[-1].offset + 1
            at = max(after, consumer.position(tp) or after)
            self._batch_ends[tp] = (after, at)
            offsets[tp] = OffsetAndMetadata(at, "", -1)
        try:
            consumer.commit_async(offsets)
        except KafkaError as exc:  # only a mirror: the store holds the truth
            self._log.debug("group.commit_failed", error=type(exc).__name__)
        lag: dict[str, int] = {}
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is not None:
                base = self._base[tp.topic]
                lag[base] = lag.get(base, 0) + max(0, end - consumer.position(tp))
        for base, records in lag.items():
            self._metrics.lag.labels(self._component, base).set(records)
        return sum(lag.values())

    def fence(self, consumer: KafkaConsumer,
              stored: Mapping[tuple[str, int], int],
              ) -> tuple[dict[TopicPartition, OffsetAndMetadata], Any] | None:
        """The stored positions of the partitions held, and the group metadata they are
        held under; None while none is held. Raises ``Fenced`` once the membership is
        lost: the coordinator does not check a transactional offset commit that carries
        no generation (old clients sent none), so one would go through."""
        offsets = {tp: OffsetAndMetadata(self._group_offset(tp, stored[(tp.topic, tp.partition)]),
                                         "", -1)
                   for tp in consumer.assignment() if (tp.topic, tp.partition) in stored}
        if not offsets:
            return None
        group = consumer.group_metadata()
        if group.generation_id < 0 or not group.member_id:
            raise Fenced(f"{self._component}: the group evicted this member")
        return offsets, group

    def _group_offset(self, tp: TopicPartition, stored: int) -> int:
        """The offset to commit to the group for a partition stored at ``stored``: past the
        markers after its last batch when the store is where that batch ended."""
        end, at = self._batch_ends.get(tp, (-1, stored))
        return at if end == stored else stored
