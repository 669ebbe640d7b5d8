"""Batch ingest and idempotent retries over real HTTP, proved by reading the topics back."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.config import Settings
from schemas import catalog
from services.readmodel import ReadModel
from tests.integration.test_api import Api, assert_problem, enrolment, read_topic, running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(40)]

# SIRENs that pass their Luhn check.
SIRENS = ("732829320", "552100554", "542065479", "443061841", "383474814")


def with_id(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "event_id": str(uuid.uuid4())}


def statuses(answer: Any) -> list[int]:
    results = answer.json()["results"]
    assert [r["index"] for r in results] == list(range(len(results)))
    return [r["status"] for r in results]


def test_a_mixed_batch_publishes_the_valid_events_and_says_why_for_the_others(
        topics: Settings, api: Api) -> None:
    first = with_id(enrolment(siren=SIRENS[0]))
    offer = with_id({"type": "offer_requested", "occurred_at": datetime.now(UTC).isoformat(),
                     "source": "cefac-78", "siren": SIRENS[0], "category": "website-hosting"})
    module = {"type": "module_completed", "occurred_at": datetime.now(UTC).isoformat(),
              "source": "cefac-78", "siren": SIRENS[0], "module_id": "website-create"}
    items = [first, enrolment(siren="732829321"), module, offer, {"type": "gossip"},
             dict(reversed(first.items())), {**first, "name": "Another body"}, 42]
    answer = api.post("/v1/events:batch", json={"events": items}, key="delegation")
    assert answer.status_code == 202, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert statuses(answer) == [202, 422, 403, 202, 422, 202, 409, 422]
    results = answer.json()["results"]
    assert results[0]["event_id"] == first["event_id"] == results[5]["event_id"]
    assert results[0]["topic"] == topics.topic(catalog.ENROLMENTS)
    assert [e["field"] for e in results[1]["problem"]["errors"]] == ["siren"]
    assert results[1]["problem"]["status"] == 422
    assert "module_completed" in results[2]["problem"]["detail"]
    assert [e["field"] for e in results[4]["problem"]["errors"]] == ["type"]
    assert first["event_id"] in results[6]["problem"]["detail"]
    enrolled = read_topic(topics, catalog.ENROLMENTS)
    assert [r.datum["event_id"] for r in enrolled] == [first["event_id"]]
    assert [r.datum["event_id"] for r in read_topic(topics, catalog.OFFER_REQUESTS)] == [
        offer["event_id"]]
    assert read_topic(topics, catalog.TRAINING) == []


def test_a_batch_with_nothing_accepted_is_422(api: Api) -> None:
    answer = api.post("/v1/events:batch", json={"events": [enrolment(siren="1"), {}]})
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/json")
    assert statuses(answer) == [422, 422]
    forbidden = api.post("/v1/events:batch", json={"events": [enrolment()]}, key="trainer")
    assert forbidden.status_code == 422
    assert statuses(forbidden) == [403]
    # The envelope itself wrong: one problem, naming the field.
    for body, field in (({}, "events"), ({"events": []}, "events"), ({"events": "x"}, "events"),
                        ({"events": [enrolment()], "extra": 1}, "extra")):
        problem = assert_problem(api.post("/v1/events:batch", json=body), 422)
        assert [e["field"] for e in problem["errors"]] == [field], body


def test_a_full_batch_is_published_in_order(topics: Settings, api: Api) -> None:
    events = [with_id(enrolment(siren=SIRENS[i % len(SIRENS)], name=f"Entreprise {i}"))
              for i in range(1000)]
    answer = api.post("/v1/events:batch", json={"events": events})
    assert answer.status_code == 202
    assert statuses(answer) == [202] * 1000
    records = read_topic(topics, catalog.ENROLMENTS)
    assert Counter(r.datum["event_id"] for r in records) == Counter(e["event_id"] for e in events)
    for siren in SIRENS:  # per-key order is kept
        sent = [e["name"] for e in events if e["siren"] == siren]
        assert [r.datum["name"] for r in sorted(records, key=lambda r: r.offset)
                if r.datum["siren"] == siren] == sent


def test_a_retry_with_the_same_body_is_202_and_not_published_twice(
        topics: Settings, api: Api) -> None:
    event = with_id(enrolment())
    first = api.post("/v1/events", json=event)
    assert first.status_code == 202
    # The same event, spelled differently: key order, whitespace, the same instant elsewhere.
    respelled = json.dumps(dict(reversed(event.items())), indent=4).encode()
    again = api.post("/v1/events", content=respelled, headers={"content-type": "application/json"})
    assert again.status_code == 202
    assert again.json() == first.json()
    in_batch = api.post("/v1/events:batch", json={"events": [event]})
    assert in_batch.status_code == 202
    assert in_batch.json()["results"][0]["event_id"] == event["event_id"]
    conflict = api.post("/v1/events", json={**event, "name": "Boulangerie Dupont"})
    body = assert_problem(conflict, 409)
    assert event["event_id"] in body["detail"]
    assert statuses(api.post("/v1/events:batch",
                             json={"events": [{**event, "departement": "75"}]})) == [409]
    records = read_topic(topics, catalog.ENROLMENTS)
    assert [r.datum["event_id"] for r in records] == [event["event_id"]]
    assert records[0].datum["name"] == "Boulangerie Martin"


def test_accepted_in_a_batch_then_retried_alone_is_not_published_twice(
        topics: Settings, api: Api) -> None:
    events = [with_id(enrolment(siren=siren)) for siren in SIRENS]
    assert api.post("/v1/events:batch", json={"events": events}).status_code == 202
    for event in events:
        assert api.post("/v1/events", json=event).status_code == 202
    assert statuses(api.post("/v1/events:batch", json={"events": events})) == [202] * 5
    assert len(read_topic(topics, catalog.ENROLMENTS)) == len(events)


def test_concurrent_retries_of_one_event_publish_it_once(topics: Settings, api: Api) -> None:
    event = with_id(enrolment())
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: api.post("/v1/events", json=event), range(16)))
    assert [a.status_code for a in answers] == [202] * 16
    assert len(read_topic(topics, catalog.ENROLMENTS)) == 1


def test_the_idempotency_store_survives_a_restart(
        topics: Settings, readmodel: ReadModel, tmp_path: Path) -> None:
    event = with_id(enrolment())
    store = tmp_path / "shared-accepted.sqlite"
    for _ in range(2):
        with running(topics, readmodel, tmp_path, store_path=store) as api:
            assert api.post("/v1/events", json=event).status_code == 202
            assert_problem(api.post("/v1/events", json={**event, "name": "Autre"}), 409)
    assert len(read_topic(topics, catalog.ENROLMENTS)) == 1


def test_two_instances_on_one_store_answer_a_retry_alike_and_publish_once(
        topics: Settings, readmodel: ReadModel, tmp_path: Path) -> None:
    """Two API processes behind one address share the data directory's idempotency store:
    a retry that lands on the other instance gets the first answer (its consistency token
    included), another body under the id a 409, and the event is published once."""
    events = [with_id(enrolment()) for _ in range(10)]
    store = tmp_path / "shared-accepted.sqlite"
    with running(topics, readmodel, tmp_path, store_path=store) as first, \
            running(topics, readmodel, tmp_path, store_path=store) as second:
        for index, event in enumerate(events):
            took, other = (first, second) if index % 2 else (second, first)
            answer = took.post("/v1/events", json=event)
            assert answer.status_code == 202
            # A partner retries when it got no answer: later than the ~50 ms the first
            # instance takes to write what it accepted (connectors/api/idempotency.py).
            time.sleep(0.3)
            retry = other.post("/v1/events", json=event)
            assert (retry.status_code, retry.json()) == (202, answer.json())
            assert_problem(other.post("/v1/events", json={**event, "name": "Autre"}), 409)
    assert len(read_topic(topics, catalog.ENROLMENTS)) == len(events)
