"""The verdict of a run: each check compares, counts, and names its first failures (pure).

A failure is of one kind, the kinds the report sums up:

- ``lost``: something the hub acknowledged, or owed, is not in the result (an event
  answered 202 and not on its topic or not reflected, a lead never placed, an answer
  never applied, a message a CRM never got or could not verify);
- ``doubled``: something that must happen once happened twice (a lead requested under
  two ids, two different decisions for one version of a lead, a reseller over its
  capacity, a message under two webhook-ids);
- ``let through``: something the rules forbid is in the result (a lead for a business
  without passport or consent, a lead still open after its business withdrew, a contact
  e-mail where the business is gone, a key, secret or contact value in a log line, a
  metric or a dead letter's headers);
- ``diverged``: the run with kills differs from the crash-free run of the same plan.

Allowed repeats are counted, not failed: a record re-sent after a crash with its own
event id (readers drop it), a webhook delivered twice under its one id.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reliability.oracle import Expected
from reliability.plan import Plan
from reliability.results import Change, Observed
from schemas.reference import departements_of

KINDS = ("lost", "doubled", "let through", "diverged")
#: Failures named per check (the rest are counted).
EXAMPLES = 5
OPEN = frozenset({"assigned", "accepted", "queued"})
_HOLDER_TYPES = frozenset({"lead.assigned", "lead.updated"})


@dataclass
class Check:
    """One property of the result: how many things it looked at, and which failed."""

    name: str
    kind: str
    compared: int = 0
    failures: int = 0
    examples: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        self.failures += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(what)

    def look(self, ok: bool, what: str) -> None:
        """One thing compared: fine, or a failure named ``what``."""
        self.compared += 1
        if not ok:
            self.fail(what)


@dataclass
class Verdict:
    """Every check of a run, and the figures that are counted rather than failed."""

    checks: list[Check]
    figures: dict[str, int] = field(default_factory=dict)

    def total(self, kind: str) -> int:
        return sum(c.failures for c in self.checks if c.kind == kind)

    @property
    def ok(self) -> bool:
        return all(c.failures == 0 for c in self.checks)


def verify(plan: Plan, expected: Expected, run: Observed,
           reference: Observed | None = None) -> Verdict:
    """All the checks of ``run`` (against ``reference`` too, when there is one)."""
    checks = [_on_topics(run), _refused(run), *_passports(expected, run), _read_model(run),
              *_leads(plan, expected, run), _answers(run), *_deliveries(run), _leaked(run)]
    if reference is not None:
        checks.extend(_against(reference, run))
    return Verdict(checks, _figures(run))


# -- ingest ----------------------------------------------------------------------------------


def _on_topics(run: Observed) -> Check:
    check = Check("every event answered 202 is on its input topic", "lost")
    on_topics: set[str] = set()
    for counts in run.inputs.values():
        on_topics.update(counts)
    for event_id, record in sorted(run.accepted.items()):
        check.look(event_id in on_topics, f"{record} {event_id}")
    return check


def _refused(run: Observed) -> Check:
    check = Check("no valid event refused, no partner giving up", "lost")
    check.compared = len(run.accepted) + len(run.refused)
    for what in run.refused:
        check.fail(what)
    for note in run.notes:
        if "not accepted within" in note:
            check.fail(note)
    return check


# -- passports -------------------------------------------------------------------------------


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat(timespec="milliseconds")


def _passports(expected: Expected, run: Observed) -> list[Check]:
    lost = Check("every business's passport holds what was sent (oracle)", "lost")
    forbidden = Check("no passport, lead or consent the rules forbid (oracle)", "let through")
    doubled = Check("no feedback counted twice (oracle)", "doubled")
    for siren, want in sorted(expected.businesses.items()):
        got = run.passports.get(siren)
        lost.look(got is not None, f"{siren}: no passport")
        if got is None:
            continue
        modules = set(got.get("modules_completed") or ())
        lost.look(want.modules <= modules, f"{siren}: modules {sorted(want.modules - modules)} "
                  "missing")
        forbidden.look(modules <= want.modules, f"{siren}: modules {sorted(modules - want.modules)}"
                       " never completed")
        issued = got.get("passport_issued_at")
        if want.issued_at is None:
            forbidden.look(issued is None, f"{siren}: passport issued without 3 modules")
        else:
            lost.look(issued == _iso(want.issued_at),
                      f"{siren}: issued {issued}, expected {_iso(want.issued_at)}")
        feedback = len(got.get("feedback") or ())
        lost.look(feedback >= want.feedback, f"{siren}: {feedback} of {want.feedback} feedback")
        doubled.look(feedback <= want.feedback,
                     f"{siren}: {feedback} feedback, {want.feedback} sent")
        outcomes = {o["event_id"]: o["outcome"] for o in got.get("offers") or ()}
        for offer_id, outcome in want.offers.items():
            found = outcomes.get(offer_id)
            lost.look(found is not None, f"{siren}: offer {offer_id} missing")
            if found is None:
                continue
            if outcome == "lead_requested":
                lost.look(found == outcome, f"{siren}: offer {offer_id} {found}, not a lead")
            else:
                forbidden.look(found == outcome, f"{siren}: offer {offer_id} {found}, "
                               f"expected {outcome}")
        forbidden.look(set(outcomes) <= set(want.offers), f"{siren}: offers never sent")
        lost.look(bool(got.get("consent_withdrawn")) >= want.consent_withdrawn,
                  f"{siren}: withdrawal not applied")
        lost.look(bool(got.get("erased")) >= want.erased, f"{siren}: erasure not applied")
        forbidden.look(not (got.get("consent") and not want.consent),
                       f"{siren}: consent shown after it was withdrawn")
        if want.erased:
            forbidden.look(not run.erased_contact.get(siren, False),
                           f"{siren}: contact e-mail kept after the erasure")
    return [lost, forbidden, doubled]


def _read_model(run: Observed) -> Check:
    check = Check("the read model shows the last passport on the topic", "lost")
    for siren, view in sorted(run.snapshots.items()):
        if siren in run.passports:
            check.look(run.passports[siren] == view, f"{siren}: the API shows an older state")
    return check


# -- leads -----------------------------------------------------------------------------------


def _lead_of_offer(run: Observed) -> dict[str, str]:
    """Offer event id → the lead id its passport names."""
    out: dict[str, str] = {}
    for view in run.passports.values():
        for offer in (view or {}).get("offers") or ():
            if offer.get("lead_id"):
                out[str(offer["event_id"])] = str(offer["lead_id"])
    return out


def _by_lead(changes: Iterable[Change]) -> dict[str, list[Change]]:
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


def _leads(plan: Plan, expected: Expected, run: Observed) -> list[Check]:
    lost = Check("every lead placed, every version of it on pn.leads.v1", "lost")
    doubled = Check("each lead requested once, each version decided once", "doubled")
    forbidden = Check("no lead the rules forbid, none left open after a withdrawal",
                      "let through")
    offers = _lead_of_offer(run)
    leads = _by_lead(run.changes)
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


def _answers(run: Observed) -> Check:
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


# -- deliveries ------------------------------------------------------------------------------


def _deliveries(run: Observed) -> list[Check]:
    lost = Check("every lead event reached its CRM at least once, signed", "lost")
    doubled = Check("each message under one webhook-id", "doubled")
    forbidden = Check("no contact e-mail once a lead is closed; nothing unexpected delivered",
                      "let through")
    wanted = {item.message for item in run.feed}
    got: dict[tuple[str, str | None, int | None, str], set[str]] = defaultdict(set)
    for delivery in run.deliveries:
        got[delivery.message].add(delivery.webhook_id)
        lost.look(delivery.verified is not False,
                  f"{delivery.webhook_id} to {delivery.reseller_id}: signature did not verify")
        forbidden.look(not (delivery.has_contact and (delivery.type not in _HOLDER_TYPES
                                                      or delivery.status not in OPEN)),
                       f"{delivery.webhook_id}: a contact e-mail in a {delivery.type} "
                       f"({delivery.status})")
    for message in sorted(wanted, key=str):
        lost.look(message in got, f"{message}: never delivered")
    for message, ids in sorted(got.items(), key=lambda kv: str(kv[0])):
        doubled.look(len(ids) == 1, f"{message}: under {len(ids)} webhook-ids")
        forbidden.look(message in wanted, f"{message}: not a lead event of a webhook reseller")
    return [lost, doubled, forbidden]


def _leaked(run: Observed) -> Check:
    """The leak scan's verdict: each value injected is compared; a failure per occurrence,
    and per surface that could not be read (a scan that did not look is no pass)."""
    check = Check("no key, secret or contact value in a log line, metric or dead-letter "
                  "header", "let through")
    findings = run.leaks
    check.compared = sum(findings.injected.values())
    for leak in findings.leaks:
        check.fail(f"{leak.kind} ({leak.form}) in {leak.place}: {leak.where}")
    check.failures += findings.total - len(findings.leaks)
    for what in findings.unscanned:
        check.fail(f"not scanned: {what}")
    if any(d.has_contact for d in run.deliveries):
        check.look(findings.control > 0, "blind: the contact e-mails the CRMs received were "
                   "not found in what they received")
    return check


# -- against the crash-free run --------------------------------------------------------------


def _against(reference: Observed, run: Observed) -> list[Check]:
    passports = Check("passports equal the crash-free run's", "diverged")
    for siren, view in sorted(reference.passports.items()):
        passports.look(run.passports.get(siren) == view, f"{siren} differs")
    leads = Check("every lead's decisions equal the crash-free run's", "diverged")
    ours, theirs = _by_lead(run.changes), _by_lead(reference.changes)
    for lead_id in sorted(set(ours) | set(theirs)):
        mine = [c.decided() for c in distinct(ours.get(lead_id, ()))]
        base = [c.decided() for c in distinct(theirs.get(lead_id, ()))]
        leads.look(mine == base, f"{lead_id}: {_first_difference(mine, base)}")
    deliveries = Check("the CRMs got the crash-free run's messages", "diverged")
    mine_d = {d.message for d in run.deliveries}
    for message in sorted({d.message for d in reference.deliveries} | mine_d, key=str):
        deliveries.look(message in mine_d and message in {d.message for d in reference.deliveries},
                        f"{message}: in one run only")
    return [passports, leads, deliveries]


def _first_difference(mine: list[tuple[object, ...]], base: list[tuple[object, ...]]) -> str:
    for index, (a, b) in enumerate(zip(mine, base, strict=False)):
        if a != b:
            return f"change {index + 1}: {a[1:4]} against {b[1:4]}"
    return f"{len(mine)} changes against {len(base)}"


# -- figures ---------------------------------------------------------------------------------


def _figures(run: Observed) -> dict[str, int]:
    """What is counted, not failed: the allowed repeats and the traffic."""
    records = Counter(c.event_id for c in run.changes)
    requests = Counter(event_id for _, _, event_id in run.lead_requests)
    per_message = Counter(d.message for d in run.deliveries)
    return {
        "events acknowledged": len(run.accepted),
        "by HTTP": run.channels.get("api", 0), "by dropped file": run.channels.get("file", 0),
        "retries by partners": run.retries,
        "connections refused or cut": run.http.get("connection", 0),
        "503 answers": run.http.get("503", 0),
        "429 answers (rate limit)": run.http.get("429", 0),
        "other 5xx answers": sum(n for s, n in run.http.items() if s.startswith("5")
                                 and s != "503"),
        "input records written twice (same id)": sum(
            n - 1 for counts in run.inputs.values() for n in counts.values() if n > 1),
        "passport snapshots": run.snapshot_records,
        "leads": len({c.lead_id for c in run.changes}),
        "lead changes": len(distinct(run.changes)),
        "lead records re-sent (same id)": sum(n - 1 for n in records.values()),
        "lead requests re-sent (same id)": sum(n - 1 for n in requests.values()),
        "answers": len(run.answers),
        "webhook deliveries": len(run.deliveries),
        "webhook messages": len(per_message),
        "duplicate deliveries (allowed)": sum(n - 1 for n in per_message.values()),
        "dead letters": sum(run.dead_letters.values()),
        "processes started": sum(run.starts.values()),
        "error lines in the logs": sum(len(lines) for lines in run.errors.values()),
    }
