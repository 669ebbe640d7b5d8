"""Erasure in the pure router: every lead of the business ends without its contact, in the
router's state, in the change it emits and in a restore's fold of that change."""

from __future__ import annotations

import dataclasses

from schemas.codec import Codec
from schemas.webhooks import lead_events
from services.routing import records
from services.routing.router import Answer, Router
from services.routing.state import Lead, RouterState
from tests.unit.routing_kit import T0, fold, request, reseller, router

EMAIL = "contact@boulangerie.example"


def _legacy(lead_id: str) -> Lead:
    """A lead folded from a LeadAssigned v1 record: "unassigned", closed, with the contact."""
    return Lead(lead_id, "732829320", "e-commerce", "78", "11", "Boulangerie Martin", EMAIL, T0,
                status="unassigned", holder=None, version=1)


def test_an_unplaced_lead_is_withdrawn_and_never_placed_again_with_the_contact() -> None:
    live = router(reseller("a"), reseller("b"))
    changes = live.request(request("L1"), T0)
    changes += live.answer(Answer("L1", "a", "rejected", "budget"), T0 + 1)
    # A restore read the topic up to the rejection: the reassignment never got there.
    state = fold(changes[:2])
    assert state.unplaced == {"L1"}
    restored = Router(live.registry, state)
    [withdrawn] = restored.withdraw("L1", "erased", T0 + 2)
    assert (withdrawn.kind, withdrawn.lead.status, withdrawn.lead.contact_email) == (
        "withdrawn", "withdrawn", None)
    assert restored.state.unplaced == set()
    assert restored.resume(T0 + 3) == []  # not handed to "b" with the e-mail
    assert restored.state.leads["L1"].contact_email is None


def test_a_consent_withdrawal_also_stops_an_unplaced_lead() -> None:
    live = router(reseller("a"), reseller("b"))
    changes = live.request(request("L1"), T0)
    changes += live.answer(Answer("L1", "a", "rejected", "budget"), T0 + 1)
    restored = Router(live.registry, fold(changes[:2]))
    assert [c.kind for c in restored.withdraw("L1", "consent_withdrawn", T0 + 2)] == [
        "withdrawn"]
    assert restored.resume(T0 + 3) == []


def test_an_erasure_drops_the_contact_a_closed_lead_still_carries() -> None:
    state = RouterState()
    state.load([_legacy("OLD")], {})
    r = Router(router(reseller("a")).registry, state)
    assert r.withdraw("OLD", "consent_withdrawn", T0) == []  # a closed lead stays closed
    [erased] = r.withdraw("OLD", "erased", T0)
    lead = erased.lead
    assert (erased.kind, erased.reason, erased.previous) == ("erased", "erased", None)
    assert (lead.status, lead.version, lead.contact_email) == ("unassigned", 2, None)
    assert dataclasses.replace(lead, version=1, contact_email=EMAIL) == _legacy("OLD")
    assert r.state.leads["OLD"].contact_email is None
    assert r.withdraw("OLD", "erased", T0 + 1) == []  # nothing left to drop
    # On the topic: a record without the contact, that tells no CRM anything, and that a
    # restore folds into the same lead.
    codec = Codec.default()
    datum = codec.decode(codec.encode("LeadAssigned", records.datum(erased, {})),
                         millis=True).datum
    assert datum["contact_email"] is None
    assert lead_events(datum) == []
    assert fold([erased]).leads["OLD"] == lead


def test_a_closed_lead_without_a_contact_gets_no_change() -> None:
    r = router(reseller("a"))
    r.request(request("L1"), T0)
    r.answer(Answer("L1", "a", "accepted"), T0 + 1)
    [won] = r.answer(Answer("L1", "a", "won"), T0 + 2)
    assert won.lead.contact_email is None
    assert r.withdraw("L1", "erased", T0 + 3) == []


def test_after_an_erasure_no_lead_of_the_business_keeps_its_contact_in_a_fold() -> None:
    r = router(reseller("a", capacity=1), reseller("b", capacity=1))
    changes = r.request(request("L1"), T0)
    changes += r.request(request("L2", category="website-hosting"), T0)  # queued: nobody
    changes += r.answer(Answer("L1", "a", "accepted"), T0 + 1)
    for lead_id in ("L1", "L2"):
        changes += r.withdraw(lead_id, "erased", T0 + 2)
    restored = fold(changes)
    assert {i: lead.contact_email for i, lead in restored.leads.items()} == {
        "L1": None, "L2": None}
    assert {i: lead.status for i, lead in restored.leads.items()} == {
        "L1": "withdrawn", "L2": "withdrawn"}
