"""Rebuilding the router's state from ``pn.leads.v1``: the fold of every lead change.

Every change the router emits carries the lead's whole state after it and the
standing of each candidate of its decision (services/routing/state.py), and the
topic has one partition and keeps every record, so reading it from the start
and applying each change with ``RouterState.apply`` gives the state of what was
emitted — exactly what a router that takes over must continue from. The input
positions are the last change's ``input_offsets``: where its cause ended. The
relay sends the outbox in order, so the topic holds a prefix of what the
previous owner emitted; a cause whose changes were cut in two (a rejection
emitted, the reassignment it led to not) leaves its lead ``unplaced``, and the
router places it again at its first flush (services/routing/processor.py).
Inputs after the last change that emitted nothing (a refused answer) are read
again: their dead letters may repeat.

On assignment the check runs first (hub.checkpoint): if the topic ends with the
last change this store emitted, the store is current and nothing is read.
"""

from __future__ import annotations

import uuid
from typing import Any

from hub import logs
from hub.checkpoint import CheckpointRestore
from hub.config import Settings
from hub.store import Store, Txn
from schemas import catalog
from schemas.codec import Codec
from services.routing import records
from services.routing.processor import (
    EPOCH,
    LAST_EVENT,
    LEADS_NS,
    META_NS,
    OFFSETS_NS,
    PARTITION,
    STANDINGS_NS,
)
from services.routing.state import RouterState


class RoutingRestorer:
    """The routing service's ``hub.restoring.Restorer``."""

    checkpoints: tuple[str, ...] = (catalog.LEADS,)

    def __init__(self, settings: Settings, *, codec: Codec | None = None,
                 timeout_s: float = 300.0) -> None:
        self.settings = settings
        self.codec = codec or Codec.default()
        self.timeout_s = timeout_s
        self.log = logs.get().bind(component="routing")
        self.last_restore: int | None = None
        """Changes read by the last restore (tests, the bench)."""

    def begin(self, store: Store, partition: int) -> _LeadsRestore | None:
        if partition != PARTITION:
            return None  # the router's state all belongs to the one lead partition
        return _LeadsRestore(self, store)


class _LeadsRestore(CheckpointRestore):
    def __init__(self, restorer: RoutingRestorer, store: Store) -> None:
        super().__init__(settings=restorer.settings, codec=restorer.codec, store=store,
                         topic=catalog.LEADS, partition=0, log=restorer.log,
                         timeout_s=restorer.timeout_s)
        self.restorer = restorer
        self._state = RouterState()
        self._last: dict[str, Any] | None = None
        self._count = 0

    def marker(self, txn: Txn) -> str | None:
        mine = txn.get(META_NS, LAST_EVENT)
        return None if mine is None else str(mine)

    def begin(self, txn: Txn) -> None:
        self._state, self._last, self._count = RouterState(), None, 0
        txn.drop_partition(PARTITION)

    def absorb(self, txn: Txn, datums: list[dict[str, Any]]) -> None:
        del txn  # the state is written once, by finish
        for datum in datums:
            self._state.apply(records.change_of(datum))
            self._last = datum
        self._count += len(datums)

    def finish(self, txn: Txn, seconds: float) -> None:
        leads, standings = self._state.take_dirty()
        txn.put_many(LEADS_NS, ((lead.lead_id, records.lead_json(lead), PARTITION)
                                for lead in leads))
        txn.put_many(STANDINGS_NS, ((rid, records.standing_json(s), PARTITION)
                                    for rid, s in standings.items()))
        # A new epoch: the processor reads the state again rather than trust its memory.
        txn.put(META_NS, EPOCH, uuid.uuid4().hex, partition=PARTITION)
        last = self._last
        if last is not None:
            offsets: dict[str, int] = dict(last["input_offsets"] or {})
            txn.put(OFFSETS_NS, str(PARTITION), offsets, partition=PARTITION)
            for where, offset in offsets.items():  # "pn.lead-responses.v1/0" -> 42
                name, _, number = where.rpartition("/")
                txn.set_position(self.settings.topic(name), int(number), offset)
            txn.put(META_NS, LAST_EVENT, str(last["event_id"]), partition=PARTITION)
        self.restorer.last_restore = self._count
        self.log.info("routing.restored", changes=self._count, leads=len(leads),
                      unplaced=len(self._state.unplaced), seconds=round(seconds, 3))
