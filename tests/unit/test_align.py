"""Co-partitioned inputs read in step: which partitions wait for which."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import TopicPartition

from hub.align import ahead

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
