"""A restore task over one partition of a checkpoint topic: check the tail, then read it all.

What the passport and routing services share (hub.restoring runs the tasks):
the check reads the last record of the topic partition; if it is the last one
this store emitted (its marker), the store is current and the task is done.
Otherwise each restore step hands the decoded records it read, a chunk at a
time, to the service's ``absorb`` in a committed transaction; the last step
calls ``finish``, which writes the positions and the marker, so the state
counts as current only once all of it is in (a restore cut short starts over).

A broker error ends the step: the consumer is closed (the next step opens a
fresh one, with new metadata and connections) and the phase starts over. Only
after ``timeout_s`` of failing steps does the task give up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from hub import kafka
from hub.config import Settings
from hub.errors import BrokerUnavailable
from hub.store import Store, Txn
from schemas.codec import Codec
from schemas.errors import ContractError

__all__ = ["CheckpointRestore", "records_until"]

#: Decoded records handed to ``absorb`` at once.
_CHUNK = 500
#: The least a broker call of a step may wait, even at the end of its slice.
_MIN_CALL_MS = 1000
#: A poll's wait: kafka-python's poll waits its whole timeout for records, so at the
#: end of a partition (where the check always is) a long one is time lost.
_POLL_MS = 50


class CheckpointRestore:
    """One partition's check, then (if need be) its restore, in steps (``RestoreTask``).

    Subclasses say what the marker is (``marker``), how to start over (``begin``),
    what a chunk of records does to the state (``absorb``), and how to end
    (``finish``)."""

    def __init__(self, *, settings: Settings, codec: Codec, store: Store, topic: str,
                 partition: int, log: Any, timeout_s: float) -> None:
        self.settings = settings
        self.codec = codec
        self.store = store
        self.tp = TopicPartition(settings.topic(topic), partition)
        self.log = log
        self.timeout_s = timeout_s
        self._consumer: KafkaConsumer | None = None
        self._restoring = False
        self._tail: Any = None  # the check: the last record read so far
        self._from = 0
        """Where the check's read began: the listed end minus ``_back``."""
        self._back = 2 if settings.transactional else 1
        """How far before the end the check reads: the last record (the one before the
        commit's marker, with transactions), unless markers (which take offsets and are
        never returned) hide it."""
        self._started: float | None = None
        self._failing_since: float | None = None

    # -- the hooks ---------------------------------------------------------------------------

    def marker(self, txn: Txn) -> str | None:
        """The event id of the last record this store emitted to the partition."""
        raise NotImplementedError

    def begin(self, txn: Txn) -> None:
        """Forget the partition's state: the restore starts from nothing."""
        raise NotImplementedError

    def absorb(self, txn: Txn, datums: list[dict[str, Any]]) -> None:
        """Take in records read from the topic, in order."""
        raise NotImplementedError

    def finish(self, txn: Txn, seconds: float) -> None:
        """All of it is in: write the positions and the marker."""
        raise NotImplementedError

    # -- the task ----------------------------------------------------------------------------

    def step(self, deadline: float) -> bool:
        try:
            done = self._restore(deadline) if self._restoring else self._check(deadline)
        except (KafkaError, BrokerUnavailable) as exc:
            self._close()
            self._tail, self._started = None, None  # the phase starts over
            now = time.monotonic()
            self._failing_since = self._failing_since or now
            if now - self._failing_since > self.timeout_s:
                raise BrokerUnavailable(f"restore of {self.tp.topic}/{self.tp.partition} "
                                        f"failed for {self.timeout_s:.0f}s: {exc}") from exc
            self.log.warning("restore.retry", partition=self.tp.partition,
                             phase="restore" if self._restoring else "check",
                             error=type(exc).__name__, detail=str(exc))
            return False
        self._failing_since = None
        if done:
            self._close()
        return done

    def abandon(self) -> None:
        self._close()

    def _open(self, deadline: float) -> KafkaConsumer:
        """The step's consumer, opened at the start of its phase."""
        if self._consumer is None:
            # At the end of a partition a fetch waits for data up to fetch_max_wait_ms:
            # the check reaches it at once, so 100 ms rather than the 500 ms default.
            consumer = kafka.consumer(self.settings, group=None, enable_auto_commit=False,
                                      fetch_max_wait_ms=100,
                                      bootstrap_timeout_ms=self._call_ms(deadline))
            consumer.assign([self.tp])
            self._consumer = consumer
            if self._restoring:
                consumer.seek_to_beginning(self.tp)
            else:
                # The listed end offset is a hint: the embedded broker's can lag behind
                # the records actually there, so read on from just before it.
                listed = consumer.end_offsets([self.tp], timeout_ms=self._call_ms(deadline))
                self._from = max(0, listed[self.tp] - self._back)
                consumer.seek(self.tp, self._from)
        return self._consumer

    def _close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close(autocommit=False)

    def _call_ms(self, deadline: float) -> int:
        return min(max(_ms_left(deadline), _MIN_CALL_MS), self.settings.request_timeout_ms)

    def _check(self, deadline: float) -> bool:
        """Read to the end of the topic partition: True if the store is current; else
        begin the restore."""
        consumer = self._open(deadline)
        for record in records_until(consumer, self.tp, deadline):
            if record is None:
                break
            self._tail = record
        else:
            return False  # not at the end yet: on at the next step
        if self._tail is None and self._from > 0:
            # Only transaction markers after where the read began (a transactional relay
            # ends each commit with one, an aborted one with more): read from further back.
            self._back *= 16
            self._close()
            return False
        with self.store.transaction() as txn:
            mine = self.marker(txn)
        if self._tail_id() == mine:
            # Nothing anywhere (a fresh partition), or the topic ends with this store's
            # own last record: the store is current.
            return True
        consumer.seek_to_beginning(self.tp)
        self._restoring = True
        return self._restore(deadline)

    def _tail_id(self) -> str | None:
        """The event id of the partition's last record (None if it has none)."""
        if self._tail is None:
            return None
        try:
            return str(self.codec.decode(self._tail.value).datum["event_id"])
        except ContractError:
            return None

    def _restore(self, deadline: float) -> bool:
        if self._started is None:
            self._started = time.perf_counter()
            with self.store.transaction() as txn:
                self.begin(txn)
        consumer = self._open(deadline)
        at_end = False
        with self.store.transaction() as txn:
            # Streamed: the records go to ``absorb`` by the few hundred, in order.
            chunk: list[dict[str, Any]] = []
            for record in records_until(consumer, self.tp, deadline):
                if record is None:
                    at_end = True
                    break
                datum = self._decoded(record)
                if datum is not None:
                    chunk.append(datum)
                if len(chunk) >= _CHUNK:
                    self.absorb(txn, chunk)
                    chunk = []
            self.absorb(txn, chunk)
            if at_end:
                self.finish(txn, time.perf_counter() - self._started)
        return at_end

    def _decoded(self, record: Any) -> dict[str, Any] | None:
        try:
            return self.codec.decode(record.value, millis=True).datum
        except ContractError as exc:  # not ours to fix here: the readers letter it
            self.log.warning("restore.undecodable", partition=self.tp.partition,
                             offset=record.offset, error=str(exc))
            return None


def records_until(consumer: KafkaConsumer, tp: TopicPartition, deadline: float) -> Iterator[Any]:
    """The records from the current position, then a None once at the end the fetches
    report; stops without the None at ``deadline``."""
    while time.monotonic() < deadline:
        yield from consumer.poll(timeout_ms=min(_POLL_MS, _ms_left(deadline))).get(tp, [])
        end = consumer.highwater(tp)  # known once a fetch answered
        if end is not None and consumer.position(tp) >= end:
            yield None
            return


def _ms_left(deadline: float) -> int:
    return max(0, int(min(deadline - time.monotonic(), 3600.0) * 1000))
