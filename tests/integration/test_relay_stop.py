"""A relay's discarded producer stops at once, its unsent batches dropped (hub.relay.stop).

Before, ``close(timeout=0)`` raised in its flush with batches pending and left the
sender thread running: the old producer went on delivering stale records after
the new producer's (a stale passport snapshot last on a compacted topic).
"""

from __future__ import annotations

import pytest

from hub import kafka, logs
from hub.config import Settings
from hub.relay import stop
from schemas import catalog

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_a_producer_with_records_in_hand_is_stopped_and_its_batches_aborted(
        topics: Settings) -> None:
    # A long linger keeps the records in the producer's hands, as a wedged broker does.
    producer = kafka.producer(topics, linger_ms=60_000)
    futures = [producer.send(topics.topic(catalog.DLQ), key=b"k", value=b"v" * 100)
               for _ in range(50)]
    assert not any(f.is_done for f in futures)
    stop(producer, logs.get())
    assert not producer._sender.is_alive()  # the background sender is gone
    assert all(f.is_done and f.exception is not None for f in futures)  # aborted, not sent
