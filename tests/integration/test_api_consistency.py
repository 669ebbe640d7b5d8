"""Read your writes over real HTTP: a 202's token, and reads that wait until they reflect it.

The passport round trip runs the real passport service (its processor loop in
a thread, as tests/integration/test_passport_service.py does): the API accepts
an enrolment, the service folds it into a snapshot carrying its input offsets,
the read model follows, and the read ``after`` the token answers once it does.
The leads' round trip writes the router's changes itself, with the offsets the
routing service would put on them.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from hub.config import Settings
from hub.processor import store_path
from hub.service import processor_loop
from hub.store import Store
from schemas import catalog
from services.passport.__main__ import build
from services.readmodel import ReadModel
from services.readmodel.consistency import Token
from services.routing import records
from services.routing.router import Answer
from services.routing.state import Change
from tests.integration.test_api import SIREN, Api, assert_problem, enrolment, read_topic
from tests.integration.test_readmodel import produce, wait_for
from tests.unit.test_readmodel_leads import HOLDER, HOUR, NOW, request
from tests.unit.test_readmodel_leads import router as yvelines_router

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

OTHER_SIREN = "552100554"


@contextmanager
def passport_service(settings: Settings) -> Iterator[None]:
    """The passport service's processor loop, running in a thread."""
    with Store(store_path(settings, "passport")) as store:
        loop = processor_loop(build(settings), settings=settings, store=store,
                              registry=CollectorRegistry())
        loop.start()
        thread = threading.Thread(target=loop.run, name="passport", daemon=True)
        thread.start()
        try:
            yield
        finally:
            loop.stop()
            thread.join(15)
            loop.close()


def in_background(call: Callable[[], httpx.Response]) -> Callable[[], httpx.Response]:
    """Start ``call`` in a thread; the returned function joins it and gives its answer."""
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    thread.start()

    def join() -> httpx.Response:
        thread.join(45)
        assert answers, "the request did not return"
        return answers[0]
    return join


def test_a_passport_read_after_its_enrolment_answers_once_the_service_folded_it(
        topics: Settings, readmodel: ReadModel, api: Api) -> None:
    with passport_service(topics):
        accepted = api.post("/v1/events", json=enrolment())
        assert accepted.status_code == 202, accepted.text
        token = accepted.json()["consistency_token"]
        written = Token.decode(token)
        assert (written.topic, written.key) == (catalog.ENROLMENTS, SIREN)
        [record] = read_topic(topics, catalog.ENROLMENTS)
        assert (record.partition, record.offset) == (written.partition, written.offset)
        assert str(record.datum["event_id"]) == accepted.json()["event_id"]

        answer = api.get(f"/v1/passports/{SIREN}?after={token}&wait=30", key="delegation",
                         timeout=40)
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "enrolled"
        assert readmodel.reflects_passport(SIREN, written)


def test_a_write_never_reflected_is_504_and_a_bad_token_422(api: Api) -> None:
    event = enrolment(event_id=str(uuid.uuid4()))
    first = api.post("/v1/events", json=event)
    token = first.json()["consistency_token"]
    # No passport service runs: the read model never reflects it.
    late = assert_problem(api.get(f"/v1/passports/{SIREN}?after={token}&wait=1"), 504)
    assert late["type"].endswith(":not-yet-consistent")
    written = Token.decode(token)
    assert f"{catalog.ENROLMENTS} partition {written.partition} offset {written.offset}" in \
        late["detail"]
    assert "waited 1 s" in late["detail"]
    for bad in ("garbage", "", Token(catalog.ENROLMENTS, 0, 1, SIREN).encode()[:-3]):
        body = assert_problem(api.get(f"/v1/passports/{SIREN}", params={"after": bad}), 422)
        assert [e["field"] for e in body["errors"]] == ["after"]
    assert_problem(api.get(f"/v1/passports/{SIREN}?after={token}&wait=31"), 422)
    # wait alone, for a passport that never comes: the 404, after the wait.
    assert_problem(api.get(f"/v1/passports/{SIREN}?wait=1"), 404)

    # A retry of the accepted event answers the first write's token.
    again = api.post("/v1/events", json=event)
    assert (again.status_code, again.json()["consistency_token"]) == (202, token)
    # Each accepted item of a batch has its own.
    batch = api.post("/v1/events:batch", json={"events": [
        enrolment(), enrolment(siren="1"), enrolment(siren=OTHER_SIREN)]})
    results = batch.json()["results"]
    assert [r["status"] for r in results] == [202, 422, 202]
    tokens = [Token.decode(results[i]["consistency_token"]) for i in (0, 2)]
    assert [(t.topic, t.key) for t in tokens] == [(catalog.ENROLMENTS, SIREN),
                                                  (catalog.ENROLMENTS, OTHER_SIREN)]
    assert "consistency_token" not in results[1]


def publish(settings: Settings, changes: list[Change], offsets: dict[str, int]) -> None:
    """The router's changes on the leads topic, with the input offsets routing would give."""
    produce(settings, catalog.LEADS, "LeadAssigned", "lead_id",
            [records.datum(change, offsets) for change in changes])


def test_a_lead_read_after_an_answer_waits_for_the_routers_change(
        topics: Settings, readmodel: ReadModel, api: Api) -> None:
    r = yvelines_router()
    requests_, responses = f"{catalog.LEAD_REQUESTS}/0", f"{catalog.LEAD_RESPONSES}/0"
    # wait alone: an unknown lead is waited for, and answered once it appears.
    later = in_background(lambda: api.get("/v1/leads/L1?wait=20", key="admin", timeout=30))
    publish(topics, r.request(request("L1"), NOW), {requests_: 1, responses: 0})
    appeared = later()
    assert appeared.status_code == 200, appeared.text
    assert appeared.json()["status"] == "assigned"

    answered = api.post("/v1/leads/L1/answer", json={"answer": "accepted"}, key="reseller")
    assert answered.status_code == 202, answered.text
    token = answered.json()["consistency_token"]
    written = Token.decode(token)
    assert (written.topic, written.key) == (catalog.LEAD_RESPONSES, "L1")
    assert_problem(api.get(f"/v1/leads/L1?after={token}&wait=0", key="reseller"), 504)

    reading = in_background(lambda: api.get(f"/v1/leads/L1?after={token}&wait=20",
                                            key="reseller", timeout=30))
    accepted = r.answer(Answer("L1", HOLDER, "accepted"), NOW + HOUR)
    publish(topics, accepted, {requests_: 1, responses: written.offset + 1})
    answer = reading()
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert (body["status"], body["version"]) == ("accepted", 2)
    wait_for(lambda: readmodel.reflects_lead("L1", written), 5, "the lead to reflect it")
