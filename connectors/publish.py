"""The one way an accepted partner event reaches Kafka: encode, produce, wait for the ack.

The API, the synthetic source and the file drop all publish through here, so
"accepted" means the same everywhere: the broker acknowledged the write with
acks=all. Anything else (broker down, timeout, an error on the way) is a
``BrokerUnavailable`` for the caller to turn into a 503 or a retry.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata

from hub import kafka, logs
from hub.config import Settings
from hub.errors import BrokerUnavailable
from schemas.codec import Codec
from schemas.models import EventModel

#: Batching delay: none. The API waits for each acknowledgement, and a batch flushes
#: once all its records are handed over; a linger only delayed single events (the
#: ingest bench: p50 ~9 ms with 5 ms, ~2 ms with none, the batch rate unchanged).
#: Records still share requests: those handed over while one is in flight.
LINGER_MS = 0


@dataclass(frozen=True, slots=True)
class Record:
    """An event as Kafka carries it: where, under which key, which bytes."""

    topic: str
    key: bytes
    value: bytes
    """Avro single-object encoding: the same event always has the same bytes."""


@dataclass(frozen=True, slots=True)
class Ack:
    """Where the broker wrote an acknowledged record: what a consistency token names."""

    topic: str
    """The topic as written (with the settings' prefix)."""
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Sending:
    """Records handed to the client, not yet known to be acknowledged."""

    producer: KafkaProducer | None
    futures: list[Any]
    failed: BrokerUnavailable | None
    """Why the records after the futures' were not sent (None: all were)."""
    count: int
    deadline: float


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
        # Topics the client has written to: their metadata is known, send() cannot block.
        self._warm: set[str] = set()
        # A record not acknowledged in time is abandoned by the client rather than
        # written minutes after the caller was told 503 (kafka-python requires at
        # least linger + request timeout). It also bounds how long close() can flush.
        self._delivery_ms = max(int(settings.produce_timeout_s * 1000),
                                LINGER_MS + settings.request_timeout_ms + 100)
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
                    linger_ms=LINGER_MS,
                    # The client's own statistics cost a few µs a record, and nothing
                    # reads them.
                    metrics_enabled=False,
                )
            return self._producer

    def _reachable(self, timeout_s: float) -> bool:
        """Whether a bootstrap server accepts a TCP connection."""
        addresses = self.settings.bootstrap.split(",")
        return any(_reachable(address, timeout_s) for address in addresses)

    def record(self, event: EventModel) -> Record:
        """The Kafka record of an event: its topic, key and single-object encoded value.

        The bytes are those of ``codec.encode(event.RECORD, event.to_avro())``
        (tests/unit/test_codec_trusted.py holds them equal for every event type),
        written from the model's own fields: the model validated them, so the
        codec's trusted way skips the checks ``encode`` makes of any datum, and
        no ``model_dump`` builds a second copy: ~4.5 µs per enrolment, of which
        ~3 the compiled Avro write (``schemas.avrowrite``; fastavro's took ~11.5).
        """
        return Record(self.settings.topic(event.TOPIC), event.key().encode("utf-8"),
                      self.codec.encode_trusted(event.RECORD, _avro_fields(event)))

    def datum_record(self, topic: str, key: str, record: str,
                     datum: Mapping[str, Any]) -> Record:
        """The Kafka record of a datum that is no partner event (the API's webhook commands).

        Such a datum is built by our own code, not validated by a model, so it goes
        through the codec's checked ``encode``: a field that does not fit its schema
        is a ``ContractError`` here, not a record nobody can read.
        """
        return Record(self.settings.topic(topic), key.encode("utf-8"),
                      self.codec.encode(record, dict(datum)))

    def publish(self, event: EventModel) -> None:
        """Produce one event and return once the broker acknowledged it.

        Raises ``BrokerUnavailable`` on any Kafka error or after ``produce_timeout_s``;
        a ``ContractError`` if the event does not fit its Avro schema (a bug, not input).
        """
        failure = self.publish_records([self.record(event)], flush=False)[0]
        if failure is not None:
            self.log.warning("publish.failed", topic=event.TOPIC, event_id=str(event.event_id),
                             error=type(failure.__cause__ or failure).__name__)
            raise failure

    def publish_many(self, events: Iterable[EventModel]) -> int:
        """Produce events in bulk; return once every one was acknowledged (their count).

        Per-key order is kept (one idempotent producer). On failure some events
        may have been written: callers retry the whole batch, and readers drop
        the duplicates by event id.
        """
        failures = self.publish_records([self.record(event) for event in events])
        failed = [failure for failure in failures if failure is not None]
        if failed:
            self.log.warning("publish.batch_failed", events=len(failures), failed=len(failed),
                             error=type(failed[0].__cause__ or failed[0]).__name__)
            raise BrokerUnavailable(f"{len(failed)} of a batch of {len(failures)} "
                                    f"not acknowledged: {failed[0]}") from failed[0]
        return len(failures)

    def publish_records(self, records: Sequence[Record], *,
                        flush: bool = True) -> list[BrokerUnavailable | None]:
        """Produce records in bulk; say for each, in order, whether the broker acknowledged it.

        ``None`` is an acknowledged record (acks=all); a ``BrokerUnavailable`` one that
        was not, or not within ``produce_timeout_s`` (it may still be written later: the
        delivery timeout bounds how late). All are sent before any is waited for, then
        ``flush`` asks the client to send at once rather than after its linger.
        Never raises for the broker's sake: a caller that holds both kinds answers both.
        """
        return self.acknowledged(self.send_records(records), flush=flush)

    def send_records(self, records: Sequence[Record]) -> Sending:
        """Hand records to the client (the first half of ``publish_records``)."""
        deadline = time.monotonic() + self.settings.produce_timeout_s
        try:
            producer = self._client()
        except BrokerUnavailable as exc:
            return Sending(None, [], exc, len(records), deadline)
        futures: list[Any] = []
        failed: BrokerUnavailable | None = None
        for record in records:
            try:
                futures.append(producer.send(record.topic, key=record.key, value=record.value))
            except KafkaError as exc:
                # send() blocks up to max_block_ms on metadata: once one failed, the
                # rest would each wait as long for the same answer.
                failed = BrokerUnavailable(f"{record.topic}: not sent: {exc}")
                failed.__cause__ = exc
                self._discard(producer)
                break
        return Sending(producer, futures, failed, len(records), deadline)

    def send_now(self, record: Record) -> Any | None:
        """Hand one record to the client if that cannot block, else None (use the others).

        ``send`` blocks while the client is built and while it fetches a topic's
        metadata: both are done once a record of the topic was acknowledged. The
        returned future is the client's; ``outcome`` reads it once it is done.
        """
        producer = self._producer
        if producer is None or record.topic not in self._warm:
            return None
        try:
            return producer.send(record.topic, key=record.key, value=record.value)
        except KafkaError:
            return None  # the blocking way says what is wrong

    def outcome(self, future: Any) -> BrokerUnavailable | None:
        """What a done future of ``send`` says: None once acknowledged."""
        if future.succeeded():
            self._warm.add(future.value.topic)
            return None
        unavailable = BrokerUnavailable(f"not acknowledged: {future.exception}")
        unavailable.__cause__ = future.exception
        self._discard(self._producer)
        return unavailable

    def timed_out(self, seconds: float) -> BrokerUnavailable:
        """A record handed over by ``send_now`` got no answer in time: start over.

        The client that took it may be the wedged kind ``_discard`` explains; the
        next record goes through a fresh one.
        """
        self._discard(self._producer)
        return BrokerUnavailable(f"not acknowledged within {seconds} s")

    def acknowledged(self, sending: Sending, *,
                     flush: bool = True) -> list[BrokerUnavailable | None]:
        """Wait for the records sent (the second half of ``publish_records``)."""
        futures, deadline = sending.futures, sending.deadline
        if flush and futures and sending.producer is not None:
            # A flush that times out says nothing per record: each future below does.
            with contextlib.suppress(KafkaError):
                sending.producer.flush(timeout=max(0.0, deadline - time.monotonic()))
        outcomes: list[BrokerUnavailable | None] = []
        for future in futures:
            try:
                metadata = future.get(timeout=max(0.0, deadline - time.monotonic()))
            except KafkaError as exc:
                unavailable = BrokerUnavailable(f"not acknowledged: {exc}")
                unavailable.__cause__ = exc
                outcomes.append(unavailable)
            else:
                self._warm.add(metadata.topic)
                outcomes.append(None)
        if sending.failed is not None:
            outcomes.extend([sending.failed] * (sending.count - len(futures)))
        if any(outcome is not None for outcome in outcomes):
            self._discard(sending.producer)
        return outcomes

    def _discard(self, producer: KafkaProducer | None) -> None:
        """Drop a producer that failed to get an acknowledgement; the next call builds anew.

        An idempotent kafka-python 3.0 producer whose batches expired while the
        brokers were away can stay wedged once they are back (every flush times
        out): the broker-fault tests saw the API answer 503 for good. Only the
        current producer is dropped, so concurrent failures do not drop its successor.
        """
        if producer is None:
            return
        with self._lock:
            if producer is not self._producer:
                return
            self._producer = None
            self._warm = set()
        # "is not None" again: mypy narrows the identity check above to the attribute's type.
        if self._owned and producer is not None:
            try:
                producer.close(timeout=0)
            except KafkaError as exc:
                self.log.debug("publisher.discard_incomplete", error=type(exc).__name__)

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
            self._warm = set()
        if producer is None or not self._owned:
            return
        try:
            producer.close(timeout=timeout_s if timeout_s is not None
                           else self._delivery_ms / 1000 + 1)
        except KafkaError as exc:
            self.log.warning("publisher.close_incomplete", error=type(exc).__name__)


def ack_of(future: Any) -> Ack | None:
    """Where an acknowledged future of ``send`` says its record is, else None.

    None too for anything that is not the client's future (the tests' fakes hand
    their own objects around): a caller then simply has no position to tell.
    """
    if not isinstance(future, FutureRecordMetadata) or not future.is_done:
        return None
    if not future.succeeded():
        return None
    metadata = future.value
    return Ack(str(metadata.topic), int(metadata.partition), int(metadata.offset))


def acks(sending: Sending) -> list[Ack | None]:
    """The positions of a ``Sending``'s records once ``acknowledged``: one per record, in order
    (None for a record not acknowledged, or not sent at all)."""
    positions = [ack_of(future) for future in sending.futures]
    return positions + [None] * (sending.count - len(positions))


def _avro_fields(event: EventModel) -> dict[str, Any]:
    """An event's Avro fields, as ``Codec.encode_trusted`` takes them (see ``Publisher.record``).

    What ``EventModel.to_avro`` gives, less its conversions fastavro makes itself
    (a ``UUID`` to its text, a tuple as an array): the model's fields without the
    JSON ``type`` tag; the codec stamps ``schema_version``.
    """
    fields = dict(event.__dict__)
    del fields["type"]
    return fields


def _reachable(address: str, timeout_s: float) -> bool:
    host, _, port = address.strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False
