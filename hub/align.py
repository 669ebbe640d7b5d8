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

import time
from collections.abc import Callable, Iterable, Mapping, Set
from typing import Any, Protocol

from kafka import TopicPartition

__all__ = ["Consumer", "InputAligner", "ahead"]

_NOT_READ = -1  # a partition not read yet holds the others back until it is (or is empty)


class Consumer(Protocol):
    """What the aligner needs of a ``KafkaConsumer``."""

    def assignment(self) -> Iterable[TopicPartition]: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...

    def position(self, partition: TopicPartition) -> int: ...

    def paused(self) -> Iterable[TopicPartition]: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...


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
    """Keeps a consumer's co-partitioned inputs in step (see the module docstring).

    A partition that says it has records left but gives none for ``max_idle_s``
    (a broker whose high watermark runs ahead of what it serves, a leader moving)
    stops holding the others back until it gives records again: waiting is only
    worth it for records that come.
    """

    def __init__(self, *, max_idle_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._last_read: dict[TopicPartition, int] = {}
        self._moved: dict[TopicPartition, float] = {}  # when it last gave records
        self._max_idle_s = max_idle_s
        self._clock = clock

    def reset(self) -> None:
        """Forget what was read (the assignment changed; positions were sought)."""
        self._last_read.clear()
        self._moved.clear()

    def observe(self, polled: Mapping[TopicPartition, list[Any]]) -> None:
        """Note the time of the last record read per partition."""
        now = self._clock()
        for tp, records in polled.items():
            if records:
                self._last_read[tp] = records[-1].timestamp
                self._moved[tp] = now

    def apply(self, consumer: Consumer, held: Set[TopicPartition] = frozenset()) -> None:
        """Pause the partitions ahead, resume the others (except ``held``: paused by the
        caller for reasons of its own, which are neither counted nor resumed)."""
        assigned = [tp for tp in consumer.assignment() if tp not in held]
        now = self._clock()
        behind = {tp: _behind(consumer, tp)
                  and now - self._moved.setdefault(tp, now) < self._max_idle_s
                  for tp in assigned}
        wanted = ahead(self._last_read, behind)
        paused = set(consumer.paused()) - held
        if wanted - paused:
            consumer.pause(*(wanted - paused))
        if paused - wanted:
            consumer.resume(*(paused - wanted))


def _behind(consumer: Consumer, tp: TopicPartition) -> bool:
    end = consumer.highwater(tp)  # known once a fetch of the partition answered
    return end is None or consumer.position(tp) < end
