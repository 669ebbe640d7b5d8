"""The routing policy: who may take a lead, and which of them gets it (pure).

**Eligibility.** A reseller may take a lead if it is active, not absent on the
day, sells the lead's category, holds fewer open leads than its capacity, and
has not rejected this lead or let it expire before. The nearest scope with an
eligible reseller decides: those covering the lead's département (rule
``departement``), else those covering any département of its région (rule
``region``), else the national queue (rule ``national``: a configured id,
CEFAC's own queue by default, where the lead waits visibly).

**Choice: weighted fair share by deficit.** Each decision adds to every
eligible reseller's entitlement its share of this lead (its weight over the
eligible weights); a reseller's deficit is its entitlement less the leads it
received. The reseller furthest below its entitlement wins (ties: the smaller
id), so over a long run each one receives its weighted share of the leads it
was eligible for, whatever the mix of scopes (the property tests hold it to
±10%). Entitlement counts only the leads a reseller was eligible for: a
reseller at capacity, absent or paused accrues nothing meanwhile, and comes
back level, not owed a burst.

**Explanation.** The decision carries every candidate with its standing
(weight, share, entitlement, received, open leads, capacity), the resellers of
the scopes tried that were left out and why, the rule and the winner.

Scale-out path (written down, not built). Every lead request sits in one
partition, so one router decides at a time and capacity is never overbooked.
Decisions are local to a région (the département rule and the région fallback
only consider resellers of the lead's own région), so the day one router is not
enough the passport keys ``pn.lead-requests.v1`` by région and the topic gets
one partition per région (18); routers share one group and each owns the
régions of its partitions, with their standings in its store. A reseller
covering several régions then needs its capacity split per région, rebalanced
on the compacted reseller topic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from services.routing.registry import ACTIVE, Registry, Reseller
from services.routing.state import Candidate, Decision, Exclusion, Standing

#: How much larger a deficit must be to win over an earlier candidate's, so float
#: noise never decides a tie.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class LeadScope:
    """Where a lead is and what it asks for: all the policy needs to know of it."""

    departement: str
    region: str
    category: str


def decide(lead: LeadScope, registry: Registry, *, standing: Callable[[str], Standing],
           open_count: Callable[[str], int], seen: frozenset[str] | tuple[str, ...],
           today: date, national_queue: str) -> Decision:
    """The decision for one lead: the nearest scope's eligible resellers, the fairest of them."""
    ask = _Ask(lead.category, standing, open_count, seen, today)
    for rule, scope, resellers in (
            ("departement", lead.departement, registry.covering(lead.departement, lead.category)),
            ("region", lead.region, registry.in_region(lead.region, lead.category))):
        eligible = [r for r in resellers
                    if r.reseller_id not in ask.excluded and ask.eligible(r)]
        if eligible:
            return ask.choose(rule, scope, eligible)
    return Decision("national", "", national_queue, (), ask.exclusions())


@dataclass(slots=True)
class _Ask:
    """One decision under way: what the lead asks, and who was left out so far."""

    category: str
    standing: Callable[[str], Standing]
    open_count: Callable[[str], int]
    seen: frozenset[str] | tuple[str, ...]
    today: date
    excluded: dict[str, str] = field(default_factory=dict)

    def eligible(self, reseller: Reseller) -> bool:
        """Whether ``reseller`` (which sells the category) may take the lead; if not, why
        goes into ``excluded``."""
        reason = None
        if reseller.status != ACTIVE:
            reason = "inactive"
        elif reseller.reseller_id in self.seen:
            reason = "seen_before"
        elif reseller.absences and reseller.absent_on(self.today):
            reason = "absent"
        elif self.open_count(reseller.reseller_id) >= reseller.capacity:
            reason = "at_capacity"
        if reason is None:
            return True
        self.excluded.setdefault(reseller.reseller_id, reason)
        return False

    def choose(self, rule: str, scope: str, eligible: list[Reseller]) -> Decision:
        """The eligible reseller furthest below its entitlement (ties: the smaller id)."""
        total = sum(r.weight for r in eligible)
        candidates = []
        best: Candidate | None = None
        best_deficit = 0.0
        for reseller in eligible:  # by id: the registry's order
            held = self.standing(reseller.reseller_id)
            share = reseller.weight / total
            candidate = Candidate(reseller.reseller_id, reseller.weight, share,
                                  held.entitlement + share, held.received,
                                  self.open_count(reseller.reseller_id), reseller.capacity)
            candidates.append(candidate)
            deficit = candidate.entitlement - candidate.received
            if best is None or deficit > best_deficit + _EPSILON:
                best, best_deficit = candidate, deficit
        assert best is not None
        return Decision(rule, scope, best.reseller_id, tuple(candidates), self.exclusions())

    def exclusions(self) -> tuple[Exclusion, ...]:
        return tuple(Exclusion(i, reason) for i, reason in sorted(self.excluded.items()))
