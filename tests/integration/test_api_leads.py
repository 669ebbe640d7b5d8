"""Leads over real HTTP: the explanation, what each key sees of it, and answering a lead.

The leads are the router's own changes (``Router`` over three resellers of the
Yvelines), written as ``LeadAssigned`` v2 records straight onto the leads topic
with the project's codec; the read model follows the topic as in production.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.broker import free_port
from hub.config import Settings
from schemas import catalog
from services.readmodel import ReadModel
from services.routing import records
from services.routing.router import Answer, Router
from services.routing.state import Change
from tests.integration.test_api import Api, assert_problem, read_topic, running
from tests.integration.test_readmodel import produce, wait_for
from tests.unit.test_readmodel_leads import CONTACT, HOLDER, HOUR, NOW, RIVAL, THIRD, request
from tests.unit.test_readmodel_leads import router as yvelines_router

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

#: The test keys' resellers (tests/integration/test_api.py PARTNERS): "reseller" is HOLDER,
#: "other-reseller" is RIVAL, a candidate that never held the lead.
assert (HOLDER, RIVAL) == ("yvelines-web", "paris-web")


def publish(settings: Settings, changes: list[Change]) -> list[dict[str, Any]]:
    """Write the router's changes onto the leads topic as routing does; return the datums."""
    datums = [records.datum(change, {"pn.lead-requests.v1/0": i})
              for i, change in enumerate(changes)]
    produce(settings, catalog.LEADS, "LeadAssigned", "lead_id", datums)
    return datums


def at_version(readmodel: ReadModel, lead_id: str, version: int) -> dict[str, Any] | None:
    found = readmodel.lead(lead_id)
    return found if found is not None and found["version"] == version else None


def placed(topics: Settings, readmodel: ReadModel, lead_id: str = "L1") -> Router:
    """A router that assigned one lead to HOLDER, the lead on the topic and in the read model."""
    r = yvelines_router()
    changes = r.request(request(lead_id), NOW)
    assert changes[-1].lead.holder == HOLDER
    publish(topics, changes)
    wait_for(lambda: readmodel.lead(lead_id), 10, "the lead in the read model")
    return r


def assert_no_id_of(answer: httpx.Response, *others: str) -> None:
    """No other reseller's id anywhere in the answer's text."""
    for other in others:
        assert other not in answer.text, other


def test_admin_sees_the_whole_trace_a_holder_only_its_own_part(
        topics: Settings, readmodel: ReadModel, api: Api) -> None:
    placed(topics, readmodel)
    full = api.get("/v1/leads/L1", key="admin")
    assert full.status_code == 200, full.text
    lead = full.json()
    trace = lead["decision"]
    assert (trace["rule"], trace["scope"], trace["winner"]) == ("departement", "78", HOLDER)
    assert [c["reseller_id"] for c in trace["candidates"]] == [RIVAL, THIRD, HOLDER]
    assert {"weight", "share", "entitlement", "received", "deficit", "open",
            "capacity"} <= trace["candidates"][0].keys()
    assert [h["change"] for h in lead["history"]] == ["assigned"]
    assert lead["contact_email"] == CONTACT

    mine = api.get("/v1/leads/L1", key="reseller")
    assert mine.status_code == 200, mine.text
    assert_no_id_of(mine, RIVAL, THIRD)
    seen = mine.json()
    assert seen["decision"]["standing"]["reseller_id"] == HOLDER
    assert seen["decision"]["rule"] == "departement"
    assert (seen["held"], seen["version"], seen["status"]) == (True, 1, "assigned")
    assert seen["deadline_at"] is not None

    # A candidate that never held it, and keys that read no leads: 403; unknown: 404.
    body = assert_problem(api.get("/v1/leads/L1", key="other-reseller"), 403)
    assert HOLDER not in body["detail"]
    for key in ("delegation", "trainer"):
        assert_problem(api.get("/v1/leads/L1", key=key), 403)
    assert_problem(api.get("/v1/leads/no-such-lead", key="reseller"), 404)
    assert_problem(api.get("/v1/leads/L1", key=None), 401)
    assert_problem(api.get("/v1/leads/" + "x" * 129), 422)


def test_a_resellers_list_names_no_competitor_and_carries_the_lifecycle(
        topics: Settings, readmodel: ReadModel, api: Api) -> None:
    placed(topics, readmodel)
    answer = api.get(f"/v1/resellers/{HOLDER}/leads", key="reseller")
    assert answer.status_code == 200, answer.text
    assert_no_id_of(answer, RIVAL, THIRD)
    (lead,) = answer.json()["leads"]
    assert {"status", "deadline_at", "history", "version"} <= lead.keys()
    assert "candidates" not in lead
    assert lead["decision"]["standing"]["weight"] == 5
    admin = api.get(f"/v1/resellers/{HOLDER}/leads", key="admin").json()
    assert admin["leads"][0]["candidates"] == [RIVAL, THIRD, HOLDER]


def test_a_past_holder_still_reads_the_lead_but_not_who_has_it_now(
        topics: Settings, readmodel: ReadModel, api: Api) -> None:
    r = placed(topics, readmodel)
    changes = r.answer(Answer("L1", HOLDER, "rejected", "budget"), NOW + HOUR)
    new_holder = changes[-1].lead.holder
    publish(topics, changes)
    wait_for(lambda: at_version(readmodel, "L1", 3), 10, "the reassignment")
    past = api.get("/v1/leads/L1", key="reseller")
    assert past.status_code == 200, past.text
    assert_no_id_of(past, RIVAL, THIRD)
    assert (past.json()["held"], past.json()["contact_email"]) == (False, None)
    assert api.get(f"/v1/resellers/{HOLDER}/leads", key="reseller").json()["leads"] == []
    # RIVAL and THIRD weigh the same and stand level: the smaller id wins, so the
    # "other-reseller" key holds it now, and sees nothing of HOLDER.
    assert new_holder == RIVAL
    now = api.get("/v1/leads/L1", key="other-reseller")
    assert now.status_code == 200
    assert now.json()["held"] is True
    assert_no_id_of(now, HOLDER, THIRD)
    assert api.get("/v1/leads/L1").json()["excluded_resellers"] == [HOLDER]


def test_only_the_holder_answers_and_its_answer_lands_on_the_responses_topic(
        topics: Settings, readmodel: ReadModel, api: Api) -> None:
    placed(topics, readmodel)
    body = assert_problem(api.post("/v1/leads/L1/answer", json={"answer": "accepted"},
                                   key="other-reseller"), 403)
    assert "L1" in body["detail"]
    assert_problem(api.post("/v1/leads/L1/answer", json={"answer": "accepted"},
                            key="delegation"), 403)
    assert_problem(api.post("/v1/leads/nope/answer", json={"answer": "accepted"},
                            key="reseller"), 404)
    event_id = str(uuid.uuid4())
    answer = {"answer": "rejected", "reason": "budget", "event_id": event_id,
              "occurred_at": "2026-11-02T10:00:00+01:00"}
    first = api.post("/v1/leads/L1/answer", json=answer, key="reseller")
    assert first.status_code == 202, first.text
    token = first.json().pop("consistency_token")
    assert first.json() == {"event_id": event_id, "status": "accepted", "consistency_token": token,
                            "topic": topics.topic(catalog.LEAD_RESPONSES)}
    # A retry is accepted again (with the first write's token) and not published twice;
    # another body under the id is a 409.
    again = api.post("/v1/leads/L1/answer", json=answer, key="reseller")
    assert (again.status_code, again.json()["consistency_token"]) == (202, token)
    assert_problem(api.post("/v1/leads/L1/answer", json={**answer, "reason": "spam"},
                            key="reseller"), 409)
    # An admin answers for the holder.
    admin = api.post("/v1/leads/L1/answer", json={"answer": "accepted"}, key="admin")
    assert admin.status_code == 202, admin.text
    answers = read_topic(topics, catalog.LEAD_RESPONSES)
    assert [(r.key, r.datum["reseller_id"], r.datum["answer"], r.datum["reason"])
            for r in answers] == [(b"L1", HOLDER, "rejected", "budget"),
                                  (b"L1", HOLDER, "accepted", None)]
    assert str(answers[0].datum["event_id"]) == event_id
    assert answers[0].record == "LeadAnswered"


@pytest.mark.parametrize(("body", "field"), [
    ({"answer": "maybe"}, "answer"),
    ({"answer": "rejected"}, "reason"),
    ({"answer": "rejected", "reason": "too-busy"}, "reason"),
    ({"answer": "won", "reason": "budget"}, "reason"),
    ({}, "answer"),
    ({"answer": "accepted", "reseller_id": RIVAL}, "reseller_id"),
    ({"answer": "accepted", "event_id": "not-a-uuid"}, "event_id"),
])
def test_a_bad_answer_is_422_naming_the_field(topics: Settings, readmodel: ReadModel, api: Api,
                                              body: dict[str, Any], field: str) -> None:
    placed(topics, readmodel)
    problem = assert_problem(api.post("/v1/leads/L1/answer", json=body, key="reseller"), 422)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert read_topic(topics, catalog.LEAD_RESPONSES) == []


def test_an_answer_with_the_broker_down_is_503(topics: Settings, readmodel: ReadModel,
                                               tmp_path: Path) -> None:
    placed(topics, readmodel)
    dead = topics.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
                                     "produce_timeout_s": 1.0, "request_timeout_ms": 1000})
    with running(dead, readmodel, tmp_path) as api:
        answer = api.post("/v1/leads/L1/answer", json={"answer": "accepted"}, key="reseller")
        assert_problem(answer, 503)
        assert answer.headers["retry-after"] == "5"


def test_a_stale_version_does_not_overwrite_a_newer_one(
        topics: Settings, readmodel: ReadModel, api: Api) -> None:
    r = placed(topics, readmodel)
    changes = r.answer(Answer("L1", HOLDER, "accepted"), NOW + HOUR)
    changes += r.answer(Answer("L1", HOLDER, "won"), NOW + 2 * HOUR)
    first = records.datum(changes[0], {})  # the accepted change (v2)
    publish(topics, changes)
    wait_for(lambda: at_version(readmodel, "L1", 3), 10, "the won lead")
    # The accepted change replayed (same id), then re-emitted under another id, then a marker.
    produce(topics, catalog.LEADS, "LeadAssigned", "lead_id",
            [first, {**first, "event_id": str(uuid.uuid4())}])
    publish(topics, yvelines_router().request(request("MARK", "552100554"), NOW))
    wait_for(lambda: readmodel.lead("MARK"), 10, "the marker after the replays")
    lead = api.get("/v1/leads/L1").json()
    assert (lead["status"], lead["version"]) == ("won", 3)
    assert [h["change"] for h in lead["history"]] == ["assigned", "accepted", "won"]
    assert lead["contact_email"] is None  # closed: routing dropped it, and so did we


def test_a_duplicate_request_answers_the_open_lead(
        topics: Settings, readmodel: ReadModel, api: Api) -> None:
    r = placed(topics, readmodel)
    publish(topics, r.request(request("L2"), NOW + HOUR))
    wait_for(lambda: readmodel.lead("L2"), 10, "the duplicate")
    mine = api.get("/v1/leads/L2", key="reseller")
    assert mine.status_code == 200, mine.text
    assert (mine.json()["lead_id"], mine.json()["requested_as"]) == ("L1", "L2")
    assert_no_id_of(mine, RIVAL, THIRD)


def test_stats_count_leads_by_status_reassignments_and_breaches(
        topics: Settings, readmodel: ReadModel, api: Api) -> None:
    r = placed(topics, readmodel)
    changes = r.request(request("L2", "552100554"), NOW)
    changes += r.answer(Answer("L1", HOLDER, "accepted"), NOW + HOUR)
    changes += r.expire(NOW + 10 * 24 * HOUR)  # L2's holder lets its deadline pass
    changes += r.withdraw("L1", "consent_withdrawn", NOW + 11 * 24 * HOUR)
    publish(topics, changes)
    figures = wait_for(lambda: _leads_settled(api.get("/v1/stats", key="delegation").json()),
                       10, "the lead figures")
    assert figures["by_status"]["assigned"] == 1
    assert figures["by_status"]["withdrawn"] == 1
    assert (figures["total"], figures["open"]) == (2, 1)
    assert (figures["reassignments"], figures["sla_breaches"]) == (1, 1)
    assert sum(figures["rejections_by_reason"].values()) == 0
    lead = api.get("/v1/leads/L1").json()
    assert (lead["status"], lead["contact_email"]) == ("withdrawn", None)


def _leads_settled(document: dict[str, Any]) -> dict[str, Any] | None:
    figures: dict[str, Any] = document["leads"]
    return figures if figures["by_status"]["withdrawn"] == 1 else None


def test_the_answer_route_is_documented_with_examples(api: Api) -> None:
    document = api.get("/openapi.json", key=None).json()
    route = document["paths"]["/v1/leads/{lead_id}/answer"]["post"]
    content = route["requestBody"]["content"]["application/json"]
    assert content["schema"] == {"$ref": "#/components/schemas/LeadAnswer"}
    assert {"accepted", "rejected", "won", "lost"} <= set(content["examples"])
    assert {"202", "403", "404", "409", "422", "503"} <= set(route["responses"])
    assert "/v1/leads/{lead_id}" in document["paths"]
