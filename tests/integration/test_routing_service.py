"""The router against a real broker: table, decisions, answers, deadlines, dead letters, restore.

The router runs as ``python -m services.routing`` wires it (``build``), in this
process, with its clock replaced by one the test moves: two business days pass
in one assignment.
"""

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
from hub.processor import ProcessorLoop, store_path
from hub.reader import TopicReader
from hub.service import processor_loop
from hub.store import Store
from schemas import catalog
from schemas.codec import Codec
from services.routing.__main__ import build
from services.routing.processor import RoutingProcessor
from services.routing.records import request_of
from services.routing.registry import Registry, parse_profile
from services.routing.router import Router

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

WHEN = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday
WHEN_MS = int(WHEN.timestamp() * 1000)
DAY_MS = 86_400_000
# Not a divisor of the 3 s group-join delay: kafka-python 3.0.12 drops a join
# that completes between two polls, and with 500 ms it lands on the boundary.
POLL_MS = 400


class Clock:
    """The router's clock, moved by the test (epoch ms)."""

    def __init__(self) -> None:
        self.now = WHEN_MS

    def __call__(self) -> int:
        return self.now


def profile(reseller_id: str, departements: Iterable[str], *, status: str = "active",
            capacity: int = 10, weight: int = 1,
            categories: Iterable[str] = ("e-commerce",)) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": WHEN, "source": "test",
            "schema_version": 3, "reseller_id": reseller_id, "name": reseller_id.title(),
            "departements": list(departements), "categories": list(categories),
            "capacity": capacity, "weight": weight, "status": status}


def lead_request(departement: str = "78", region: str = "11",
                 siren: str | None = None) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": WHEN, "source": "passport",
            "schema_version": 1, "lead_id": str(uuid.uuid4()),
            "siren": siren or str(uuid.uuid4().int)[:9], "name": "Boulangerie Martin",
            "departement": departement, "region": region, "category": "e-commerce",
            "naf": None, "contact_email": "contact@example.fr"}


def answer(lead_id: str, reseller_id: str, what: str, reason: str | None = None) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": WHEN, "source": reseller_id,
            "schema_version": 1, "lead_id": lead_id, "reseller_id": reseller_id,
            "answer": what, "reason": reason}


def produce(settings: Settings, topic: str, record: str,
            items: Iterable[tuple[str, dict[str, Any]]]) -> None:
    codec = Codec.default()
    produce_raw(settings, topic, [(key, codec.encode(record, value)) for key, value in items])


def produce_raw(settings: Settings, topic: str, items: Iterable[tuple[str, bytes]]) -> None:
    producer = kafka.producer(settings)
    try:
        for key, value in items:
            producer.send(settings.topic(topic), key=key.encode(), value=value)
        producer.flush()
    finally:
        producer.close()


def resellers(settings: Settings, *profiles: dict[str, Any]) -> None:
    produce(settings, catalog.RESELLERS, "ResellerProfile",
            [(p["reseller_id"], p) for p in profiles])


def requests(settings: Settings, *leads: dict[str, Any]) -> None:
    produce(settings, catalog.LEAD_REQUESTS, "LeadRequested",
            [(lead["lead_id"], lead) for lead in leads])


def answers(settings: Settings, *items: dict[str, Any]) -> None:
    produce(settings, catalog.LEAD_RESPONSES, "LeadAnswered",
            [(item["lead_id"], item) for item in items])


@contextmanager
def router(settings: Settings, clock: Clock, *,
           instance: str = "0") -> Iterator[tuple[ProcessorLoop, RoutingProcessor]]:
    """The router as ``python -m services.routing`` wires it, minus signals and metrics."""
    wiring = build(settings)
    assert isinstance(wiring.processor, RoutingProcessor)
    wiring.processor.clock = clock
    with Store(store_path(settings, "routing", instance)) as store:
        loop = processor_loop(wiring, settings=settings, store=store,
                              registry=CollectorRegistry())
        loop.start()
        try:
            yield loop, wiring.processor
        finally:
            loop.close()
            assert wiring.close is not None
            wiring.close()


class Watch:
    """What the router wrote: lead changes and dead letters."""

    def __init__(self, settings: Settings) -> None:
        self.leads = TopicReader(settings, [catalog.LEADS])
        self.leads.start()
        self.dlq = kafka.consumer(settings, group=None)
        self.dlq.subscribe([settings.topic(catalog.DLQ)])
        self.changes: list[dict[str, Any]] = []
        self.letters: list[Any] = []

    def poll(self) -> None:
        self.changes.extend(r.datum for r in self.leads.poll(timeout_ms=0))
        self.letters.extend(r for records in self.dlq.poll(timeout_ms=0).values()
                            for r in records)

    def of(self, lead_id: str) -> list[dict[str, Any]]:
        return [c for c in self.changes if c["lead_id"] == lead_id]

    def latest(self, lead_id: str) -> dict[str, Any]:
        return max(self.of(lead_id), key=lambda c: c["version"])

    def close(self) -> None:
        self.leads.close()
        self.dlq.close()


def run_until(loop: ProcessorLoop, watch: Watch, done: Callable[[], bool],
              timeout_s: float = 40) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"not done; changes so far: {len(watch.changes)}"
        loop.run_once(timeout_ms=POLL_MS)
        watch.poll()


def settle(loop: ProcessorLoop, watch: Watch, rounds: int = 3) -> None:
    """Give a wrongly repeated change the chance to show up before asserting."""
    for _ in range(rounds):
        loop.run_once(timeout_ms=POLL_MS)
        watch.poll()


def test_the_table_is_read_at_start_followed_live_and_bad_profiles_are_dead_lettered(
        topics: Settings) -> None:
    # The later "versailles" profile is invalid: it is dead-lettered with the
    # reason, and the earlier one stays in force.
    bad = profile("versailles", ["78", "999"])
    resellers(topics, profile("versailles", ["78"]), profile("yvelines", ["78"]), bad)
    first = [lead_request() for _ in range(4)]
    requests(topics, *first)
    watch = Watch(topics)
    with router(topics, Clock()) as (loop, processor):
        assert sorted(processor.registry) == ["versailles", "yvelines"]
        run_until(loop, watch, lambda: len(watch.changes) >= 4 and bool(watch.letters))
        resellers(topics, profile("bordeaux", ["33"]))
        run_until(loop, watch, lambda: "bordeaux" in processor.registry)
        late = lead_request(departement="33", region="75")
        requests(topics, late, first[0])  # first[0] again: decided already, not again
        run_until(loop, watch, lambda: len(watch.changes) >= 5)
        settle(loop, watch)
    with router(topics, Clock()) as (loop, _):  # reads the bad profile again: no new letter
        settle(loop, watch, rounds=4)
    watch.close()
    assert len(watch.changes) == 5
    holders = [watch.latest(lead["lead_id"])["reseller_id"] for lead in first]
    assert sorted(holders) == ["versailles", "versailles", "yvelines", "yvelines"]  # fair
    for lead in first:
        change = watch.latest(lead["lead_id"])
        assert (change["change"], change["status"], change["version"]) == (
            "assigned", "assigned", 1)
        assert change["rule"] == "departement"
        assert [c["reseller_id"] for c in change["decision"]["candidates"]] == [
            "versailles", "yvelines"]
        assert change["deadline_at"] == datetime(2026, 11, 4, 9, 0, tzinfo=UTC)
    assert watch.latest(late["lead_id"])["reseller_id"] == "bordeaux"
    [letter] = watch.letters
    headers = dict(letter.headers)
    assert headers[deadletter.STAGE] == b"validate"
    assert headers[deadletter.COMPONENT] == b"routing"
    assert headers[deadletter.SOURCE_TOPIC] == topics.topic(catalog.RESELLERS).encode()
    assert b"999" in headers[deadletter.ERROR_MESSAGE]


def test_answers_move_the_lead_and_bad_ones_are_dead_lettered_without_blocking(
        topics: Settings) -> None:
    resellers(topics, profile("alpha", ["78"]), profile("beta", ["78"]))
    one, two = lead_request(), lead_request()
    requests(topics, one, two)
    watch = Watch(topics)
    with router(topics, Clock()) as (loop, _):
        run_until(loop, watch, lambda: len(watch.changes) >= 2)
        holder = watch.latest(one["lead_id"])["reseller_id"]
        other = "beta" if holder == "alpha" else "alpha"
        answers(topics,
                answer(one["lead_id"], other, "accepted"),   # not the holder
                answer(one["lead_id"], holder, "won"),       # out of order
                answer(one["lead_id"], holder, "accepted"),
                answer(one["lead_id"], holder, "won"),
                answer(two["lead_id"], watch.latest(two["lead_id"])["reseller_id"],
                       "rejected", "budget"))
        produce_raw(topics, catalog.LEAD_RESPONSES, [("junk", b"not avro")])
        run_until(loop, watch, lambda: len(watch.letters) >= 3 and len(watch.changes) >= 6)
        settle(loop, watch)
    watch.close()
    assert [c["change"] for c in watch.of(one["lead_id"])] == ["assigned", "accepted", "won"]
    second = watch.of(two["lead_id"])
    assert [c["change"] for c in second] == ["assigned", "rejected", "reassigned"]
    assert second[1]["reason"] == "budget"
    assert second[2]["reseller_id"] != second[0]["reseller_id"]
    assert second[2]["excluded_resellers"] == [second[0]["reseller_id"]]
    stages = sorted(dict(letter.headers)[deadletter.STAGE] for letter in watch.letters)
    assert stages == [b"decode", b"validate", b"validate"]
    messages = b" ".join(dict(letter.headers)[deadletter.ERROR_MESSAGE] for letter in watch.letters
                         if dict(letter.headers)[deadletter.STAGE] == b"validate")
    assert b"is not held by" in messages
    assert b"cannot be won now" in messages


def test_a_deadline_fires_once_even_across_a_restart(topics: Settings) -> None:
    resellers(topics, profile("alpha", ["78"]), profile("beta", ["78"]))
    lead = lead_request()
    requests(topics, lead)
    watch = Watch(topics)
    clock = Clock()
    with router(topics, clock) as (loop, _):
        run_until(loop, watch, lambda: len(watch.changes) >= 1)
        clock.now += 1 * DAY_MS  # one business day: not due yet
        settle(loop, watch)
        assert len(watch.changes) == 1
        clock.now += 2 * DAY_MS  # Thursday 09:00: past Wednesday 09:00
        run_until(loop, watch, lambda: len(watch.changes) >= 3)
        settle(loop, watch)
    with router(topics, clock) as (loop, _):  # same store: nothing fires again
        settle(loop, watch, rounds=5)
    watch.close()
    kinds = [(c["change"], c["sla_breached"]) for c in watch.of(lead["lead_id"])]
    assert kinds == [("assigned", False), ("expired", True), ("reassigned", False)]
    first, _, again = watch.of(lead["lead_id"])
    assert again["reseller_id"] != first["reseller_id"]
    assert again["deadline_at"] > first["deadline_at"]


def test_a_fresh_store_restores_from_the_leads_topic_and_decides_as_if_uninterrupted(
        topics: Settings) -> None:
    profiles = [profile("alpha", ["78"], weight=3), profile("beta", ["78"], weight=1),
                profile("gamma", ["78", "92"], weight=2, capacity=3)]
    resellers(topics, *profiles)
    leads = [lead_request() for _ in range(12)]
    clock = Clock()
    watch = Watch(topics)
    requests(topics, *leads[:6])
    with router(topics, clock, instance="a") as (loop, _):
        run_until(loop, watch, lambda: len(watch.changes) >= 6)
    requests(topics, *leads[6:])
    with router(topics, clock, instance="b") as (loop, processor):  # an empty store
        run_until(loop, watch, lambda: len(watch.changes) >= 12)
        settle(loop, watch)
        restored = processor.state
    watch.close()
    # The oracle: the pure router over the same requests, without a restart.
    oracle = Router(Registry.of(parse_profile(p) for p in profiles))
    for lead in leads:
        oracle.request(request_of({**lead, "occurred_at": WHEN_MS}), WHEN_MS)
    assert len(watch.changes) == 12
    assert {c["lead_id"]: c["reseller_id"] for c in watch.changes} == {
        lead_id: lead.holder for lead_id, lead in oracle.state.leads.items()}
    assert restored is not None
    assert restored.standings == oracle.state.standings
    assert restored.open_counts == oracle.state.open_counts


def test_a_withdrawal_cancels_the_lead_for_good_and_frees_its_capacity(
        topics: Settings) -> None:
    resellers(topics, profile("solo", ["78"], capacity=1))
    lead, waiting = lead_request(), lead_request()
    requests(topics, lead, waiting)  # the second waits in the national queue: solo is full
    watch = Watch(topics)
    clock = Clock()
    with router(topics, clock) as (loop, _):
        run_until(loop, watch, lambda: len(watch.changes) >= 2)
        produce(topics, catalog.LEAD_REQUESTS, "LeadWithdrawn", [(lead["lead_id"], {
            "event_id": str(uuid.uuid4()), "occurred_at": WHEN, "source": "passport",
            "schema_version": 1, "lead_id": lead["lead_id"], "siren": lead["siren"],
            "reason": "erased"})])
        run_until(loop, watch, lambda: len(watch.changes) >= 3)
        answers(topics, answer(lead["lead_id"], "solo", "accepted"))
        clock.now += 10 * DAY_MS  # no deadline left to fire for it
        run_until(loop, watch, lambda: bool(watch.letters))
        fresh = lead_request()
        requests(topics, fresh)  # the capacity it held is free again
        run_until(loop, watch, lambda: len(watch.changes) >= 4)
        settle(loop, watch)
    watch.close()
    assert watch.latest(waiting["lead_id"])["status"] == "queued"
    assert [c["change"] for c in watch.of(lead["lead_id"])] == ["assigned", "withdrawn"]
    gone = watch.latest(lead["lead_id"])
    assert (gone["reason"], gone["contact_email"], gone["previous_reseller_id"]) == (
        "erased", None, "solo")
    assert watch.latest(fresh["lead_id"])["reseller_id"] == "solo"
    assert b"is withdrawn: it cannot be accepted" in dict(
        watch.letters[0].headers)[deadletter.ERROR_MESSAGE]
