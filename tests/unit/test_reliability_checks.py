"""The campaign's checks on hand-made results: a clean run passes, and each way a hub can
lose, double or let something through is caught (reliability/checks.py)."""

from __future__ import annotations

import dataclasses
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from reliability import checks, oracle
from reliability.campaign import _keep, merge
from reliability.lead_checks import OPEN
from reliability.leaks import Findings, Scanner, Secret, Text
from reliability.oracle import Expected
from reliability.plan import Plan, Post
from reliability.results import Change, FeedItem, Observed, Received
from reliability.verdict import KINDS, Check, Verdict
from schemas.models import BusinessEnrolled, ModuleCompleted, OfferRequested, ResellerProfile

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
A, B = "732829320", "552100554"
MODULES = ("website-create", "website-traffic", "website-performance")
LEAD = "lead-1"
EMAIL = "contact@boulangerie-martin.fr"


def _uuid(n: int) -> UUID:
    return UUID(int=n, version=4)


def _plan() -> Plan:
    profiles = tuple(ResellerProfile(
        event_id=_uuid(90 + i), occurred_at=NOW, source="ops", reseller_id=name, name="Web 35",
        departements=("35",), categories=("website-hosting",), capacity=capacity)
        for i, (name, capacity) in enumerate((("r1", 1), ("r2", 5))))
    enrolments = [BusinessEnrolled(event_id=_uuid(1 + i), occurred_at=NOW - timedelta(days=9),
                                   source="cefac-35", siren=siren, name="Boulangerie",
                                   departement="35", consent_share_with_resellers=True)
                  for i, siren in enumerate((A, B))]
    modules = [ModuleCompleted(event_id=_uuid(10 + i), occurred_at=NOW - timedelta(days=5 - i),
                               source="trainer", siren=A, module_id=m)
               for i, m in enumerate(MODULES)]
    offer = OfferRequested(event_id=_uuid(20), occurred_at=NOW, source="cefac-35", siren=A,
                           category="website-hosting")
    return Plan(seed=1, now=NOW, profiles=profiles, webhooks=("r1",),
                training=(Post("api", (*enrolments, *modules)),), offers=(offer,), privacy=())


def _view(siren: str, expected: Expected, lead: str | None) -> dict[str, object]:
    want = expected.businesses[siren]
    issued = want.issued_at
    return {"siren": siren, "state": want.state, "modules_completed": sorted(want.modules),
            "passport_issued_at": None if issued is None else
            issued.isoformat(timespec="milliseconds"),
            "feedback": [], "consent": want.consent, "consent_withdrawn": False,
            "erased": False,
            "offers": [{"event_id": o, "outcome": outcome,
                        "lead_id": lead if outcome == "lead_requested" else None}
                       for o, outcome in want.offers.items()]}


def change(version: int, kind: str, status: str, reseller: str | None = "r1", *,
           lead: str = LEAD, offset: int | None = None, event: str | None = None) -> Change:
    return Change(offset=offset if offset is not None else version, event_id=event or
                  f"{lead}-v{version}", lead_id=lead, version=version, change=kind,
                  status=status, reseller_id=reseller, previous_reseller_id=None, reason=None,
                  hops=1, siren=A, category="website-hosting", departement="35", region="53",
                  duplicate_of=None, has_contact=status in OPEN,
                  decision=("departement", "35", "r1", (), ()))


def delivery(version: int, kind: str, *, webhook_id: str | None = None,
             contact: bool = False, status: str = "assigned",
             verified: bool | None = True) -> Received:
    return Received(reseller_id="r1", webhook_id=webhook_id or f"msg-{version}", type=kind,
                    lead_id=LEAD, version=version, verified=verified, has_contact=contact,
                    status=status)


@pytest.fixture
def clean() -> tuple[Plan, Expected, Observed]:
    plan = _plan()
    expected = oracle.expect(plan)
    accepted = {str(e.event_id): e.RECORD for e in plan.events()} | {"answer-1": "LeadAnswered"}
    views = {s: _view(s, expected, LEAD) for s in (A, B)}
    observed = Observed(
        accepted=accepted, channels=Counter(api=len(accepted)),
        inputs={"pn.enrolments.v1": Counter(list(accepted))},
        snapshots=dict(views), passports=dict(views),
        changes=[change(1, "assigned", "assigned"), change(2, "accepted", "accepted")],
        lead_requests=[("LeadRequested", LEAD, "request-1")],
        lead_views={LEAD: {"lead_id": LEAD, "version": 2, "status": "accepted"}},
        answers={"answer-1": (LEAD, 1, "accepted")},
        feed=[FeedItem("r1", "msg-1", "lead.assigned", LEAD, 1),
              FeedItem("r1", "msg-2", "lead.updated", LEAD, 2)],
        deliveries=[delivery(1, "lead.assigned", contact=True),
                    delivery(2, "lead.updated", status="accepted")],
        leaks=_scan('{"event": "passport.issued", "siren": "732829320"}\n'))
    return plan, expected, observed


def _scan(log: str, unscanned: tuple[str, ...] = (), received: str = EMAIL) -> Findings:
    """The leak scan of one log; ``received``: what the CRMs got (the scan's control)."""
    secrets = [Secret("API key", "q3Vx9_Lk2-ZpR8sT0mWn4yBc6dFh1jGa5eIo7uKl3Qs"),
               Secret("contact e-mail", EMAIL)]
    return Scanner(secrets).scan([Text("logs", "run/logs/api.log", log, log.count("\n"))],
                                 unscanned, control=[Text("control", "delivery", received)])


def _verdict(case: tuple[Plan, Expected, Observed],
             reference: Observed | None = None) -> Verdict:
    plan, expected, observed = case
    return checks.verify(plan, expected, observed, reference)


def _failed(verdict: Verdict) -> dict[str, int]:
    return {c.name: c.failures for c in verdict.checks if c.failures}


def test_a_clean_run_passes_every_check(clean: tuple[Plan, Expected, Observed]) -> None:
    verdict = _verdict(clean, reference=clean[2])
    assert _failed(verdict) == {}
    assert verdict.ok
    assert all(verdict.total(kind) == 0 for kind in KINDS)
    assert [c.name for c in verdict.checks if c.compared == 0] == []  # each looked at something


def test_an_acknowledged_event_missing_from_its_topic_is_lost(
        clean: tuple[Plan, Expected, Observed]) -> None:
    observed = clean[2]
    gone = str(clean[0].offers[0].event_id)
    del observed.inputs["pn.enrolments.v1"][gone]
    verdict = _verdict(clean)
    assert verdict.total("lost") == 1
    assert any(gone in e for c in verdict.checks for e in c.examples)


def test_a_passport_without_its_modules_is_lost_and_an_unearned_one_let_through(
        clean: tuple[Plan, Expected, Observed]) -> None:
    observed = clean[2]
    observed.passports[A] = {**(observed.passports[A] or {}),
                             "modules_completed": list(MODULES[:2]), "passport_issued_at": None}
    observed.passports[B] = {**(observed.passports[B] or {}),
                             "passport_issued_at": NOW.isoformat(timespec="milliseconds")}
    verdict = _verdict(clean)
    assert verdict.total("lost") >= 2  # a module missing, the issue date wrong
    assert verdict.total("let through") == 1


def test_a_version_decided_twice_is_doubled_and_a_record_resent_is_only_counted(
        clean: tuple[Plan, Expected, Observed]) -> None:
    observed = clean[2]
    observed.changes.append(dataclasses.replace(observed.changes[1], offset=7))  # same id
    assert _verdict(clean).ok
    assert _verdict(clean).figures["lead records re-sent (same id)"] == 1
    observed.changes.append(dataclasses.replace(
        observed.changes[1], offset=8, event_id="another", reseller_id="r2"))
    verdict = _verdict(clean)
    assert verdict.total("doubled") >= 1
    assert "each lead requested once, each version decided once" in _failed(verdict)


def test_a_lead_requested_under_two_ids_is_doubled(
        clean: tuple[Plan, Expected, Observed]) -> None:
    clean[2].lead_requests.append(("LeadRequested", LEAD, "request-2"))
    assert _verdict(clean).total("doubled") == 1


def test_a_missing_version_is_lost(clean: tuple[Plan, Expected, Observed]) -> None:
    observed = clean[2]
    observed.changes.append(change(4, "won", "won"))
    observed.lead_views[LEAD] = {"lead_id": LEAD, "version": 4, "status": "won"}
    assert "every lead placed, every version of it on pn.leads.v1" in _failed(_verdict(clean))


def test_capacity_overbooked_is_doubled(clean: tuple[Plan, Expected, Observed]) -> None:
    observed = clean[2]
    # r1 takes one lead at a time: a second one while the first is accepted (open) overbooks.
    observed.changes.append(change(1, "assigned", "assigned", lead="lead-2", offset=5))
    verdict = _verdict(clean)
    assert "capacity never overbooked, a lead never twice to one reseller" in _failed(verdict)
    assert verdict.total("let through") >= 1  # nobody asked for lead-2 either


def test_a_lead_given_to_a_reseller_that_does_not_cover_it_is_let_through(
        clean: tuple[Plan, Expected, Observed]) -> None:
    observed = clean[2]
    observed.changes[0] = dataclasses.replace(observed.changes[0], departement="13",
                                              region="93")
    assert "a lead only to a reseller that covers it, sells it and is active" in _failed(
        _verdict(clean))


def test_an_answer_not_applied_is_lost(clean: tuple[Plan, Expected, Observed]) -> None:
    clean[2].answers["answer-2"] = (LEAD, 2, "won")
    assert _failed(_verdict(clean)) == {"every answer acknowledged is applied to its lead": 1}


def test_deliveries_lost_doubled_and_leaked(clean: tuple[Plan, Expected, Observed]) -> None:
    observed = clean[2]
    observed.deliveries.append(delivery(1, "lead.assigned", contact=True))  # same id again
    assert _verdict(clean).ok
    assert _verdict(clean).figures["duplicate deliveries (allowed)"] == 1
    observed.deliveries.append(delivery(1, "lead.assigned", webhook_id="msg-other"))
    observed.deliveries.append(delivery(3, "lead.withdrawn", contact=True, status="withdrawn"))
    observed.deliveries.append(delivery(2, "lead.updated", webhook_id="msg-2", verified=False,
                                        status="accepted"))
    verdict = _verdict(clean)
    assert verdict.total("doubled") == 1  # msg-1 under two ids
    assert verdict.total("let through") == 2  # the e-mail in a withdrawal; unknown message
    assert verdict.total("lost") == 1  # a signature that does not verify
    observed.deliveries[:] = observed.deliveries[:1]
    assert "every lead event reached its CRM at least once, signed" in _failed(_verdict(clean))


def test_a_secret_or_contact_in_the_logs_is_let_through(
        clean: tuple[Plan, Expected, Observed]) -> None:
    name = "no key, secret or contact value in a log line, metric or dead-letter header"
    clean[2].leaks = _scan(f'{{"event": "ok"}}\n{{"event": "x", "to": "{EMAIL.upper()}"}}\n')
    verdict = _verdict(clean)
    assert _failed(verdict) == {name: 1}
    assert verdict.total("let through") == 1
    failing = next(c for c in verdict.checks if c.name == name)
    assert failing.compared == 3  # the two values looked for, and the control
    assert failing.examples == ["contact e-mail (as sent, other case) in logs: "
                                "run/logs/api.log:2"]
    clean[2].leaks = _scan("", unscanned=("api /metrics: ConnectError",))
    assert _failed(_verdict(clean)) == {name: 1}  # a scan that could not look is no pass
    # A scan that does not find the e-mails where they belong would not see them anywhere.
    clean[2].leaks = _scan("", received='{"business": {"contact_email": "someone@else.fr"}}')
    assert _failed(_verdict(clean)) == {name: 1}


def test_a_run_that_decides_otherwise_than_the_reference_diverged(
        clean: tuple[Plan, Expected, Observed]) -> None:
    reference = dataclasses.replace(clean[2], changes=[
        change(1, "assigned", "assigned", "r2"), change(2, "accepted", "accepted", "r2")])
    verdict = _verdict(clean, reference)
    assert verdict.total("diverged") == 1
    assert verdict.total("lost") == verdict.total("doubled") == 0


def test_merged_rounds_add_up() -> None:
    one = Verdict([Check("c", "lost", 3, 1, ["x"])], {"leads": 2})
    two = Verdict([Check("c", "lost", 4, 2, ["y", "z"])], {"leads": 5})
    merged = merge([one, two])
    assert (merged.checks[0].compared, merged.checks[0].failures) == (7, 3)
    assert merged.checks[0].examples == ["x", "y", "z"]
    assert merged.figures == {"leads": 7}


def test_a_failed_campaign_s_runs_are_kept_whole(tmp_path: Path) -> None:
    (tmp_path / "20261210-kills" / "logs").mkdir(parents=True)
    (tmp_path / "20261210-kills" / "logs" / "passport.log").write_text("a line\n")
    kept = _keep(tmp_path)
    try:
        assert kept != tmp_path
        assert (kept / "20261210-kills" / "logs" / "passport.log").read_text() == "a line\n"
    finally:
        shutil.rmtree(kept)
