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

Fenced relay (``fence`` given: the services that restore from their own topics, on a
broker that honours transactions). A member paused past its session timeout, or cut
off, does not know its partitions moved; resumed, it would still publish what it
applied, after the new owner's records, and a later restore would take the stale
ones. So the whole outbox leaves in one broker transaction that also commits the
input positions under the group generation the member holds (KIP-447, as Kafka
Streams' exactly-once v2): if the group moved on, the coordinator refuses the
positions, the transaction aborts, and readers, who read committed, never see it.
The relay then raises ``Fenced`` and the loop forgets what it applied
(hub/processor.py). Records are acknowledged in the outbox only once the
transaction committed; all of it becomes visible at once, so checkpoints need no
ordering of their own.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer, TopicPartition
from kafka.errors import (
    CommitFailedError,
    FencedInstanceIdError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFencedError,
)
from kafka.structs import OffsetAndMetadata

from hub import kafka
from hub.config import Settings
from hub.errors import BrokerUnavailable, Fenced
from hub.metrics import ProcessorMetrics
from hub.store import Store
from schemas import catalog
from schemas.frozen import frozen

Fence = Callable[[], tuple[dict[TopicPartition, OffsetAndMetadata], Any] | None]
"""The input positions to commit with the outbox and the consumer's group metadata; None
while the member holds no partition (nothing may leave then)."""

#: How long the broker waits for an open transaction before it aborts it.
_TRANSACTION_TIMEOUT_MS = 15_000

#: The broker's answers meaning another member, or producer, owns the work now.
_FENCED = (CommitFailedError, FencedInstanceIdError, ProducerFencedError)


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
                 log: Any, component: str, checkpoints: frozenset[str] = frozenset(),
                 fence: Fence | None = None) -> None:
        """``fence``: relay in broker transactions under the group's generation (above)."""
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.log = log
        self.component = component
        self._fence = fence
        # In a transaction everything becomes visible at once: no checkpoint overtakes.
        self._checkpoints = checkpoints if fence is None else frozenset()
        self._transactional_id = _transactional_id(store, settings.group(component)) \
            if fence is not None else None
        # Metrics name topics by their catalog name, whatever the deployment's prefix.
        self._base = {settings.topic(t.name): t.name for t in catalog.CATALOG}
        self._producer: KafkaProducer | None = None
        self._inflight: deque[_InFlight] = deque()
        """Records sent and not yet acknowledged (still in the outbox), in outbox order."""
        self._others_in_flight = 0
        """How many of them are not checkpoints."""
        self._sent_seq = 0
        """The last outbox record handed to the producer."""

    @property
    def fenced(self) -> bool:
        """Whether this relay commits in broker transactions under the group's generation."""
        return self._fence is not None

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
        if self._fence is not None:
            return self._commit()
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
        """The pipelined relay: forget what the broker confirmed, send what is new; no wait.
        (A fenced relay commits a transaction each time: it cannot acknowledge before.)"""
        if self._fence is not None:
            self._commit()
            return
        try:
            self._reap()
            self._send_pending(self._client(), wait=False)
        except (KafkaError, BrokerUnavailable) as exc:
            self._relay_failed(exc)

    def _commit(self) -> int:
        """The whole outbox and the input positions in one broker transaction; return the
        count committed. Raises ``Fenced`` when the broker says the work is another's."""
        if not self.store.pending(limit=1):
            self.metrics.outbox_pending.labels(self.component).set(0)
            return 0
        fence = self._fence() if self._fence is not None else None
        if fence is None:
            return 0  # no partition held: the group decides first whose work this is
        offsets, group = fence
        try:
            producer = self._client()
            producer.begin_transaction()
            self._send_pending(producer, wait=True)
            timeout_s = self.settings.produce_timeout_s
            kafka.transaction_step(
                producer, lambda tm: tm.send_offsets_to_transaction(offsets, group),
                what="sending the input positions", timeout_s=timeout_s)
            kafka.transaction_step(producer, lambda tm: tm.begin_commit(),
                                   what="committing", timeout_s=timeout_s)
        except _FENCED as exc:
            self.log.warning("outbox.fenced", error=type(exc).__name__,
                             in_flight=len(self._inflight))
            self._relay_failed(exc, log=False)
            raise Fenced(f"{self.component}: {exc}") from exc
        except (KafkaError, BrokerUnavailable) as exc:
            self._relay_failed(exc)  # the next producer's init_transactions aborts this one
            return 0
        acked = self._reap()
        self.metrics.outbox_pending.labels(self.component).set(self.store.pending_count())
        return acked

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

    def _relay_failed(self, exc: Exception, *, log: bool = True) -> None:
        """Start the relay over from the outbox, with a fresh producer."""
        if log:
            self.log.warning("outbox.relay_failed", error=type(exc).__name__,
                             in_flight=len(self._inflight))
        self._inflight.clear()
        self._others_in_flight = 0
        self._sent_seq = 0  # everything not acknowledged is still in the outbox
        self.metrics.outbox_pending.labels(self.component).set(self.store.pending_count())
        self._discard_producer()

    def _client(self) -> KafkaProducer:
        if self._producer is None:
            if self._transactional_id is None:
                self._producer = kafka.producer(self.settings)
            else:
                # A transaction left open by a frozen member holds readers (they read
                # committed) until it times out: a relay's commit takes well under this.
                producer = kafka.producer(self.settings, transactional_id=self._transactional_id,
                                          transaction_timeout_ms=_TRANSACTION_TIMEOUT_MS)
                try:  # fences this instance's previous producer, and aborts what it left open
                    producer.init_transactions()
                except KafkaError:
                    stop(producer, self.log)
                    raise
                self._producer = producer
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


def _transactional_id(store: Store, group: str) -> str:
    """This store's transactional id: its own (two instances never share one, or each would
    fence the other's producer), kept across restarts (the next incarnation's
    ``init_transactions`` aborts what a crash left open at once, rather than after the
    transaction timeout, during which readers who read committed wait)."""
    with store.transaction() as txn:
        tid = txn.get(_META_NS, _TRANSACTIONAL_ID)
        if tid is None:
            tid = f"{group}.{uuid.uuid4().hex[:16]}"
            txn.put(_META_NS, _TRANSACTIONAL_ID, tid, partition=-1)  # no input partition's
    return str(tid)


_META_NS, _TRANSACTIONAL_ID = "hub-relay", "transactional-id"


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
