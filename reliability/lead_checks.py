"""The checks of the leads (pure): each placed once, decided once per version, only where
the rules allow, capacity never overbooked, every acknowledged answer applied
(docs/routing.md states the promises; reliability/checks.py runs these with the others).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from reliability.oracle import Expected
from reliability.plan import Plan
from reliability.results import Change, Observed
from reliability.verdict import Check
from schemas.reference import departements_of

#: The statuses in which a lead is held by a reseller.
OPEN = frozenset({"assigned", "accepted", "queued"})


def _lead_of_offer(run: Observed) -> dict[str, str]:
    """Offer event id → the lead id its passport names."""
    out: dict[str, str] = {}
    for view in run.passports.values():
        for offer in (view or {}).get("offers") or ():
            if offer.get("lead_id"):
                out[str(offer["event_id"])] = str(offer["lead_id"])
    return out


def by_lead(changes: Iterable[Change]) -> dict[str, list[Change]]:
    out: dict[str, list[Change]] = defaultdict(list)
    for item in changes:
        out[item.lead_id].append(item)
    return out


def distinct(changes: Iterable[Change]) -> list[Change]:
    """The changes with a record re-sent under its own event id read once (as readers do)."""
    seen: set[str] = set()
    out: list[Change] = []
    for item in sorted(changes, key=lambda c: c.offset):
        if item.event_id not in seen:
            seen.add(item.event_id)
            out.append(item)
    return out


def leads(plan: Plan, expected: Expected, run: Observed) -> list[Check]:
    lost = Check("every lead placed, every version of it on pn.leads.v1", "lost")
    doubled = Check("each lead requested once, each version decided once", "doubled")
    forbidden = Check("no lead the rules forbid, none left open after a withdrawal",
                      "let through")
    offers = _lead_of_offer(run)
    leads = by_lead(run.changes)
    wanted = {offers.get(offer_id, f"(offer {offer_id})"): lead
              for offer_id, lead in expected.leads.items()}
    for lead_id, want in sorted(wanted.items()):
        own = distinct(leads.get(lead_id, ()))
        lost.look(bool(own), f"lead of offer {want.offer_id} never placed")
        if not own:
            continue
        first = own[0].change
        if want.duplicate:
            doubled.look(first == "duplicate", f"{lead_id}: {first}, a duplicate expected")
        else:
            lost.look(first != "duplicate", f"{lead_id}: a duplicate, a placement expected")
        last = max(own, key=lambda c: c.version)
        lost.look(last.status not in ("rejected", "expired"), f"{lead_id}: left {last.status}")
        if want.withdrawn is not None:
            forbidden.look(last.status not in OPEN, f"{lead_id}: still {last.status} after "
                           f"{want.withdrawn}")
            forbidden.look(not last.has_contact, f"{lead_id}: contact kept after "
                           f"{want.withdrawn}")
    for lead_id in sorted(leads):
        forbidden.look(lead_id in wanted, f"{lead_id}: a lead no eligible offer asked for")
    requested: dict[str, set[str]] = defaultdict(set)
    for record, lead_id, event_id in run.lead_requests:
        if record == "LeadRequested":
            requested[lead_id].add(event_id)
    for lead_id, ids in sorted(requested.items()):
        doubled.look(len(ids) == 1, f"{lead_id}: requested under {len(ids)} event ids")
    for lead_id, own in sorted(leads.items()):
        by_version: dict[int, set[tuple[object, ...]]] = defaultdict(set)
        for item in distinct(own):
            by_version[item.version].add(item.decided())
        doubled.look(all(len(v) == 1 for v in by_version.values()),
                     f"{lead_id}: versions {sorted(v for v, d in by_version.items() if len(d) > 1)}"
                     " decided twice")
        lost.look(sorted(by_version) == list(range(1, len(by_version) + 1)),
                  f"{lead_id}: versions {sorted(by_version)}")
    return [lost, doubled, forbidden, *_routing_safety(plan, run)]


def _routing_safety(plan: Plan, run: Observed) -> list[Check]:
    """The router's promises over the whole log: capacity never overbooked, a lead never
    given twice to one reseller, and only to one that may take it (docs/routing.md)."""
    check = Check("capacity never overbooked, a lead never twice to one reseller", "doubled")
    eligible = Check("a lead only to a reseller that covers it, sells it and is active",
                     "let through")
    profiles = {p.reseller_id: p for p in plan.profiles}
    holding: Counter[str] = Counter()
    holder_of: dict[str, str | None] = {}
    held: dict[str, set[str]] = defaultdict(set)
    for item in distinct(run.changes):
        before = holder_of.get(item.lead_id)
        if before is not None:
            holding[before] -= 1
        holder = item.reseller_id if item.status in OPEN else None
        holder_of[item.lead_id] = holder
        if holder is None or holder not in profiles:
            continue
        holding[holder] += 1
        profile = profiles[holder]
        check.look(holding[holder] <= profile.capacity,
                   f"{holder}: {holding[holder]} open leads, capacity {profile.capacity}")
        if item.change in ("assigned", "reassigned"):
            check.look(holder not in held[item.lead_id], f"{item.lead_id}: given to {holder} twice")
            held[item.lead_id].add(holder)
            area = set(profile.departements)
            eligible.look(profile.status == "active" and item.category in profile.categories
                          and (item.departement in area
                               or bool(area & set(departements_of(item.region)))),
                          f"{item.lead_id}: given to {holder}, who may not take it")
    return [check, eligible]


def answers(run: Observed) -> Check:
    check = Check("every answer acknowledged is applied to its lead", "lost")
    by_version = {(c.lead_id, c.version): c for c in distinct(run.changes)}
    for event_id, (lead_id, version, answer) in sorted(run.answers.items()):
        after = by_version.get((lead_id, version + 1))
        check.look(after is not None and after.change == answer,
                   f"{answer} of {lead_id} v{version} ({event_id}): "
                   f"{'nothing' if after is None else after.change} followed")
    last: dict[str, Change] = {}
    for item in distinct(run.changes):
        if item.version >= last.get(item.lead_id, item).version:
            last[item.lead_id] = item
    for lead_id, view in sorted(run.lead_views.items()):
        shown = last[lead_id]
        if shown.change == "duplicate" and shown.duplicate_of in last:
            # The id of a duplicate answers the open lead it duplicates (docs/routing.md).
            shown = last[shown.duplicate_of]
        check.look(view is not None and view.get("lead_id") == shown.lead_id
                   and view.get("version") == shown.version
                   and view.get("status") == shown.status,
                   f"{lead_id}: the API shows {None if view is None else view.get('version')}, "
                   f"the topic v{shown.version}")
    return check
