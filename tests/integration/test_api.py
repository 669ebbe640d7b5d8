"""The HTTP API over real HTTP (uvicorn on a free port) against the test broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from connectors.api import create_app
from connectors.publish import Publisher
from hub import kafka
from hub.broker import EmbeddedBroker, free_port
from hub.config import Settings
from hub.processor import Inbound
from hub.reader import TopicReader
from schemas import catalog
from services.readmodel import ReadModel
from tests.integration.test_readmodel import lead_datum, passport_datum, produce, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]

SIREN = "732829320"
PROBLEM = "application/problem+json"


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, ws="none", lifespan="off"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 10, "uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def readmodel(topics: Settings, tmp_path: Path) -> Iterator[ReadModel]:
    model = ReadModel(topics, tmp_path / "readmodel.sqlite", poll_timeout_ms=100)
    model.start()
    yield model
    model.stop()


@contextmanager
def running(settings: Settings, readmodel: ReadModel) -> Iterator[tuple[httpx.Client, Publisher]]:
    publisher = Publisher(settings)
    app = create_app(settings, publisher=publisher, readmodel=readmodel,
                     registry=CollectorRegistry())
    try:
        with serve(app) as base, httpx.Client(base_url=base, timeout=15) as client:
            yield client, publisher
    finally:
        publisher.close()


@pytest.fixture
def api(topics: Settings, readmodel: ReadModel) -> Iterator[httpx.Client]:
    with running(topics, readmodel) as (client, _publisher):
        yield client


def enrolment(**fields: Any) -> dict[str, Any]:
    return {"type": "business_enrolled", "occurred_at": datetime.now(UTC).isoformat(),
            "source": "cefac-78", "siren": SIREN, "name": "Boulangerie Martin",
            "departement": "78", "naf": "10.71C", "contact_email": "contact@martin.fr",
            "consent_share_with_resellers": True, **fields}


def read_topic(settings: Settings, topic: str) -> list[Inbound]:
    reader = TopicReader(settings, [topic])
    reader.start(timeout_s=10)
    records: list[Inbound] = []
    try:
        reader.catch_up(records.extend, timeout_s=10)
    finally:
        reader.close()
    return records


def assert_problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = answer.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def test_an_accepted_enrolment_is_on_its_topic(topics: Settings, api: httpx.Client) -> None:
    answer = api.post("/v1/events", json=enrolment())
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "accepted"
    assert body["topic"] == topics.topic(catalog.ENROLMENTS)

    records = read_topic(topics, catalog.ENROLMENTS)
    assert [r.datum["event_id"] for r in records] == [body["event_id"]]
    assert records[0].key == SIREN.encode()
    assert records[0].record == "BusinessEnrolled"
    assert records[0].datum["siren"] == SIREN
    assert records[0].datum["consent_share_with_resellers"] is True


def test_invalid_events_are_422_naming_each_field(api: httpx.Client) -> None:
    body = assert_problem(api.post("/v1/events", json=enrolment(siren="732829321")), 422)
    assert [e["field"] for e in body["errors"]] == ["siren"]
    assert "Luhn" in body["errors"][0]["message"]

    body = assert_problem(api.post("/v1/events", json=enrolment(departement="20", naf="4711")),
                          422)
    assert sorted(e["field"] for e in body["errors"]) == ["departement", "naf"]

    body = assert_problem(api.post("/v1/events", json={**enrolment(), "type": "gossip"}), 422)
    assert [e["field"] for e in body["errors"]] == ["type"]

    reseller = {"type": "reseller_profile", "occurred_at": datetime.now(UTC).isoformat(),
                "source": "mspp", "reseller_id": "web-78", "name": "Web 78",
                "departements": ["78", "99"], "categories": ["website-hosting"]}
    body = assert_problem(api.post("/v1/events", json=reseller), 422)
    assert [e["field"] for e in body["errors"]] == ["departements.1"]

    assert_problem(api.post("/v1/events", json=[1, 2]), 422)


def test_malformed_json_is_400(api: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    assert_problem(api.post("/v1/events", content=b'{"type": "business_enrolled",',
                            headers=headers), 400)
    assert_problem(api.post("/v1/events", content=b"", headers=headers), 400)


def test_an_unreachable_broker_is_503_with_retry_after(topics: Settings,
                                                       readmodel: ReadModel) -> None:
    dead = topics.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
                                     "produce_timeout_s": 1.0, "request_timeout_ms": 1000})
    with running(dead, readmodel) as (client, _publisher):
        started = time.monotonic()
        answer = client.post("/v1/events", json=enrolment())
        assert_problem(answer, 503)
        assert answer.headers["retry-after"] == "5"
        assert time.monotonic() - started < 5
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
        # Still a 422, not a 5xx, for bad input while the broker is down.
        assert_problem(client.post("/v1/events", json=enrolment(siren="1")), 422)


def test_a_broker_lost_after_start_is_503(topics: Settings, readmodel: ReadModel,
                                          tmp_path: Path) -> None:
    """The producer is built and connected, then the broker goes away mid-run."""
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log")
    own = topics.model_copy(update={"kafka_bootstrap_servers": broker.start(),
                                    "produce_timeout_s": 2.0, "request_timeout_ms": 1000})
    try:
        kafka.ensure_topics(own, [catalog.topic(catalog.ENROLMENTS)])
        with running(own, readmodel) as (client, _publisher):
            assert client.post("/v1/events", json=enrolment()).status_code == 202
            broker.stop()
            started = time.monotonic()
            answer = client.post("/v1/events", json=enrolment())
            assert_problem(answer, 503)
            assert answer.headers["retry-after"] == "5"
            assert time.monotonic() - started < 6
            assert client.get("/readyz").status_code == 503
    finally:
        broker.stop()


def test_passport_is_404_until_its_snapshot_is_on_the_topic(
        topics: Settings, readmodel: ReadModel, api: httpx.Client) -> None:
    assert readmodel.wait_caught_up(10)
    assert_problem(api.get(f"/v1/passports/{SIREN}"), 404)
    produce(topics, catalog.PASSPORTS, "PassportSnapshot", "siren",
            [passport_datum(SIREN, state="passport_issued",
                            modules=("website-create", "website-traffic", "email-pro"))])
    answer = wait_for(lambda: _ok(api.get(f"/v1/passports/{SIREN}")), 10, "the passport")
    passport = answer.json()
    assert passport["state"] == "passport_issued"
    assert passport["passport_issued_at"] == "2009-03-02T09:00:00.000+00:00"
    assert passport["consent"] is True
    body = assert_problem(api.get("/v1/passports/12345"), 422)
    assert [e["field"] for e in body["errors"]] == ["siren"]


def test_reseller_leads_most_recent_first(topics: Settings, api: httpx.Client) -> None:
    produce(topics, catalog.LEADS, "LeadAssigned", "lead_id",
            [lead_datum("lead-1", "yvelines-web"),
             lead_datum("lead-2", "yvelines-web", at=datetime(2009, 3, 3, tzinfo=UTC))])
    wait_for(lambda: len(api.get("/v1/resellers/yvelines-web/leads").json()["leads"]) == 2,
             10, "both leads")
    body = api.get("/v1/resellers/yvelines-web/leads", params={"limit": 1}).json()
    assert body["reseller_id"] == "yvelines-web"
    assert [lead["lead_id"] for lead in body["leads"]] == ["lead-2"]
    assert {"siren", "business_name", "category", "departement", "status", "rule", "candidates",
            "assigned_at", "contact_email"} <= body["leads"][0].keys()
    assert api.get("/v1/resellers/nobody-here/leads").json()["leads"] == []
    body = assert_problem(api.get("/v1/resellers/yvelines-web/leads", params={"limit": 0}), 422)
    assert [e["field"] for e in body["errors"]] == ["limit"]
    assert_problem(api.get("/v1/resellers/yvelines-web/leads", params={"limit": 1001}), 422)


def test_health_readiness_and_metrics_by_route_template(
        readmodel: ReadModel, api: httpx.Client) -> None:
    assert api.get("/healthz").status_code == 200
    assert readmodel.wait_caught_up(10)
    assert api.get("/readyz").status_code == 200
    api.get(f"/v1/passports/{SIREN}")
    assert_problem(api.get("/no/such/route"), 404)
    text = api.get("/metrics").text
    assert "passport_hub_http_requests_total" in text
    assert "passport_hub_http_request_duration_seconds_bucket" in text
    assert 'route="/v1/passports/{siren}",status="404"' in text
    assert SIREN not in text, "labels carry the route template, never the raw path"
    assert 'route="unmatched"' in text


def _ok(answer: httpx.Response) -> httpx.Response | None:
    return answer if answer.status_code == 200 else None
