"""A lead's life: requested, decided, answered, expired, withdrawn — as changes (pure).

The ``Router`` turns each input (a lead request, a reseller's answer, a
withdrawal, the clock passing a deadline) into the ``Change`` events it causes,
applying each one to the ``RouterState`` as it goes, so the next decision sees
it. Time is an argument (epoch ms), never read here. Rules (the programme's;
docs/routing.md):

- a request for a (business, category) that has an open lead gets that lead
  back: a ``duplicate`` change under the new id points at it, no second lead;
- only the current holder answers: ``accepted`` or ``rejected`` (with a reason
  code) while assigned, then ``won`` or ``lost`` once accepted; anything else
  raises ``InvalidAnswerError`` and changes nothing;
- a rejection or an expiry (the holder did not answer within the SLA) hands the
  lead to the next eligible reseller, never back to one that had it; after
  ``max_hops`` assignments, or with nobody eligible, it waits in the national
  queue;
- a withdrawal of consent (or an erasure) cancels an open lead for good; its
  contact data goes with it. A lead between a loss and its next placement
  (``UNPLACED``: a restore cut the pair in two) is open too: it is withdrawn,
  never placed again with the contact. An erasure also reaches a closed lead
  that still carries a contact (only records of before LeadAssigned v2 do): an
  ``erased`` change drops it and leaves the rest as it was, so the latest record
  of every lead of the business, on ``pn.leads.v1`` and in every fold of it (the
  router's restore, the read model, the delivery store), carries no contact.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from hub.errors import HubError
from schemas.fields import REJECT_REASONS
from services.routing import policy, sla
from services.routing.policy import LeadScope
from services.routing.registry import Registry
from services.routing.state import UNPLACED, Change, Decision, Lead, RouterState

#: The ``LeadWithdrawn`` reason of an erasure (services/passport/rules.py).
ERASED = "erased"


class InvalidAnswerError(HubError):
    """An answer the router refuses: not the holder's, not this lead's state, or malformed."""


@dataclass(frozen=True, slots=True)
class RoutingRules:
    """The knobs of the lifecycle (settings or a simulator's policy file)."""

    national_queue: str = "cefac-national"
    max_hops: int = 5
    """Assignments a lead may have before it goes to the national queue instead."""
    sla_business_days: int = 2


@dataclass(frozen=True, slots=True)
class LeadRequest:
    lead_id: str
    siren: str
    business_name: str
    departement: str
    region: str
    category: str
    contact_email: str | None
    requested_at: int


@dataclass(frozen=True, slots=True)
class Answer:
    lead_id: str
    reseller_id: str
    answer: str
    """accepted | rejected | won | lost."""
    reason: str | None = None


class Router:
    """Decides and follows leads over a registry and a state it updates in place."""

    def __init__(self, registry: Registry, state: RouterState | None = None,
                 rules: RoutingRules | None = None) -> None:
        self.registry = registry
        self.state = state if state is not None else RouterState()
        self.rules = rules or RoutingRules()

    # -- inputs ------------------------------------------------------------------------------

    def request(self, req: LeadRequest, now: int) -> list[Change]:
        """A new lead: assigned (or queued), or the open lead for it back; nothing if known."""
        if req.lead_id in self.state.leads:
            return []  # a request replayed: decided already
        lead = Lead(req.lead_id, req.siren, req.category, req.departement, req.region,
                    req.business_name, req.contact_email, req.requested_at,
                    status="requested", holder=None, version=0)
        open_id = self.state.open_by_request.get((req.siren, req.category))
        if open_id is not None:
            return self._emit(Change("duplicate", now, replace(
                lead, status="duplicate", version=1, contact_email=None),
                duplicate_of=open_id))
        return self._place(lead, now, reason=None)

    def answer(self, ans: Answer, now: int) -> list[Change]:
        """The holder's answer to its lead; ``InvalidAnswerError`` says why one is refused."""
        lead = self.state.leads.get(ans.lead_id)
        if lead is None:
            raise InvalidAnswerError(f"no lead {ans.lead_id} is known to the router")
        if lead.holder != ans.reseller_id:
            raise InvalidAnswerError(f"lead {ans.lead_id} is not held by {ans.reseller_id} "
                                     f"(status {lead.status})")
        allowed = {"assigned": ("accepted", "rejected"), "accepted": ("won", "lost"),
                   "queued": ("accepted", "rejected")}.get(lead.status, ())
        if ans.answer not in allowed:
            raise InvalidAnswerError(f"lead {ans.lead_id} is {lead.status}: it cannot be "
                                     f"{ans.answer} now (allowed: {', '.join(allowed) or 'none'})")
        if ans.answer == "rejected":
            if ans.reason not in REJECT_REASONS:
                raise InvalidAnswerError(f"a rejection needs a reason code, one of "
                                         f"{', '.join(REJECT_REASONS)} (got {ans.reason!r})")
            return self._lose(lead, now, "rejected", reason=ans.reason)
        if ans.reason is not None:
            raise InvalidAnswerError(f"only a rejection has a reason (answer {ans.answer})")
        closed = ans.answer in ("won", "lost")
        return self._emit(Change(ans.answer, now, replace(
            lead, status=ans.answer, version=lead.version + 1, deadline_at=None,
            contact_email=None if closed else lead.contact_email)))

    def withdraw(self, lead_id: str, reason: str, now: int) -> list[Change]:
        """Cancel an open (or unplaced) lead: consent withdrawn or data erased. Nothing for a
        closed one, but the ``erased`` change of one an erasure finds with a contact."""
        lead = self.state.leads.get(lead_id)
        if lead is None:
            return []
        if lead.open or lead.status in UNPLACED:
            return self._emit(Change("withdrawn", now, replace(
                lead, status="withdrawn", holder=lead.holder, version=lead.version + 1,
                deadline_at=None, contact_email=None), previous=lead.holder, reason=reason))
        if reason == ERASED and lead.contact_email is not None:
            return self._emit(Change("erased", now, replace(
                lead, version=lead.version + 1, contact_email=None), reason=reason))
        return []

    def expire(self, now: int) -> list[Change]:
        """Every lead whose holder let its deadline pass: expired, then placed again."""
        out: list[Change] = []
        for lead_id in self.state.due(now):
            out.extend(self._lose(self.state.leads[lead_id], now, "expired", reason=None))
        return out

    def resume(self, now: int) -> list[Change]:
        """Place the leads a restore found between a loss and its reassignment (the
        topic ended between the two changes of one cause)."""
        out: list[Change] = []
        for lead_id in sorted(self.state.unplaced):
            out.extend(self._place(self.state.leads[lead_id], now, reason=None))
        return out

    # -- moves -------------------------------------------------------------------------------

    def _lose(self, lead: Lead, now: int, kind: str, *, reason: str | None) -> list[Change]:
        """The holder loses the lead (rejected or expired); it goes on to the next one."""
        seen = lead.excluded
        if lead.holder is not None and lead.holder != self.rules.national_queue:
            seen = tuple(sorted({*lead.excluded, lead.holder}))
        lost = replace(lead, status=kind, holder=None, version=lead.version + 1,
                       excluded=seen, deadline_at=None)
        changes = self._emit(Change(kind, now, lost, previous=lead.holder, reason=reason,
                                    sla_breached=kind == "expired"))
        return changes + self._place(lost, now, reason=None)

    def _place(self, lead: Lead, now: int, *, reason: str | None) -> list[Change]:
        """Assign (or reassign) a lead to the fairest eligible reseller, or queue it."""
        first = lead.version == 0
        if lead.hops >= self.rules.max_hops:
            decision = Decision("national", "", self.rules.national_queue)
            reason = "hop_limit"
        else:
            decision = policy.decide(
                LeadScope(lead.departement, lead.region, lead.category), self.registry,
                standing=self.state.standing, open_count=self.state.open_count,
                seen=lead.excluded, today=_paris_day(now),
                national_queue=self.rules.national_queue)
        winner = decision.winner
        if decision.rule == "national":
            placed = replace(lead, status="queued", holder=winner, version=lead.version + 1,
                             assigned_at=now, deadline_at=None, rule=decision.rule,
                             candidates=())
            return self._emit(Change("queued", now, placed, decision=decision,
                                     reason=reason or "no_eligible"))
        placed = replace(lead, status="assigned", holder=winner, version=lead.version + 1,
                         hops=lead.hops + 1, assigned_at=now,
                         deadline_at=sla.deadline_ms(now, departement=lead.departement,
                                                     business_days=self.rules.sla_business_days),
                         rule=decision.rule,
                         candidates=tuple(c.reseller_id for c in decision.candidates))
        return self._emit(Change("assigned" if first else "reassigned", now, placed,
                                 decision=decision, reason=reason))

    def _emit(self, change: Change) -> list[Change]:
        self.state.apply(change)
        return [change]


def _paris_day(now_ms: int) -> date:
    return datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(sla.PARIS).date()
