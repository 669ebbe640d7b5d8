"""Entry point: ``python -m services.routing`` runs the router until SIGTERM."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from hub import kafka
from hub.config import Settings
from hub.service import Wiring, run_processor
from schemas import catalog
from services.routing.clock import router_clock
from services.routing.metrics import RoutingMetrics
from services.routing.processor import RoutingProcessor
from services.routing.restore import RoutingRestorer
from services.routing.router import RoutingRules
from services.routing.table import ResellerTable


def rules(settings: Settings) -> RoutingRules:
    """The lifecycle's knobs, from settings."""
    return RoutingRules(national_queue=settings.routing_national_queue,
                        max_hops=settings.routing_max_hops,
                        sla_business_days=settings.routing_sla_business_days)


def build(settings: Settings) -> Wiring:
    """Load the whole reseller table, then hand the router a live view of it.

    The router consumes the lead requests and the answers, one partition each, in
    one group: kafka-python's default (range) assignor gives both partitions 0 to
    the same member, so one instance decides and the others stand by. The lead
    metrics (services/routing/metrics.py) go on the registry the process serves.
    """
    # run_processor creates the catalog's topics only after build returns, and the
    # table must be read before the first decision: make sure its topic exists.
    kafka.ensure_topics(settings, [catalog.topic(catalog.RESELLERS)])
    table = ResellerTable(settings)
    table.start()
    clock = router_clock(speed=settings.routing_clock_speed,
                         origin_ms=settings.routing_clock_origin_ms)
    registry = CollectorRegistry()
    processor = RoutingProcessor(table.registry, rules=rules(settings), clock=clock, table=table,
                                 metrics=RoutingMetrics.create(registry))
    return Wiring(processor, before_poll=table.refresh, close=table.close,
                  restorer=RoutingRestorer(settings), millis_timestamps=True, registry=registry)


def main() -> None:
    run_processor(build)


if __name__ == "__main__":
    main()
