"""The passport's other events: attendance, feedback, consent withdrawal, erasure (pure)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from services.passport import events, persist, rules
from services.passport.rules import Passport
from tests.unit.test_passport_rules import SIREN, THREE, Item, _base, enrolled, offer, run


def attended(module_id: str, minutes: int) -> Item:
    return "TrainingSessionAttended", {**_base(minutes, None), "session_id": "s-1",
                                       "module_id": module_id, "trainer_org": None,
                                       "attended": True}


def feedback(module_id: str, minutes: int, score: int) -> Item:
    return "TrainingFeedback", {**_base(minutes, None), "module_id": module_id,
                                "trainer_org": "Google", "delegation": None, "score": score,
                                "comment": None}


def withdrawn(minutes: int) -> Item:
    return "ConsentWithdrawn", {**_base(minutes, None), "reason": None}


def erasure(minutes: int) -> Item:
    return "ErasureRequested", {**_base(minutes, None), "requested_by": "cefac-78"}


def test_attendance_without_completion_earns_nothing() -> None:
    passport, _ = run(enrolled(), *(attended(m, 10 + i) for i, m in enumerate(
        ("website-create", "website-traffic", "email-pro"))))
    assert passport.status == "enrolled"
    assert passport.modules == {}
    assert len(passport.applied) == 4


def test_feedback_is_applied_once_and_changes_no_module() -> None:
    item = feedback("website-create", 5, 4)
    passport, _ = run(enrolled(), item, item)
    assert passport.modules == {}
    assert len(passport.applied) == 2


def test_withdrawn_consent_stops_leads_even_after_a_later_enrolment() -> None:
    passport, leads = run(enrolled(), *THREE, withdrawn(40), enrolled(45), offer(50))
    assert leads == []
    assert passport.offers[-1].decision == "no_consent"
    assert passport.profile is not None
    assert passport.profile.consent is False


def test_erasure_drops_contact_data_and_keeps_the_counts() -> None:
    passport, leads = run(enrolled(), *THREE, offer(40), erasure(50), enrolled(55), offer(60))
    assert passport.profile is not None
    assert passport.profile.contact_email is None
    assert passport.status == "passport_issued"
    assert passport.offer_requests == 2
    # The lead of before stays; after an erasure there is no contact to pass on: no lead.
    assert [lead.contact_email for lead in leads] == ["contact@boulangerie.example"]
    assert [o.decision for o in passport.offers] == ["lead_requested", "no_consent"]


def test_events_before_enrolment_are_parked_whatever_their_kind() -> None:
    passport, _ = run(withdrawn(1), attended("website-create", 2))
    assert len(passport.parked) == 2
    passport, leads = run(enrolled(5), *THREE, offer(40), passport=passport)
    assert leads == []
    assert passport.parked == ()


def test_the_new_flags_survive_the_store_and_old_states_load() -> None:
    passport, _ = run(enrolled(), withdrawn(1), erasure(2))
    stored: dict[str, Any] = persist.dump(passport)
    assert persist.load(stored) == passport
    del stored["consent_withdrawn"], stored["erased"]
    assert persist.load(stored).consent_withdrawn is False


def test_every_record_of_the_input_topics_parses() -> None:
    for record, datum in (attended("email-pro", 1), feedback("email-pro", 1, 5), withdrawn(1),
                          erasure(1), enrolled(), offer(1)):
        assert events.parse(record, datum).siren == Passport("732829320").siren
    for topic, records in events.EXPECTED.items():
        assert records, topic


def _withdrawals(*items: Item) -> list[rules.Withdrawal]:
    state, out = Passport(SIREN), []
    for record, datum in items:
        outcome = rules.apply(state, events.parse(record, datum), datum)
        state = outcome.passport
        out.extend(outcome.withdrawals)
    return out


@pytest.mark.parametrize(("ending", "reason"), [(withdrawn, "consent_withdrawn"),
                                                (erasure, "erased")])
def test_a_withdrawal_or_an_erasure_withdraws_every_requested_lead_once(
        ending: Callable[[int], Item], reason: str) -> None:
    first, second = offer(40, category="e-commerce"), offer(41, category="security")
    _, leads = run(enrolled(), *THREE, first, second, offer(5))  # the last: no passport yet
    gone = _withdrawals(enrolled(), *THREE, first, second, offer(5), ending(50))
    assert [g.lead_id for g in gone] == [lead.lead_id for lead in leads]
    assert len(gone) == 2
    assert {g.reason for g in gone} == {reason}
    assert len({g.event_id for g in gone}) == 2  # derived from the cause and the lead
    again = _withdrawals(enrolled(), *THREE, first, second, offer(5), ending(50))
    assert [g.event_id for g in again] != [g.event_id for g in gone]  # another cause
    end = ending(50)
    assert _withdrawals(enrolled(), *THREE, first, end, end) == _withdrawals(
        enrolled(), *THREE, first, end)  # the same event twice withdraws once


def test_no_lead_no_withdrawal() -> None:
    assert _withdrawals(enrolled(), *THREE, withdrawn(50)) == []
