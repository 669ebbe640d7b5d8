"""Accepting partner events: scope, lead ownership, idempotency, publish, remember.

``Ingest.accept`` takes the items of a request (validated events, or the
problem of an invalid one) and gives one ``Outcome`` per item, in order. The
valid events are published together (send all, flush once, check every
ack), and an outcome says 202 only for an event the broker acknowledged, or
one it had acknowledged before (an idempotent retry, not published again).
``accept`` and ``accept_batch`` block (broker, SQLite): the HTTP layer calls
them from a worker thread. ``accept_one`` is the single event's way, from the
event loop, and ``publish`` the way of a record that is no partner event (the
webhook commands): no idempotency, the same acknowledgement and 503.

An accepted outcome carries the write's consistency token (where the broker
put the record: ``consistency.token``). A retry of an event accepted before
answers the token of the first write: the idempotency store keeps its
partition and offset (an acceptance it remembers from before it kept them
answers a null token).

Every item is counted once decided (``observe.IngestMetrics``, channel ``api``):
``accepted`` when published now, ``duplicate`` when accepted before (a retry,
or the same event twice in one request), ``rejected`` when refused (invalid,
forbidden, a conflicting body, an unknown lead); an item the broker did not
acknowledge (503) is not: it was not decided, and the client retries it. The
partner label is the caller's kind (``observe.partner_kind``), computed once
per request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry

from connectors.api import bodies, consistency, problems, scopes
from connectors.api.auth import Caller, departement_of
from connectors.api.idempotency import Accepted, AcceptedStore
from connectors.api.ingested import (
    IngestMetrics,
    IngestOutcome,
    claimed_type,
    counted,
    from_json_or_none,
    partner_kind,
    type_label,
)
from connectors.api.problems import ProblemError
from connectors.api.readside import ReadSide
from connectors.publish import Ack, Record, Sending, ack_of, acks
from hub import logs
from hub.errors import BrokerUnavailable, StoreError
from schemas.models import EventModel


class EventWriter(Protocol):
    """What the ingest needs of ``connectors.publish.Publisher``."""

    def record(self, event: EventModel) -> Record: ...

    def datum_record(self, topic: str, key: str, record: str,
                     datum: Mapping[str, Any]) -> Record: ...

    def send_records(self, records: Sequence[Record]) -> Sending: ...

    def send_now(self, record: Record) -> Any | None: ...

    def outcome(self, future: Any) -> BrokerUnavailable | None: ...

    def timed_out(self, seconds: float) -> BrokerUnavailable: ...

    def publish_records(self, records: Sequence[Record], *,
                        flush: bool = True) -> list[BrokerUnavailable | None]: ...

    def acknowledged(self, sending: Sending, *,
                     flush: bool = True) -> list[BrokerUnavailable | None]: ...

    def ready(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one item: 202 with its event id, topic and token, or a problem."""

    status: int
    event_id: str | None = None
    topic: str | None = None
    problem: dict[str, Any] | None = None
    token: str | None = None
    """The consistency token of the write (None: its place is not known)."""
    duplicate: bool = False
    """Accepted before (a retry), or the same event earlier in the request: not published
    again."""

    @property
    def counted_as(self) -> IngestOutcome | None:
        """What the ingest metric counts it as; None for a 503 (nothing was decided)."""
        return counted(self.status, self.duplicate)

    def as_item(self, index: int) -> dict[str, Any]:
        """The item of a batch answer."""
        if self.status == 202:
            return {"index": index, "status": 202, "event_id": self.event_id,
                    "topic": self.topic, "consistency_token": self.token}
        return {"index": index, "status": self.status, "problem": self.problem}

    def accepted_body(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "topic": self.topic, "status": "accepted",
                "consistency_token": self.token}


def _accepted(event_id: str, topic: str, token: str | None, *,
              duplicate: bool = False) -> Outcome:
    return Outcome(202, event_id, topic, token=token, duplicate=duplicate)


def _failed(document: dict[str, Any]) -> Outcome:
    return Outcome(int(document["status"]), problem=document)


@dataclass(slots=True)
class _Pending:
    """A valid, permitted event to publish, unless accepted before."""

    index: int
    event_id: str
    record: Record
    sha256: str


@dataclass(slots=True)
class _Plan:
    """A request's items on their way: decided outcomes, events to publish, repeats."""

    outcomes: list[Outcome | None]
    pending: list[_Pending] = field(default_factory=list)
    repeats: list[tuple[int, _Pending]] = field(default_factory=list)


class Ingest:
    """The accept path shared by the single-event and the batch endpoints.

    Batches are CPU-bound (validation, Avro encoding, the client's per-record
    work) and Python runs one thread at a time: concurrent batches take turns
    for those steps instead of thrashing, and one batch's wait for its
    acknowledgements overlaps the next one's work.
    """

    def __init__(self, *, publisher: EventWriter, readside: ReadSide, store: AcceptedStore,
                 ack_timeout_s: float, topic_prefix: str = "",
                 metrics: IngestMetrics | None = None) -> None:
        self.publisher = publisher
        self.metrics = metrics or IngestMetrics.create(CollectorRegistry(), "api")
        self.readside = readside
        self.store = store
        self._ack_timeout_s = ack_timeout_s
        self._prefix = topic_prefix  # tokens name base topics
        # Another request publishing the same id is done within its own ack timeout.
        self._claim_timeout_s = ack_timeout_s + 1
        self._turn = threading.Lock()
        self.log = logs.get().bind(component="ingest")
        self._departement_of = departement_of(readside.passport, lambda: readside.caught_up)
        self._holder_of = scopes.holder_of(readside.lead_holder, lambda: readside.caught_up)

    def accept(self, caller: Caller, items: Sequence[EventModel | dict[str, Any]], *,
               bulk: bool) -> list[Outcome]:
        """One outcome per item, in order; ``bulk`` flushes the producer once all are sent."""
        outcomes = self._accept(caller, items, bulk=bulk)
        self._count(caller, items, outcomes)
        return outcomes

    def _accept(self, caller: Caller, items: Sequence[EventModel | dict[str, Any]], *,
                bulk: bool) -> list[Outcome]:
        return self._complete(self._plan(caller, items), bulk=bulk, turn=nullcontext())

    def accept_batch(self, caller: Caller, body: bytes) -> list[Outcome]:
        """The outcomes of a batch body's items (a ``ProblemError`` if it is no batch: not
        counted, it holds no events to count)."""
        with self._turn:
            items = bodies.batch(body)
            plan = self._plan(caller, items)
        outcomes = self._complete(plan, bulk=True, turn=self._turn)
        self._count(caller, items, outcomes, body)
        return outcomes

    def _count(self, caller: Caller, items: Sequence[EventModel | dict[str, Any]],
               outcomes: Sequence[Outcome], body: bytes | None = None) -> None:
        self.metrics.count_items(partner_kind(caller.scopes), items, outcomes, body)

    def _plan(self, caller: Caller, items: Sequence[EventModel | dict[str, Any]]) -> _Plan:
        plan = _Plan([None] * len(items))
        first: dict[str, _Pending] = {}  # event id -> its first occurrence in this request
        for index, item in enumerate(items):
            if isinstance(item, dict):
                plan.outcomes[index] = _failed(item)
                continue
            refused = self._refusal(caller, item)
            if refused is not None:
                plan.outcomes[index] = _failed(refused)
                continue
            record = self.publisher.record(item)
            one = _Pending(index, str(item.event_id), record,
                           hashlib.sha256(record.value).hexdigest())
            earlier = first.get(one.event_id)
            if earlier is None:
                first[one.event_id] = one
                plan.pending.append(one)
            elif earlier.sha256 == one.sha256:
                plan.repeats.append((index, earlier))  # the same event twice: a duplicate
            else:
                plan.outcomes[index] = _failed(_conflict(one.event_id))
        return plan

    def _complete(self, plan: _Plan, *, bulk: bool,
                  turn: AbstractContextManager[Any]) -> list[Outcome]:
        outcomes = plan.outcomes
        if plan.pending:
            published = self._publish_new(plan.pending, bulk=bulk, turn=turn)
            for one, outcome in zip(plan.pending, published, strict=True):
                outcomes[one.index] = outcome
        for index, earlier in plan.repeats:
            first = outcomes[earlier.index]
            outcomes[index] = first if first is None or first.status != 202 \
                else dataclasses.replace(first, duplicate=True)
        done = [outcome for outcome in outcomes if outcome is not None]
        assert len(done) == len(outcomes)
        return done

    def _refusal(self, caller: Caller, event: EventModel) -> dict[str, Any] | None:
        """Why this caller may not send this event (403, 404, 503), or None: the checks of
        connectors/api/scopes.py, which the file drop asks too."""
        why = scopes.refusal(caller, event, holder_of=self._holder_of,
                             departement_of=self._departement_of)
        return None if why is None else self._problem(why, caller.key_id)

    def holder_of(self, lead_id: str) -> tuple[str | None, dict[str, Any] | None]:
        """Who holds a lead now according to the read model, or the problem why it is not
        known (404; 503 while the read model is away or still catching up)."""
        holder, unknown = self._holder_of(lead_id)
        return holder, None if unknown is None else self._problem(unknown)

    def _problem(self, refusal: scopes.Refusal, key_id: str | None = None) -> dict[str, Any]:
        """A refusal as the API answers it, logged where it is worth a line."""
        if refusal.status == 403:
            self.log.info("ingest.forbidden", key_id=key_id, **refusal.log)
            return problems.forbidden(refusal.detail)
        if refusal.status == 404:
            return problems.not_found(refusal.detail)
        if refusal.log:  # the read model away, not merely catching up
            self.log.warning("ingest.readmodel_unavailable", **refusal.log)
        return problems.unavailable_body(refusal.detail)

    def _publish_new(self, pending: list[_Pending], *, bulk: bool,
                     turn: AbstractContextManager[Any]) -> list[Outcome]:
        """Outcomes of first occurrences: earlier acceptances, conflicts, then the new ones."""
        claimed = self.store.claim([one.event_id for one in pending], self._claim_timeout_s)
        try:
            outcomes, fresh = self._decide(pending, claimed)
            if fresh:
                with turn:
                    sending = self.publisher.send_records([one.record for one in fresh])
                failures = self.publisher.acknowledged(sending, flush=bulk)
                outcomes.update(self._conclude(fresh, failures, acks(sending)))
        finally:
            self.store.release(claimed)
        return [outcomes[one.event_id] for one in pending]

    def _decide(self, pending: Sequence[_Pending],
                claimed: set[str]) -> tuple[dict[str, Outcome], list[_Pending]]:
        """What the store says of each: accepted before, a conflict, or to publish (fresh)."""
        try:
            known = self.store.lookup(claimed)
        except StoreError as exc:
            # Without the store an event may be published twice: readers drop the copy.
            self.log.warning("ingest.idempotency_unavailable", error=str(exc))
            known = {}
        outcomes: dict[str, Outcome] = {}
        fresh: list[_Pending] = []
        # A file that takes no write could not remember a new event: none is published
        # (an acceptance it remembers still answers as the first).
        recording = self.store.writable()
        for one in pending:
            before = known.get(one.event_id)
            if one.event_id not in claimed:
                outcomes[one.event_id] = _failed(problems.unavailable_body(
                    f"event {one.event_id} is being published by another request; retry"))
            elif before is None and not recording:
                outcomes[one.event_id] = _failed(problems.unavailable_body(
                    "the API cannot record accepted events now (its store is full or "
                    "read-only); this event was not accepted, retry later"))
            elif before is None:
                fresh.append(one)
            elif before.body_sha256 == one.sha256:
                outcomes[one.event_id] = _accepted(one.event_id, before.topic, consistency.token(
                    self._prefix, one.record.key, before.topic, before.partition, before.offset),
                    duplicate=True)
            else:
                outcomes[one.event_id] = _failed(_conflict(one.event_id))
        return outcomes, fresh

    def _conclude(self, fresh: Sequence[_Pending], failures: Sequence[BrokerUnavailable | None],
                  positions: Sequence[Ack | None]) -> dict[str, Outcome]:
        """Outcomes of published events; the acknowledged ones are remembered, with their place."""
        outcomes: dict[str, Outcome] = {}
        acked: list[Accepted] = []
        failed: BrokerUnavailable | None = None
        for one, failure, at in zip(fresh, failures, positions, strict=True):
            if failure is None:
                partition, offset = (None, None) if at is None else (at.partition, at.offset)
                acked.append(Accepted(one.event_id, one.sha256, one.record.topic,
                                      partition, offset))
                outcomes[one.event_id] = _accepted(one.event_id, one.record.topic,
                                                   self.token(one.record, at))
            else:
                failed = failure
                outcomes[one.event_id] = _failed(problems.unavailable_body(
                    "the event broker did not acknowledge in time; this event was not "
                    "accepted, retry later"))
        if failed is not None:
            self.log.warning("ingest.unavailable", events=len(fresh),
                             failed=len(fresh) - len(acked),
                             error=type(failed.__cause__ or failed).__name__)
        self.store.remember(acked)
        return outcomes

    # -- one event, from the event loop ----------------------------------------------------

    async def accept_body(self, caller: Caller, body: bytes) -> Outcome:
        """The outcome of a single-event body: ``accept_one`` of its event, or the
        ``ProblemError`` (400, 422) of a body that holds none, counted as rejected."""
        try:
            event = bodies.event(body)
        except ProblemError:
            self.metrics.count(partner_kind(caller.scopes), claimed_type(from_json_or_none(body)),
                               "rejected")
            raise
        return await self.accept_one(caller, event)

    async def accept_one(self, caller: Caller, event: EventModel) -> Outcome:
        """The outcome of one event (counted).

        A single event is small, and handing it to a worker thread and back costs
        more than all the rest: it is published from the event loop whenever nothing
        on the way can block (a client that has already written to the topic, an
        event id nobody else is publishing); otherwise it goes the threaded way.
        """
        outcome = await self._accept_one(caller, event)
        settled = outcome.counted_as
        if settled is not None:
            self.metrics.count(partner_kind(caller.scopes), type_label(event.__dict__["type"]),
                               settled)
        return outcome

    async def _accept_one(self, caller: Caller, event: EventModel) -> Outcome:
        if scopes.asks_read_model(caller, event):
            # The read model is a file away (~0.2 ms a look): from a worker thread, never
            # on the event loop.
            return await self._threaded(caller, event)
        plan = self._plan(caller, [event])
        if not plan.pending:
            return _done(plan.outcomes[0])
        one = plan.pending[0]
        claimed = self.store.claim([one.event_id], 0.0)
        if not claimed:
            return await self._threaded(caller, event)
        try:
            outcomes, fresh = self._decide([one], claimed)
            if fresh:
                failure, at = await self._send(one.record)
                outcomes.update(self._conclude(fresh, [failure], [at]))
        finally:
            self.store.release(claimed)
        return outcomes[one.event_id]

    async def publish(self, record: Record) -> Ack | None:
        """Publish one record that is no partner event; return where it was written once
        acknowledged (None: acknowledged, place unknown). Raises ``BrokerUnavailable``
        (the app answers 503 with Retry-After)."""
        failure, at = await self._send(record)
        if failure is not None:
            self.log.warning("ingest.unavailable", events=1, failed=1, topic=record.topic,
                             error=type(failure.__cause__ or failure).__name__)
            raise failure
        return at

    def token(self, record: Record, at: Ack | None) -> str | None:
        """The consistency token of ``record`` written at ``at``."""
        if at is None:
            return None
        return consistency.token(self._prefix, record.key, at.topic, at.partition, at.offset)

    async def _send(self, record: Record) -> tuple[BrokerUnavailable | None, Ack | None]:
        """Send one record and wait for its acknowledgement: from the loop when the client
        is warm (``send_now``), else in a worker thread."""
        future = self.publisher.send_now(record)
        if future is None:
            return await run_in_threadpool(self._send_blocking, record)
        failure = await self._acknowledgement(future)
        return failure, None if failure is not None else ack_of(future)

    def _send_blocking(self, record: Record) -> tuple[BrokerUnavailable | None, Ack | None]:
        sending = self.publisher.send_records([record])
        [failure] = self.publisher.acknowledged(sending, flush=False)
        return failure, acks(sending)[0]

    async def _threaded(self, caller: Caller, event: EventModel) -> Outcome:
        outcomes = await run_in_threadpool(self._accept, caller, [event], bulk=False)
        return outcomes[0]

    async def _acknowledgement(self, future: Any) -> BrokerUnavailable | None:
        """Wait for a record's acknowledgement without a thread: the client calls back."""
        loop = asyncio.get_running_loop()
        settled: asyncio.Future[None] = loop.create_future()

        def wake(_result: object) -> None:  # on the client's network thread
            loop.call_soon_threadsafe(_settle, settled)

        future.add_both(wake)
        try:
            await asyncio.wait_for(settled, self._ack_timeout_s)
        except TimeoutError:
            return self.publisher.timed_out(self._ack_timeout_s)
        return self.publisher.outcome(future)


def _settle(settled: asyncio.Future[None]) -> None:
    if not settled.done():
        settled.set_result(None)


def _done(outcome: Outcome | None) -> Outcome:
    assert outcome is not None
    return outcome


def _conflict(event_id: str) -> dict[str, Any]:
    return problems.conflict(f"event {event_id} was already accepted with another body; "
                             "a new event needs a new event_id")
