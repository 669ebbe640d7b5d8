"""The pull feed over real HTTP: a reseller's lead events after a cursor, and the long poll.

The leads are the router's own changes written as ``LeadAssigned`` v2 records
onto the leads topic (as tests/integration/test_api_leads.py does); the feed's
events are what ``schemas.webhooks.lead_events`` makes of them, the bodies and
ids the push delivers.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from hub.config import Settings
from schemas import catalog
from schemas.webhooks import message_id
from services.readmodel import ReadModel
from services.routing import records
from services.routing.router import Answer, Router
from services.routing.state import Change
from tests.integration.test_api import Api, assert_problem
from tests.integration.test_readmodel import produce, wait_for
from tests.unit.test_readmodel_leads import CONTACT, HOLDER, HOUR, NOW, RIVAL, request
from tests.unit.test_readmodel_leads import router as yvelines_router

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

FEED = f"/v1/resellers/{HOLDER}/leads"


def publish(settings: Settings, changes: list[Change]) -> list[dict[str, Any]]:
    datums = [records.datum(change, {}) for change in changes]
    produce(settings, catalog.LEADS, "LeadAssigned", "lead_id", datums)
    return datums


def placed(topics: Settings, readmodel: ReadModel) -> tuple[Router, dict[str, Any]]:
    r = yvelines_router()
    [datum] = publish(topics, r.request(request("L1"), NOW))
    wait_for(lambda: readmodel.lead("L1"), 10, "the lead in the read model")
    return r, datum


def test_the_feed_reads_the_events_after_a_cursor(topics: Settings, readmodel: ReadModel,
                                                 api: Api) -> None:
    _r, datum = placed(topics, readmodel)
    first = api.get(f"{FEED}?cursor=start", key="reseller")
    assert first.status_code == 200, first.text
    page = first.json()
    [event] = page["events"]
    assert page["reseller_id"] == HOLDER
    assert (event["id"], event["type"]) == (
        message_id(str(datum["event_id"]), HOLDER, "lead.assigned"), "lead.assigned")
    assert event["data"]["lead_id"] == "L1"
    assert event["data"]["business"]["contact_email"] == CONTACT  # the holder of an open lead
    assert api.get(f"{FEED}?cursor=", key="reseller").json() == page  # empty: the start too

    # Nothing new after the cursor: no event, the same cursor back, at once with wait=0.
    quiet = api.get(FEED, params={"cursor": page["next_cursor"], "wait": 0},
                    key="reseller").json()
    assert quiet == {"reseller_id": HOLDER, "events": [], "next_cursor": page["next_cursor"]}
    # The list of the leads held, as before, without a cursor.
    assert [lead["lead_id"] for lead in api.get(FEED, key="reseller").json()["leads"]] == ["L1"]

    # An admin reads every reseller's events, each naming whose it is.
    every = api.get("/v1/lead-events?cursor=", key="admin").json()
    assert [(e["reseller_id"], e["id"]) for e in every["events"]] == [(HOLDER, event["id"])]

    # Another reseller's feed, every reseller's for a reseller, a bad cursor.
    assert_problem(api.get(f"{FEED}?cursor=", key="other-reseller"), 403)
    assert_problem(api.get("/v1/lead-events?cursor=", key="reseller"), 403)
    assert_problem(api.get("/v1/lead-events?cursor=", key="delegation"), 403)
    bad = assert_problem(api.get(f"{FEED}?cursor=not-a-cursor", key="reseller"), 422)
    assert [e["field"] for e in bad["errors"]] == ["cursor"]
    assert_problem(api.get(f"{FEED}?cursor=&limit=501", key="reseller"), 422)


def test_a_long_poll_answers_as_soon_as_a_change_lands(topics: Settings, readmodel: ReadModel,
                                                      api: Api) -> None:
    r, _datum = placed(topics, readmodel)
    cursor = api.get(f"{FEED}?cursor=start", key="reseller").json()["next_cursor"]
    answers: list[httpx.Response] = []
    poll = threading.Thread(target=lambda: answers.append(api.get(
        FEED, params={"cursor": cursor, "wait": 20}, key="reseller", timeout=30)), daemon=True)
    poll.start()
    # HOLDER rejects: it hears lead.updated (rejected), the next holder lead.assigned.
    rejected = r.answer(Answer("L1", HOLDER, "rejected", "budget"), NOW + HOUR)
    publish(topics, rejected)
    poll.join(25)
    assert answers, "the long poll did not answer"
    page = answers[0].json()
    assert [e["type"] for e in page["events"]] == ["lead.updated"]
    assert page["events"][0]["data"]["status"] == "rejected"
    assert "contact_email" not in page["events"][0]["data"]["business"]
    assert page["next_cursor"] != cursor
    # Read again from the same cursor: the same page (cursors name places, not reads).
    again = api.get(FEED, params={"cursor": cursor}, key="reseller").json()
    assert again == page

    rival = api.get(f"/v1/resellers/{RIVAL}/leads?cursor=start", key="other-reseller").json()
    assert [e["type"] for e in rival["events"]] == ["lead.assigned"]
    assert HOLDER not in str(rival)
