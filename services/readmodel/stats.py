"""The programme figures as the API serves them (pure): counters in, ``/v1/stats`` document out.

Targets: the 2009-2011 convention sets one, national, **150,000** (docs/architecture.md);
no per-région or per-département target exists, and inventing one (by
population, by number of businesses) would be a figure nobody agreed to. So
the national line carries ``share_of_target`` (passports issued / 150,000) and
each région and département carries ``share_of_national_target``: its own
issued passports over the same 150,000, i.e. its contribution to the national
goal (the régions' shares add up to the national one).

Leads: how many stand in each status now, how many reassignments and SLA
breaches (expiries) happened so far, and the rejections by reason code. No
reseller is named: the figures are the programme's, not a league table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.fields import REJECT_REASONS
from schemas.reference import DEPARTEMENTS, MODULES, REGIONS
from services.readmodel.aggregates import (
    ALL,
    AWAITING,
    BUSINESSES,
    CHANGES,
    DEPARTEMENT,
    ENROLLED,
    FEEDBACK_DELEGATION,
    FEEDBACK_MODULE,
    FEEDBACK_TRAINER,
    ISSUED,
    LEAD_CHANGE,
    LEAD_REJECTION,
    LEAD_STATUS,
    LEADS,
    MODULE,
    NATIONAL,
    REGION,
    RESPONSES,
    SCORE_SUM,
    SLA_BREACHES,
    Key,
)

#: Passports to issue under the 2009-2011 convention (docs/architecture.md): the only target.
TARGET_PASSPORTS = 150_000


#: A lead's statuses (LeadAssigned v2), listed even at zero. rejected and expired are
#: passing (the next change places the lead again); duplicate is a request that got an
#: open lead back, not a lead of its own.
LEAD_STATUSES = ("assigned", "accepted", "queued", "rejected", "expired", "won", "lost",
                 "withdrawn", "duplicate")
#: The statuses of a lead that may still change (held by a reseller, or queued).
OPEN_STATUSES = ("assigned", "accepted", "queued")


def _share(issued: int) -> float:
    return round(issued / TARGET_PASSPORTS, 6)


def _keys(counters: Mapping[Key, int], dimension: str) -> set[str]:
    # A counter back at zero names nothing: the document is the same with or without it.
    return {key for (dim, key, _metric), value in counters.items() if dim == dimension and value}


def _place(counters: Mapping[Key, int], dimension: str, key: str) -> dict[str, Any]:
    issued = counters.get((dimension, key, ISSUED), 0)
    return {"businesses_enrolled": counters.get((dimension, key, ENROLLED), 0),
            "passports_issued": issued, "share_of_national_target": _share(issued)}


def _quality(counters: Mapping[Key, int], dimension: str, name: str) -> list[dict[str, Any]]:
    out = []
    for key in sorted(_keys(counters, dimension)):
        responses = counters.get((dimension, key, RESPONSES), 0)
        if responses > 0:
            average = counters.get((dimension, key, SCORE_SUM), 0) / responses
            out.append({name: key, "responses": responses, "average_score": round(average, 2)})
    return out


def _with_zeros(counters: Mapping[Key, int], dimension: str, metric: str,
                known: tuple[str, ...]) -> dict[str, int]:
    """The counters of one dimension by key: the known keys first (zeros included), then any
    other the records carry (a v1 ``unassigned``), so nothing counted is hidden."""
    keys = list(known) + sorted(_keys(counters, dimension) - set(known))
    return {key: counters.get((dimension, key, metric), 0) for key in keys}


def leads(counters: Mapping[Key, int]) -> dict[str, Any]:
    """The leads' figures: by status now, reassignments, SLA breaches, rejections by reason."""
    by_status = _with_zeros(counters, LEAD_STATUS, LEADS, LEAD_STATUSES)
    return {
        "total": sum(n for status, n in by_status.items() if status != "duplicate"),
        "open": sum(by_status[status] for status in OPEN_STATUSES),
        "by_status": by_status,
        "reassignments": counters.get((LEAD_CHANGE, "reassigned", CHANGES), 0),
        "sla_breaches": counters.get((LEAD_CHANGE, ALL, SLA_BREACHES), 0),
        "rejections_by_reason": _with_zeros(counters, LEAD_REJECTION, CHANGES, REJECT_REASONS),
    }


def document(counters: Mapping[Key, int]) -> dict[str, Any]:
    """The stats document of a set of counters.

    Every région, département and module of the reference data is listed (zeros
    included: a delegation with nothing yet is a figure too), plus any code the
    snapshots carry that the reference data does not know, so nothing counted is
    hidden; the quality lists name only what has feedback.
    """
    issued = counters.get((NATIONAL, ALL, ISSUED), 0)
    regions = sorted(set(REGIONS) | _keys(counters, REGION))
    departements = list(DEPARTEMENTS) + sorted(_keys(counters, DEPARTEMENT) - set(DEPARTEMENTS))
    modules = list(MODULES) + sorted(_keys(counters, MODULE) - set(MODULES))
    return {
        "target": {"passports": TARGET_PASSPORTS, "scope": "national"},
        "national": {
            "businesses_enrolled": counters.get((NATIONAL, ALL, ENROLLED), 0),
            "passports_issued": issued,
            "share_of_target": _share(issued),
            "awaiting_enrolment": counters.get((NATIONAL, ALL, AWAITING), 0),
        },
        "regions": [{"region": code, "name": REGIONS.get(code),
                     **_place(counters, REGION, code)} for code in regions],
        "departements": [
            {"departement": code,
             "name": DEPARTEMENTS[code].name if code in DEPARTEMENTS else None,
             "region": DEPARTEMENTS[code].region if code in DEPARTEMENTS else None,
             **_place(counters, DEPARTEMENT, code)} for code in departements],
        "modules": [{"module_id": module_id,
                     "title": MODULES[module_id].title if module_id in MODULES else None,
                     "businesses": counters.get((MODULE, module_id, BUSINESSES), 0)}
                    for module_id in modules],
        "quality": {
            "by_module": _quality(counters, FEEDBACK_MODULE, "module_id"),
            "by_trainer_org": _quality(counters, FEEDBACK_TRAINER, "trainer_org"),
            "by_delegation": _quality(counters, FEEDBACK_DELEGATION, "delegation"),
        },
        "leads": leads(counters),
    }
