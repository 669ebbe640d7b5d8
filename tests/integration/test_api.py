"""The HTTP API over real HTTP (uvicorn on a free port) against the test broker."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from connectors.api import ModelReadSide, create_app, keys
from connectors.api.auth import KeyRing
from connectors.api.idempotency import AcceptedStore
from connectors.publish import Publisher, Record
from hub import kafka
from hub.broker import EmbeddedBroker, free_port
from hub.config import Settings
from hub.processor import Inbound
from hub.reader import TopicReader
from schemas import catalog
from schemas.models import EXAMPLES, EventModel
from services.readmodel import ReadModel
from tests.integration.test_readmodel import (
    CONTACT,
    lead_datum,
    passport_datum,
    produce,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]

SIREN = "732829320"
PROBLEM = "application/problem+json"
DEV_KEY = "test-dev-key"


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


#: Who holds a key in these tests: name -> (partner, role, reseller id).
PARTNERS: dict[str, tuple[str, str, str | None]] = {
    "delegation": ("cefac-78", "delegation", None),
    "trainer": ("trainer-google", "trainer", None),
    "reseller": ("yvelines-web", "reseller", "yvelines-web"),
    "other-reseller": ("paris-web", "reseller", "paris-web"),
    "admin": ("ops", "admin", None),
}


def make_keys(path: Path) -> dict[str, str]:
    """A keys file with one key per entry of ``PARTNERS``; their tokens by name."""
    tokens: dict[str, str] = {}
    stored = []
    for name, (partner, role, reseller) in PARTNERS.items():
        tokens[name], key = keys.mint(partner, role, reseller)
        stored.append(key)
    keys.save(path, stored)
    return tokens


@dataclass
class Api:
    """An HTTP client of the running API that picks a key per call (``key=None``: no key)."""

    client: httpx.Client
    tokens: dict[str, str]
    publisher: Publisher

    def headers(self, key: str | None) -> dict[str, str]:
        return {} if key is None else {"Authorization": f"Bearer {self.tokens.get(key, key)}"}

    def post(self, path: str, *, key: str | None = "admin", **kwargs: Any) -> httpx.Response:
        return self.client.post(path, headers={**self.headers(key), **kwargs.pop("headers", {})},
                                **kwargs)

    def get(self, path: str, *, key: str | None = "admin", **kwargs: Any) -> httpx.Response:
        return self.client.get(path, headers=self.headers(key), **kwargs)


@contextmanager
def running(settings: Settings, readmodel: ReadModel, tmp_path: Path, *,
            dev_key: str | None = DEV_KEY, store_path: Path | None = None) -> Iterator[Api]:
    """The API on a free port with the test keys (and the dev key), its own idempotency store."""
    keys_file = tmp_path / f"keys-{uuid.uuid4().hex[:6]}.json"
    tokens = make_keys(keys_file)
    publisher = Publisher(settings)
    store = AcceptedStore(store_path or tmp_path / f"accepted-{uuid.uuid4().hex[:6]}.sqlite",
                          retention_s=3600)
    app = create_app(settings, publisher=publisher, readside=ModelReadSide(readmodel),
                     keyring=KeyRing(keys_file, dev_key), store=store,
                     registry=CollectorRegistry())
    try:
        with serve(app) as base, httpx.Client(base_url=base, timeout=15) as client:
            yield Api(client, tokens, publisher)
    finally:
        publisher.close()
        store.close()


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


def test_an_accepted_enrolment_is_on_its_topic(topics: Settings, api: Api) -> None:
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


def test_invalid_events_are_422_naming_each_field(api: Api) -> None:
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

    assert_problem(api.post("/v1/events", json={}), 422)


def test_a_body_that_is_not_a_json_object_is_400(api: Api) -> None:
    headers = {"content-type": "application/json"}
    for body in (b'{"type": "business_enrolled",', b"", b"[1, 2]", b'"event"', b"null",
                 b'{"a": 1} trailing', b"\xff\xfe{}", b"[" * 5000):
        for path in ("/v1/events", "/v1/events:batch"):
            assert_problem(api.post(path, content=body, headers=headers), 400)


def test_only_json_bodies_are_read_else_415(api: Api) -> None:
    body = json.dumps(enrolment()).encode()
    for media in ("text/plain", "application/x-www-form-urlencoded", "application/xml",
                  "application/json; charset=latin-1", "json", "application/jsonx"):
        answer = api.post("/v1/events", content=body, headers={"content-type": media})
        assert_problem(answer, 415)
    # httpx sends no content type for raw content unless told
    assert_problem(api.post("/v1/events", content=body), 415)
    for media in ("application/json; charset=utf-8", "Application/JSON",
                  "application/vnd.passport-hub.event+json", 'application/json;charset="UTF-8"'):
        answer = api.post("/v1/events", content=body, headers={"content-type": media})
        assert answer.status_code == 202, (media, answer.text)


def test_oversized_bodies_are_413(api: Api) -> None:
    big = enrolment(name="x" * (65 * 1024))
    assert_problem(api.post("/v1/events", json=big), 413)
    # A body no Content-Length announces is counted as it arrives.
    chunks = iter([json.dumps(big).encode()[i:i + 4096] for i in range(0, 70 * 1024, 4096)])
    assert_problem(api.post("/v1/events", content=chunks,
                            headers={"content-type": "application/json"}), 413)
    many = {"events": [enrolment()] * 1001}
    body = assert_problem(api.post("/v1/events:batch", json=many), 413)
    assert "1000" in body["detail"]
    heavy = {"events": [enrolment(name="y" * 60_000)] * 20}
    assert_problem(api.post("/v1/events:batch", json=heavy), 413)


def test_an_unreachable_broker_is_503_with_retry_after(topics: Settings, readmodel: ReadModel,
                                                       tmp_path: Path) -> None:
    dead = topics.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
                                     "produce_timeout_s": 1.0, "request_timeout_ms": 1000})
    with running(dead, readmodel, tmp_path) as api:
        started = time.monotonic()
        answer = api.post("/v1/events", json=enrolment())
        assert_problem(answer, 503)
        assert answer.headers["retry-after"] == "5"
        assert time.monotonic() - started < 5
        assert api.get("/readyz").status_code == 503
        assert api.get("/healthz").status_code == 200
        # Still a 422, not a 5xx, for bad input while the broker is down.
        assert_problem(api.post("/v1/events", json=enrolment(siren="1")), 422)
        # A batch says which items were not accepted: none was.
        answer = api.post("/v1/events:batch", json={"events": [
            enrolment(), enrolment(siren="1"), enrolment(event_id=str(uuid.uuid4()))]})
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "5"
        assert [r["status"] for r in answer.json()["results"]] == [503, 422, 503]
        assert all("event_id" not in r for r in answer.json()["results"])


def test_a_broker_lost_after_start_is_503(topics: Settings, readmodel: ReadModel,
                                          tmp_path: Path) -> None:
    """The producer is built and connected, then the broker goes away mid-run."""
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log")
    own = topics.model_copy(update={"kafka_bootstrap_servers": broker.start(),
                                    "produce_timeout_s": 2.0, "request_timeout_ms": 1000})
    try:
        kafka.ensure_topics(own, [catalog.topic(catalog.ENROLMENTS)])
        with running(own, readmodel, tmp_path) as api:
            assert api.post("/v1/events", json=enrolment()).status_code == 202
            broker.stop()
            started = time.monotonic()
            answer = api.post("/v1/events", json=enrolment())
            assert_problem(answer, 503)
            assert answer.headers["retry-after"] == "5"
            assert time.monotonic() - started < 6
            answer = api.post("/v1/events:batch", json={"events": [enrolment(), enrolment()]})
            assert answer.status_code == 503
            assert [r["status"] for r in answer.json()["results"]] == [503, 503]
            assert api.get("/readyz").status_code == 503
    finally:
        broker.stop()


def test_passport_is_404_until_its_snapshot_is_on_the_topic(
        topics: Settings, readmodel: ReadModel, api: Api) -> None:
    assert readmodel.wait_caught_up(10)
    assert_problem(api.get(f"/v1/passports/{SIREN}"), 404)
    produce(topics, catalog.PASSPORTS, "PassportSnapshot", "siren",
            [passport_datum(SIREN, state="passport_issued",
                            modules=("website-create", "website-traffic", "email-pro"))])
    answer = wait_for(lambda: _ok(api.get(f"/v1/passports/{SIREN}")), 10, "the passport")
    assert_no_private_data(answer)
    passport = answer.json()
    assert passport["state"] == "passport_issued"
    assert passport["passport_issued_at"] == "2009-03-02T09:00:00.000+00:00"
    assert passport["consent"] is True
    body = assert_problem(api.get("/v1/passports/12345"), 422)
    assert [e["field"] for e in body["errors"]] == ["siren"]


def test_reseller_leads_most_recent_first(topics: Settings, api: Api) -> None:
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
        readmodel: ReadModel, api: Api) -> None:
    assert api.get("/healthz", key=None).status_code == 200
    assert readmodel.wait_caught_up(10)
    assert api.get("/readyz", key=None).status_code == 200
    api.get(f"/v1/passports/{SIREN}")
    assert_problem(api.get("/no/such/route"), 404)
    text = api.get("/metrics", key=None).text
    assert "passport_hub_http_requests_total" in text
    assert "passport_hub_http_request_duration_seconds_bucket" in text
    assert 'route="/v1/passports/{siren}",status="404"' in text
    assert SIREN not in text, "labels carry the route template, never the raw path"
    assert 'route="unmatched"' in text


def _ok(answer: httpx.Response) -> httpx.Response | None:
    return answer if answer.status_code == 200 else None


def test_documents_and_probes_need_no_key(api: Api) -> None:
    document = api.get("/openapi.json", key=None).json()
    body = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/Event"}
    assert set(body["examples"]) == set(EXAMPLES)
    assert "discriminator" in document["components"]["schemas"]["Event"]
    responses = document["paths"]["/v1/events"]["post"]["responses"]
    assert {"202", "400", "401", "403", "409", "413", "415", "422", "503"} <= set(responses)
    assert PROBLEM in responses["409"]["content"]
    batch = document["paths"]["/v1/events:batch"]["post"]
    assert "published even when others" in batch["description"]
    assert api.get("/asyncapi.json", key=None).json()["asyncapi"].startswith("3.")
    assert api.get("/docs", key=None).status_code == 200


class _BrokenPublisher(Publisher):
    def record(self, event: EventModel) -> Record:
        raise RuntimeError("a bug, with a message that might quote the input")


def test_a_bug_is_a_500_problem_and_nothing_leaks(topics: Settings, readmodel: ReadModel,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    store = AcceptedStore(topics.data_dir / "accepted.sqlite", retention_s=60)
    app = create_app(topics, publisher=_BrokenPublisher(topics),
                     readside=ModelReadSide(readmodel), keyring=KeyRing(None, DEV_KEY),
                     store=store, registry=CollectorRegistry())
    try:
        with serve(app) as base:
            answer = httpx.post(f"{base}/v1/events", json=enrolment(),
                                headers={"Authorization": f"Bearer {DEV_KEY}"}, timeout=10)
    finally:
        store.close()
    assert_problem(answer, 500)
    captured = capsys.readouterr()
    logged = captured.out + captured.err  # wherever the test run sends structlog's output
    assert "http.bug" in logged
    assert "RuntimeError" in logged
    assert "might quote the input" not in logged
    assert "contact@martin.fr" not in logged
    assert DEV_KEY not in logged


# -- the delegations' listings and the programme figures -------------------------------------------


INTERNAL = ("contact_email", "input_offsets", "replay_from", "applied_event_ids", "parked")


def assert_no_private_data(answer: httpx.Response) -> None:
    assert CONTACT not in answer.text
    for name in INTERNAL:
        assert f'"{name}"' not in answer.text, name
