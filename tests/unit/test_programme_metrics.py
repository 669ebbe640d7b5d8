"""The programme's gauges, collected from a real read-model file at each scrape; and a read
model that cannot answer, which leaves them out without failing the scrape."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from connectors.api.programme import ProgrammeCollector
from services.readmodel.queries import Queries
from services.readmodel.store import Writer
from tests.unit.test_readmodel import inbounds, lead, snapshot

ISSUED = "passport_hub_programme_passports_issued"
BUSINESSES = "passport_hub_programme_businesses"


def collected(queries: Queries) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ProgrammeCollector(queries.stats))
    return registry


def test_the_figures_follow_the_read_model(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    registry = collected(queries)
    assert registry.get_sample_value(ISSUED, {"region": "11"}) == 0
    assert registry.get_sample_value("passport_hub_programme_passports_target") == 150_000
    marseille = {**snapshot("552100554", state="passport_issued"), "departement": "13",
                 "region": "93"}
    writer.apply(inbounds([
        ("PassportSnapshot", snapshot("732829320", state="passport_issued")),
        ("PassportSnapshot", snapshot("542065479")),
        ("PassportSnapshot", marseille),
        ("LeadAssigned", lead("L1", "r1")), ("LeadAssigned", lead("L2", None, status="queued")),
    ]))
    assert registry.get_sample_value(ISSUED, {"region": "11"}) == 1  # read again: no cache
    assert registry.get_sample_value(ISSUED, {"region": "93"}) == 1
    assert registry.get_sample_value(BUSINESSES, {"region": "11"}) == 2
    assert registry.get_sample_value("passport_hub_programme_leads", {"status": "assigned"}) == 1
    assert registry.get_sample_value("passport_hub_programme_leads", {"status": "queued"}) == 1
    samples = [s for metric in registry.collect() if metric.name == ISSUED
               for s in metric.samples]
    assert len(samples) == 18  # every région, and only the 18


def test_a_read_model_that_cannot_answer_leaves_the_scrape_whole(tmp_path: Path) -> None:
    registry = collected(Queries(tmp_path / "not-built-yet.sqlite"))
    text = generate_latest(registry).decode()
    assert "passport_hub_programme" not in text
    assert registry.get_sample_value("passport_hub_programme_passports_target") is None


def test_figures_wait_until_the_read_model_caught_up(model: tuple[Writer, Queries]) -> None:
    _writer, queries = model
    caught_up = False
    registry = CollectorRegistry()
    registry.register(ProgrammeCollector(queries.stats, ready=lambda: caught_up))
    assert registry.get_sample_value("passport_hub_programme_passports_target") is None
    caught_up = True
    assert registry.get_sample_value("passport_hub_programme_passports_target") == 150_000
