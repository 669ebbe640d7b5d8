"""The accept path with fakes of its collaborators: partial broker failures, idempotency."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from connectors.api.auth import Caller
from connectors.api.bodies import json_media_type
from connectors.api.idempotency import Accepted, AcceptedStore
from connectors.api.ingest import Ingest
from connectors.publish import Record, Sending
from hub.errors import BrokerUnavailable
from schemas.models import EXAMPLES, EventModel, parse_event

ADMIN = Caller("ops-1", "ops", frozenset({"*"}))


class FakeWriter:
    """Records what was published; fails the records whose key is in ``failing``."""

    def __init__(self) -> None:
        self.published: list[Record] = []
        self.failing: set[bytes] = set()
        self.flushes: list[bool] = []

    def record(self, event: EventModel) -> Record:
        return Record(event.TOPIC, event.key().encode(), event.model_dump_json().encode())

    def send_records(self, records: Sequence[Record]) -> Sending:
        return Sending(None, list(records), None, len(records), 0.0)

    def acknowledged(self, sending: Sending, *,
                     flush: bool = True) -> list[BrokerUnavailable | None]:
        self.flushes.append(flush)
        outcomes: list[BrokerUnavailable | None] = []
        for record in sending.futures:
            if record.key in self.failing:
                outcomes.append(BrokerUnavailable("down"))
            else:
                self.published.append(record)
                outcomes.append(None)
        return outcomes

    def send_now(self, record: Record) -> Any | None:
        return None  # never warm: the threaded way

    def outcome(self, future: Any) -> BrokerUnavailable | None:
        raise AssertionError("send_now never gives a future")

    def timed_out(self, seconds: float) -> BrokerUnavailable:
        raise AssertionError("send_now never gives a future to time out")

    def publish_records(self, records: Sequence[Record], *,
                        flush: bool = True) -> list[BrokerUnavailable | None]:
        return self.acknowledged(self.send_records(records), flush=flush)

    def ready(self) -> bool:
        return True


class FakeReadSide:
    caught_up = True

    def passport(self, siren: str) -> dict[str, Any] | None:
        return None

    def leads_for(self, reseller_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return []

    def lead(self, lead_id: str) -> dict[str, Any] | None:
        return None

    def lead_holder(self, lead_id: str) -> tuple[bool, str | None]:
        return (lead_id == "lead-1", "yvelines-web")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AcceptedStore]:
    accepted = AcceptedStore(tmp_path / "accepted.sqlite", retention_s=3600)
    yield accepted
    accepted.close()


def enrolment(siren: str, event_id: str, name: str = "Boulangerie") -> EventModel:
    example = {k: v for k, v in EXAMPLES["business_enrolled"].items() if k != "siret"}
    return parse_event({**example, "siren": siren, "event_id": event_id, "name": name})


IDS = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(5)]


def test_only_acknowledged_events_are_202_and_remembered(store: AcceptedStore) -> None:
    writer = FakeWriter()
    writer.failing = {b"552100554"}
    ingest = Ingest(publisher=writer, readside=FakeReadSide(), store=store, ack_timeout_s=1)
    items: list[EventModel | dict[str, Any]] = [
        enrolment("732829320", IDS[0]), enrolment("552100554", IDS[1]),
        {"status": 422, "detail": "bad"}, enrolment("542065479", IDS[2])]
    outcomes = ingest.accept(ADMIN, items, bulk=True)
    assert [o.status for o in outcomes] == [202, 503, 422, 202]
    assert outcomes[1].event_id is None
    assert writer.flushes == [True]
    assert set(store.lookup(IDS)) == {IDS[0], IDS[2]}
    # The retry of the whole batch publishes only what was not acknowledged.
    writer.failing.clear()
    again = ingest.accept(ADMIN, items, bulk=True)
    assert [o.status for o in again] == [202, 202, 422, 202]
    assert [r.key for r in writer.published] == [b"732829320", b"542065479", b"552100554"]


def test_a_lead_answer_from_a_reseller_is_checked_against_the_read_model(
        store: AcceptedStore) -> None:
    ingest = Ingest(publisher=FakeWriter(), readside=FakeReadSide(), store=store,
                    ack_timeout_s=1)
    reseller = Caller("k", "yvelines-web", frozenset({"lead_answered"}), "yvelines-web")
    other = Caller("k2", "paris-web", frozenset({"lead_answered"}), "paris-web")

    def answer(lead_id: str, reseller_id: str) -> EventModel:
        return parse_event({**EXAMPLES["lead_answered"], "lead_id": lead_id,
                            "reseller_id": reseller_id})

    [unknown] = ingest.accept(reseller, [answer("lead-9", "yvelines-web")], bulk=False)
    assert unknown.status == 404
    [theirs] = ingest.accept(other, [answer("lead-1", "paris-web")], bulk=False)
    assert theirs.status == 403
    [mine] = ingest.accept(reseller, [answer("lead-1", "yvelines-web")], bulk=False)
    assert mine.status == 202


def test_the_store_remembers_and_forgets_after_the_retention(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = AcceptedStore(tmp_path / "a.sqlite", retention_s=60, clock=lambda: now[0])
    store.remember([Accepted(IDS[0], "a" * 64, "t")])
    assert store.lookup([IDS[0], IDS[1]]) == {IDS[0]: Accepted(IDS[0], "a" * 64, "t")}
    many = [f"id-{i}" for i in range(1200)]  # more than one statement's worth of parameters
    store.remember([Accepted(i, "b" * 64, "t") for i in many])
    assert len(store.lookup(many)) == 1200
    now[0] += 61
    assert store.prune() == 1201
    assert store.lookup([IDS[0]]) == {}
    store.close()


def test_a_claimed_id_waits_for_its_holder(store: AcceptedStore) -> None:
    assert store.claim(["a", "b"], 1) == {"a", "b"}
    assert store.claim(["a", "c"], 0.05) == {"c"}  # "a" is busy: not claimed in time
    got: list[set[str]] = []
    waiter = threading.Thread(target=lambda: got.append(store.claim(["a"], 5)))
    waiter.start()
    time.sleep(0.05)
    store.release(["a", "b"])
    waiter.join(5)
    assert got == [{"a"}]


@pytest.mark.parametrize(("value", "ok"), [
    ("application/json", True), ("application/json; charset=utf-8", True),
    ("APPLICATION/JSON;CHARSET=UTF8", True), ("application/problem+json", True),
    ("application/vnd.api+json; version=2", True), ("application/json; charset=latin-1", False),
    ("text/json", False), ("application/jsonp", False), ("", False), (None, False),
    ("application/", False), ("+json", False),
])
def test_json_media_types(value: str | None, ok: bool) -> None:
    assert json_media_type(value) is ok
