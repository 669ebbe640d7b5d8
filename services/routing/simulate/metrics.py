"""What a replay measures: fairness (received against entitlement, Gini), SLA, hops, queue.

The fairness figures read the core's own accounts (``RouterState.standings``):
entitlement is the sum of the shares of the leads a reseller was eligible for,
received the leads it was handed. The worst deviation (received/entitlement - 1)
is taken over the resellers entitled to at least ``DEVIATION_FLOOR`` leads:
below that, one lead more or less is a large ratio and says nothing of the policy.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.routing.state import Change, RouterState, Standing

#: Entitlement (leads) below which a reseller's deviation is not judged.
DEVIATION_FLOOR = 10.0
WEEK_MS = 7 * 24 * 3_600_000


def gini(values: Sequence[float]) -> float:
    """The Gini coefficient of non-negative values: 0 all equal, (n-1)/n all on one."""
    ordered = sorted(values)
    n, total = len(ordered), sum(ordered)
    if n == 0 or total == 0:
        return 0.0
    ranked = sum(rank * value for rank, value in enumerate(ordered, 1))
    return 2 * ranked / (n * total) - (n + 1) / n


def deviation(received: float, entitlement: float) -> float:
    """How far a reseller is from its share: received/entitlement - 1 (0: exactly its share)."""
    if entitlement <= 0:
        raise ValueError("a deviation needs a positive entitlement")
    return received / entitlement - 1


def percentile(values: Sequence[int], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0-1) of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[rank - 1])


@dataclass(slots=True)
class Tally:
    """Counts the changes of a replay as they happen (weeks from ``origin``)."""

    origin: int
    kinds: Counter[str] = field(default_factory=Counter)
    queued: set[str] = field(default_factory=set)
    weekly: Counter[tuple[str, int]] = field(default_factory=Counter)
    """(change kind, week number) -> changes."""

    def observe(self, change: Change) -> None:
        kind = change.kind
        self.kinds[kind] += 1
        self.weekly[kind, max(0, (change.at - self.origin) // WEEK_MS)] += 1
        if kind == "queued":
            self.queued.add(change.lead.lead_id)

    def by_week(self) -> dict[str, dict[int, int]]:
        """Change kind -> week number -> changes, weeks in order."""
        out: dict[str, dict[int, int]] = {}
        for (kind, week), count in sorted(self.weekly.items()):
            out.setdefault(kind, {})[week] = count
        return out


@dataclass(frozen=True, slots=True)
class Share:
    reseller_id: str
    weight: int
    received: int
    entitlement: float


@dataclass(frozen=True, slots=True)
class Summary:
    """One policy's figures."""

    policy: str
    description: str
    leads: int
    """Lead requests that became a lead (duplicates excluded)."""
    duplicates: int
    assignments: int
    breaches: int
    rejections: int
    won: int
    lost: int
    queued: int
    """Leads that reached the national queue at least once."""
    queued_at_end: int
    hops_mean: float
    hops_p95: float
    hops_max: int
    hops_histogram: Mapping[int, int]
    gini: float
    gini_per_weight: float
    worst_reseller: str | None
    worst_deviation: float
    shares: tuple[Share, ...]
    weekly: Mapping[str, Mapping[int, int]]
    stale_answers: int
    elapsed_s: float


def summarise(policy: str, description: str, state: RouterState, tally: Tally, *,
              weights: Mapping[str, int], stale_answers: int, elapsed_s: float) -> Summary:
    """The figures of a finished replay."""
    leads = [lead for lead in state.leads.values() if lead.status != "duplicate"]
    hops = [lead.hops for lead in leads]
    shares = tuple(Share(rid, weight, standing.received, standing.entitlement)
                   for rid, weight in sorted(weights.items())
                   for standing in (state.standings.get(rid) or Standing(),))
    worst, worst_dev = _worst(shares)
    return Summary(
        policy=policy, description=description, leads=len(leads),
        duplicates=tally.kinds["duplicate"],
        assignments=tally.kinds["assigned"] + tally.kinds["reassigned"],
        breaches=tally.kinds["expired"], rejections=tally.kinds["rejected"],
        won=tally.kinds["won"], lost=tally.kinds["lost"], queued=len(tally.queued),
        queued_at_end=sum(1 for lead in leads if lead.status == "queued"),
        hops_mean=sum(hops) / len(hops) if hops else 0.0, hops_p95=percentile(hops, 0.95),
        hops_max=max(hops, default=0), hops_histogram=dict(sorted(Counter(hops).items())),
        gini=gini([s.received for s in shares]),
        gini_per_weight=gini([s.received / s.weight for s in shares]),
        worst_reseller=worst, worst_deviation=worst_dev, shares=shares,
        weekly=tally.by_week(),
        stale_answers=stale_answers, elapsed_s=elapsed_s)


def _worst(shares: Sequence[Share]) -> tuple[str | None, float]:
    """The judged reseller furthest from its share, either way."""
    judged = [(abs(deviation(s.received, s.entitlement)), s.reseller_id,
               deviation(s.received, s.entitlement))
              for s in shares if s.entitlement >= DEVIATION_FLOOR]
    if not judged:
        return None, 0.0
    _, reseller_id, value = max(judged)
    return reseller_id, value
