"""The one way an accepted partner event reaches Kafka: encode, produce, wait for the ack.

The API, the synthetic source and the file drop all publish through here, so
"accepted" means the same everywhere: the broker acknowledged the write with
acks=all. Anything else (broker down, timeout, an error on the way) is a
``BrokerUnavailable`` for the caller to turn into a 503 or a retry.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from hub import kafka, logs
from hub.config import Settings
from hub.errors import BrokerUnavailable
from schemas.codec import Codec
from schemas.models import EventModel

#: Batching delay: short, since the API waits for each acknowledgement.
_LINGER_MS = 5


class Publisher:
    """Publishes partner events to their catalog topics, keyed as the catalog says."""

    def __init__(self, settings: Settings, producer: KafkaProducer | None = None, *,
                 codec: Codec | None = None) -> None:
        self.settings = settings
        self.codec = codec or Codec.default()
        self._producer = producer
        self._owned = producer is None
        # The producer is built on first use, not here: building one against an
        # unreachable broker blocks, then raises, and the API must still start and
        # answer 503 until the broker comes back.
        self._lock = threading.Lock()
        # A record not acknowledged in time is abandoned by the client rather than
        # written minutes after the caller was told 503 (kafka-python requires at
        # least linger + request timeout). It also bounds how long close() can flush.
        self._delivery_ms = max(int(settings.produce_timeout_s * 1000),
                                _LINGER_MS + settings.request_timeout_ms + 100)
        self.log = logs.get().bind(component="publisher")

    def _client(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                # Probe first: a KafkaProducer that fails to bootstrap leaks its sockets
                # (kafka-python 3.0), and the API retries on every request while down.
                if not self._reachable(min(1.0, self.settings.produce_timeout_s)):
                    raise BrokerUnavailable(f"no broker answers at {self.settings.bootstrap}")
                timeout_ms = int(self.settings.produce_timeout_s * 1000)
                self._producer = kafka.producer(
                    self.settings,
                    # Bound every blocking step by the produce timeout: kafka-python's
                    # defaults wait 30 s to bootstrap and 60 s for metadata.
                    bootstrap_timeout_ms=timeout_ms,
                    max_block_ms=timeout_ms,
                    delivery_timeout_ms=self._delivery_ms,
                    linger_ms=_LINGER_MS,
                )
            return self._producer

    def _reachable(self, timeout_s: float) -> bool:
        """Whether a bootstrap server accepts a TCP connection."""
        addresses = self.settings.bootstrap.split(",")
        return any(_reachable(address, timeout_s) for address in addresses)

    def _send(self, producer: KafkaProducer, event: EventModel) -> Any:
        value = self.codec.encode(event.RECORD, event.to_avro())
        return producer.send(self.settings.topic(event.TOPIC), key=event.key().encode("utf-8"),
                             value=value)

    def publish(self, event: EventModel) -> None:
        """Produce one event and return once the broker acknowledged it.

        Raises ``BrokerUnavailable`` on any Kafka error or after ``produce_timeout_s``;
        a ``ContractError`` if the event does not fit its Avro schema (a bug, not input).
        """
        deadline = time.monotonic() + self.settings.produce_timeout_s
        try:
            future = self._send(self._client(), event)
            future.get(timeout=max(0.0, deadline - time.monotonic()))
        except KafkaError as exc:
            self.log.warning("publish.failed", topic=event.TOPIC, event_id=str(event.event_id),
                             error=type(exc).__name__)
            raise BrokerUnavailable(f"{event.TOPIC}: not acknowledged: {exc}") from exc

    def publish_many(self, events: Iterable[EventModel]) -> int:
        """Produce events in bulk; return once every one was acknowledged (their count).

        Per-key order is kept (one idempotent producer). On failure some events
        may have been written: callers retry the whole batch, and readers drop
        the duplicates by event id.
        """
        producer = self._client()
        futures: list[Any] = []
        try:
            futures.extend(self._send(producer, event) for event in events)
            producer.flush(timeout=self.settings.produce_timeout_s)
            deadline = time.monotonic() + self.settings.produce_timeout_s
            for future in futures:
                future.get(timeout=max(0.0, deadline - time.monotonic()))
        except KafkaError as exc:
            self.log.warning("publish.batch_failed", events=len(futures), error=type(exc).__name__)
            raise BrokerUnavailable(f"batch of {len(futures)} not acknowledged: {exc}") from exc
        return len(futures)

    def ready(self, timeout_s: float = 1.0) -> bool:
        """True when a bootstrap server accepts a connection and the producer is built.

        A TCP probe, because kafka-python answers from cached metadata long after
        the broker went away; it stays cheap enough for a readiness probe.
        """
        if not self._reachable(timeout_s):
            return False
        try:
            self._client()
        except BrokerUnavailable:
            return False
        return True

    def close(self, timeout_s: float | None = None) -> None:
        """Flush and close the producer it built (an injected one is the caller's to close).

        The default timeout outlasts the delivery timeout: kafka-python's close()
        gives up half-way (sender left running) when its flush times out.
        """
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is None or not self._owned:
            return
        try:
            producer.close(timeout=timeout_s if timeout_s is not None
                           else self._delivery_ms / 1000 + 1)
        except KafkaError as exc:
            self.log.warning("publisher.close_incomplete", error=type(exc).__name__)


def _reachable(address: str, timeout_s: float) -> bool:
    host, _, port = address.strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False
