"""The router's lead metrics over a real store and registry: changes by kind, SLA breaches,
reassignments by reason, and nothing counted twice by a restart, a replay or a restore."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hub.config import Settings
from hub.processor import Outbound
from hub.store import Store
from services.routing import records
from services.routing.metrics import RoutingMetrics
from services.routing.processor import LEADS_NS, PARTITION, RoutingProcessor
from services.routing.restore import RoutingRestorer
from tests.unit.routing_kit import DAY, T0
from tests.unit.test_routing_processor import REGISTRY, Clock, Feed, apply, flush


class Counts:
    """The routing series of one registry, read back as numbers."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.metrics = RoutingMetrics.create(self.registry)

    def change(self, kind: str) -> float:
        return self.registry.get_sample_value("passport_hub_lead_changes_total",
                                              {"change": kind}) or 0.0

    def reassigned(self, reason: str) -> float:
        return self.registry.get_sample_value("passport_hub_lead_reassignments_total",
                                              {"reason": reason}) or 0.0

    @property
    def breaches(self) -> float:
        return self.registry.get_sample_value("passport_hub_lead_sla_breaches_total") or 0.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "routing.db") as opened:
        yield opened


@pytest.fixture
def counts() -> Counts:
    return Counts()


def test_each_change_is_counted_as_it_is_decided(store: Store, counts: Counts) -> None:
    feed, clock = Feed(), Clock()
    processor = RoutingProcessor(REGISTRY, clock=clock, metrics=counts.metrics)
    apply(processor, store, [feed.request("L1"), feed.request("L2"),  # a duplicate of L1
                             feed.request("L3", siren="542051180")])
    assert (counts.change("assigned"), counts.change("duplicate")) == (2, 1)
    apply(processor, store, [feed.answer("L1", "a", "rejected", "budget")])
    assert (counts.change("rejected"), counts.change("reassigned")) == (1, 1)
    assert counts.reassigned("rejected") == 1
    apply(processor, store, [feed.answer("L1", "b", "accepted"), feed.answer("L1", "b", "won")])
    assert (counts.change("accepted"), counts.change("won")) == (1, 1)
    apply(processor, store, [feed.answer("L1", "b", "lost")])  # refused: nothing changes
    assert counts.change("lost") == 0
    assert counts.breaches == 0
    # L3's holder lets the deadline pass: an SLA breach, and the lead moves on.
    clock.now = T0 + 2 * DAY
    changes = [e.datum["change"] for e in flush(processor, store, frozenset({0}))
               if isinstance(e, Outbound)]
    assert changes == ["expired", "reassigned"]
    assert (counts.change("expired"), counts.breaches, counts.reassigned("expired")) == (1, 1, 1)
    assert counts.change("reassigned") == 2
    assert processor.changes == {"assigned": 2, "duplicate": 1, "rejected": 1, "reassigned": 2,
                                 "accepted": 1, "won": 1, "expired": 1}


def test_a_restart_or_a_replayed_input_counts_nothing_again(store: Store,
                                                            counts: Counts) -> None:
    feed = Feed()
    request = feed.request("L1")
    apply(RoutingProcessor(REGISTRY, clock=Clock()), store, [request])
    # A restarted process (a registry of its own), fed the input again: decided already.
    restarted = RoutingProcessor(REGISTRY, clock=Clock(), metrics=counts.metrics)
    assert apply(restarted, store, [request]) == []
    assert flush(restarted, store, frozenset({0})) == []
    assert counts.change("assigned") == 0


def test_a_restore_counts_nothing_and_a_half_moved_lead_counts_its_reason(
        tmp_path: Path, store: Store, counts: Counts) -> None:
    feed, clock = Feed(), Clock()
    first = RoutingProcessor(REGISTRY, clock=clock)
    emitted = apply(first, store, [feed.request("L1")])
    emitted += apply(first, store, [feed.answer("L1", "a", "rejected", "budget")])
    datums = [dict(e.datum) for e in emitted if isinstance(e, Outbound)]
    assert [d["change"] for d in datums] == ["assigned", "rejected", "reassigned"]
    # The topic ends between the rejection and its reassignment: a restore folds what is
    # there (as RoutingRestorer reads it from pn.leads.v1) into a fresh store.
    with Store(tmp_path / "standby.db") as fresh:
        restore = RoutingRestorer(Settings()).begin(fresh, PARTITION)
        assert restore is not None
        with fresh.transaction() as txn:
            restore.begin(txn)
            restore.absorb(txn, datums[:2])
            restore.finish(txn, 0.1)
        with fresh.transaction() as txn:
            [(_, lead)] = list(txn.items(LEADS_NS))
        assert records.lead_of_json(lead).status == "rejected"
        standby = RoutingProcessor(REGISTRY, clock=clock, metrics=counts.metrics)
        assert apply(standby, fresh, [feed.request("L1")]) == []  # replayed: decided before
        assert counts.change("assigned") == counts.change("rejected") == 0
        [placed] = flush(standby, fresh, frozenset({0}))
        assert isinstance(placed, Outbound)
        assert placed.datum["change"] == "reassigned"
        assert (counts.change("reassigned"), counts.reassigned("rejected")) == (1, 1)
