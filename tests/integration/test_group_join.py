"""A consumer joins its group whatever its poll rhythm (the kafka-python join race).

kafka-python 3.0.12 drops a JoinGroup/SyncGroup round that finishes on its IO
thread between two polls; ``hub.kafka`` works around it. Without the fix, a
caller doing a little work between short polls — as the processor loop does —
missed its assignment for 30 s or more in about one join of three.
"""

from __future__ import annotations

import time

import pytest

from hub import kafka
from hub.config import Settings
from schemas import catalog

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.mark.parametrize("work_s", [0.005, 0.015, 0.03])
def test_a_consumer_that_works_between_short_polls_still_joins(topics: Settings,
                                                             work_s: float) -> None:
    topic = topics.topic(catalog.OFFER_REQUESTS)
    consumer = kafka.consumer(topics, group=topics.group(f"join-{int(work_s * 1000)}"))
    try:
        kafka.await_partitions(consumer, [topic])
        consumer.subscribe([topic])
        # A join takes one rebalance delay (about 3 s here); a lost round costs another.
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(timeout_ms=2)
            time.sleep(work_s)  # the processor loop's relay and commit
        assert {tp.partition for tp in consumer.assignment()} == set(range(6))
    finally:
        consumer.close(autocommit=False)
