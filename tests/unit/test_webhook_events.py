"""What a CRM hears of its leads (schemas/webhooks.py), from the router's real changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import webhooks
from schemas.webhooks import LeadEvent
from services.routing import records
from services.routing.router import Answer
from services.routing.state import Change
from tests.unit.routing_kit import DAY, T0, request, reseller, router


def events(changes: list[Change]) -> list[LeadEvent]:
    return [event for change in changes
            for event in webhooks.lead_events(records.datum(change, {}))]


def kinds(found: list[LeadEvent]) -> list[tuple[str, str]]:
    return [(event.reseller_id, event.type) for event in found]


def test_the_holder_hears_of_its_lead_with_the_contact_and_the_deadline() -> None:
    (event,) = events(router(reseller("web-78")).request(request("lead-1"), T0))
    assert (event.reseller_id, event.type, event.lead_id) == ("web-78", "lead.assigned", "lead-1")
    data = event.data
    assert data["business"] == {"siren": "732829320", "name": "Boulangerie Martin",
                                "departement": "78", "region": "11",
                                "contact_email": "contact@boulangerie.example"}
    assert data["answer_by"] is not None
    assert data["answer_by"].endswith("Z")
    assert data["decision"] == {"rule": "departement", "scope": "78", "candidates": 1}
    assert data["version"] == 1
    assert data["status"] == "assigned"
    body = event.body()
    assert set(body) == {"id", "type", "timestamp", "data"}
    assert body["id"] == event.message_id
    assert body["id"].startswith("msg_")


def test_an_expiry_tells_the_old_holder_and_gives_the_new_one_the_lead() -> None:
    route = router(reseller("web-a"), reseller("web-b"))
    first = events(route.request(request("lead-1"), T0))
    holder = first[0].reseller_id
    moved = events(route.expire(T0 + 10 * DAY))
    other = "web-b" if holder == "web-a" else "web-a"
    assert kinds(moved) == [(holder, "lead.expired"), (other, "lead.assigned")]
    expired = moved[0].data
    assert "contact_email" not in expired["business"]
    assert "answer_by" not in expired
    assert "decision" not in expired


def test_answers_confirm_to_the_holder_and_a_rejection_to_the_rejecter() -> None:
    route = router(reseller("web-a"), reseller("web-b"))
    holder = events(route.request(request("lead-1"), T0))[0].reseller_id
    rejected = events(route.answer(Answer("lead-1", holder, "rejected", "budget"), T0 + 1))
    assert kinds(rejected)[0] == (holder, "lead.updated")
    assert rejected[0].data["reason"] == "budget"
    assert kinds(rejected)[1][1] == "lead.assigned"
    second = kinds(rejected)[1][0]
    accepted = events(route.answer(Answer("lead-1", second, "accepted"), T0 + 2))
    assert kinds(accepted) == [(second, "lead.updated")]
    assert "contact_email" in accepted[0].data["business"]
    won = events(route.answer(Answer("lead-1", second, "won"), T0 + 3))
    assert kinds(won) == [(second, "lead.updated")]
    assert "contact_email" not in won[0].data["business"]  # closed: no more contact


@pytest.mark.parametrize("reason", ["consent_withdrawn", "erased"])
def test_a_withdrawal_reaches_the_holder_without_the_contact(reason: str) -> None:
    route = router(reseller("web-78"))
    route.request(request("lead-1"), T0)
    (event,) = events(route.withdraw("lead-1", reason, T0 + 1))
    assert (event.reseller_id, event.type) == ("web-78", "lead.withdrawn")
    assert event.data["reason"] == reason
    assert "contact_email" not in event.data["business"]


def test_a_queued_lead_is_given_to_the_national_queue_and_a_duplicate_to_nobody() -> None:
    route = router(reseller("web-78", categories=("site-vitrine",)))
    queued = events(route.request(request("lead-1"), T0))
    assert kinds(queued) == [("cefac-national", "lead.assigned")]
    assert queued[0].data["status"] == "queued"
    assert events(route.request(request("lead-2"), T0 + 1)) == []  # duplicate of lead-1


def test_ids_are_stable_per_change_reseller_and_type_and_differ_otherwise() -> None:
    datum = records.datum(router(reseller("web-78")).request(request("lead-1"), T0)[0], {})
    again = records.datum(router(reseller("web-78")).request(request("lead-1"), T0)[0], {})
    assert webhooks.lead_events(datum)[0].message_id == webhooks.lead_events(again)[0].message_id
    ids = {webhooks.message_id(datum["event_id"], who, kind)
           for who in ("web-a", "web-b") for kind in webhooks.EVENT_TYPES}
    assert len(ids) == 2 * len(webhooks.EVENT_TYPES)


def test_v1_records_and_decoded_datetimes() -> None:
    datum: dict[str, Any] = records.datum(
        router(reseller("web-78")).request(request("lead-1"), T0)[0], {})
    assert webhooks.lead_events({**datum, "schema_version": 1}) == []
    as_datetimes = {**datum, "occurred_at": datetime.fromtimestamp(T0 / 1000, UTC)}
    assert webhooks.lead_events(as_datetimes)[0].occurred_at == T0


def test_without_contact_removes_only_the_contact() -> None:
    (event,) = events(router(reseller("web-78")).request(request("lead-1"), T0))
    scrubbed = webhooks.without_contact(event.data)
    assert "contact_email" not in scrubbed["business"]
    assert scrubbed["business"]["siren"] == "732829320"
    assert "contact_email" in event.data["business"]  # the original is untouched
    assert webhooks.without_contact(scrubbed) == scrubbed


def test_a_ping_names_its_reseller() -> None:
    ping = webhooks.ping("web-78", "6f1c2b8e-4a9d-4e1b-9c3f-2d7a5e8b1c40", T0)
    assert ping.type == "ping"
    assert ping.lead_id is None
    assert ping.body()["data"]["reseller_id"] == "web-78"
    assert webhooks.iso(T0) == "2026-03-03T09:00:00.000Z"
