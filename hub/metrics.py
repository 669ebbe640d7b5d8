"""Prometheus metrics: a registry per process, the metrics the kernel records.

Names follow ``passport_hub_<what>_<unit>``; labels are bounded sets (topic
names from the catalog, component names, outcomes). Registries are passed in,
never global, so tests build their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from hub import logs


@dataclass(frozen=True, slots=True)
class ProcessorMetrics:
    """What the processor loop records."""

    records_in: Counter
    records_out: Counter
    dead_letters: Counter
    batch_seconds: Histogram
    outbox_pending: Gauge
    lag: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ProcessorMetrics:
        return cls(
            records_in=Counter(
                "passport_hub_records_consumed", "Records consumed by a processor.",
                ["component", "topic"], registry=registry),
            records_out=Counter(
                "passport_hub_records_produced", "Records produced from a processor's outbox.",
                ["component", "topic"], registry=registry),
            dead_letters=Counter(
                "passport_hub_dead_letters", "Records sent to the dead-letter topic.",
                ["component", "topic", "stage"], registry=registry),
            batch_seconds=Histogram(
                "passport_hub_batch_duration_seconds",
                "Time to apply and commit one polled batch.", ["component"], registry=registry),
            outbox_pending=Gauge(
                "passport_hub_outbox_pending_records",
                "Records committed to the outbox and not yet acknowledged by the broker.",
                ["component"], registry=registry),
            lag=Gauge(
                "passport_hub_consumer_lag_records",
                "Records between the processor's position and the end of its partitions.",
                ["component", "topic"], registry=registry),
        )


def serve(registry: CollectorRegistry, *, host: str, port: int) -> int:
    """Serve /metrics for a registry in a daemon thread; return the bound port."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    bound = int(server.server_address[1])
    logs.get().info("metrics.serving", host=host, port=bound)
    return bound
