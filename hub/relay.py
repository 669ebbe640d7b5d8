"""The outbox relay: what a processor committed to its store's outbox, produced to Kafka.

Records leave in outbox order, through one idempotent producer, and are forgotten
only once the broker acknowledged them: a crash at any point leaves them in the
outbox, and the next relay sends them again with the same event ids (docs/architecture.md,
Effectively once). While the inputs are behind, the loop pumps (sends what is
new, forgets what was confirmed, waits for nothing); once caught up, it drains.

Checkpoint topics (the passport snapshots a new owner restores from) carry a
promise: a checkpoint is sent only once every earlier record of another topic is
acknowledged, so what is on a checkpoint topic never runs ahead of the leads it
reflects (services/passport/restore.py).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from hub import kafka
from hub.config import Settings
from hub.errors import BrokerUnavailable
from hub.metrics import ProcessorMetrics
from hub.store import Store
from schemas import catalog
from schemas.frozen import frozen


@frozen
class _InFlight:
    """An outbox record handed to the producer, awaiting the broker's answer."""

    seq: int
    topic: str
    future: Any
    checkpoint: bool


class OutboxRelay:
    """Produces one store's outbox; ``pump`` while behind, ``drain`` when caught up."""

    def __init__(self, store: Store, *, settings: Settings, metrics: ProcessorMetrics,
                 log: Any, component: str, checkpoints: frozenset[str] = frozenset()) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.log = log
        self.component = component
        self._checkpoints = checkpoints
        # Metrics name topics by their catalog name, whatever the deployment's prefix.
        self._base = {settings.topic(t.name): t.name for t in catalog.CATALOG}
        self._producer: KafkaProducer | None = None
        self._inflight: deque[_InFlight] = deque()
        """Records sent and not yet acknowledged (still in the outbox), in outbox order."""
        self._others_in_flight = 0
        """How many of them are not checkpoints."""
        self._sent_seq = 0
        """The last outbox record handed to the producer."""

    def connect(self) -> None:
        """Build the producer now (it fails here if the broker cannot be reached)."""
        self._client()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None

    def drain(self) -> int:
        """Produce the whole outbox and wait for the broker; return the count acknowledged.

        On a broker failure the records stay in the outbox and the next call tries
        again; a record sent twice carries the same event id both times.
        """
        acked = 0
        try:
            producer = self._client()
            while True:
                acked += self._reap()
                self._send_pending(producer, wait=True)
                if not self._inflight:
                    break
                producer.flush(timeout=self.settings.produce_timeout_s)
                acked += self._reap()
                if self._inflight:  # flush returned, yet a record is still unanswered
                    raise KafkaTimeoutError("the broker did not answer the whole outbox")
        except (KafkaError, BrokerUnavailable) as exc:
            self._relay_failed(exc)
            return acked
        self.metrics.outbox_pending.labels(self.component).set(0)
        return acked

    def pump(self) -> None:
        """The pipelined relay: forget what the broker confirmed, send what is new; no wait."""
        try:
            self._reap()
            self._send_pending(self._client(), wait=False)
        except (KafkaError, BrokerUnavailable) as exc:
            self._relay_failed(exc)

    def _send_pending(self, producer: KafkaProducer, *, wait: bool) -> None:
        """Send the outbox records not in flight yet, in order.

        A checkpoint is sent only once every earlier record of another topic is
        acknowledged: with ``wait`` the relay waits for them, otherwise it stops
        there and the next call goes on. Checkpoints among themselves stream.
        """
        while pending := self.store.pending(after=self._sent_seq):
            for rec in pending:
                checkpoint = rec.topic in self._checkpoints
                if checkpoint and self._others_in_flight:
                    if not wait:
                        return
                    producer.flush(timeout=self.settings.produce_timeout_s)
                    self._reap()
                    if self._others_in_flight:
                        raise KafkaTimeoutError("the broker did not answer before a checkpoint")
                future = producer.send(rec.topic, key=rec.key, value=rec.value,
                                       headers=rec.headers or None)
                self._inflight.append(_InFlight(rec.seq, rec.topic, future, checkpoint))
                self._others_in_flight += not checkpoint
                self._sent_seq = rec.seq

    def _reap(self) -> int:
        """Acknowledge the records at the head of the flight that the broker confirmed;
        then raise the error of the first one that failed, if one did."""
        inflight, last, failed = self._inflight, 0, None
        out: dict[str, int] = {}
        while inflight and inflight[0].future.is_done:
            head = inflight[0]
            if head.future.exception is not None:
                failed = head.future.exception
                break
            inflight.popleft()
            last = head.seq
            self._others_in_flight -= not head.checkpoint
            out[head.topic] = out.get(head.topic, 0) + 1
        if last:
            self.store.acknowledge(last)
            for topic, count in out.items():
                self.metrics.records_out.labels(
                    self.component, self._base.get(topic, topic)).inc(count)
        if failed is not None:
            raise failed
        return sum(out.values())

    def _relay_failed(self, exc: Exception) -> None:
        """Start the relay over from the outbox, with a fresh producer."""
        self.log.warning("outbox.relay_failed", error=type(exc).__name__,
                         in_flight=len(self._inflight))
        self._inflight.clear()
        self._others_in_flight = 0
        self._sent_seq = 0  # everything not acknowledged is still in the outbox
        self.metrics.outbox_pending.labels(self.component).set(self.store.pending_count())
        self._discard_producer()

    def _client(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = kafka.producer(self.settings)
        return self._producer

    def _discard_producer(self) -> None:
        """Drop a producer that failed: the next relay builds a fresh one.

        An idempotent kafka-python producer whose batches expired during a broker
        outage can stay wedged after the broker is back (every flush times out);
        the outbox still holds every record, so starting over loses nothing.
        """
        producer, self._producer = self._producer, None
        if producer is not None:
            stop(producer, self.log)


def stop(producer: KafkaProducer, log: Any) -> None:
    """Stop a producer now, its unsent batches dropped (the outbox still has them).

    kafka-python 3.0.12's ``close(timeout=0)`` flushes first, and a wedged flush
    raises before the sender thread is told to stop: the old producer then went
    on retrying its batches in the background and could deliver an older
    snapshot of a business after the new producer had delivered a newer one,
    leaving the compacted passport topic with the stale one last (seen in the
    broker-crash fault test, about 1 run in 4). So the sender is force-closed
    first, which aborts every batch it has not sent, then the producer closed.
    """
    sender = getattr(producer, "_sender", None)  # no public API aborts the batches
    if sender is not None:
        sender.force_close()
        sender.join(timeout=5)
    try:
        producer.close(timeout=0)
    except KafkaError as exc:
        log.debug("producer.close_failed", error=type(exc).__name__)
