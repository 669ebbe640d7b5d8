"""Co-partitioned inputs read in step: which partitions wait for which."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import TopicPartition

from hub.align import InputAligner, ahead

ENROL, TRAIN, OFFER = (TopicPartition(t, 0) for t in ("enrolments", "training", "offers"))
TRAIN_1 = TopicPartition("training", 1)


def test_a_partition_read_ahead_of_a_lagging_co_partition_waits() -> None:
    # Training was drained up to t=500 while enrolments, still behind, are at t=100.
    paused = ahead({ENROL: 100, TRAIN: 500, OFFER: 100},
                   {ENROL: True, TRAIN: True, OFFER: True})
    assert paused == {TRAIN}


def test_a_partition_not_read_yet_holds_the_others_until_it_is() -> None:
    assert ahead({TRAIN: 500}, {ENROL: True, TRAIN: True, OFFER: False}) == {TRAIN}


def test_caught_up_partitions_hold_nobody_back() -> None:
    # Enrolments are at their end: training goes on, however far ahead it is.
    assert ahead({ENROL: 100, TRAIN: 500}, {ENROL: False, TRAIN: True}) == set()
    assert ahead({}, {ENROL: False, TRAIN: False}) == set()


def test_only_co_partitions_are_compared() -> None:
    # training/1 is far ahead of enrolments/0, but they hold different businesses.
    assert ahead({ENROL: 100, TRAIN: 100, TRAIN_1: 900},
                 {ENROL: True, TRAIN: True, TRAIN_1: True}) == set()


_TPS = [TopicPartition(t, p) for t in ("a", "b", "c") for p in range(3)]


@settings(database=None)
@given(st.dictionaries(st.sampled_from(_TPS), st.integers(0, 1000)),
       st.fixed_dictionaries({tp: st.booleans() for tp in _TPS}))
def test_of_every_group_with_work_left_some_lagging_partition_can_move(
        last_read: dict[TopicPartition, int], behind: dict[TopicPartition, bool]) -> None:
    paused = ahead(last_read, behind)
    for number in range(3):
        lagging = [tp for tp in _TPS if tp.partition == number and behind[tp]]
        if lagging:
            assert any(tp not in paused for tp in lagging)
        # Nothing is paused behind a partition that is itself further along.
        for tp in paused:
            assert any(last_read.get(other, -1) < last_read[tp] for other in _TPS
                       if other.partition == tp.partition and behind[other])


class _Record:
    def __init__(self, timestamp: int) -> None:
        self.timestamp = timestamp


class FakeConsumer:
    """The aligner's view of a consumer (hub.align.Consumer)."""

    def __init__(self, ends: dict[TopicPartition, int]) -> None:
        self.ends = ends
        self.positions = dict.fromkeys(ends, 0)
        self.held: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return set(self.ends)

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.ends[partition]

    def position(self, partition: TopicPartition) -> int:
        return self.positions[partition]

    def paused(self) -> set[TopicPartition]:
        return set(self.held)

    def pause(self, *partitions: TopicPartition) -> None:
        self.held.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.held.difference_update(partitions)


def test_the_aligner_pauses_what_ran_ahead_and_resumes_it_when_the_others_catch_up() -> None:
    now = [0.0]
    consumer = FakeConsumer({ENROL: 10, TRAIN: 10})
    aligner = InputAligner(clock=lambda: now[0])
    aligner.observe({TRAIN: [_Record(500)]})
    consumer.positions[TRAIN] = 5
    aligner.apply(consumer)
    assert consumer.held == {TRAIN}  # enrolments, not read yet, come first
    aligner.observe({ENROL: [_Record(400)]})
    consumer.positions[ENROL] = 5
    aligner.apply(consumer)
    assert consumer.held == {TRAIN}
    aligner.observe({ENROL: [_Record(600)]})
    aligner.apply(consumer)
    assert consumer.held == {ENROL}


def test_a_partition_that_gives_nothing_stops_holding_the_others_back() -> None:
    now = [0.0]
    consumer = FakeConsumer({ENROL: 10, TRAIN: 10})
    aligner = InputAligner(max_idle_s=2.0, clock=lambda: now[0])
    aligner.observe({TRAIN: [_Record(500)], ENROL: [_Record(100)]})
    aligner.apply(consumer)
    assert consumer.held == {TRAIN}
    now[0] = 1.9
    aligner.apply(consumer)
    assert consumer.held == {TRAIN}
    now[0] = 2.1  # enrolments claim records left, yet gave none for 2 s
    aligner.apply(consumer)
    assert consumer.held == set()
