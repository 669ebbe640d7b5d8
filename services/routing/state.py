"""The router's state and the one way it changes: by applying a lead ``Change`` (pure).

Every change of a lead is an event on ``pn.leads.v1`` that carries the lead's
whole state after it and, for a decision, the standing of every candidate. The
state is the fold of those events: the processor applies each change it emits
with ``RouterState.apply``, and a restore applies the changes it reads back from
the topic with the same method (services/routing/restore.py), so a takeover
holds exactly the state of what was emitted. What is derived (open leads per
reseller, the open lead of each business and category, the deadlines) is
rebuilt from the leads, never stored on its own.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

#: A lead in one of these is held by a reseller and counts against its capacity.
HELD = frozenset({"assigned", "accepted"})
#: A lead in one of these may still change; the others are final.
OPEN = HELD | {"queued"}
#: A lead in one of these is between two changes of one cause (a rejection and the
#: reassignment it leads to): only seen after a restore cut such a pair in two.
UNPLACED = frozenset({"rejected", "expired"})
#: ``erased``: a closed lead lost the contact it still carried (services/routing/router.py).
CHANGES = ("assigned", "reassigned", "accepted", "rejected", "expired", "won", "lost",
           "withdrawn", "queued", "duplicate", "erased")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A reseller considered for a lead, and where it stood."""

    reseller_id: str
    weight: int
    share: float
    """Its share of this lead: its weight over the eligible weights."""
    entitlement: float
    """Leads it was entitled to, this one's share included."""
    received: int
    """Leads it had received before this one."""
    open: int
    capacity: int

    @property
    def deficit(self) -> float:
        """How far below its entitlement it stood: the largest wins."""
        return self.entitlement - self.received


@dataclass(frozen=True, slots=True)
class Exclusion:
    reseller_id: str
    reason: str
    """inactive | absent | at_capacity | seen_before."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Why a lead went where it went."""

    rule: str
    """departement | region | national."""
    scope: str
    winner: str | None
    candidates: tuple[Candidate, ...] = ()
    excluded: tuple[Exclusion, ...] = ()


@dataclass(frozen=True, slots=True)
class Lead:
    """A lead's state after its latest change."""

    lead_id: str
    siren: str
    category: str
    departement: str
    region: str
    business_name: str
    contact_email: str | None
    requested_at: int
    status: str
    holder: str | None
    version: int
    hops: int = 0
    excluded: tuple[str, ...] = ()
    """Resellers that rejected it or let it expire, sorted."""
    assigned_at: int | None = None
    deadline_at: int | None = None
    rule: str = "none"
    candidates: tuple[str, ...] = ()

    @property
    def held(self) -> bool:
        return self.status in HELD

    @property
    def open(self) -> bool:
        return self.status in OPEN


@dataclass(frozen=True, slots=True)
class Change:
    """One event of a lead: what happened, when, and the lead after it."""

    kind: str
    """One of ``CHANGES``."""
    at: int
    """When (epoch ms, the router's clock)."""
    lead: Lead
    previous: str | None = None
    """Who held it before, when the change took it from them."""
    reason: str | None = None
    sla_breached: bool = False
    duplicate_of: str | None = None
    decision: Decision | None = None


@dataclass(slots=True)
class Standing:
    """A reseller's fair-share account: leads entitled to (eligible for) and received."""

    entitlement: float = 0.0
    received: int = 0


_NONE = Standing()


@dataclass(slots=True)
class RouterState:
    """Every lead, every reseller's standing, and what is derived from them."""

    leads: dict[str, Lead] = field(default_factory=dict)
    standings: dict[str, Standing] = field(default_factory=dict)
    open_counts: dict[str, int] = field(default_factory=dict)
    open_by_request: dict[tuple[str, str], str] = field(default_factory=dict)
    """(SIREN, category) -> the business's open lead for that category."""
    by_siren: dict[str, set[str]] = field(default_factory=dict)
    deadlines: list[tuple[int, str]] = field(default_factory=list)
    """A heap of (deadline, lead id); an entry no longer the lead's deadline is stale."""
    unplaced: set[str] = field(default_factory=set)
    """Leads left between a loss and their next placement (``UNPLACED``)."""
    dirty_leads: set[str] = field(default_factory=set)
    dirty_standings: set[str] = field(default_factory=set)

    def standing(self, reseller_id: str) -> Standing:
        """A reseller's standing (a shared zero one if it has none yet: do not modify)."""
        return self.standings.get(reseller_id) or _NONE

    def open_count(self, reseller_id: str) -> int:
        return self.open_counts.get(reseller_id, 0)

    def apply(self, change: Change) -> None:
        """Take a change in: the lead's new state, the standings of its decision."""
        lead = change.lead
        self._forget(self.leads.get(lead.lead_id))
        self._index(lead)
        self.dirty_leads.add(lead.lead_id)
        decision = change.decision
        if decision is not None:
            standings, dirty, winner = self.standings, self.dirty_standings, decision.winner
            for c in decision.candidates:
                held = standings.get(c.reseller_id)
                if held is None:
                    held = standings[c.reseller_id] = Standing()
                held.entitlement = c.entitlement
                held.received = c.received + (c.reseller_id == winner)
                dirty.add(c.reseller_id)

    def load(self, leads: list[Lead], standings: dict[str, Standing]) -> None:
        """Start from stored leads and standings (nothing dirty)."""
        for lead in leads:
            self._index(lead)
        self.standings.update(standings)

    def due(self, now: int) -> list[str]:
        """The ids of held leads whose deadline has passed, earliest first (each once)."""
        out: list[str] = []
        # Two placements of one lead can share a deadline (both on closed days, due at
        # the end of the same business day): the heap then holds the entry twice.
        returned: set[str] = set()
        while self.deadlines and self.deadlines[0][0] <= now:
            deadline, lead_id = heapq.heappop(self.deadlines)
            lead = self.leads.get(lead_id)
            if lead is not None and lead.held and lead.deadline_at == deadline \
                    and lead_id not in returned:
                returned.add(lead_id)
                out.append(lead_id)
        return out

    def take_dirty(self) -> tuple[list[Lead], dict[str, Standing]]:
        """The leads and standings changed since the last call (to persist)."""
        leads = [self.leads[i] for i in sorted(self.dirty_leads)]
        standings = {i: self.standings[i] for i in sorted(self.dirty_standings)}
        self.dirty_leads.clear()
        self.dirty_standings.clear()
        return leads, standings

    def _forget(self, old: Lead | None) -> None:
        if old is None:
            return
        if old.held and old.holder is not None:
            self.open_counts[old.holder] = self.open_counts.get(old.holder, 0) - 1
        key = (old.siren, old.category)
        if self.open_by_request.get(key) == old.lead_id:
            del self.open_by_request[key]

    def _index(self, lead: Lead) -> None:
        self.leads[lead.lead_id] = lead
        if lead.status in UNPLACED:
            self.unplaced.add(lead.lead_id)
        else:
            self.unplaced.discard(lead.lead_id)
        self.by_siren.setdefault(lead.siren, set()).add(lead.lead_id)
        if lead.held and lead.holder is not None:
            self.open_counts[lead.holder] = self.open_counts.get(lead.holder, 0) + 1
        if lead.open:
            self.open_by_request[(lead.siren, lead.category)] = lead.lead_id
        if lead.held and lead.deadline_at is not None:
            heapq.heappush(self.deadlines, (lead.deadline_at, lead.lead_id))
