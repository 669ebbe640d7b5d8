"""The read model's feed, endpoints, deliveries and tokens against a real broker, and a rebuild."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.config import Settings
from schemas import catalog
from schemas.webhooks import lead_events
from services.readmodel import ReadModel
from services.readmodel.consistency import Token
from services.routing import records
from services.routing.router import Answer
from tests.integration.test_readmodel import SIREN, passport_datum, produce, wait_for
from tests.unit.test_readmodel_leads import HOLDER, HOUR, NOW, request, router

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

URL = "https://crm.yvelines-web.example/hooks/passport"


def lead_changes() -> list[dict[str, Any]]:
    """L1 placed with HOLDER, rejected and passed on; L2 placed: LeadAssigned v2 datums."""
    r = router()
    changes = r.request(request("L1"), NOW)
    changes += r.answer(Answer("L1", HOLDER, "rejected", "budget"), NOW + HOUR)
    changes += r.request(request("L2", "552100554"), NOW + 2 * HOUR)
    return [records.datum(change, {f"{catalog.LEAD_RESPONSES}/0": n + 1})
            for n, change in enumerate(changes)]


def endpoint(version: int) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": NOW, "source": "crm_webhook",
            "reseller_id": HOLDER, "url": URL, "enabled": True, "disabled_reason": None,
            "failing_since": None, "version": version,
            "secrets": [{"fingerprint": f"{version:012x}", "created_at": NOW,
                         "expires_at": None}]}


def attempt(message_id: str, n: int, outcome: str) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": NOW + n, "source": "crm_webhook",
            "reseller_id": HOLDER, "message_id": message_id, "type": "lead.assigned",
            "lead_id": "L1", "attempt": n, "url": URL, "outcome": outcome,
            "http_status": 200 if outcome == "delivered" else 503, "latency_ms": 40,
            "error": None, "next_attempt_at": None, "replay": False}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "readmodel.sqlite"


@pytest.fixture
def model(topics: Settings, path: Path) -> Iterator[ReadModel]:
    model = ReadModel(topics, path, poll_timeout_ms=100)
    yield model
    model.stop()


def test_feed_endpoints_and_deliveries_and_a_rebuild_resumes_the_cursors(
        topics: Settings, model: ReadModel, path: Path) -> None:
    changes = lead_changes()
    produce(topics, catalog.LEADS, "LeadAssigned", "lead_id", changes)
    produce(topics, catalog.WEBHOOK_ENDPOINTS, "WebhookEndpoint", "reseller_id",
            [endpoint(2), endpoint(1)])  # an older version read last changes nothing
    first = lead_events(changes[0])[0].message_id
    produce(topics, catalog.DELIVERIES, "WebhookDelivery", "reseller_id",
            [attempt(first, 1, "retrying"), attempt(first, 2, "delivered")])
    model.start()
    assert model.wait_caught_up(15)

    expected = [e.body() for d in changes for e in lead_events(d) if e.reseller_id == HOLDER]
    assert [e["type"] for e in expected][:2] == ["lead.assigned", "lead.updated"]
    page = model.lead_feed(HOLDER, cursor=None, limit=1)
    assert page["events"] == expected[:1]
    rest = model.lead_feed(HOLDER, cursor=page["next_cursor"])
    assert rest["events"] == expected[1:]
    everything = model.lead_feed(None, cursor=None)
    assert len(everything["events"]) == sum(len(lead_events(d)) for d in changes)

    found = model.webhook_endpoint(HOLDER)
    assert found is not None
    assert (found["version"], found["url"], found["enabled"]) == (2, URL, True)
    log = model.deliveries(HOLDER)
    assert [(d["attempt"], d["outcome"]) for d in log] == [(2, "delivered"), (1, "retrying")]
    assert model.deliveries(HOLDER, message_id="msg_none") == []

    # The lead's own offsets say which of the router's inputs it reflects.
    assert model.reflects_lead("L1", Token(catalog.LEAD_RESPONSES, 0, 1, "L1"))
    assert not model.reflects_lead("L1", Token(catalog.LEAD_RESPONSES, 0, 10, "L1"))

    # A rebuild from the same topics: the same feed, and the old cursors resume there.
    model.stop()
    again = ReadModel(topics, path, poll_timeout_ms=100)
    again.start()
    try:
        assert again.wait_caught_up(15)
        assert again.lead_feed(HOLDER, cursor=None, limit=1) == page
        assert again.lead_feed(HOLDER, cursor=page["next_cursor"]) == rest
        assert again.lead_feed(None, cursor=None) == everything
        assert again.webhook_endpoint(HOLDER) == found
        assert again.deliveries(HOLDER) == log
    finally:
        again.stop()


def test_a_waiting_reader_wakes_when_a_batch_lands_and_tokens_turn_true(
        topics: Settings, model: ReadModel) -> None:
    model.start()
    assert model.wait_caught_up(15)
    assert not model.wait_for_change(0.2)  # nothing arrives: the wait times out
    start = model.lead_feed(HOLDER, cursor=None)
    assert start["events"] == []

    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(model.wait_for_change(20)))
    waiter.start()
    changes = lead_changes()[:1]
    produce(topics, catalog.LEADS, "LeadAssigned", "lead_id", changes)
    waiter.join(25)
    assert woke == [True]
    fresh = wait_for(lambda: model.lead_feed(HOLDER, cursor=start["next_cursor"])["events"],
                     10, "the new event after the start cursor")
    assert [e["id"] for e in fresh] == [lead_events(changes[0])[0].message_id]

    # Read your writes on a passport: its own offsets, then another key by the watermark.
    where = f"{catalog.ENROLMENTS}/3"
    mine = Token(catalog.ENROLMENTS, 3, 41, SIREN)
    assert not model.reflects_passport(SIREN, mine)
    produce(topics, catalog.PASSPORTS, "PassportSnapshot", "siren",
            [{**passport_datum(), "input_offsets": {where: 42}}])
    wait_for(lambda: model.reflects_passport(SIREN, mine), 10, "the passport's offsets")
    # Another business read after that write: the watermark says the service got past it.
    assert model.reflects_passport("552100554", mine)
    assert not model.reflects_passport("552100554", Token(catalog.ENROLMENTS, 3, 42, SIREN))
