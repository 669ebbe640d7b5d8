"""The passport service's processor: a batch of partner events in, snapshots and leads out.

Per batch, each touched business is read from the store once, gets its events in
batch order, is written back once, and yields ONE snapshot however many of its
events the batch held (coalescing: DESIGN.md, Performance notes). The store also
keeps, per input partition number, the next offset of each co-partitioned input
topic; every snapshot carries that map, so a restore from the compacted passport
topic knows which input it reflects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub import logs
from hub.processor import Emit, Inbound, Outbound, Rejected
from hub.store import Txn
from schemas import catalog
from services.passport import events, outputs, persist, rules
from services.passport.events import InvalidEventError
from services.passport.rules import Passport

#: Store namespaces: one passport per SIREN; input offsets per partition number.
PASSPORTS_NS = "passport"
OFFSETS_NS = "passport-offsets"


@dataclass(slots=True)
class _Touched:
    """A business the batch touched: its state when loaded, now, and the last input applied."""

    before: Passport
    now: Passport
    partition: int
    last: Inbound


class PassportProcessor:
    """Applies enrolments, completed modules and offer requests to passports."""

    name = "passport"
    inputs: tuple[str, ...] = (catalog.ENROLMENTS, catalog.TRAINING, catalog.OFFER_REQUESTS)

    def __init__(self) -> None:
        self.log = logs.get().bind(component=self.name)

    def apply(self, state: Txn, batch: Sequence[Inbound]) -> list[Emit]:
        """Apply a batch; return the leads, one snapshot per changed business, the rejects."""
        touched: dict[str, _Touched] = {}
        offsets: dict[int, dict[str, int]] = {}
        rejected: list[Emit] = []
        leads: list[Emit] = []
        for inbound in batch:
            self._advance(state, offsets, inbound)
            try:
                event = events.parse_inbound(inbound.topic, inbound.record, inbound.key,
                                             inbound.datum)
                entry = touched.get(event.siren) or self._load(state, event.siren, inbound)
                outcome = rules.apply(entry.now, event, inbound.datum)
            except InvalidEventError as exc:
                rejected.append(Rejected(inbound, exc, "validate"))
                continue
            entry.now, entry.last = outcome.passport, inbound
            touched[event.siren] = entry
            for lead in outcome.leads:
                leads.append(Outbound(catalog.LEAD_REQUESTS, lead.lead_id, "LeadRequested",
                                      outputs.lead_requested(lead)))
                self.log.debug("lead.requested", siren=lead.siren, lead_id=lead.lead_id,
                               category=lead.category)
        for partition, positions in offsets.items():
            state.put(OFFSETS_NS, str(partition), positions, partition=partition)
        snapshots = [self._save(state, siren, entry, offsets[entry.partition])
                     for siren, entry in touched.items() if entry.now != entry.before]
        return [*leads, *(s for s in snapshots if s is not None), *rejected]

    @staticmethod
    def _advance(state: Txn, offsets: dict[int, dict[str, int]], inbound: Inbound) -> None:
        positions = offsets.get(inbound.partition)
        if positions is None:
            positions = dict(state.get(OFFSETS_NS, str(inbound.partition)) or {})
            offsets[inbound.partition] = positions
        positions[f"{inbound.topic}/{inbound.partition}"] = inbound.offset + 1

    @staticmethod
    def _load(state: Txn, siren: str, inbound: Inbound) -> _Touched:
        stored: dict[str, Any] | None = state.get(PASSPORTS_NS, siren)
        passport = Passport(siren) if stored is None else persist.load(stored)
        return _Touched(passport, passport, inbound.partition, inbound)

    def _save(self, state: Txn, siren: str, entry: _Touched,
              positions: dict[str, int]) -> Outbound | None:
        state.put(PASSPORTS_NS, siren, persist.dump(entry.now), partition=entry.partition)
        if entry.now.issued_at is not None and entry.before.issued_at is None:
            self.log.info("passport.issued", siren=siren, partition=entry.partition)
        if entry.now.profile is None:
            return None  # only parked events so far: nothing to show until enrolment
        last = entry.last
        event_id = outputs.snapshot_id(siren, last.topic, last.partition, last.offset)
        datum = outputs.snapshot(entry.now, event_id=event_id, input_offsets=positions)
        return Outbound(catalog.PASSPORTS, siren, "PassportSnapshot", datum)
