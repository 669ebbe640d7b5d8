"""The router against a real broker: whole reseller table, rotation, live updates, dead letters."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hub import deadletter, kafka
from hub.config import Settings
from hub.processor import Inbound, ProcessorLoop, store_path
from hub.reader import TopicReader
from hub.service import processor_loop
from hub.store import Store
from schemas import catalog
from schemas.codec import Codec
from services.routing.__main__ import build
from services.routing.processor import RoutingProcessor

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

WHEN = datetime(2009, 3, 2, 9, 0, tzinfo=UTC)
# Not a divisor of the 3 s group-join delay: kafka-python 3.0.12 drops a join
# that completes between two polls, and with 500 ms it lands on the boundary.
POLL_MS = 400


def profile(reseller_id: str, departements: Iterable[str], *, status: str = "active",
            categories: Iterable[str] = ("e-commerce",)) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": WHEN, "source": "test",
            "schema_version": 1, "reseller_id": reseller_id, "name": reseller_id.title(),
            "departements": list(departements), "categories": list(categories),
            "capacity": 10, "weight": 1, "status": status}


def lead_request(departement: str = "78", region: str = "11") -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": WHEN, "source": "passport",
            "schema_version": 1, "lead_id": str(uuid.uuid4()), "siren": "732829320",
            "name": "Boulangerie Martin", "departement": departement, "region": region,
            "category": "e-commerce", "naf": None, "contact_email": "contact@example.fr"}


def produce(settings: Settings, topic: str, items: Iterable[tuple[str, bytes]]) -> None:
    producer = kafka.producer(settings)
    try:
        for key, value in items:
            producer.send(settings.topic(topic), key=key.encode(), value=value)
        producer.flush()
    finally:
        producer.close()


def resellers(settings: Settings, *profiles: dict[str, Any]) -> None:
    codec = Codec.default()
    produce(settings, catalog.RESELLERS,
            [(p["reseller_id"], codec.encode("ResellerProfile", p)) for p in profiles])


def requests(settings: Settings, *leads: dict[str, Any]) -> None:
    codec = Codec.default()
    produce(settings, catalog.LEAD_REQUESTS,
            [(lead["lead_id"], codec.encode("LeadRequested", lead)) for lead in leads])


@contextmanager
def router(settings: Settings) -> Iterator[tuple[ProcessorLoop, RoutingProcessor]]:
    """The router as ``python -m services.routing`` wires it, minus signals and metrics."""
    wiring = build(settings)
    assert isinstance(wiring.processor, RoutingProcessor)
    with Store(store_path(settings, "routing")) as store:
        loop = processor_loop(wiring, settings=settings, store=store,
                              registry=CollectorRegistry())
        loop.start()
        try:
            yield loop, wiring.processor
        finally:
            loop.close()
            assert wiring.close is not None
            wiring.close()


def run_until(loop: ProcessorLoop, reader: TopicReader, seen: list[Inbound],
              done: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"not done; decisions so far: {len(seen)}"
        loop.run_once(timeout_ms=POLL_MS)
        seen.extend(reader.poll(timeout_ms=0))


def test_leads_rotate_over_the_table_read_at_start_and_follow_its_updates(
        topics: Settings) -> None:
    # Two profiles of "versailles": the later one (paused) must win, the earlier
    # (active) must not leak into any decision.
    resellers(topics, profile("versailles", ["78"]), profile("idf", ["75", "78"]),
              profile("yvelines", ["78"]), profile("versailles", ["78"], status="paused"),
              profile("paris", ["75"]))
    first = [lead_request() for _ in range(4)]
    requests(topics, *first)
    reader = TopicReader(topics, [catalog.LEADS])
    reader.start()
    seen: list[Inbound] = []
    with router(topics) as (loop, processor):
        assert sorted(processor.resellers) == ["idf", "paris", "versailles", "yvelines"]
        run_until(loop, reader, seen, lambda: len(seen) >= 4)
        # A reseller that appears while the router runs is used without a restart:
        # the table is refreshed before every poll (it may lag a lead produced at
        # the same moment, as two topics have no order between them).
        resellers(topics, profile("bordeaux", ["33"]))
        run_until(loop, reader, seen, lambda: "bordeaux" in processor.resellers)
        late = lead_request(departement="33", region="75")
        requests(topics, late, first[0])  # first[0] again: already decided, not again
        run_until(loop, reader, seen, lambda: len(seen) >= 5)
        # Give a wrongly repeated decision the chance to show up before asserting.
        for _ in range(3):
            loop.run_once(timeout_ms=POLL_MS)
            seen.extend(reader.poll(timeout_ms=0))
    reader.close()
    decisions = {r.datum["lead_id"]: r.datum for r in seen}
    assert len(seen) == 5
    assert [decisions[lead["lead_id"]]["reseller_id"] for lead in first] == [
        "idf", "yvelines", "idf", "yvelines"]
    for lead in first:
        decision = decisions[lead["lead_id"]]
        assert decision["rule"] == "departement"
        assert decision["candidates"] == ["idf", "yvelines"]
        assert decision["event_id"]
        assert decision["occurred_at"] == WHEN
        assert decision["business_name"] == "Boulangerie Martin"
    bordeaux = decisions[late["lead_id"]]
    assert (bordeaux["status"], bordeaux["reseller_id"], bordeaux["rule"]) == (
        "assigned", "bordeaux", "departement")
    assert {r.key for r in seen} == {r.datum["lead_id"].encode() for r in seen}


def test_a_lead_without_reseller_is_unassigned_and_garbage_is_dead_lettered(
        topics: Settings) -> None:
    resellers(topics, profile("paris", ["75"]))
    nowhere = lead_request(departement="33", region="75")
    produce(topics, catalog.LEAD_REQUESTS, [("junk", b"not avro")])
    requests(topics, nowhere)
    reader = TopicReader(topics, [catalog.LEADS])
    reader.start()
    dlq = kafka.consumer(topics, group=None)
    dlq.subscribe([topics.topic(catalog.DLQ)])
    seen: list[Inbound] = []
    letters: list[Any] = []
    with router(topics) as (loop, _):
        def done() -> bool:
            letters.extend(r for records in dlq.poll(timeout_ms=0).values() for r in records)
            return bool(seen) and bool(letters)
        run_until(loop, reader, seen, done)
    reader.close()
    dlq.close()
    [decision] = [r.datum for r in seen]
    assert (decision["status"], decision["reseller_id"], decision["rule"]) == (
        "unassigned", None, "none")
    assert decision["lead_id"] == nowhere["lead_id"]
    [letter] = letters
    headers = dict(letter.headers)
    assert (letter.key, letter.value) == (b"junk", b"not avro")
    assert headers[deadletter.STAGE] == b"decode"
    assert headers[deadletter.COMPONENT] == b"routing"
    assert headers[deadletter.SOURCE_TOPIC] == topics.topic(catalog.LEAD_REQUESTS).encode()
