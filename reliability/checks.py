"""The verdict of a run: each check compares, counts, and names its first failures (pure).

The kinds of failure are ``reliability.verdict``'s; the leads' checks are in
``reliability.lead_checks``. Allowed repeats are counted, not failed: a record re-sent
after a crash with its own event id (readers drop it), a webhook delivered twice under
its one id.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime

from reliability.lead_checks import OPEN, answers, by_lead, distinct, leads
from reliability.oracle import Expected
from reliability.plan import Plan
from reliability.results import Observed
from reliability.verdict import Check, Verdict

_HOLDER_TYPES = frozenset({"lead.assigned", "lead.updated"})


def verify(plan: Plan, expected: Expected, run: Observed,
           reference: Observed | None = None) -> Verdict:
    """All the checks of ``run`` (against ``reference`` too, when there is one)."""
    checks = [_on_topics(run), _refused(run), *_passports(expected, run), _read_model(run),
              *leads(plan, expected, run), answers(run), *_deliveries(run), _leaked(run)]
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
    ours, theirs = by_lead(run.changes), by_lead(reference.changes)
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
