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

A service whose records are costly to turn into state (the passport: decoding a
~650-byte snapshot and building its row is ~3/4 of a restore's time) gives a
``converter``: a module-level function from a chunk of raw (offset, value) to what
its ``absorb`` takes. When a partition has at least ``PARALLEL_MIN_RECORDS`` left
to read, the chunks go to a helper process while this one reads the next ones
and writes the converted rows, in order: on two cores, decoding and the reading
and writing overlap. One helper serves the process's restores and stops when
they are done; should it fail, the chunk is converted here, and so is the rest
of that restore.
"""

from __future__ import annotations

import gc
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from hub import kafka
from hub.config import Settings
from hub.errors import BrokerUnavailable
from hub.store import Store, Txn
from schemas.codec import Codec
from schemas.errors import ContractError

__all__ = ["CheckpointRestore", "Converted", "Converter", "decode_chunk", "records_until",
           "stop_helper"]

#: The least a broker call of a step may wait, even at the end of its slice.
_MIN_CALL_MS = 1000
#: A poll's wait: kafka-python's poll waits its whole timeout for records, so at the
#: end of a partition (where the check always is) a long one is time lost.
_POLL_MS = 50
#: Records left to read from which a partition's chunks are converted in a helper
#: process: below it, starting one (~0.5 s) costs more than it saves.
PARALLEL_MIN_RECORDS = 20_000
#: Records per chunk converted and handed to ``absorb``, and chunks in the helper at once.
_RAW_CHUNK = 2_000
_IN_FLIGHT = 2


@dataclass(slots=True)
class Converted:
    """What a converter made of a chunk: ``items`` for ``absorb``, and the records it
    could not decode, as (offset, error) for the log."""

    items: Any
    errors: list[tuple[int, str]] = field(default_factory=list)


Converter = Callable[[list[tuple[int, bytes]]], Converted]

#: How long the helper process outlives the last restore that used it: a takeover
#: restores its partitions one after the other, and a start costs ~0.5 s each.
HELPER_IDLE_S = 10.0


def _helper_init() -> None:
    """The helper's collector, tuned as ``hub.service.tuned_gc`` tunes the service's: it
    builds thousands of datums per chunk, and the default thresholds doubled its time."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


class _Helper:
    """The one helper process of this process's restores: started by the first that
    needs it, stopped ``HELPER_IDLE_S`` after the last let it go."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._users = 0
        self._timer: threading.Timer | None = None

    def take(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._pool is None:
                # spawn: a fork would copy the Kafka client's threads and locks mid-use.
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_helper_init)
            self._users += 1
            return self._pool

    def release(self, *, broken: bool = False) -> None:
        with self._lock:
            self._users -= 1
            if broken:
                self._stop()
            elif self._users == 0 and self._pool is not None:
                self._timer = threading.Timer(HELPER_IDLE_S, self._idle)
                self._timer.daemon = True
                self._timer.start()

    def _idle(self) -> None:
        with self._lock:
            if self._users == 0:
                self._stop()

    def stop(self) -> None:
        """Stop the helper now and wait for it to exit (tools and benchmarks)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _stop(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False, cancel_futures=True)


_HELPER = _Helper()
stop_helper = _HELPER.stop


def decode_chunk(codec: Codec, chunk: list[tuple[int, bytes]]) -> tuple[
        list[dict[str, Any]], list[tuple[int, str]]]:
    """The datums of a chunk of (offset, value), timestamps as epoch ms, and the records
    that do not decode (not ours to fix here: the readers letter them)."""
    datums: list[dict[str, Any]] = []
    errors: list[tuple[int, str]] = []
    for offset, value in chunk:
        try:
            datums.append(codec.decode(value, millis=True).datum)
        except ContractError as exc:
            errors.append((offset, str(exc)))
    return datums, errors


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
        self._helper: ProcessPoolExecutor | None = None
        self._helper_failed = False
        self._in_flight: deque[tuple[Future[Converted], list[tuple[int, bytes]]]] = deque()

    # -- the hooks ---------------------------------------------------------------------------

    def marker(self, txn: Txn) -> str | None:
        """The event id of the last record this store emitted to the partition."""
        raise NotImplementedError

    def begin(self, txn: Txn) -> None:
        """Forget the partition's state: the restore starts from nothing."""
        raise NotImplementedError

    def absorb(self, txn: Txn, items: Any) -> None:
        """Take in records read from the topic, in order: their datums, or what the
        ``converter`` made of them."""
        raise NotImplementedError

    def finish(self, txn: Txn, seconds: float) -> None:
        """All of it is in: write the positions and the marker."""
        raise NotImplementedError

    def converter(self) -> Converter | None:
        """The module-level function that turns a chunk of raw records into what
        ``absorb`` takes (it may run in a helper process); None: ``absorb`` gets the
        decoded datums."""
        return None

    # -- the task ----------------------------------------------------------------------------

    def step(self, deadline: float) -> bool:
        try:
            done = self._restore(deadline) if self._restoring else self._check(deadline)
        except (KafkaError, BrokerUnavailable) as exc:
            self._close()
            self._in_flight.clear()  # chunks of the read that failed: it starts over
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
            self._stop_helper()
        return done

    def abandon(self) -> None:
        self._close()
        self._stop_helper()

    def _stop_helper(self, *, broken: bool = False) -> None:
        self._in_flight.clear()
        if self._helper is not None:
            self._helper = None
            _HELPER.release(broken=broken)

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
        convert = self.converter() or self._decode_here
        at_end = False
        with self.store.transaction() as txn:
            # Streamed: the records go to ``absorb`` by the few thousand, in order.
            chunk: list[tuple[int, bytes]] = []
            for record in records_until(consumer, self.tp, deadline):
                if record is None:
                    at_end = True
                    break
                chunk.append((record.offset, record.value))
                if len(chunk) >= _RAW_CHUNK:
                    self._convert(txn, convert, chunk, consumer)
                    chunk = []
            self._convert(txn, convert, chunk, consumer)
            while self._in_flight:  # everything read in this step is written in it
                self._absorb_next(txn, convert)
            if at_end:
                self.finish(txn, time.perf_counter() - self._started)
        return at_end

    def _decode_here(self, chunk: list[tuple[int, bytes]]) -> Converted:
        return Converted(*decode_chunk(self.codec, chunk))

    def _convert(self, txn: Txn, convert: Converter, chunk: list[tuple[int, bytes]],
                 consumer: KafkaConsumer) -> None:
        """Convert a chunk here, or hand it to the helper (a large partition) and absorb
        what it finished beyond the chunks allowed in flight."""
        if not chunk:
            return
        helper = self._helper_for(convert, consumer)
        if helper is None:
            self._absorb(txn, convert(chunk))
            return
        self._in_flight.append((helper.submit(convert, chunk), chunk))
        while len(self._in_flight) > _IN_FLIGHT:
            self._absorb_next(txn, convert)

    def _helper_for(self, convert: Converter,
                    consumer: KafkaConsumer) -> ProcessPoolExecutor | None:
        if self._helper is not None or self._helper_failed or convert == self._decode_here:
            return self._helper
        end = consumer.highwater(self.tp)
        if end is None or end - consumer.position(self.tp) < PARALLEL_MIN_RECORDS:
            return None
        self._helper = _HELPER.take()
        return self._helper

    def _absorb_next(self, txn: Txn, convert: Converter) -> None:
        future, chunk = self._in_flight.popleft()
        try:
            converted = future.result()
        except Exception as exc:  # the helper died or failed: on without it
            self.log.warning("restore.helper_failed", partition=self.tp.partition,
                             error=type(exc).__name__, detail=str(exc))
            self._helper_failed = True
            pending = [chunk, *(c for _, c in self._in_flight)]
            self._stop_helper(broken=True)
            for each in pending:
                self._absorb(txn, convert(each))
            return
        self._absorb(txn, converted)

    def _absorb(self, txn: Txn, converted: Converted) -> None:
        for offset, error in converted.errors:
            self.log.warning("restore.undecodable", partition=self.tp.partition,
                             offset=offset, error=error)
        self.absorb(txn, converted.items)


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
