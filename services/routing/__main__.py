"""Entry point: ``python -m services.routing`` runs the router until SIGTERM."""

from __future__ import annotations

from hub import kafka
from hub.config import Settings
from hub.service import Wiring, run_processor
from schemas import catalog
from services.routing.processor import RoutingProcessor
from services.routing.table import ResellerTable


def build(settings: Settings) -> Wiring:
    """Load the whole reseller table, then hand the router a live view of it."""
    # run_processor creates the catalog's topics only after build returns, and the
    # table must be read before the first decision: make sure its topic exists.
    kafka.ensure_topics(settings, [catalog.topic(catalog.RESELLERS)])
    table = ResellerTable(settings)
    table.start()
    return Wiring(RoutingProcessor(table.resellers), before_poll=table.refresh, close=table.close)


def main() -> None:
    run_processor(build)


if __name__ == "__main__":
    main()
