"""The passport service's processor: a batch of partner events in, snapshots and leads out.

Per batch, each touched business is read from the store once, gets its events in
batch order, and is written back once. Its snapshot waits in its partition's
window and leaves ONCE per window, however many of its events the window's
batches held (coalescing: docs/architecture.md, Performance notes; the window closes after
every batch once the service is caught up: services/passport/window.py). The
snapshot is the business's whole state; it carries, for its input partition
number, the positions when the window closed (``input_offsets``) and where its
first batch began (``replay_from``): a new owner of the partition restores the
snapshots and replays from the latest one's ``replay_from``
(services/passport/restore.py).

Parked events (waiting for their enrolment) older than the configured bound go
to the dead letters (stage ``expire``); the sweep looks at an index of parked
businesses at most once a minute of the injected clock, as batches come, and
only at the partitions of the batch in hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hub import logs
from hub.processor import Emit, Inbound, Outbound, Rejected
from hub.store import Txn
from schemas import catalog
from services.passport import events, outputs, persist, rules
from services.passport.events import InvalidEventError
from services.passport.rules import Parked, Passport
from services.passport.window import Window, Windows

#: Store namespaces: one passport per SIREN; input offsets per partition number;
#: the id of the last snapshot emitted per partition; SIREN -> oldest parked event time.
PASSPORTS_NS = "passport"
OFFSETS_NS = "passport-offsets"
LAST_SNAPSHOT_NS = "passport-last-snapshot"
PARKED_NS = "passport-parked"

#: How often (injected clock, ms) the parked index is swept for expired events.
SWEEP_EVERY_MS = 60_000


class ParkedTooLongError(InvalidEventError):
    """An event waited for its business's enrolment longer than the bound."""


@dataclass(slots=True)
class _Touched:
    """A business the batch touched: its state when loaded, now, and the last input applied."""

    before: Passport
    now: Passport
    partition: int
    last: Inbound | None
    """The last input applied to it in this batch (None if only the sweep touched it)."""


class PassportProcessor:
    """Applies enrolments, completed modules and offer requests to passports."""

    name = "passport"
    inputs: tuple[str, ...] = (catalog.ENROLMENTS, catalog.TRAINING, catalog.OFFER_REQUESTS)

    def __init__(self, *, parked_ttl_ms: int = 14 * 86_400_000,
                 clock: Callable[[], int] | None = None, snapshot_window_ms: int = 0,
                 max_dirty: int = 50_000) -> None:
        """``snapshot_window_ms``: how long a partition's snapshots may be held back while
        catching up (services/passport/window.py); 0: one per business per batch."""
        self.log = logs.get().bind(component=self.name)
        self.parked_ttl_ms = parked_ttl_ms
        self._clock = clock or (lambda: time.time_ns() // 1_000_000)
        self._next_sweep = 0
        self.windows = Windows(window_ms=snapshot_window_ms, max_dirty=max_dirty)

    def apply(self, state: Txn, batch: Sequence[Inbound]) -> list[Emit]:
        """Apply a batch; return the leads, one snapshot per changed business, the rejects."""
        touched: dict[str, _Touched] = {}
        offsets: dict[int, dict[str, int]] = {}
        starts: dict[int, dict[str, int]] = {}
        rejected: list[Emit] = []
        leads: list[Emit] = []
        # Every business the batch names, read in a few queries rather than one each.
        stored = state.get_many(PASSPORTS_NS, (inbound.key.decode("utf-8", "replace")
                                               for inbound in batch if inbound.key is not None))
        for inbound in batch:
            self._advance(state, offsets, starts, inbound)
            try:
                event = events.parse_inbound(inbound.topic, inbound.record, inbound.key,
                                             inbound.datum)
                entry = touched.get(event.siren)
                if entry is None:  # its stored JSON is let go once loaded
                    entry = touched[event.siren] = _loaded(
                        event.siren, stored.pop(event.siren, None), inbound.partition)
                outcome = rules.apply(entry.now, event, inbound.datum)
            except InvalidEventError as exc:
                rejected.append(Rejected(inbound, exc, "validate"))
                continue
            entry.now, entry.last = outcome.passport, inbound
            for lead in outcome.leads:
                leads.append(Outbound(catalog.LEAD_REQUESTS, lead.lead_id, "LeadRequested",
                                      outputs.lead_requested(lead)))
                self.log.debug("lead.requested", siren=lead.siren, lead_id=lead.lead_id,
                               category=lead.category)
            for gone in outcome.withdrawals:
                leads.append(Outbound(catalog.LEAD_REQUESTS, gone.lead_id, "LeadWithdrawn",
                                      outputs.lead_withdrawn(gone)))
        rejected.extend(self._sweep(state, touched, set(offsets)))
        for partition, positions in offsets.items():
            state.put(OFFSETS_NS, str(partition), positions, partition=partition)
        return [*leads, *self._save(state, touched, offsets, starts), *rejected]

    @staticmethod
    def _advance(state: Txn, offsets: dict[int, dict[str, int]],
                 starts: dict[int, dict[str, int]], inbound: Inbound) -> None:
        positions = offsets.get(inbound.partition)
        if positions is None:
            positions = dict(state.get(OFFSETS_NS, str(inbound.partition)) or {})
            offsets[inbound.partition] = positions
            starts[inbound.partition] = dict(positions)
        where = f"{inbound.topic}/{inbound.partition}"
        starts[inbound.partition].setdefault(where, inbound.offset)
        positions[where] = inbound.offset + 1

    def _sweep(self, state: Txn, touched: dict[str, _Touched],
               partitions: set[int]) -> list[Emit]:
        """Dead-letter the parked events older than the bound (once a minute at most).

        Only in ``partitions``, those of the batch: the store may also hold partitions
        this instance no longer owns, or is still restoring (hub.restoring), and what
        it emitted for them would overtake their owner's, or the restore.
        """
        now = self._clock()
        if now < self._next_sweep:
            return []
        self._next_sweep = now + SWEEP_EVERY_MS
        older_than = now - self.parked_ttl_ms
        out: list[Emit] = []
        for siren, since in list(state.items(PARKED_NS)):
            if int(since["at"]) >= older_than or int(since["partition"]) not in partitions:
                continue
            entry = touched.get(siren) or self._load_stored(state, siren, int(since["partition"]))
            entry.now, gone = rules.expire(entry.now, older_than)
            touched[siren] = entry
            for parked in gone:
                out.append(Rejected(_parked_inbound(parked, siren, entry.partition),
                                    ParkedTooLongError(
                                        f"{parked.record} waited more than "
                                        f"{self.parked_ttl_ms // 3_600_000} h for the enrolment "
                                        f"of {siren}"), "expire"))
            if gone:
                self.log.info("parked.expired", siren=siren, events=len(gone))
        return out

    @staticmethod
    def _load_stored(state: Txn, siren: str, partition: int) -> _Touched:
        return _loaded(siren, state.get(PASSPORTS_NS, siren), partition)

    def _save(self, state: Txn, touched: dict[str, _Touched], offsets: dict[int, dict[str, int]],
              starts: dict[int, dict[str, int]]) -> list[Outbound]:
        """Store every changed passport and note it in its partition's snapshot window;
        return the snapshots of the windows this batch closes."""
        changed = [(siren, entry) for siren, entry in touched.items() if entry.now != entry.before]
        # Serialised row by row as SQLite takes them: a batch's passports are never
        # all held as JSON at once.
        state.put_many(PASSPORTS_NS, ((siren, persist.dump(entry.now), entry.partition)
                                      for siren, entry in changed))
        parked: list[tuple[str, Any, int]] = []
        windows: dict[int, Window] = {}
        now = self._clock()
        for siren, entry in changed:
            passport, partition = entry.now, entry.partition
            if passport.parked:
                since = min(p.occurred_at for p in passport.parked)
                parked.append((siren, {"at": since, "partition": partition}, partition))
            elif entry.before.parked:
                state.delete(PARKED_NS, siren)
            if passport.issued_at is not None and entry.before.issued_at is None:
                self.log.info("passport.issued", siren=siren, partition=partition)
            window = windows.get(partition)
            if window is None:
                positions = self._positions(state, offsets, partition)
                window = windows[partition] = self.windows.open(
                    state, partition, starts.get(partition, positions), now)
            last = entry.last
            window.dirty[siren] = (f"{last.topic}/{last.partition}/{last.offset}"
                                   if last is not None else f"expired@{offsets[partition]}")
        state.put_many(PARKED_NS, parked)
        snapshots: list[Outbound] = []
        known = {siren: entry.now for siren, entry in touched.items()}
        for partition, window in windows.items():
            if self.windows.full(window):
                snapshots.extend(self._close(state, partition, window, offsets[partition],
                                             known))
            else:
                self.windows.keep(state, partition, window)
        return snapshots

    def flush(self, state: Txn, partitions: frozenset[int], *,
              caught_up: bool = True) -> list[Emit]:
        """The snapshots of the windows due (``hub.contract.Deferring``): all of those of
        ``partitions`` once the loop is caught up, else those older than the window."""
        snapshots: list[Emit] = []
        for partition, window in self.windows.due(state, partitions, self._clock(),
                                                  caught_up=caught_up):
            snapshots.extend(self._close(state, partition, window,
                                         self._positions(state, {}, partition), {}))
        return snapshots

    def _close(self, state: Txn, partition: int, window: Window, positions: dict[str, int],
               known: dict[str, Passport]) -> list[Outbound]:
        """A window's snapshots: each business's current state, as of ``positions``."""
        stored = state.get_many(PASSPORTS_NS, (s for s in window.dirty if s not in known))
        snapshots: list[Outbound] = []
        event_id = ""
        for siren, where in window.dirty.items():
            passport = known.get(siren)
            if passport is None:
                passport = persist.load(stored.pop(siren))
            event_id = outputs.snapshot_id(siren, where, passport)
            datum = outputs.snapshot(passport, event_id=event_id, input_offsets=positions,
                                     replay_from=window.replay_from)
            snapshots.append(Outbound(catalog.PASSPORTS, siren, "PassportSnapshot", datum))
        self.windows.close(state, partition)
        if event_id:  # the restorer compares the partition's last snapshot on the topic with it
            state.put(LAST_SNAPSHOT_NS, str(partition), event_id, partition=partition)
        return snapshots

    @staticmethod
    def _positions(state: Txn, offsets: dict[int, dict[str, int]],
                   partition: int) -> dict[str, int]:
        """The partition's input positions: after the batch if it had any, else stored."""
        positions = offsets.get(partition)
        if positions is None:
            positions = offsets[partition] = dict(state.get(OFFSETS_NS, str(partition)) or {})
        return positions


def _loaded(siren: str, stored: dict[str, Any] | None, partition: int) -> _Touched:
    """A business as the store holds it (a new passport if it holds none)."""
    passport = Passport(siren) if stored is None else persist.load(stored)
    return _Touched(passport, passport, partition, None)


def _parked_inbound(parked: Parked, siren: str, partition: int) -> Inbound:
    """An expired parked event as the input record it was (its offset is no longer known)."""
    topic = next(name for name, records in events.EXPECTED.items() if parked.record in records)
    return Inbound(topic, partition, -1, siren.encode(), parked.record, dict(parked.datum),
                   int(parked.datum.get("occurred_at", 0)))
