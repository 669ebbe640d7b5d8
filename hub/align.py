"""Reading co-partitioned inputs in step, by record time, as Kafka Streams does.

A service that joins several topics keyed alike (the passport: enrolments,
training, offer requests, all by SIREN) gets partition ``p`` of each. Left to
itself, a consumer catching up on a backlog drains whichever partition's fetch
came back first: a whole training partition before any enrolment of the same
businesses. The rules give the same result in any order, but the work is not
the same: a training event read before its enrolment is parked, carried in the
state and in every snapshot, then applied when the enrolment comes (in the
passport benchmark, ~30% more CPU per record when training came first).

Kafka Streams picks, among a task's input partitions, the record with the
smallest timestamp. Here the grain is a poll: after each one, an input
partition whose last record read is later than the earliest last-read time
among its co-partitions that still have records to read is paused, and resumed
once they caught up. The earliest one is never paused, so the set always moves.
Nothing here decides what a result is, only the order work arrives in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaConsumer, TopicPartition

__all__ = ["InputAligner", "ahead"]

_NOT_READ = -1  # a partition not read yet holds the others back until it is (or is empty)


def ahead(last_read: Mapping[TopicPartition, int],
          behind: Mapping[TopicPartition, bool]) -> set[TopicPartition]:
    """The partitions to pause: read past the earliest co-partition still behind.

    ``last_read`` is the timestamp (ms) of the last record read per partition (absent:
    none yet); ``behind`` says, for every assigned partition, whether it has records
    left to read (or may have: its end is not known yet).
    """
    groups: dict[int, list[TopicPartition]] = {}
    for tp in behind:
        groups.setdefault(tp.partition, []).append(tp)
    paused: set[TopicPartition] = set()
    for tps in groups.values():
        lagging = [last_read.get(tp, _NOT_READ) for tp in tps if behind[tp]]
        if not lagging:
            continue
        frontier = min(lagging)
        paused.update(tp for tp in tps if last_read.get(tp, _NOT_READ) > frontier)
    return paused


class InputAligner:
    """Keeps a consumer's co-partitioned inputs in step (see the module docstring)."""

    def __init__(self) -> None:
        self._last_read: dict[TopicPartition, int] = {}

    def reset(self) -> None:
        """Forget what was read (the assignment changed; positions were sought)."""
        self._last_read.clear()

    def observe(self, polled: Mapping[TopicPartition, list[Any]]) -> None:
        """Note the time of the last record read per partition."""
        for tp, records in polled.items():
            if records:
                self._last_read[tp] = records[-1].timestamp

    def apply(self, consumer: KafkaConsumer) -> None:
        """Pause the partitions ahead, resume the others."""
        assigned: Iterable[TopicPartition] = consumer.assignment()
        behind = {tp: _behind(consumer, tp) for tp in assigned}
        wanted = ahead(self._last_read, behind)
        paused = set(consumer.paused())
        if wanted - paused:
            consumer.pause(*(wanted - paused))
        if paused - wanted:
            consumer.resume(*(paused - wanted))


def _behind(consumer: KafkaConsumer, tp: TopicPartition) -> bool:
    end = consumer.highwater(tp)  # known once a fetch of the partition answered
    return end is None or consumer.position(tp) < end
