"""The events-ingested counter of the API: each item of a request counted once it is decided,
by the caller's partner kind, its type and what became of it, on a real registry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from connectors.api.auth import Caller
from connectors.api.idempotency import AcceptedStore
from connectors.api.ingest import Ingest
from connectors.api.ingested import IngestMetrics, partner_kind, sender_kind, type_label
from connectors.api.keys import ROLES
from connectors.api.problems import ProblemError
from schemas.models import EXAMPLES
from tests.unit.test_api_ingest import FakeReadSide, FakeWriter

DELEGATION = Caller("cefac-78-1", "cefac-78", frozenset(ROLES["delegation"]))
TRAINER = Caller("google-1", "google", frozenset(ROLES["trainer"]))
IDS = [f"00000000-0000-4000-8000-0000000001{i:02d}" for i in range(10)]


def ingested(registry: CollectorRegistry, partner: str, event_type: str,
             outcome: str) -> float:
    value = registry.get_sample_value("passport_hub_events_ingested_total", {
        "channel": "api", "partner": partner, "type": event_type, "outcome": outcome})
    return value or 0.0


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def ingest(tmp_path: Path, registry: CollectorRegistry) -> Iterator[Ingest]:
    store = AcceptedStore(tmp_path / "accepted.sqlite", retention_s=3600)
    yield Ingest(publisher=FakeWriter(), readside=FakeReadSide(), store=store, ack_timeout_s=1,
                 metrics=IngestMetrics.create(registry, "api"))
    store.close()


def event(kind: str, event_id: str, **fields: Any) -> dict[str, Any]:
    return {**{k: v for k, v in EXAMPLES[kind].items() if k != "siret"}, "event_id": event_id,
            **fields}


def batch(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def test_a_batch_counts_each_event_by_type_and_outcome(ingest: Ingest,
                                                       registry: CollectorRegistry) -> None:
    body = batch(event("business_enrolled", IDS[0]),
                 event("offer_requested", IDS[1]),
                 event("business_enrolled", IDS[2], siren="123"),   # invalid: 422
                 event("module_completed", IDS[3]),                 # not the key's: 403
                 event("business_enrolled", IDS[0]),                # the first one again
                 {"type": "no_such_type", "event_id": IDS[4]})
    outcomes = ingest.accept_batch(DELEGATION, body)
    assert [o.status for o in outcomes] == [202, 202, 422, 403, 202, 422]
    assert ingested(registry, "delegation", "business_enrolled", "accepted") == 1
    assert ingested(registry, "delegation", "offer_requested", "accepted") == 1
    assert ingested(registry, "delegation", "business_enrolled", "duplicate") == 1
    assert ingested(registry, "delegation", "business_enrolled", "rejected") == 1
    assert ingested(registry, "delegation", "module_completed", "rejected") == 1
    assert ingested(registry, "delegation", "unknown", "rejected") == 1
    # The retry of the whole batch: what was accepted is a duplicate now.
    ingest.accept_batch(DELEGATION, body)
    assert ingested(registry, "delegation", "business_enrolled", "accepted") == 1
    assert ingested(registry, "delegation", "business_enrolled", "duplicate") == 3
    assert ingested(registry, "delegation", "offer_requested", "duplicate") == 1
    assert ingested(registry, "delegation", "business_enrolled", "rejected") == 2


def test_an_event_the_broker_did_not_acknowledge_is_not_counted(
        ingest: Ingest, registry: CollectorRegistry) -> None:
    assert isinstance(ingest.publisher, FakeWriter)
    ingest.publisher.failing = {b"552100554"}
    outcomes = ingest.accept_batch(DELEGATION, batch(
        event("business_enrolled", IDS[0]), event("business_enrolled", IDS[1], siren="552100554")))
    assert [o.status for o in outcomes] == [202, 503]
    assert ingested(registry, "delegation", "business_enrolled", "accepted") == 1
    assert ingested(registry, "delegation", "business_enrolled", "rejected") == 0
    ingest.publisher.failing.clear()
    ingest.accept_batch(DELEGATION, batch(event("business_enrolled", IDS[1], siren="552100554")))
    assert ingested(registry, "delegation", "business_enrolled", "accepted") == 2


def test_a_single_event_body_is_counted_whatever_becomes_of_it(
        ingest: Ingest, registry: CollectorRegistry) -> None:
    async def send(body: dict[str, Any] | bytes, caller: Caller = TRAINER) -> int:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            return (await ingest.accept_body(caller, raw)).status
        except ProblemError as exc:
            return int(exc.document["status"])

    async def scenario() -> list[int]:
        good = event("module_completed", IDS[5])
        return [await send(good), await send(good),
                await send(event("module_completed", IDS[6], module_id="Not A Module")),
                await send(b'{"type": "module_completed", '),
                await send(event("business_enrolled", IDS[7]))]

    assert asyncio.run(scenario()) == [202, 202, 422, 400, 403]
    assert ingested(registry, "trainer", "module_completed", "accepted") == 1
    assert ingested(registry, "trainer", "module_completed", "duplicate") == 1
    assert ingested(registry, "trainer", "module_completed", "rejected") == 1
    assert ingested(registry, "trainer", "unknown", "rejected") == 1  # not even JSON
    assert ingested(registry, "trainer", "business_enrolled", "rejected") == 1


def test_partner_kinds_are_a_bounded_set_told_by_scopes() -> None:
    for role, scopes in ROLES.items():
        assert partner_kind(frozenset(scopes)) == role
    assert partner_kind(frozenset({"offer_requested"})) == "delegation"  # a narrower key
    assert partner_kind(frozenset({"business_enrolled", "module_completed"})) == "other"
    assert sender_kind("training_feedback") == "trainer"
    assert sender_kind("lead_answered") == "reseller"
    assert sender_kind("unknown") == "other"
    assert type_label("reseller_profile") == "reseller_profile"
    assert type_label("DROP TABLE") == type_label(None) == "unknown"
