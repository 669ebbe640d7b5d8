"""The consume → apply → commit loop every service runs on (its relay: hub.relay).

A ``Processor`` is pure with respect to I/O: given the batch of decoded input
records and a transactional view of its state, it returns what to emit. The
loop owns everything else, once, for every service:

1. poll a batch; decode each record (undecodable → dead letter, never a block);
2. in ONE SQLite transaction: apply the batch, record the next input offset of
   every partition seen, and put the records to emit in the outbox;
3. relay: produce the outbox with the idempotent producer, and forget what the
   broker acknowledged. While the inputs are behind, the relay is pipelined (the
   next batch is applied while the broker answers; nothing leaves the outbox
   before its acknowledgement); once caught up, it waits for the whole outbox;
4. mirror the positions to the consumer group (for lag dashboards only: hub.mirror).

A service with a restorer, on a broker that honours transactions, relays fenced
(hub.relay): when the broker refuses its transaction because the group moved its
partitions, or when it starts with an outbox a crash left (which it can no longer
tell fresh from stale), it forgets what it did not publish (outbox, state and
positions of every partition: Kafka Streams wipes a task's state after an unclean
close under exactly-once), holds its inputs, and joins the group anew; its next
partitions are restored from the topics. Evicted by the group (``lost``), it forgets
the same way if its outbox holds anything, and never relays.

On (re)assignment the loop seeks every partition to the position its store
committed; a partition it has no position for is read from the beginning, since
the store, not the group, is the truth about what was applied.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry

from hub import deadletter, kafka, logs
from hub.align import InputAligner
from hub.config import Settings
from hub.contract import Deferring, Emit, Inbound, Outbound, Processor, Rejected
from hub.errors import Fenced
from hub.metrics import ProcessorMetrics
from hub.mirror import GroupMirror
from hub.relay import OutboxRelay
from hub.restoring import Restorations, Restorer
from hub.store import Headers, Store, Txn
from schemas import catalog
from schemas.codec import Codec
from schemas.errors import ContractError

#: Encoded records written to the outbox per statement.
_OUTBOX_CHUNK = 2000
#: With aligned inputs, records polled between two looks at the partitions' times.
_ALIGN_STEP = 1000
#: How long a poll that failed (no broker answers) waits before the loop goes on.
_POLL_FAILED_PAUSE_MS = 500

__all__ = ["Deferring", "Emit", "Inbound", "Outbound", "Processor", "ProcessorLoop",
           "Rejected", "store_path"]


@dataclass
class _Positions:
    """Next offsets seen in the current batch, per physical (topic, partition)."""

    next: dict[TopicPartition, int] = field(default_factory=dict)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python is untyped
    def __init__(self, loop: ProcessorLoop) -> None:
        self._loop = loop

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._loop.log.info("partitions.revoked", partitions=_names(revoked))
        if revoked:
            self._loop.abandon_restores(revoked)
            # Hand over clean: what was held back or emitted for these partitions
            # reaches the broker before their next owner reads it (best effort: the
            # broker may be down, and then the next owner replays instead).
            self._loop.flush_deferred(frozenset(tp.partition for tp in revoked))
            self._loop.relay()

    def on_partitions_lost(self, lost: Any) -> None:
        """Evicted (its session expired: a long pause, a network split): the partitions
        are another member's already, so what this instance holds unpublished must not
        go out now. Never a relay here: a transactional offset commit under the lost
        membership (generation -1) is one the broker does not check."""
        self._loop.log.warning("partitions.lost", partitions=_names(lost))
        if lost:
            self._loop.lost(lost)

    def on_partitions_assigned(self, assigned: Any) -> None:
        restoring = self._loop.begin_restores(assigned)
        self._loop.seek_to_stored([tp for tp in assigned if tp.partition not in restoring])


def _names(tps: Iterable[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}/{tp.partition}" for tp in tps)


class ProcessorLoop:
    """Runs one processor against Kafka; ``start``, then ``run`` until ``stop``."""

    def __init__(self, processor: Processor, *, settings: Settings, store: Store,
                 registry: CollectorRegistry, codec: Codec | None = None,
                 before_poll: Callable[[], None] | None = None,
                 restorer: Restorer | None = None, align_inputs: bool = False,
                 millis_timestamps: bool = False, idle_poll_ms: int = 500) -> None:
        """``align_inputs``: read co-partitioned inputs in step (hub.align);
        ``millis_timestamps``: hand the processor ``timestamp-millis`` fields as epoch
        milliseconds, not datetimes (``Codec.decode``); ``idle_poll_ms``: the longest a
        poll waits for records (``run``), so the longest between two ``flush``es."""
        self._idle_poll_ms = idle_poll_ms
        self.processor = processor
        # Checked once: a runtime-checkable protocol's isinstance walks its members.
        self._deferring = processor if isinstance(processor, Deferring) else None
        self._millis = millis_timestamps
        self._aligner = InputAligner() if align_inputs else None
        self._before_poll = before_poll
        self.settings = settings
        self.store = store
        self.codec = codec or Codec.default()
        self.metrics = ProcessorMetrics.create(registry)
        name = processor.name
        self._restorations = Restorations(
            restorer, store, on_restored=self.metrics.restore_seconds.labels(name).observe,
        ) if restorer is not None else None
        restorations = self._restorations
        self.metrics.restoring.labels(name).set_function(
            lambda: float(restorations.count if restorations is not None else 0))
        self.metrics.store_bytes.labels(name).set_function(lambda: float(store.size_bytes()))
        self._latency = {base: (self.metrics.processing_latency.labels(name, base),
                                self.metrics.event_latency.labels(name, base))
                         for base in processor.inputs}
        self.log = logs.get().bind(component=name)
        self.started = False
        """Joined its group and flushed what a previous run left (``start`` returned)."""
        self.last_turn = time.monotonic()
        """When ``run_once`` last began (the liveness heartbeat: hub.probes)."""
        self._base = {settings.topic(name): name for name in processor.inputs}
        self._stopping = threading.Event()
        self._consumer: KafkaConsumer | None = None
        self._rejoin = False
        """Fenced: leave the group and join anew before the next poll (``_forget``)."""
        self._mirror = GroupMirror(component=name, base=self._base, metrics=self.metrics,
                                   log=self.log)
        self.fenced = 0
        """How many times the relay was fenced and this instance forgot what it held."""
        self.evicted = 0
        """How many times the group put this member out (``lost``)."""
        fenced = restorer is not None and settings.transactional
        self.outbox = OutboxRelay(
            store, settings=settings, metrics=self.metrics, log=self.log,
            component=processor.name,
            checkpoints=frozenset(settings.topic(name)
                                  for name in (restorer.checkpoints if restorer else ())),
            fence=self._fence if fenced else None)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect, join the group, and flush whatever a previous run left in the outbox."""
        self.outbox.connect()
        group = self.settings.group(self.processor.name)
        self._consumer = kafka.consumer(self.settings, group=group)
        kafka.await_partitions(self._consumer, self._base)
        if self.outbox.fenced and self.store.pending(limit=1):
            self._forget("an unclean stop left an outbox")
        self._consumer.subscribe(list(self._base), listener=_Rebalance(self))
        self.relay()
        self.started = True
        self.log.info("processor.started", inputs=list(self._base), store=str(self.store.path))

    def run(self) -> None:
        """Process batches until ``stop`` is called."""
        while not self._stopping.is_set():
            self.run_once(self._idle_poll_ms)

    def stop(self) -> None:
        """Ask ``run`` to return after the batch in hand."""
        self._stopping.set()

    def close(self) -> None:
        """Emit what was held back, relay what is pending, then close the clients (call
        after ``run`` returned)."""
        try:
            self.flush_deferred()
            self.relay()
        finally:
            if self._restorations is not None:  # their own consumers: closed, not left open
                self._restorations.abandon(self._restorations.partitions)
            if self._consumer is not None:
                self._consumer.close(autocommit=False)
            self.outbox.close()
            self.log.info("processor.stopped")

    def restored(self) -> bool:
        """No restore under way: every partition held here has its state current."""
        return self._restorations is None or self._restorations.count == 0

    @property
    def assignment(self) -> set[TopicPartition]:
        """The input partitions this member holds now (empty while it joins)."""
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    # -- the loop ----------------------------------------------------------------------------

    def run_once(self, timeout_ms: int = 500) -> int:
        """Poll, apply and commit one batch, then relay; return how many records came in.

        While the inputs are behind, the relay is pipelined: what the broker has not
        confirmed yet stays in flight (and in the outbox) while the next batch is
        applied. Once caught up, the relay waits until the outbox is empty.
        """
        assert self._consumer is not None, "start() first"
        self.last_turn = time.monotonic()
        if self._rejoin:
            self._rejoin = False
            self._consumer.unsubscribe()
            self._consumer.subscribe(list(self._base), listener=_Rebalance(self))
        if self._before_poll is not None:
            self._before_poll()
        if not self._consumer.assignment():
            # While joining, poll briefly and often, so the assignment is taken up
            # as soon as it lands (3.1 s joins on the embedded broker, not 3.5 s).
            # A round that finishes between polls is kept by hub.kafka's fix.
            timeout_ms = min(timeout_ms, 100)
        if self._restorations is not None and self._restorations.partitions:
            self._step_restores()
            timeout_ms = 0  # back to the restore as soon as the other partitions are served
        polled = self._poll(timeout_ms)
        count = sum(len(records) for records in polled.values())
        behind = 0
        if count:
            started = time.perf_counter()
            self._commit_batch(polled)
            self.metrics.batch_seconds.labels(self.processor.name).observe(
                time.perf_counter() - started)
            behind = self._mirror.mirror(self._consumer, polled)
        if behind:
            self._relaying(self.outbox.pump)
        else:
            self.flush_deferred()
            self.relay()
        return count

    def _poll(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        """A batch of records; with aligned inputs, gathered a step at a time.

        One poll drains a partition's fetch before the next (a fetch holds up to
        4 MB: a whole training partition of a backlog), so the aligner looks again
        every ``_ALIGN_STEP`` records, and pauses what ran ahead before it fills
        the batch.
        """
        assert self._consumer is not None
        limit = self.settings.batch_max_records
        if self._aligner is None:
            return self._poll_step(timeout_ms, limit)
        polled: dict[TopicPartition, list[Any]] = {}
        while limit > 0:
            step = self._poll_step(timeout_ms, min(limit, _ALIGN_STEP))
            self._aligner.observe(step)
            self._aligner.apply(self._consumer, held=self._restoring_inputs())
            for tp, records in step.items():
                polled.setdefault(tp, []).extend(records)
            got = sum(len(records) for records in step.values())
            if not got:
                break
            limit -= got
            timeout_ms = 0  # the batch is under way: take what is in hand
        return polled

    def _poll_step(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        """One consumer poll; nothing, after a short pause, when the brokers do not answer.

        With every broker down kafka-python's poll can raise (KafkaConnectionError,
        seen about one run in six of ``tests/faults``) where it mostly just returns
        nothing: the loop waits for the brokers either way, as a reader does."""
        assert self._consumer is not None
        try:
            polled: dict[TopicPartition, list[Any]] = self._consumer.poll(
                timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            self.log.warning("consumer.poll_failed", error=type(exc).__name__)
            time.sleep(min(timeout_ms, _POLL_FAILED_PAUSE_MS) / 1000)
            return {}
        return polled

    def _commit_batch(self, polled: Mapping[TopicPartition, Sequence[Any]]) -> None:
        # A batch allocates ~10 objects per record, nearly all freed by reference
        # counting; the cyclic collector's passes over them (and over the batch in
        # hand) cost ~20% of the batch. It runs between batches instead.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._apply_and_commit(polled)
        finally:
            if was_enabled:
                gc.enable()

    def _apply_and_commit(self, polled: Mapping[TopicPartition, Sequence[Any]]) -> None:
        name, decode, millis = self.processor.name, self.codec.decode, self._millis
        batch: list[Inbound] = []
        dead: list[Rejected] = []
        positions = _Positions()
        oldest: list[tuple[str, int, Inbound | None]] = []
        for tp, records in polled.items():
            base = self._base[tp.topic]
            self.metrics.records_in.labels(name, base).inc(len(records))
            positions.next[tp] = records[-1].offset + 1
            first = len(batch)
            for rec in records:
                try:
                    decoded = decode(rec.value, millis=millis)
                except ContractError as exc:
                    dead.append(Rejected(Inbound(base, tp.partition, rec.offset, rec.key, "",
                                                 {"__raw__": rec.value or b""}, rec.timestamp),
                                         exc, "decode"))
                    continue
                batch.append(Inbound(base, tp.partition, rec.offset, rec.key, decoded.record,
                                     decoded.datum, rec.timestamp))
            oldest.append((base, records[0].timestamp,
                           batch[first] if len(batch) > first else None))
        with self.store.transaction() as txn:
            emits = list(self.processor.apply(txn, batch)) if batch else []
            if self._deferring is not None:
                emits.extend(self._deferring.flush(txn, self._owned(), caught_up=False))
            for rejected in dead:
                self._dead_letter(txn, rejected)
            self._write(txn, emits)
            for tp, next_offset in positions.next.items():
                txn.set_position(tp.topic, tp.partition, next_offset)
        self._observe_latency(oldest)

    def _observe_latency(self, oldest: list[tuple[str, int, Inbound | None]]) -> None:
        """The applied batch's latencies, from the oldest record of each partition: the
        worst of the batch, at the cost of one observation per partition, not per record."""
        now_ms = time.time() * 1000
        for base, appended_ms, first in oldest:
            processing, event = self._latency[base]
            if appended_ms is not None and appended_ms >= 0:
                processing.observe(max(0.0, now_ms - appended_ms) / 1000)
            occurred = first.datum.get("occurred_at") if first is not None else None
            occurred_ms = (occurred.timestamp() * 1000 if isinstance(occurred, datetime)
                           else float(occurred) if isinstance(occurred, int) else None)
            if occurred_ms is not None:
                event.observe(max(0.0, now_ms - occurred_ms) / 1000)

    def _write(self, txn: Txn, emits: list[Emit]) -> None:
        """Encode the records to emit into the outbox, in order (``emits`` is consumed)."""
        topic, encode = self.settings.topic, self.codec.encode
        outbound: list[tuple[str, bytes | None, bytes, Headers]] = []
        # Taken from the end of the reversed list, each datum is let go once
        # encoded, and rows go to the outbox in chunks: a large batch never
        # holds all its datums and all their encodings at once.
        emits.reverse()
        while emits:
            emit = emits.pop()
            if isinstance(emit, Rejected) or len(outbound) >= _OUTBOX_CHUNK:
                txn.emit_many(outbound)  # the outbox keeps the processor's order
                outbound.clear()
            if isinstance(emit, Rejected):
                self._dead_letter(txn, emit)
            else:
                outbound.append((topic(emit.topic), emit.key.encode(),
                                 encode(emit.record, emit.datum), ()))
        txn.emit_many(outbound)

    def flush_deferred(self, partitions: frozenset[int] | None = None) -> None:
        """Caught up, idle, or handing partitions over: let a ``Deferring`` processor emit
        what it held back, for ``partitions`` (default: those this instance owns and is
        not restoring)."""
        if self._deferring is None:
            return
        partitions = self._owned() if partitions is None else partitions
        if partitions:
            with self.store.transaction() as txn:
                self._write(txn, list(self._deferring.flush(txn, partitions, caught_up=True)))

    def _owned(self) -> frozenset[int]:
        """The input partition numbers assigned here and not being restored."""
        if self._consumer is None:
            return frozenset()
        restoring = self._restorations.partitions if self._restorations is not None else set()
        return frozenset(tp.partition for tp in self._consumer.assignment()
                         if tp.partition not in restoring)

    def _dead_letter(self, txn: Txn, rejected: Rejected) -> None:
        inbound = rejected.inbound
        cause = deadletter.Cause(self.processor.name, rejected.stage, rejected.error,
                                 self.settings.topic(inbound.topic), inbound.partition,
                                 inbound.offset)
        raw = inbound.datum.get("__raw__") if rejected.stage == "decode" else None
        value = raw if isinstance(raw, bytes) else self.codec.encode(inbound.record, inbound.datum)
        txn.emit(self.settings.topic(catalog.DLQ), inbound.key, value, cause.headers())
        self.metrics.dead_letters.labels(self.processor.name, inbound.topic, rejected.stage,
                                         type(rejected.error).__name__).inc()
        self.log.warning("record.dead_lettered", topic=inbound.topic, partition=inbound.partition,
                         offset=inbound.offset, stage=rejected.stage,
                         error=type(rejected.error).__name__)

    def relay(self) -> int:
        """Produce the whole outbox and wait for the broker (``OutboxRelay.drain``)."""
        return self._relaying(self.outbox.drain) or 0

    def _relaying(self, relay: Callable[[], int | None]) -> int | None:
        try:
            return relay()
        except Fenced as exc:
            self._forget(str(exc))
            return None

    # -- fencing (hub.relay) -----------------------------------------------------------------

    def _fence(self) -> tuple[dict[TopicPartition, OffsetAndMetadata], Any] | None:
        """The relay's fence: the positions held and their group metadata (hub.mirror)."""
        if self._consumer is None:
            return None
        return self._mirror.fence(self._consumer, self.store.positions())

    def lost(self, lost: Iterable[TopicPartition]) -> None:
        """The group evicted this instance from ``lost``: a processor whose state restores
        from the topics forgets what it did not publish (the next owner applies it
        again); one without a restorer hands over as on a revocation.

        With an empty outbox there is nothing unpublished (state and outbox commit in
        one SQLite transaction), so the store is kept: the check on the next assignment
        restores a partition only if another instance wrote to it since."""
        self.evicted += 1
        self.abandon_restores(lost)
        if self._restorations is None:
            self.flush_deferred(frozenset(tp.partition for tp in lost))
            self.relay()
        elif self.store.pending(limit=1):
            self._forget("the group evicted this member", rejoin=False)

    def _forget(self, why: str, *, rejoin: bool = True) -> None:
        """Drop what this instance applied and did not publish, hold its inputs, and
        (``rejoin``) have it join the group anew: its next partitions restore from the
        topics."""
        assert self._consumer is not None
        partitions = {partition for _topic, partition in self.store.positions()}
        for topic in self._base:
            partitions.update(self._consumer.partitions_for_topic(topic) or ())
        if self._restorations is not None:
            self._restorations.abandon(self._restorations.partitions)
        self.store.forget_unpublished(sorted(partitions))
        held = self._consumer.assignment()
        if held and rejoin:
            self._consumer.pause(*held)
        self._rejoin = self._rejoin or rejoin
        self.fenced += 1
        self.log.warning("partitions.fenced", why=why, forgotten=sorted(partitions))

    # -- positions ---------------------------------------------------------------------------

    def begin_restores(self, assigned: Iterable[TopicPartition]) -> set[int]:
        """Begin the restore tasks of the assigned partitions whose state may not be
        current; their inputs stay paused until it is (``_step_restores``). Returns
        their numbers."""
        assigned = list(assigned)
        if self._restorations is None or not assigned:
            return set()
        self.relay()  # what this instance still owes the topics goes first
        restoring = self._restorations.begin(tp.partition for tp in assigned)
        held = [tp for tp in assigned if tp.partition in restoring]
        if held:
            assert self._consumer is not None
            self._consumer.pause(*held)
            self.log.info("partitions.checking", partitions=sorted(restoring))
        return restoring

    def abandon_restores(self, revoked: Iterable[TopicPartition]) -> None:
        if self._restorations is not None:
            self._restorations.abandon({tp.partition for tp in revoked})

    def _step_restores(self) -> None:
        """One slice of restore work; a partition made current is sought and resumed."""
        assert self._consumer is not None
        assert self._restorations is not None
        for partition in self._restorations.step():
            ready = [tp for tp in self._consumer.assignment() if tp.partition == partition]
            self.seek_to_stored(ready)
            self._consumer.resume(*ready)

    def _restoring_inputs(self) -> set[TopicPartition]:
        """The assigned input partitions held paused while their state is restored."""
        if self._restorations is None or self._consumer is None:
            return set()
        restoring = self._restorations.partitions
        return {tp for tp in self._consumer.assignment() if tp.partition in restoring}

    def seek_to_stored(self, assigned: Iterable[TopicPartition]) -> None:
        """Resume every assigned partition where the store says, or from its beginning."""
        assert self._consumer is not None
        if self._aligner is not None:
            self._aligner.reset()
        stored = self.store.positions()
        fresh = []
        for tp in assigned:
            position = stored.get((tp.topic, tp.partition))
            if position is None:
                fresh.append(tp)
            else:
                self._consumer.seek(tp, position)
        if fresh:
            self._consumer.seek_to_beginning(*fresh)
        self.log.info("partitions.assigned", partitions=_names(assigned), fresh=_names(fresh))


def store_path(settings: Settings, component: str, instance: str = "0") -> Path:
    """Where a component instance keeps its SQLite store."""
    return settings.data_dir / f"{component}-{instance}.sqlite"
