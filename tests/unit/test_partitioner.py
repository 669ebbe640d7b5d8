"""``hub.kafka.KeyHashPartitioner`` puts every key where kafka-python's (and Java's) does."""

from __future__ import annotations

import random

import pytest
from kafka.partitioner.default import DefaultPartitioner

from hub.kafka import KeyHashPartitioner


class _Cluster:
    """The three ClusterMetadata calls a partitioner makes."""

    def __init__(self, partitions: int) -> None:
        self.ids = set(range(partitions))

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self.ids

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self.ids


@pytest.mark.parametrize("partitions", [1, 3, 6, 12])
def test_keys_land_where_the_default_partitioner_puts_them(partitions: int) -> None:
    rng = random.Random(partitions)
    keys = [str(rng.randrange(10**9)).encode() for _ in range(300)]
    keys += [rng.randbytes(rng.randrange(1, 40)) for _ in range(300)]
    cluster = _Cluster(partitions)
    ours, reference = KeyHashPartitioner(remembered=50), DefaultPartitioner()
    for key in keys * 2:  # the second time from what it remembered (or forgot: cap 50)
        assert ours.partition("t", key, key, None, b"v", cluster) == \
            reference.partition("t", key, key, None, b"v", cluster)
    assert len(ours._hashes) <= 50


def test_a_record_without_key_goes_to_some_partition() -> None:
    picked = {KeyHashPartitioner().partition("t", None, None, None, b"v", _Cluster(6))
              for _ in range(200)}
    assert picked <= set(range(6))
    assert len(picked) > 1
