"""The flow at a glance: counts read back from the output topics, for the demo's summary line.

It reads what the services published (passport snapshots and routed leads), so
the numbers it shows are the hub's real output, not the generator's intentions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.config import Settings
from hub.processor import Inbound
from hub.reader import TopicReader
from schemas import catalog


@dataclass
class FlowCounts:
    """Distinct businesses, passports and leads seen on the output topics."""

    states: dict[str, str] = field(default_factory=dict)
    leads: dict[str, str] = field(default_factory=dict)

    def apply(self, batch: list[Inbound]) -> None:
        for record in batch:
            if record.topic == catalog.PASSPORTS:
                self.states[str(record.datum["siren"])] = str(record.datum["state"])
            elif record.topic == catalog.LEADS:
                self.leads[str(record.datum["lead_id"])] = str(record.datum["status"])

    @property
    def businesses(self) -> int:
        return len(self.states)

    @property
    def passports(self) -> int:
        return sum(1 for state in self.states.values() if state == "passport_issued")

    @property
    def leads_assigned(self) -> int:
        return sum(1 for status in self.leads.values() if status == "assigned")

    @property
    def leads_unassigned(self) -> int:
        return sum(1 for status in self.leads.values() if status != "assigned")

    def line(self) -> str:
        return (f"businesses {self.businesses:>6} · passports issued {self.passports:>6} · "
                f"leads routed {self.leads_assigned:>5} (+{self.leads_unassigned} unassigned)")


class FlowMonitor:
    """Follows the output topics and keeps ``FlowCounts`` current."""

    def __init__(self, settings: Settings) -> None:
        self.counts = FlowCounts()
        self._reader = TopicReader(settings, [catalog.PASSPORTS, catalog.LEADS])

    def start(self) -> None:
        self._reader.start()

    def refresh(self, timeout_ms: int = 200) -> FlowCounts:
        """Read what arrived since the last call (waiting up to ``timeout_ms`` for it)."""
        batch = self._reader.poll(timeout_ms=timeout_ms)
        while batch:
            self.counts.apply(batch)
            batch = self._reader.poll(timeout_ms=0)
        return self.counts

    def close(self) -> None:
        self._reader.close()
