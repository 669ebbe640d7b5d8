"""The routing processor over an in-memory store, and the reseller table over a fake reader."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from hub.ids import derive
from hub.processor import Emit, Inbound, Outbound, Rejected
from schemas import catalog
from schemas.codec import Codec
from services.routing.policy import Reseller
from services.routing.processor import LEADS_NS, ROTATION_NS, RoutingProcessor
from services.routing.table import ResellerTable
from tests.unit.test_passport_processor import FakeTxn
from tests.unit.test_routing_policy import reseller, table

WHEN = datetime(2009, 3, 2, 9, 0, tzinfo=UTC)


def lead_request(*, departement: str = "78", region: str = "11",
                 category: str = "e-commerce", lead_id: str | None = None) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": WHEN, "source": "passport",
            "schema_version": 1, "lead_id": lead_id or str(uuid.uuid4()), "siren": "732829320",
            "name": "Boulangerie Martin", "departement": departement, "region": region,
            "category": category, "naf": "10.71C", "contact_email": "contact@boulangerie.example"}


def inbound(datum: dict[str, Any], offset: int = 0, record: str = "LeadRequested") -> Inbound:
    return Inbound(catalog.LEAD_REQUESTS, 0, offset, datum["lead_id"].encode(), record, datum, 0)


def _apply(txn: FakeTxn, resellers: dict[str, Reseller], batch: Sequence[Inbound]) -> list[Emit]:
    out = RoutingProcessor(resellers).apply(txn, batch)  # type: ignore[arg-type]  # a fake Txn
    codec = Codec.default()
    for emit in out:
        if isinstance(emit, Outbound):
            codec.encode(emit.record, emit.datum)  # every decision fits its schema
    return out


RESELLERS = table(reseller("versailles", ["78"]), reseller("idf", ["75", "78"]))


def test_a_lead_is_assigned_with_its_reasons() -> None:
    request = lead_request()
    [out] = _apply(FakeTxn(), RESELLERS, [inbound(request)])
    assert isinstance(out, Outbound)
    assert (out.topic, out.key, out.record) == (catalog.LEADS, request["lead_id"], "LeadAssigned")
    datum = out.datum
    assert datum["event_id"] == derive(request["event_id"], "assigned")
    assert (datum["status"], datum["reseller_id"], datum["rule"]) == ("assigned", "idf",
                                                                      "departement")
    assert datum["candidates"] == ["idf", "versailles"]
    assert datum["occurred_at"] == WHEN
    assert (datum["business_name"], datum["siren"]) == ("Boulangerie Martin", "732829320")
    assert datum["source"] == "routing"


def test_the_rotation_cursor_persists_across_batches() -> None:
    txn = FakeTxn()
    chosen = []
    for offset in range(4):
        [out] = _apply(txn, RESELLERS, [inbound(lead_request(), offset)])
        assert isinstance(out, Outbound)
        chosen.append(out.datum["reseller_id"])
    assert chosen == ["idf", "versailles", "idf", "versailles"]
    assert txn.get(ROTATION_NS, "departement:78:e-commerce") == 4


def test_a_lead_already_decided_is_not_decided_again() -> None:
    txn = FakeTxn()
    request = lead_request()
    first = _apply(txn, RESELLERS, [inbound(request, 0)])
    assert len(first) == 1
    assert txn.get(LEADS_NS, request["lead_id"]) == {"status": "assigned",
                                                      "reseller_id": "idf",
                                                      "rule": "departement"}
    assert _apply(txn, RESELLERS, [inbound(request, 0), inbound(request, 1)]) == []
    assert txn.get(ROTATION_NS, "departement:78:e-commerce") == 1


def test_no_candidate_is_an_unassigned_decision_that_moves_no_cursor() -> None:
    txn = FakeTxn()
    [out] = _apply(txn, RESELLERS, [inbound(lead_request(departement="33", region="75"))])
    assert isinstance(out, Outbound)
    assert (out.datum["status"], out.datum["reseller_id"], out.datum["rule"]) == (
        "unassigned", None, "none")
    assert out.datum["candidates"] == []
    assert not any(ns == ROTATION_NS for ns, _ in txn.data)


def test_a_foreign_record_or_unknown_place_is_rejected_and_the_rest_decided() -> None:
    foreign = inbound(lead_request(), 0, record="OfferRequested")
    nowhere = inbound(lead_request(departement="20"), 1)
    good = inbound(lead_request(), 2)
    out = _apply(FakeTxn(), RESELLERS, [foreign, nowhere, good])
    assert [(e.inbound, e.stage) for e in out if isinstance(e, Rejected)] == [
        (foreign, "validate"), (nowhere, "validate")]
    assert [e.key for e in out if isinstance(e, Outbound)] == [good.datum["lead_id"]]


def test_the_processor_sees_the_table_as_it_is_refreshed() -> None:
    live: dict[str, Reseller] = {}
    processor = RoutingProcessor(live)
    txn = FakeTxn()
    [before] = processor.apply(txn, [inbound(lead_request(), 0)])  # type: ignore[arg-type]
    live.update(RESELLERS)
    [after] = processor.apply(txn, [inbound(lead_request(), 1)])  # type: ignore[arg-type]
    assert isinstance(before, Outbound)
    assert isinstance(after, Outbound)
    assert (before.datum["status"], after.datum["status"]) == ("unassigned", "assigned")


# -- the reseller table ----------------------------------------------------------------------

def profile(reseller_id: str, offset: int, **fields: Any) -> Inbound:
    datum = {"event_id": str(uuid.uuid4()), "occurred_at": WHEN, "source": "test",
             "schema_version": 1, "reseller_id": reseller_id, "name": reseller_id.title(),
             "departements": ["78"], "categories": ["e-commerce"], "capacity": 10, "weight": 1,
             "status": "active", **fields}
    return Inbound(catalog.RESELLERS, 0, offset, reseller_id.encode(), "ResellerProfile", datum,
                   0)


class FakeReader:
    """A TopicReader's start/catch_up/poll/close over lists of batches."""

    def __init__(self, history: list[Inbound]) -> None:
        self.history = history
        self.live: list[list[Inbound]] = []
        self.started = self.closed = False

    def start(self) -> None:
        self.started = True

    def catch_up(self, apply: Callable[[list[Inbound]], None], timeout_s: float = 60.0) -> int:
        apply(self.history)
        return len(self.history)

    def poll(self, timeout_ms: int = 0) -> list[Inbound]:
        assert timeout_ms == 0  # refresh must never wait
        return self.live.pop(0) if self.live else []

    def close(self) -> None:
        self.closed = True


def test_the_table_keeps_the_last_profile_per_reseller_and_follows_updates() -> None:
    reader = FakeReader([profile("a", 0), profile("b", 1), profile("a", 2, status="paused"),
                         profile("c", 3, departements=["75", "92"])])
    resellers = ResellerTable(None, reader=reader)  # type: ignore[arg-type]  # fake reader
    resellers.start()
    assert reader.started
    assert sorted(resellers.resellers) == ["a", "b", "c"]
    assert resellers.resellers["a"].status == "paused"
    assert resellers.resellers["c"].departements == frozenset({"75", "92"})
    reader.live.append([profile("b", 4, categories=["security"]),
                        Inbound(catalog.RESELLERS, 0, 5, b"x", "LeadAnswered", {}, 0),
                        profile("d", 6)])
    resellers.refresh()
    resellers.refresh()  # nothing new: nothing changes
    assert resellers.resellers["b"].categories == frozenset({"security"})
    assert sorted(resellers.resellers) == ["a", "b", "c", "d"]
    resellers.close()
    assert reader.closed
