"""The programme's figures as Prometheus gauges, read from the read model at each scrape.

A custom collector rather than gauges kept up to date: the read model already
keeps the figures as counters, in a small table, as the snapshots arrive
(services/readmodel/stats.py), so a scrape costs one read of that table, and
the values are the very ones ``GET /v1/stats`` answers. Every API instance
holds its own read model and exposes the same figures: a dashboard takes
``max`` over the instances, not ``sum``.

- ``passport_hub_programme_passports_issued{region}``: passports issued, by région
- ``passport_hub_programme_passports_target``: the convention's one target (150,000)
- ``passport_hub_programme_businesses{region}``: businesses enrolled, by région
- ``passport_hub_programme_leads{status}``: leads standing in each status now

``region`` is the INSEE région code: only the 18 of the reference data
(``schemas.reference.REGIONS``), every one listed, zeros included; a code the
snapshots carry that the reference does not know stays out of the metrics (it
is in ``/v1/stats``). ``status`` is one of ``stats.LEAD_STATUSES``.

A read model that cannot answer (its file away, being rebuilt) or is still
catching up with its topics (every API start rebuilds it: its figures grow from
zero meanwhile) gives no samples: the scrape succeeds without these series, and
the dashboard shows a gap instead of a dip that would look like a programme gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub import logs
from schemas.reference import REGIONS
from services.readmodel.stats import LEAD_STATUSES

ISSUED = "passport_hub_programme_passports_issued"
TARGET = "passport_hub_programme_passports_target"
BUSINESSES = "passport_hub_programme_businesses"
LEADS = "passport_hub_programme_leads"


def _families() -> tuple[GaugeMetricFamily, ...]:
    return (
        GaugeMetricFamily(ISSUED, "Passports issued, by région (INSEE code).",
                          labels=["region"]),
        GaugeMetricFamily(TARGET,
                          "Passports to issue under the 2009-2011 convention (national)."),
        GaugeMetricFamily(BUSINESSES, "Businesses enrolled, by région (INSEE code).",
                          labels=["region"]),
        GaugeMetricFamily(LEADS, "Leads standing in each status now.", labels=["status"]),
    )


class ProgrammeCollector(Collector):
    """Yields the programme gauges from ``stats`` (``ReadSide.stats``: the stats document)
    whenever ``ready`` (``ReadSide.caught_up``) says the figures are whole."""

    def __init__(self, stats: Callable[[], Mapping[str, Any]], *,
                 ready: Callable[[], bool] = lambda: True) -> None:
        self._stats = stats
        self._ready = ready
        self.log = logs.get().bind(component="api")

    def describe(self) -> Iterable[Metric]:
        """The families without samples: registering does not read the read model."""
        return _families()

    def collect(self) -> Iterator[Metric]:
        try:
            if not self._ready():
                return
            document = self._stats()
            families = _filled(document)
        except Exception as exc:  # any failure of the read side: a scrape must never fail
            self.log.debug("programme.unavailable", error=type(exc).__name__)
            return
        yield from families


def _filled(document: Mapping[str, Any]) -> tuple[GaugeMetricFamily, ...]:
    """The families with the document's figures (a ``KeyError`` etc. for a malformed one)."""
    issued, target, businesses, leads = _families()
    regions = {str(r["region"]): r for r in document["regions"]}
    for code in REGIONS:
        region = regions.get(code, {})
        issued.add_metric([code], float(region.get("passports_issued", 0)))
        businesses.add_metric([code], float(region.get("businesses_enrolled", 0)))
    target.add_metric([], float(document["target"]["passports"]))
    by_status = document["leads"]["by_status"]
    for status in LEAD_STATUSES:
        leads.add_metric([status], float(by_status.get(status, 0)))
    return issued, target, businesses, leads
