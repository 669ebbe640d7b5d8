"""The delivery component's metrics on a real registry: endpoints by state, the latency from
a lead's request to its first delivery, and the existing webhook counters beside them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from connectors.crm_webhook.metrics import DeliveryMetrics
from tests.unit.test_crm_webhook_processor import T0, Harness, command, lead_change

MINUTE_MS = 60_000


class Metered(Harness):
    """The processor test harness, its metrics on a registry of the test's."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.registry = CollectorRegistry()
        self.processor.metrics = DeliveryMetrics.create(self.registry)

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def endpoints(self) -> tuple[float, float]:
        return (self.value("passport_hub_webhook_endpoints", state="enabled"),
                self.value("passport_hub_webhook_endpoints", state="disabled"))

    def latencies(self) -> tuple[float, float]:
        """Observations and their sum (seconds) of the lead delivery latency."""
        return (self.value("passport_hub_lead_delivery_latency_seconds_count"),
                self.value("passport_hub_lead_delivery_latency_seconds_sum"))


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Metered]:
    harness = Metered(tmp_path / "crm.sqlite")
    yield harness
    harness.close()


def test_the_first_delivery_of_a_lead_s_assignment_observes_its_latency(hub: Metered) -> None:
    hub.register()
    # The business asked 10 minutes ago; the router decided a minute later.
    hub.lead({**lead_change("lead-1", at=T0 - 9 * MINUTE_MS), "requested_at": T0 - 10 * MINUTE_MS})
    [request] = hub.sender.take()
    hub.now += 500
    hub.sender.answer(request, 503)  # retried: the latency runs on
    hub.flush()
    assert hub.latencies() == (0, 0)
    hub.now += 5_000
    hub.flush()
    [again] = hub.sender.take()
    hub.sender.answer(again, 204)
    hub.flush()
    assert hub.latencies() == (1, pytest.approx(600 + 5.5))
    assert hub.value("passport_hub_lead_delivery_latency_seconds_bucket", le="1800.0") == 1
    assert hub.value("passport_hub_lead_delivery_latency_seconds_bucket", le="300.0") == 0
    assert hub.value("passport_hub_webhook_deliveries_total", outcome="retrying") == 1
    assert hub.value("passport_hub_webhook_deliveries_total", outcome="delivered") == 1
    # Its later changes, and a replay of the first, are no lead delivered again.
    hub.lead(lead_change("lead-1", change="accepted", status="accepted", version=2))
    hub.now += 1_000
    hub.cmd(command("r1", "replay", at=hub.now, since=T0 - 60 * MINUTE_MS))
    for sent in hub.sender.take():
        hub.sender.answer(sent, 200)
    hub.flush()
    assert hub.value("passport_hub_webhook_deliveries_total", outcome="delivered") >= 3
    assert hub.latencies()[0] == 1


def test_endpoints_are_counted_by_state_as_they_change_and_when_the_store_is_read(
        tmp_path: Path, hub: Metered) -> None:
    assert hub.endpoints() == (0, 0)
    hub.register("r1")
    hub.register("r2")
    assert hub.endpoints() == (2, 0)
    hub.lead(lead_change("lead-1", holder="r1"))
    [request] = hub.sender.take()
    hub.sender.answer(request, 410)
    hub.flush()
    assert hub.endpoints() == (1, 1)
    assert hub.value("passport_hub_webhook_endpoints_disabled_total", reason="gone") == 1
    hub.cmd(command("r2", "register", at=hub.now, enabled=False))  # by its owner
    assert hub.endpoints() == (0, 2)
    assert hub.value("passport_hub_webhook_endpoints_disabled_total", reason="by_owner") == 0
    hub.store.close()
    restarted = Metered(tmp_path / "crm.sqlite")
    try:
        restarted.flush()
        assert restarted.endpoints() == (0, 2)
    finally:
        restarted.close()
