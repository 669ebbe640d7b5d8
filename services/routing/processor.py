"""The routing service's processor: lead requests, answers and withdrawals in, lead changes out.

The ``Router`` (pure) decides; this shell feeds it the decoded records of a
batch and the injected clock, and keeps its ``RouterState`` in the store: the
leads and standings a batch changed are written in the batch's transaction,
with the input positions and the outbox (hub.processor), so a crash at any
point resumes exactly. The state is held in memory between batches (one
router owns every lead: docs/routing.md) and read
again from the store when a restore rewrote it (its epoch changed).

As a ``Deferring`` processor the loop calls ``flush`` after every batch and
whenever it is idle: that is where deadlines fire (``Router.expire``), leads a
restore left half-moved are placed again, and invalid or undecodable reseller
profiles are dead-lettered — only on the instance that owns the lead partition, so a
standby fires nothing.

The changes of a batch or a flush are counted (services/routing/metrics.py, which
says what a count means) once saved to the transaction, never while deciding: a
batch that raises counts nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from hub import logs
from hub.errors import HubError
from hub.processor import Emit, Inbound, Outbound, Rejected
from hub.store import Txn
from schemas import catalog
from schemas.reference import DEPARTEMENTS, REGIONS, region_of
from services.routing import records
from services.routing.metrics import RoutingMetrics
from services.routing.registry import Registry
from services.routing.router import InvalidAnswerError, Router, RoutingRules
from services.routing.state import Change, RouterState
from services.routing.table import ResellerTable

#: Store namespaces: leads, reseller standings, input offsets per topic/partition,
#: the bookkeeping (last lead event emitted, state epoch), and the invalid profiles
#: already dead-lettered (by reseller-topic partition/offset).
LEADS_NS = "routing-lead"
STANDINGS_NS = "routing-standing"
OFFSETS_NS = "routing-offsets"
META_NS = "routing-meta"
PROFILE_LETTERS_NS = "routing-profile-letters"
LAST_EVENT = "last-event"
EPOCH = "epoch"
#: The router's rows belong to the one lead-request partition.
PARTITION = 0


class InvalidLeadError(HubError):
    """A lead request the router cannot decide on (dead-lettered, stage "validate")."""


class RoutingProcessor:
    """Decides, follows and expires every lead."""

    name = "routing"
    inputs: tuple[str, ...] = (catalog.LEAD_REQUESTS, catalog.LEAD_RESPONSES)

    def __init__(self, registry: Registry, *, rules: RoutingRules | None = None,
                 clock: Callable[[], int] | None = None,
                 table: ResellerTable | None = None,
                 metrics: RoutingMetrics | None = None) -> None:
        self.registry = registry
        self.metrics = metrics or RoutingMetrics.create(CollectorRegistry())
        self.rules = rules or RoutingRules()
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.table = table
        self.log = logs.get().bind(component=self.name)
        self._router: Router | None = None
        self._epoch: Any = None
        self._offsets: dict[str, int] = {}
        self._last_event: str | None = None
        self.changes: dict[str, int] = {}
        """Changes emitted by kind since start (the service's metrics read it)."""

    # -- the processor contract --------------------------------------------------------------

    def apply(self, state: Txn, batch: Sequence[Inbound]) -> list[Emit]:
        router = self._loaded(state)
        out: list[Emit] = []
        decided: list[Change] = []
        try:
            for inbound in batch:
                self._offsets[f"{inbound.topic}/{inbound.partition}"] = inbound.offset + 1
                try:
                    changes = self._one(router, inbound)
                except (InvalidLeadError, InvalidAnswerError) as exc:
                    out.append(Rejected(inbound, exc, "validate"))
                    self.log.info("lead.input_refused", topic=inbound.topic,
                                  offset=inbound.offset, error=str(exc))
                    continue
                out.extend(self._outbound(changes))
                decided.extend(changes)
            self._save(state)
        except BaseException:
            self._router = None  # the transaction rolls back: so does the state in memory
            raise
        self._count(decided)
        return out

    def flush(self, state: Txn, partitions: frozenset[int], *,
              caught_up: bool = True) -> Iterable[Emit]:
        """Fire due deadlines, place half-moved leads, dead-letter invalid profiles."""
        del caught_up  # deadlines are due whether or not the inputs are behind
        if PARTITION not in partitions:
            return []
        out: list[Emit] = []
        if self.table is not None:
            out.extend(self._profile_letters(state))
        router = self._loaded(state)
        try:
            now = self.clock()
            # What the half-moved leads lost before the restore: their reassignments' reason.
            lost = {i: router.state.leads[i].status for i in router.state.unplaced}
            changes = router.resume(now) if lost else []
            changes += router.expire(now)
            if changes:
                out.extend(self._outbound(changes))
                self._save(state)
        except BaseException:
            self._router = None
            raise
        self._count(changes, lost)
        return out

    def _profile_letters(self, state: Txn) -> list[Emit]:
        """Dead letters for the invalid profiles the table met, each once per store: the
        table is read from the start at every start, and meets them all again."""
        assert self.table is not None
        out: list[Emit] = []
        for rejected in self.table.take_rejected():
            where = f"{rejected.inbound.partition}/{rejected.inbound.offset}"
            if state.get(PROFILE_LETTERS_NS, where) is None:
                # Outside the lead partition's rows: a restore, which drops those, keeps it.
                state.put(PROFILE_LETTERS_NS, where, True, partition=-1)
                out.append(rejected)
        return out

    # -- inputs ------------------------------------------------------------------------------

    def _one(self, router: Router, inbound: Inbound) -> list[Change]:
        now = self.clock()
        datum = inbound.datum
        if inbound.record == "LeadRequested":
            departement, region = datum["departement"], datum["region"]
            if departement not in DEPARTEMENTS or region != region_of(departement) \
                    or region not in REGIONS:
                raise InvalidLeadError(f"unknown département {departement!r} or région "
                                       f"{region!r} (or the one not in the other)")
            return router.request(records.request_of(datum), now)
        if inbound.record == "LeadAnswered":
            return router.answer(records.answer_of(datum), now)
        if inbound.record == "LeadWithdrawn":
            return router.withdraw(str(datum["lead_id"]), str(datum["reason"]), now)
        raise InvalidLeadError(f"{inbound.topic} carries no {inbound.record or 'such'} records")

    def _outbound(self, changes: list[Change]) -> list[Emit]:
        out: list[Emit] = []
        for change in changes:
            lead = change.lead
            value = records.datum(change, self._offsets)
            self._last_event = value["event_id"]
            out.append(Outbound(catalog.LEADS, lead.lead_id, "LeadAssigned", value))
            self.log.debug("lead.changed", lead_id=lead.lead_id, change=change.kind,
                           version=lead.version, reseller_id=lead.holder, rule=lead.rule)
        return out

    def _count(self, changes: list[Change], lost: dict[str, str] | None = None) -> None:
        for change in changes:
            self.changes[change.kind] = self.changes.get(change.kind, 0) + 1
        self.metrics.count(changes, lost)

    # -- state -------------------------------------------------------------------------------

    def _loaded(self, state: Txn) -> Router:
        """The router over the stored state, read again if a restore rewrote it."""
        epoch = state.get(META_NS, EPOCH)
        if epoch is None:
            # A store no restore wrote yet gets an epoch of its own: forgotten (hub.processor,
            # a fenced relay), it has none again, and the router is not trusted from memory.
            epoch = uuid.uuid4().hex
            state.put(META_NS, EPOCH, epoch, partition=PARTITION)
        if self._router is None or epoch != self._epoch:
            loaded = RouterState()
            loaded.load([records.lead_of_json(v) for _, v in state.items(LEADS_NS)],
                        {k: records.standing_of_json(v) for k, v in state.items(STANDINGS_NS)})
            self._offsets = dict(state.get(OFFSETS_NS, str(PARTITION)) or {})
            self._router = Router(self.registry, loaded, self.rules)
            self._epoch = epoch
            self.log.info("routing.state_loaded", leads=len(loaded.leads),
                          resellers=len(loaded.standings))
        return self._router

    def _save(self, state: Txn) -> None:
        assert self._router is not None
        leads, standings = self._router.state.take_dirty()
        state.put_many(LEADS_NS, ((lead.lead_id, records.lead_json(lead), PARTITION)
                                  for lead in leads))
        state.put_many(STANDINGS_NS, ((rid, records.standing_json(s), PARTITION)
                                      for rid, s in standings.items()))
        state.put(OFFSETS_NS, str(PARTITION), self._offsets, partition=PARTITION)
        if self._last_event is not None:
            # The restore check compares it with the last record on pn.leads.v1.
            state.put(META_NS, LAST_EVENT, self._last_event, partition=PARTITION)
            self._last_event = None

    @property
    def state(self) -> RouterState | None:
        """The state in memory (tests, metrics); None before the first batch."""
        return None if self._router is None else self._router.state
