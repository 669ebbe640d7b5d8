"""The KPI page's figures (pure): counters, resellers and standings in, one document out.

The document is the ``/v1/stats`` one (``stats.document``, the same counters)
and two things the page draws besides:

* ``passports_by_day``: passports issued per day (Europe/Paris) with the running
  total, from the snapshots' own ``passport_issued_at`` (aggregates.py), so the
  curve is the programme's history, not the times the hub happened to read it;
  ``undated`` counts issued passports whose snapshot names no date (none the
  passport service writes today), so the series always adds up to the national
  figure;
* ``resellers``: each reseller's leads against its entitlement and its answers
  against the SLA (docs/routing.md). Unlike ``/v1/stats`` this names the
  resellers: the KPI page is where the programme checks that the leads are
  shared fairly and answered in time. Entitlement and received leads are the
  router's own account, as of the last decision the reseller stood in: each
  decision hands out exactly one lead of entitlement among its candidates and
  one lead to its winner, so ``share_of_leads`` and ``share_of_entitlement``
  (each over the total of all resellers) compare like with like. A reseller's
  ``on_time_rate`` is its answers by the deadline over the leads whose deadline
  came to an end (answered on time or late, or expired); null while none did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.readmodel import stats
from services.readmodel.aggregates import (
    ALL,
    EXPIRED,
    ISSUED,
    ISSUED_DAY,
    LATE,
    NATIONAL,
    ON_TIME,
    RESELLER,
    RESELLER_CHANGES,
    Key,
)


@dataclass(frozen=True, slots=True)
class Profile:
    """What the KPI page names of a reseller (its latest ``ResellerProfile``)."""

    reseller_id: str
    name: str
    status: str
    weight: int
    capacity: int


@dataclass(frozen=True, slots=True)
class Standing:
    """A reseller's fair-share account: leads it was entitled to, and received."""

    entitlement: float
    received: int


def _rate(part: float, whole: float) -> float | None:
    return None if not whole else round(part / whole, 6)


def passports_by_day(counters: Mapping[Key, int]) -> dict[str, Any]:
    """Passports issued per day with their running total, and the undated ones."""
    days = sorted((key, value) for (dim, key, metric), value in counters.items()
                  if dim == ISSUED_DAY and metric == ISSUED and value)
    series, running = [], 0
    for day, issued in days:
        running += issued
        series.append({"date": day, "issued": issued, "cumulative": running})
    undated = counters.get((NATIONAL, ALL, ISSUED), 0) - running
    return {"series": series, "undated": undated}


def resellers(counters: Mapping[Key, int], profiles: Iterable[Profile],
              standings: Mapping[str, Standing]) -> dict[str, Any]:
    """Each reseller with a profile, a standing or a counted change; the SLA nationally."""
    named = {p.reseller_id: p for p in profiles}
    counted = {key for (dim, key, _metric), value in counters.items() if dim == RESELLER and value}
    total_received = sum(s.received for s in standings.values())
    total_entitled = sum(s.entitlement for s in standings.values())
    rows: list[dict[str, Any]] = []
    sla = {ON_TIME: 0, LATE: 0, EXPIRED: 0}
    for reseller_id in sorted(set(named) | set(standings) | counted):
        profile, standing = named.get(reseller_id), standings.get(reseller_id)
        received = standing.received if standing else 0
        entitlement = standing.entitlement if standing else 0.0
        answers = {name: counters.get((RESELLER, reseller_id, name), 0)
                   for name in (ON_TIME, LATE, EXPIRED, *RESELLER_CHANGES)}
        for name in sla:
            sla[name] += answers[name]
        due = answers[ON_TIME] + answers[LATE] + answers[EXPIRED]
        rows.append({
            "reseller_id": reseller_id,
            "name": profile.name if profile else None,
            "status": profile.status if profile else None,
            "weight": profile.weight if profile else None,
            "received": received,
            "entitlement": round(entitlement, 3),
            "share_of_leads": _rate(received, total_received),
            "share_of_entitlement": _rate(entitlement, total_entitled),
            **answers,
            "on_time_rate": _rate(answers[ON_TIME], due),
        })
    rows.sort(key=lambda row: (-row["received"], -row["entitlement"], row["reseller_id"]))
    due = sum(sla.values())
    return {"known": len(named), "leads_received": total_received,
            "sla": {**sla, "due": due, "on_time_rate": _rate(sla[ON_TIME], due)},
            "by_reseller": rows}


def document(counters: Mapping[Key, int], profiles: Iterable[Profile],
             standings: Mapping[str, Standing]) -> dict[str, Any]:
    """The KPI page's data: the stats document, the series over time, the resellers."""
    return {**stats.document(counters), "passports_by_day": passports_by_day(counters),
            "resellers": resellers(counters, profiles, standings)}
