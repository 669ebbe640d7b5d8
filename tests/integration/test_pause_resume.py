"""A paused partition, once resumed, is read again (the kafka-python parked-records bug).

kafka-python 3.0.12 parks the fetched records of a paused partition and gives
them back on resume only if no other partition's (drained) records are in hand:
otherwise the partition is never fetched again. ``hub.kafka`` works around it;
``hub.align`` pauses and resumes partitions all the time.
"""

from __future__ import annotations

import time

import pytest
from kafka import TopicPartition

from hub import kafka
from hub.config import Settings
from schemas import catalog

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RECORDS = 200


def test_a_resumed_partition_delivers_what_it_had_fetched_and_the_rest(topics: Settings) -> None:
    topic = topics.topic(catalog.TRAINING)
    producer = kafka.producer(topics)
    for number in range(RECORDS):
        for partition in (0, 1):
            producer.send(topic, key=b"k", value=b"%d" % number, partition=partition)
    producer.flush(30)
    producer.close(10)
    first, second = TopicPartition(topic, 0), TopicPartition(topic, 1)
    consumer = kafka.consumer(topics, group=None)
    try:
        consumer.assign([first, second])
        consumer.seek_to_beginning(first, second)
        got = {first: 0, second: 0}
        held: TopicPartition | None = None
        deadline = time.monotonic() + 60
        # One record a poll: the first partition a record comes from is paused with the
        # rest of its fetch in hand, and stays so while the other is drained to its end.
        while time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200, max_records=1).items():
                got[tp] += len(records)
                if held is None:
                    held = tp
                    consumer.pause(held)
            if held is not None and got[first if held == second else second] == RECORDS:
                break
        assert held is not None
        assert got[held] == 1
        consumer.resume(held)
        while got[held] < RECORDS and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                got[tp] += len(records)
        assert got == {first: RECORDS, second: RECORDS}
    finally:
        consumer.close(autocommit=False)
