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

#: Lead statuses in the order the live line shows them (a lead's latest status).
LEAD_STATUSES = ("assigned", "accepted", "queued", "won", "lost", "withdrawn", "duplicate")
#: Changes counted as they happen: a lead only passes through them.
LEAD_CHANGES = ("rejected", "reassigned", "expired")
_LINE_ORDER = ("assigned", "accepted", "rejected", "reassigned", "expired", "queued", "won",
               "lost", "withdrawn", "duplicate")


@dataclass
class FlowCounts:
    """Distinct businesses and passports, and what became of each lead, from the output topics.

    A lead counts once, under its latest status (assigned, accepted, queued, won,
    ...); rejections, expiries and reassignments are counted as changes, since a
    lead only passes through them. Each change counts once, however many times
    it was read (a change re-emitted after a crash has the same lead and version).
    """

    states: dict[str, str] = field(default_factory=dict)
    leads: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Lead id -> (version, status) of its latest change."""
    changes: dict[str, int] = field(default_factory=dict)
    _seen: set[tuple[str, int]] = field(default_factory=set)

    def apply(self, batch: list[Inbound]) -> None:
        for record in batch:
            if record.topic == catalog.PASSPORTS:
                self.states[str(record.datum["siren"])] = str(record.datum["state"])
            elif record.topic == catalog.LEADS:
                self._lead(record.datum)

    def _lead(self, datum: dict[str, object]) -> None:
        lead_id, status = str(datum["lead_id"]), str(datum["status"])
        version = int(str(datum.get("version") or 1))
        if (lead_id, version) in self._seen:
            return
        self._seen.add((lead_id, version))
        change = str(datum.get("change") or status)
        self.changes[change] = self.changes.get(change, 0) + 1
        if version >= self.leads.get(lead_id, (0, ""))[0]:
            self.leads[lead_id] = (version, status)

    @property
    def businesses(self) -> int:
        return len(self.states)

    @property
    def passports(self) -> int:
        return sum(1 for state in self.states.values() if state == "passport_issued")

    @property
    def lead_count(self) -> int:
        """Distinct leads (every lead request yields one, a duplicate request included)."""
        return len(self.leads)

    def by_status(self) -> dict[str, int]:
        """Leads by their latest status."""
        out: dict[str, int] = {}
        for _, status in self.leads.values():
            out[status] = out.get(status, 0) + 1
        return out

    @property
    def leads_assigned(self) -> int:
        """Leads a reseller holds, or held to the end (assigned, accepted, won, lost)."""
        statuses = self.by_status()
        return sum(statuses.get(s, 0) for s in ("assigned", "accepted", "won", "lost"))

    @property
    def leads_unassigned(self) -> int:
        """The other leads: queued nationally, duplicates of an open one, withdrawn."""
        return self.lead_count - self.leads_assigned

    def outcome(self) -> dict[str, int]:
        """The live line's figures: latest statuses and the transient changes."""
        statuses = self.by_status()
        figures = {name: self.changes.get(name, 0) if name in LEAD_CHANGES
                   else statuses.get(name, 0) for name in _LINE_ORDER}
        # The main ones always, the rare ones once they happen.
        return {k: v for k, v in figures.items() if v or k in LEAD_STATUSES[:4] + LEAD_CHANGES}

    def line(self) -> str:
        detail = " · ".join(f"{name} {count}" for name, count in self.outcome().items())
        return (f"businesses {self.businesses:>6} · passports issued {self.passports:>6} · "
                f"leads {self.lead_count:>5} ({detail})")


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
