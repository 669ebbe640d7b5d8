"""The routing policy: which resellers may take a lead, and which one gets it (pure).

Eligible resellers are active and sell the lead's category. The nearest scope
with any eligible reseller decides: those covering the lead's département (rule
``departement``), else those covering any département of its région (rule
``region``), else nobody (rule ``none``: the lead stays unassigned). Among the
candidates, sorted by id so every instance sees the same order, a rotation
cursor per (rule, scope, category) picks the next one, so candidates of the same
scope take turns whatever the order the leads arrive in.

Scale-out path (written down, not built; DESIGN.md, Guarantees). Today every
lead request sits in one partition, so one router decides at a time and the
cursors (and, later, each reseller's open-lead count) never race. Decisions are
local to a région: the département rule and the région fallback only ever
consider resellers of the lead's own région. So the day one router is not
enough, the passport keys ``pn.lead-requests.v1`` by région instead of lead id
and the topic gets one partition per région (18); routers join one group and
each owns the régions of its partitions, with the cursors of those régions in
its store (keyed by partition, so they move with it). The one cross-région
piece, a reseller covering départements in several régions, then needs its
open-lead count shared: each router would hold a per-région share of that
reseller's capacity, rebalanced on the compacted reseller topic. Until a
decision in one région needs to know the others', nothing else changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from schemas.reference import REGIONS, departements_of

Rule = Literal["departement", "region", "none"]
Status = Literal["assigned", "unassigned"]


@dataclass(frozen=True, slots=True)
class Reseller:
    """One reseller's profile, as the router uses it."""

    reseller_id: str
    name: str
    departements: frozenset[str]
    categories: frozenset[str]
    capacity: int = 10
    weight: int = 1
    status: str = "active"

    def sells(self, category: str) -> bool:
        """Active and selling ``category``: may take a lead of that category somewhere."""
        return self.status == "active" and category in self.categories


@dataclass(frozen=True, slots=True)
class LeadScope:
    """Where a lead is and what it asks for: all the policy needs to know of it."""

    departement: str
    region: str
    category: str


@dataclass(frozen=True, slots=True)
class Candidates:
    """The resellers of the nearest scope that may take the lead."""

    rule: Rule
    scope: str
    """The département or région code that matched ("" for rule ``none``)."""
    category: str
    reseller_ids: tuple[str, ...]

    @property
    def cursor_key(self) -> str:
        """Which rotation cursor this choice advances."""
        return f"{self.rule}:{self.scope}:{self.category}"


@dataclass(frozen=True, slots=True)
class Decision:
    """A routing decision and why: the rule, the candidates, the winner."""

    status: Status
    reseller_id: str | None
    rule: Rule
    candidates: tuple[str, ...]
    cursor_key: str
    cursor: int | None
    """The cursor's new value, to keep; None when no cursor moved."""


def candidates(lead: LeadScope, resellers: Mapping[str, Reseller]) -> Candidates:
    """The eligible resellers of the nearest scope covering the lead, sorted by id."""
    selling = sorted((r for r in resellers.values() if r.sells(lead.category)),
                     key=lambda r: r.reseller_id)
    local = tuple(r.reseller_id for r in selling if lead.departement in r.departements)
    if local:
        return Candidates("departement", lead.departement, lead.category, local)
    # An unknown région has no département: no regional fallback, rather than a crash.
    region = frozenset(departements_of(lead.region)) if lead.region in REGIONS else frozenset()
    regional = tuple(r.reseller_id for r in selling if r.departements & region)
    if regional:
        return Candidates("region", lead.region, lead.category, regional)
    return Candidates("none", "", lead.category, ())


def choose(found: Candidates, cursor: int) -> Decision:
    """Pick ``candidates[cursor % n]`` and advance the cursor; nobody if there is no candidate."""
    ids = found.reseller_ids
    if not ids:
        return Decision("unassigned", None, "none", ids, found.cursor_key, None)
    return Decision("assigned", ids[cursor % len(ids)], found.rule, ids, found.cursor_key,
                    cursor + 1)


def decide(lead: LeadScope, resellers: Mapping[str, Reseller],
           cursors: Mapping[str, int]) -> Decision:
    """``candidates`` then ``choose`` with the stored cursor (0 when none is stored yet)."""
    found = candidates(lead, resellers)
    return choose(found, cursors.get(found.cursor_key, 0))
