"""The API against its own OpenAPI document: schemathesis over real HTTP, with the dev key.

Generated requests (the documented examples, boundary values, then random
ones, bounded per operation) go to a real uvicorn on a free port, backed by
the test broker and a real read model. Every answer must be documented
(status, content type, schema) and none may be a 5xx (but the documented 504
of a read that waited for a write in vain). Generated waits are cut to a
second: the long polls' 30 s would otherwise be most of the run.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from prometheus_client import CollectorRegistry
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from connectors.api import ModelReadSide, ReadSide, create_app
from connectors.api.auth import KeyRing
from connectors.api.idempotency import AcceptedStore
from connectors.publish import Publisher
from hub import kafka
from hub.config import Settings
from schemas import catalog
from services.readmodel import ReadModel
from services.readmodel.consistency import Token
from tests.integration.test_api import serve
from tests.integration.test_readmodel import (
    SIREN,
    lead_datum,
    passport_datum,
    produce,
    wait_for,
)
from tests.unit.test_codec import SAMPLES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DEV_KEY = "contract-dev-key"
AUTH = {"Authorization": f"Bearer {DEV_KEY}"}


def no_server_error(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """``not_a_server_error``, less the 504 of a read that waited in vain for a write: a
    documented answer (``status_code_conformance`` holds it to the routes that give it)."""
    if response.status_code == 504:
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [no_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def base_url(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API on a free port, with a passport and a lead to find (module-wide: one server)."""
    tmp = tmp_path_factory.mktemp("contract")
    tag = uuid.uuid4().hex[:10]
    own = Settings(kafka_bootstrap_servers=bootstrap, topic_prefix=f"c{tag}.",
                   group_prefix=f"c{tag}", data_dir=tmp, log_format="console")
    kafka.ensure_topics(own)
    produce(own, catalog.PASSPORTS, "PassportSnapshot", "siren", [passport_datum(SIREN)])
    produce(own, catalog.LEADS, "LeadAssigned", "lead_id", [lead_datum("lead-1", "web-78")])
    # web-78 (the documented example reseller) has a webhook endpoint and a delivery.
    for topic, record in ((catalog.WEBHOOK_ENDPOINTS, "WebhookEndpoint"),
                          (catalog.DELIVERIES, "WebhookDelivery")):
        produce(own, topic, record, "reseller_id",
                [{**SAMPLES[record], "event_id": str(uuid.uuid4())}])
    model = ReadModel(own, tmp / "readmodel.sqlite", poll_timeout_ms=100)
    model.start()
    publisher = Publisher(own)
    store = AcceptedStore(tmp / "accepted.sqlite", retention_s=3600)
    try:
        wait_for(lambda: model.passport(SIREN), 10, "the passport in the read model")
        wait_for(lambda: model.deliveries("web-78"), 10, "the delivery in the read model")
        with serve(_app(own, store, ModelReadSide(model), publisher)) as base:
            yield base
    finally:
        model.stop()
        publisher.close()
        store.close()


class _NoReadSide:
    caught_up = False

    def passport(self, siren: str) -> dict[str, Any] | None:
        return None

    def leads_for(self, reseller_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return []

    def lead(self, lead_id: str) -> dict[str, Any] | None:
        return None

    def lead_holder(self, lead_id: str) -> tuple[bool, str | None]:
        return (False, None)

    def passports_in(self, departement: str, *, state: str | None = None,
                     after: str | None = None, limit: int = 100) -> dict[str, Any]:
        return {"passports": [], "next_cursor": None, "total": 0}

    def stats(self) -> dict[str, Any]:
        return {}

    def kpi(self) -> dict[str, Any]:
        return {}

    def webhook_endpoint(self, reseller_id: str) -> dict[str, Any] | None:
        return None

    def deliveries(self, reseller_id: str, *, limit: int = 100,
                   message_id: str | None = None) -> list[dict[str, Any]]:
        return []

    def lead_feed(self, reseller_id: str | None, *, cursor: str | None,
                  limit: int = 100) -> dict[str, Any]:
        return {"events": [], "next_cursor": "start"}

    def wait_for_change(self, timeout_s: float) -> bool:
        return False

    def reflects_passport(self, siren: str, token: Token) -> bool:
        return False

    def reflects_lead(self, lead_id: str, token: Token) -> bool:
        return False


def _app(settings: Settings, store: AcceptedStore, readside: ReadSide,
         publisher: Publisher) -> FastAPI:
    return create_app(settings, publisher=publisher, readside=readside,
                      keyring=KeyRing(None, DEV_KEY), store=store, registry=CollectorRegistry())


def _document() -> dict[str, Any]:
    """The OpenAPI document, built at collection time (schemathesis makes one test per route)."""
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:9")  # never contacted
    with tempfile.TemporaryDirectory() as tmp:
        store = AcceptedStore(Path(tmp) / "accepted.sqlite", retention_s=1)
        try:
            return _app(settings, store, _NoReadSide(), Publisher(settings)).openapi()
        finally:
            store.close()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_served_document_is_the_one_under_test(base_url: str) -> None:
    assert httpx.get(f"{base_url}/openapi.json", timeout=10).json() == DOCUMENT


def short_waits(case: Case) -> None:
    """At most a second of ``wait`` (also for ``after``'s default of 10): what a long poll
    answers does not depend on how long it waited."""
    query = case.query
    if not isinstance(query, dict):
        return
    if "wait" not in query:
        if "after" in query:
            query["wait"] = 1
        return
    try:
        seconds = int(str(query["wait"]))  # the coverage phase sends some values as text
    except ValueError:
        return  # not a number: a 422 at once
    if seconds > 1:
        query["wait"] = 1


@settings(max_examples=30, deadline=None,
          # a real server answers each case: slower than hypothesis expects of a pure function
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
@schema.parametrize()
def test_every_answer_is_documented_and_none_is_a_server_error(case: Case, base_url: str) -> None:
    short_waits(case)
    case.call_and_validate(base_url=base_url, headers=AUTH, checks=CHECKS)
