"""The routing processor over a real SQLite store: persisted decisions, restarts, refusals,
deadlines fired by the injected clock, and bad reseller profiles dead-lettered."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from hub.config import Settings
from hub.processor import Emit, Inbound, Outbound, Rejected
from hub.store import Store
from schemas import catalog
from schemas.codec import Codec
from services.routing import records
from services.routing.processor import LEADS_NS, STANDINGS_NS, RoutingProcessor
from services.routing.registry import Registry
from services.routing.state import Lead
from services.routing.table import ResellerTable
from tests.unit.routing_kit import DAY, T0, reseller


class Clock:
    """The injected clock: epoch ms, moved by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


class Feed:
    """Hands out inbound records with increasing offsets per topic."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def _inbound(self, topic: str, record: str, datum: dict[str, Any]) -> Inbound:
        offset = self.next.get(topic, 0)
        self.next[topic] = offset + 1
        return Inbound(topic, 0, offset, str(datum.get("lead_id", "")).encode(), record,
                       datum, T0)

    def request(self, lead_id: str, *, siren: str = "732829320") -> Inbound:
        return self._inbound(catalog.LEAD_REQUESTS, "LeadRequested", {
            **_event(), "lead_id": lead_id, "siren": siren, "name": "Boulangerie Martin",
            "departement": "78", "region": "11", "category": "e-commerce", "naf": "10.71C",
            "contact_email": "contact@boulangerie.example"})

    def answer(self, lead_id: str, reseller_id: str, answer: str,
               reason: str | None = None) -> Inbound:
        return self._inbound(catalog.LEAD_RESPONSES, "LeadAnswered", {
            **_event(), "lead_id": lead_id, "reseller_id": reseller_id, "answer": answer,
            "reason": reason})

    def profile(self, **fields: Any) -> Inbound:
        return self._inbound(catalog.RESELLERS, "ResellerProfile", {**_event(), **fields})


def _event() -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": T0, "source": "test",
            "schema_version": 1}


REGISTRY = Registry.of([reseller("a", capacity=5), reseller("b", capacity=5)])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "routing.db") as opened:
        yield opened


def apply(processor: RoutingProcessor, store: Store, batch: Sequence[Inbound]) -> list[Emit]:
    with store.transaction() as txn:
        out = processor.apply(txn, batch)
    _encodes(out)
    return out


def flush(processor: RoutingProcessor, store: Store, partitions: frozenset[int]) -> list[Emit]:
    with store.transaction() as txn:
        out = list(processor.flush(txn, partitions))
    _encodes(out)
    return out


def _encodes(out: list[Emit]) -> None:
    codec = Codec.default()
    for emit in out:
        if isinstance(emit, Outbound):
            codec.encode(emit.record, emit.datum)  # every change fits its schema


def stored(store: Store) -> tuple[dict[str, Lead], dict[str, Any]]:
    """The leads and standings in the store, as the processor wrote them."""
    with store.transaction() as txn:
        return ({k: records.lead_of_json(v) for k, v in txn.items(LEADS_NS)},
                dict(txn.items(STANDINGS_NS)))


def test_a_request_is_assigned_and_persisted(store: Store) -> None:
    feed = Feed()
    [out] = apply(RoutingProcessor(REGISTRY, clock=Clock()), store, [feed.request("L1")])
    assert isinstance(out, Outbound)
    assert (out.topic, out.key, out.record) == (catalog.LEADS, "L1", "LeadAssigned")
    assert (out.datum["change"], out.datum["reseller_id"], out.datum["version"]) == (
        "assigned", "a", 1)
    assert out.datum["deadline_at"] == T0 + 2 * DAY
    assert out.datum["input_offsets"] == {f"{catalog.LEAD_REQUESTS}/0": 1}
    leads, standings = stored(store)
    assert (leads["L1"].status, leads["L1"].holder) == ("assigned", "a")
    assert sorted(standings) == ["a", "b"]


def test_a_restart_keeps_the_state(store: Store) -> None:
    feed, clock = Feed(), Clock()
    apply(RoutingProcessor(REGISTRY, clock=clock), store, [feed.request("L1")])
    restarted = RoutingProcessor(REGISTRY, clock=clock)
    [dup, other] = apply(restarted, store, [feed.request("L2"),
                                            feed.request("L3", siren="542051180")])
    assert isinstance(dup, Outbound)
    assert isinstance(other, Outbound)
    assert (dup.datum["change"], dup.datum["duplicate_of"]) == ("duplicate", "L1")
    assert other.datum["reseller_id"] == "b"  # a's share already went to L1
    assert restarted.state is not None
    assert restarted.state.open_count("a") == 1
    [answered] = apply(RoutingProcessor(REGISTRY, clock=clock), store,
                       [feed.answer("L1", "a", "accepted")])
    assert isinstance(answered, Outbound)
    assert answered.datum["status"] == "accepted"


@pytest.mark.parametrize(("who", "answer", "reason"), [
    ("b", "accepted", None),        # not the holder
    ("a", "won", None),             # out of order: not accepted yet
    ("a", "rejected", None),        # a rejection without a reason
    ("a", "rejected", "too-dear"),  # nor with an unknown one
])
def test_a_refused_answer_is_rejected_and_changes_nothing(store: Store, who: str, answer: str,
                                                          reason: str | None) -> None:
    feed = Feed()
    processor = RoutingProcessor(REGISTRY, clock=Clock())
    apply(processor, store, [feed.request("L1")])
    before = stored(store)
    bad = feed.answer("L1", who, answer, reason)
    [out] = apply(processor, store, [bad])
    assert isinstance(out, Rejected)
    assert (out.inbound, out.stage) == (bad, "validate")
    assert stored(store) == before
    assert processor.changes == {"assigned": 1}


def test_flush_fires_a_deadline_once(store: Store) -> None:
    feed, clock = Feed(), Clock()
    processor = RoutingProcessor(REGISTRY, clock=clock)
    apply(processor, store, [feed.request("L1")])
    assert flush(processor, store, frozenset({0})) == []
    clock.now = T0 + 2 * DAY
    expired, reassigned = flush(processor, store, frozenset({0}))
    assert isinstance(expired, Outbound)
    assert isinstance(reassigned, Outbound)
    assert (expired.datum["change"], expired.datum["sla_breached"]) == ("expired", True)
    assert (reassigned.datum["change"], reassigned.datum["reseller_id"]) == ("reassigned", "b")
    assert flush(processor, store, frozenset({0})) == []
    assert stored(store)[0]["L1"].holder == "b"
    # A restarted processor sees the same: nothing more is due.
    assert flush(RoutingProcessor(REGISTRY, clock=clock), store, frozenset({0})) == []


def test_flush_without_the_lead_partition_fires_nothing(store: Store) -> None:
    feed, clock = Feed(), Clock()
    processor = RoutingProcessor(REGISTRY, clock=clock)
    apply(processor, store, [feed.request("L1")])
    clock.now = T0 + 10 * DAY
    assert flush(processor, store, frozenset()) == []
    assert flush(processor, store, frozenset({1, 2})) == []
    assert stored(store)[0]["L1"].status == "assigned"
    assert len(flush(processor, store, frozenset({0}))) == 2  # the owner fires it


def test_a_bad_reseller_profile_is_dead_lettered_by_flush(store: Store) -> None:
    table = ResellerTable(Settings())  # its reader is never started: no broker here
    feed = Feed()
    good = feed.profile(reseller_id="a", name="A", departements=["78"],
                        categories=["e-commerce"], capacity=5, weight=1)
    bad = feed.profile(reseller_id="b", name="B", departements=["78"],
                       categories=["e-commerce"], capacity=5, weight=0)
    table.apply([good, bad])
    assert sorted(table.registry) == ["a"]
    processor = RoutingProcessor(table.registry, clock=Clock(), table=table)
    assert flush(processor, store, frozenset({1})) == []  # a standby leaves it waiting
    [dead] = flush(processor, store, frozenset({0}))
    assert isinstance(dead, Rejected)
    assert (dead.inbound, dead.stage) == (bad, "validate")
    assert "weight 0" in str(dead.error)
    assert flush(processor, store, frozenset({0})) == []  # once
