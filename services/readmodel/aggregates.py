"""The programme figures' rules (pure): what a passport snapshot or a lead adds to each counter.

The read model keeps every figure of ``GET /v1/stats`` as an integer counter
keyed by (dimension, key, metric). A snapshot contributes a set of +1s (and
score sums); when a newer snapshot of the same business replaces it, the
store subtracts the old contribution and adds the new one (``change``), so
the counters always equal the sum over the latest snapshot of each business,
whatever order of replacements led there: a rebuild from the topic gives the
same figures. Averages are derived from integer sums and counts when read, so
no rounding drifts as snapshots come and go.

The rules:

* a business awaiting its enrolment (events came first) counts only as
  ``awaiting_enrolment`` nationally: it has no département yet;
* any other business counts as enrolled nationally, in its région and in its
  département, and as issued there too once its state is ``passport_issued``
  (an erased business still counts: erasure removes contact data, not the
  passport);
* each distinct module a business completed counts that business once for
  the module (training facts count whatever the enrolment state);
* a lead counts once in its current status (``lead_contributions``), and each
  change of a lead applied counts once for good (``lead_change_counts``);
* each feedback entry (distinct by event id, score within 1-5) adds its score
  and one response to its module, to its trainer organisation and to its
  delegation, the latter two when named;
* an issued passport counts once on the day it was issued (``passport_issued_at``,
  the day in Europe/Paris): the KPI page's series over time comes from the
  snapshots' own dates, so a rebuild or a replay months later draws the same curve;
* each change of a lead applied counts once for good for the reseller it concerns
  (``reseller_change_counts``): its answers, on time or late against the SLA
  deadline it held the lead under, its expiries, its closes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.readmodel.views import millis

#: A counter's name: (dimension, key, metric).
Key = tuple[str, str, str]
#: Counters and the amounts one snapshot (or one change) adds to them.
Contribution = dict[Key, int]

# Dimensions.
NATIONAL = "national"
REGION = "region"
DEPARTEMENT = "departement"
MODULE = "module"
FEEDBACK_MODULE = "feedback_module"
FEEDBACK_TRAINER = "feedback_trainer_org"
FEEDBACK_DELEGATION = "feedback_delegation"
LEAD_STATUS = "lead_status"
LEAD_CHANGE = "lead_change"
LEAD_REJECTION = "lead_rejection"
ISSUED_DAY = "issued_day"
RESELLER = "reseller"

# Metrics.
ENROLLED = "enrolled"
ISSUED = "issued"
AWAITING = "awaiting_enrolment"
BUSINESSES = "businesses"
SCORE_SUM = "score_sum"
RESPONSES = "responses"
LEADS = "leads"
CHANGES = "changes"
SLA_BREACHES = "sla_breaches"
# A reseller's (RESELLER): answers to leads it held under an SLA deadline, by whether they
# came by it; the leads it let expire; and its answers and closes by kind.
ON_TIME = "answered_on_time"
LATE = "answered_late"
EXPIRED = "expired"
#: The changes a reseller makes (or suffers) that are counted under their own name.
RESELLER_CHANGES = ("accepted", "rejected", "won", "lost")

#: The key of the national dimension (there is one nation).
ALL = ""

AWAITING_STATE = "awaiting_enrolment"
ISSUED_STATE = "passport_issued"
#: States of an enrolled business, in the order a passport goes through them.
ENROLLED_STATES = ("enrolled", "in_training", ISSUED_STATE)

MIN_SCORE, MAX_SCORE = 1, 5

#: The programme's days are French days (the routing SLA's clock too, docs/routing.md).
PARIS = ZoneInfo("Europe/Paris")


def paris_day(value: object) -> str:
    """The ISO date in Europe/Paris of a timestamp (``datetime`` or epoch ms)."""
    return datetime.fromtimestamp(millis(value) / 1000, tz=PARIS).date().isoformat()


def contributions(datum: Mapping[str, Any]) -> Contribution:
    """What a PassportSnapshot (v1 or v2 datum) adds to the counters."""
    out: Counter[Key] = Counter()
    state = str(datum["state"])
    if state == AWAITING_STATE:
        out[NATIONAL, ALL, AWAITING] += 1
    else:
        places = ((NATIONAL, ALL), (REGION, str(datum["region"])),
                  (DEPARTEMENT, str(datum["departement"])))
        for dimension, key in places:
            out[dimension, key, ENROLLED] += 1
            if state == ISSUED_STATE:
                out[dimension, key, ISSUED] += 1
        issued_at = datum.get("passport_issued_at")
        if state == ISSUED_STATE and issued_at is not None:
            out[ISSUED_DAY, paris_day(issued_at), ISSUED] += 1
    for module_id in modules_of(datum):
        out[MODULE, module_id, BUSINESSES] += 1
    seen: set[str] = set()
    for entry in datum.get("feedback") or ():
        event_id, score = str(entry["event_id"]), entry["score"]
        if event_id in seen or not isinstance(score, int) or not MIN_SCORE <= score <= MAX_SCORE:
            continue
        seen.add(event_id)
        targets = ((FEEDBACK_MODULE, entry["module_id"]),
                   (FEEDBACK_TRAINER, entry.get("trainer_org")),
                   (FEEDBACK_DELEGATION, entry.get("delegation")))
        for dimension, key in targets:
            if key:
                out[dimension, str(key), SCORE_SUM] += score
                out[dimension, str(key), RESPONSES] += 1
    return dict(out)


def lead_contributions(view: Mapping[str, Any]) -> Contribution:
    """What a lead's latest view adds to the counters: one lead in its status.

    Replaced like a passport's contribution when the lead changes, so the
    counters hold the leads by their status now.
    """
    return {(LEAD_STATUS, str(view["status"]), LEADS): 1}


def lead_change_counts(datum: Mapping[str, Any]) -> Contribution:
    """What one applied lead change adds for good: its kind, an SLA breach, a rejection's reason.

    These count changes, not leads: they only ever add up. Each change is applied
    once (its event id and its version are checked first), so a rebuild from the
    topic arrives at the same figures.
    """
    out: Counter[Key] = Counter()
    kind = str(datum.get("change", "assigned"))
    out[LEAD_CHANGE, kind, CHANGES] += 1
    if datum.get("sla_breached"):
        out[LEAD_CHANGE, ALL, SLA_BREACHES] += 1
    if kind == "rejected" and datum.get("reason"):
        out[LEAD_REJECTION, str(datum["reason"]), CHANGES] += 1
    return dict(out)


def reseller_change_counts(datum: Mapping[str, Any],
                           previous: Mapping[str, Any] | None) -> Contribution:
    """What one applied lead change adds for good to the reseller it concerns.

    ``previous`` is the lead's view before the change (``views.lead``; None for a
    first change). An acceptance or a rejection is the answer of the holder (a
    rejection names it in ``previous_reseller_id``, having taken the lead from it);
    when the lead was ``assigned``, it was due by the deadline the view holds, so
    the answer counts as on time or late against it. (A queued lead has no
    deadline: its answer counts under its kind only.) An expiry counts for the
    holder that let the deadline pass; won and lost for the holder that closed.
    Counted once per change, as ``lead_change_counts``: a rebuild arrives at the
    same figures.
    """
    kind = str(datum.get("change", "assigned"))
    holder, before = datum.get("reseller_id"), datum.get("previous_reseller_id")
    out: Counter[Key] = Counter()
    if kind == "expired" and before:
        out[RESELLER, str(before), EXPIRED] += 1
    elif kind in RESELLER_CHANGES and (before or holder):
        who = str(before or holder)
        out[RESELLER, who, kind] += 1
        if kind in ("accepted", "rejected") and previous and previous["status"] == "assigned":
            deadline = previous.get("deadline_at")
            due = None if deadline is None else millis(datetime.fromisoformat(str(deadline)))
            late = due is not None and millis(datum["occurred_at"]) > due
            out[RESELLER, who, LATE if late else ON_TIME] += 1
    return dict(out)


def modules_of(datum: Mapping[str, Any]) -> list[str]:
    """The distinct modules a snapshot says were completed, in completion order.

    v2 carries them twice (``modules_completed`` and ``modules`` with times); a
    v1 snapshot resolved to v2 has only the first: either is enough.
    """
    ids = [str(m) for m in datum.get("modules_completed") or ()]
    ids += [str(m["module_id"]) for m in datum.get("modules") or ()]
    return list(dict.fromkeys(ids))


def change(old: Mapping[Key, int], new: Mapping[Key, int]) -> Contribution:
    """What to add to the counters when ``new`` replaces ``old`` (zeros left out)."""
    out: Counter[Key] = Counter(new)
    out.subtract(old)
    return {key: amount for key, amount in out.items() if amount}


def total(contributions_: Iterable[Mapping[Key, int]]) -> Contribution:
    """The counters of a set of contributions (what a rebuild arrives at)."""
    out: Counter[Key] = Counter()
    for contribution in contributions_:
        out.update(contribution)
    return {key: amount for key, amount in out.items() if amount}


def dumps(contribution: Mapping[Key, int]) -> str:
    """A contribution as compact JSON (stored beside the snapshot it came from)."""
    return json.dumps(sorted([*key, amount] for key, amount in contribution.items()),
                      separators=(",", ":"), ensure_ascii=False)


def loads(text: str | None) -> Contribution:
    """The inverse of ``dumps``; ``None`` (no previous snapshot) is no contribution."""
    if not text:
        return {}
    return {(str(d), str(k), str(m)): int(v) for d, k, m, v in json.loads(text)}
