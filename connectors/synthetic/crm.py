"""A synthetic CRM: the demo's resellers answer the leads the router gives them.

Without answers a demo shows leads piling up as "assigned" forever. This
follows ``pn.leads.v1`` and, for every lead a reseller newly holds, decides
what that reseller does, from a generator seeded with the lead and its
version: accept (~55%), reject with a reason code (~20%), or never answer
(~25%: the lead expires after the SLA and the router hands it on). An accepted
lead later ends won or lost (or stays open). Answers go out a few seconds of
wall time after the change, as ``LeadAnswered`` events through the Publisher.

The decision is a pure function of (seed, lead, version, status), so a CRM
restarted over the same topic decides the same again; an answer is only sent if
the lead is still at the version it answers (the router refuses stale answers
anyway), and its event id is derived from the lead and version, so one sent
twice is one event.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from connectors.publish import Publisher
from hub import logs
from hub.config import Settings
from hub.errors import BrokerUnavailable
from hub.ids import derive
from hub.reader import TopicReader
from schemas import catalog
from schemas.models import REJECT_REASONS, LeadAnswered

#: What a reseller does with a lead it newly holds: (answer or None for silence, weight).
FIRST_ANSWERS: tuple[tuple[str | None, int], ...] = (("accepted", 55), ("rejected", 20),
                                                     (None, 25))
#: What becomes of an accepted lead.
OUTCOMES: tuple[tuple[str | None, int], ...] = (("won", 35), ("lost", 45), (None, 20))
#: Rejection reasons as partners give them: budget and no answer from the business first.
REASON_WEIGHTS: Mapping[str, int] = {"budget": 6, "no_customer_response": 6, "other_vendor": 4,
                                     "requirement_not_met": 3, "timeline_too_short": 3,
                                     "not_a_customer": 2, "spam": 1, "other": 2}
#: Wall seconds before a first answer, then before a won/lost.
ANSWER_DELAY_S = (0.5, 4.0)
OUTCOME_DELAY_S = (8.0, 40.0)
_RETRY_S = 2.0


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer a reseller will give, ``delay_s`` after it saw the change."""

    lead_id: str
    reseller_id: str
    version: int
    """The lead version it answers: sent only while the lead is still at it."""
    answer: str
    reason: str | None
    delay_s: float


def decide(seed: int, datum: Mapping[str, Any], *, national_queue: str) -> Reply | None:
    """What the holder of a lead change does about it, if anything (pure, seeded).

    Only a change that leaves the lead ``assigned`` (a new holder) or
    ``accepted`` calls for an answer, and never one held by the national queue.
    """
    status, holder = datum.get("status"), datum.get("reseller_id")
    if holder is None or holder == national_queue or status not in ("assigned", "accepted"):
        return None
    lead_id, version = str(datum["lead_id"]), int(datum.get("version") or 1)
    # A string seed hashes with SHA-512: the same on every run and platform.
    rng = random.Random(f"{seed}/{lead_id}/{version}/{status}")  # noqa: S311 - demo data
    choices, delay = (FIRST_ANSWERS, ANSWER_DELAY_S) if status == "assigned" \
        else (OUTCOMES, OUTCOME_DELAY_S)
    answer = rng.choices([a for a, _ in choices], [w for _, w in choices])[0]
    if answer is None:
        return None
    reason = None
    if answer == "rejected":
        reason = rng.choices(REJECT_REASONS, [REASON_WEIGHTS.get(r, 1) for r in REJECT_REASONS])[0]
    return Reply(lead_id, str(holder), version, answer, reason, round(rng.uniform(*delay), 3))


@dataclass
class Crm:
    """The pure part of the CRM: lead changes in, due answers out (clock injected)."""

    seed: int
    national_queue: str
    clock: Callable[[], float] = time.monotonic
    versions: dict[str, int] = field(default_factory=dict)
    """The latest version seen of every lead."""
    _pending: list[tuple[float, int, Reply]] = field(default_factory=list)
    _sequence: int = 0

    def observe(self, datum: Mapping[str, Any]) -> Reply | None:
        """Take a lead change in; schedule (and return) the answer it calls for."""
        lead_id, version = str(datum["lead_id"]), int(datum.get("version") or 1)
        if version <= self.versions.get(lead_id, 0):
            return None  # a change seen already (or older than one seen)
        self.versions[lead_id] = version
        reply = decide(self.seed, datum, national_queue=self.national_queue)
        if reply is not None:
            self._schedule(reply, reply.delay_s)
        return reply

    def due(self) -> list[Reply]:
        """The answers whose time has come and whose lead has not moved on since."""
        now = self.clock()
        out: list[Reply] = []
        while self._pending and self._pending[0][0] <= now:
            reply = heapq.heappop(self._pending)[2]
            if self.versions.get(reply.lead_id) == reply.version:
                out.append(reply)
        return out

    def retry(self, reply: Reply) -> None:
        """Send ``reply`` again a little later (the broker was away)."""
        self._schedule(reply, _RETRY_S)

    def next_due_in(self) -> float | None:
        if not self._pending:
            return None
        return max(0.0, self._pending[0][0] - self.clock())

    def _schedule(self, reply: Reply, delay_s: float) -> None:
        self._sequence += 1
        heapq.heappush(self._pending, (self.clock() + delay_s, self._sequence, reply))


def event(reply: Reply, now: datetime) -> LeadAnswered:
    """The ``LeadAnswered`` of a reply: its id derived from the lead version it answers."""
    return LeadAnswered(event_id=UUID(derive(reply.lead_id, f"crm-v{reply.version}")),
                        occurred_at=now, source=reply.reseller_id, lead_id=reply.lead_id,
                        reseller_id=reply.reseller_id, answer=reply.answer, reason=reply.reason)


#: What the demo's CRMs read: the leads their resellers are given.
TOPICS = (catalog.LEADS,)


def run(settings: Settings, seed: int, stop: threading.Event) -> int:
    """Answer leads until ``stop``; return how many answers were sent."""
    log = logs.get().bind(crm=True, seed=seed)
    crm = Crm(seed=seed, national_queue=settings.routing_national_queue)
    reader = TopicReader(settings, TOPICS)
    publisher = Publisher(settings)
    sent: dict[str, int] = {}
    last_log = time.monotonic()
    try:
        reader.start()
        while not stop.is_set():
            wait = crm.next_due_in()
            wait_ms = 500 if wait is None else int(min(wait, 0.5) * 1000)
            for record in reader.poll(timeout_ms=wait_ms):
                if record.record == "LeadAssigned":
                    crm.observe(record.datum)
            for reply in crm.due():
                try:
                    publisher.publish(event(reply, datetime.now(UTC)))
                except BrokerUnavailable as exc:
                    log.warning("crm.retry", lead_id=reply.lead_id, error=str(exc))
                    crm.retry(reply)
                    continue
                sent[reply.answer] = sent.get(reply.answer, 0) + 1
            if time.monotonic() - last_log >= 10.0:
                last_log = time.monotonic()
                log.info("crm.progress", leads=len(crm.versions), **sent)
    finally:
        reader.close()
        publisher.close()
    log.info("crm.done", **sent)
    return sum(sent.values())
