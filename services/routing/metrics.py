"""What the router records: lead changes by kind, SLA breaches, reassignments by reason.

A count is a change this instance decided and saved in a batch's transaction
(with the outbox that will publish it: hub.processor), since the process
started. What that means across restarts and takeovers:

- a restore folds ``pn.leads.v1`` into the state without deciding anything, so
  it counts nothing; neither does a standby (it owns no lead partition);
- a crash loses its process's counters with it (a counter restarts at zero,
  which ``rate()`` reads as a reset); changes are counted once saved to the
  transaction, and a transaction that fails to commit takes the loop, and the
  process, down with it: no process goes on with the counts of a rolled-back batch;
- what an owner committed but had not relayed when it died is decided again by
  the next owner (the same changes, under the same event ids, which readers
  drop) and counted again there: at most the dead owner's unrelayed outbox, as
  any replay after a crash. ``GET /v1/stats`` (the fold of the topic) has the
  exact figures; these are for rates and alerts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from services.routing.state import CHANGES, UNPLACED, Change

#: Why a lead was reassigned: its holder rejected it, or let its deadline pass.
REASSIGN_REASONS = tuple(sorted(UNPLACED))


@dataclass(frozen=True, slots=True)
class RoutingMetrics:
    """The routing counters, their children bound once (``CHANGES``, ``REASSIGN_REASONS``)."""

    changes: Mapping[str, Counter]
    sla_breaches: Counter
    reassignments: Mapping[str, Counter]

    @classmethod
    def create(cls, registry: CollectorRegistry) -> RoutingMetrics:
        changes = Counter("passport_hub_lead_changes",
                          f"Lead changes the router decided, by change ({', '.join(CHANGES)}).",
                          ["change"], registry=registry)
        breaches = Counter("passport_hub_lead_sla_breaches",
                           "Leads whose holder let the answer deadline pass (expired).",
                           registry=registry)
        reassignments = Counter(
            "passport_hub_lead_reassignments",
            "Leads given to another reseller, by why the holder lost them "
            f"({', '.join(REASSIGN_REASONS)}).", ["reason"], registry=registry)
        return cls({kind: changes.labels(kind) for kind in CHANGES}, breaches,
                   {reason: reassignments.labels(reason) for reason in REASSIGN_REASONS})

    def count(self, changes: Iterable[Change], lost: Mapping[str, str] | None = None) -> None:
        """Count changes, in the order decided. A ``reassigned`` change's reason is the
        loss before it: of the same cause (a rejection or an expiry, then the
        reassignment) or, for a lead a restore left half-moved, its status in ``lost``
        (lead id -> rejected | expired) when it was placed again."""
        before = dict(lost or {})
        for change in changes:
            kind, lead_id = change.kind, change.lead.lead_id
            self.changes[kind].inc()
            if change.sla_breached:
                self.sla_breaches.inc()
            if kind in UNPLACED:
                before[lead_id] = kind
            elif kind == "reassigned":
                reason = before.pop(lead_id, None)
                if reason is not None:
                    self.reassignments[reason].inc()
