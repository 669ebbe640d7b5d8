"""Prometheus metrics: a registry per process, the metrics the kernel records (served by
hub.probes, with the component's own).

Names follow ``passport_hub_<what>_<unit>``; labels are bounded sets (topic
names from the catalog, component names, outcomes). Registries are passed in,
never global, so tests build their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Seconds from a record's append (its broker timestamp) to its application: live
#: traffic takes milliseconds, a backlog after downtime minutes or hours.
PROCESSING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                      60.0, 300.0, 900.0, 3600.0)
#: Seconds from an event's ``occurred_at`` to its application: partners report what
#: happened in the field up to days later, so the buckets reach a week.
EVENT_BUCKETS = (*PROCESSING_BUCKETS, 21_600.0, 86_400.0, 604_800.0)
#: Seconds a partition's restore took (a million passports: about a minute).
RESTORE_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


@dataclass(frozen=True, slots=True)
class ProcessorMetrics:
    """What the processor loop records (docs/operations.md, Metrics)."""

    records_in: Counter
    records_out: Counter
    dead_letters: Counter
    batch_seconds: Histogram
    processing_latency: Histogram
    event_latency: Histogram
    outbox_pending: Gauge
    lag: Gauge
    store_bytes: Gauge
    restore_seconds: Histogram
    restoring: Gauge

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
                "passport_hub_dead_letters",
                "Records sent to the dead-letter topic, by stage and by the error's class.",
                ["component", "topic", "stage", "reason"], registry=registry),
            batch_seconds=Histogram(
                "passport_hub_batch_duration_seconds",
                "Time to apply and commit one polled batch.", ["component"], registry=registry),
            processing_latency=Histogram(
                "passport_hub_processing_latency_seconds",
                "From a record's append to the broker to its application (the oldest record "
                "of each partition in each batch).", ["component", "topic"],
                registry=registry, buckets=PROCESSING_BUCKETS),
            event_latency=Histogram(
                "passport_hub_event_latency_seconds",
                "From an event's occurred_at to its application (the oldest record of each "
                "partition in each batch).", ["component", "topic"],
                registry=registry, buckets=EVENT_BUCKETS),
            outbox_pending=Gauge(
                "passport_hub_outbox_pending_records",
                "Records committed to the outbox and not yet acknowledged by the broker.",
                ["component"], registry=registry),
            lag=Gauge(
                "passport_hub_consumer_lag_records",
                "Records between the processor's position and the end of its partitions "
                "(the member's own view; the group's on the broker: "
                "passport_hub_consumer_group_lag_records).",
                ["component", "topic"], registry=registry),
            store_bytes=Gauge(
                "passport_hub_state_store_bytes",
                "Size of the component's SQLite store on disk (database and write-ahead log).",
                ["component"], registry=registry),
            restore_seconds=Histogram(
                "passport_hub_restore_duration_seconds",
                "Time to restore one partition's state from the topics.", ["component"],
                registry=registry, buckets=RESTORE_BUCKETS),
            restoring=Gauge(
                "passport_hub_restores_in_progress",
                "Partitions whose state is being restored (their inputs wait meanwhile).",
                ["component"], registry=registry),
        )
