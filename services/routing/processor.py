"""The routing service's processor: each lead request decided once, the decision emitted.

The reseller table comes in as a live read-only mapping (the router's
``ResellerTable``, refreshed between polls, never during a batch). Rotation
cursors and decided lead ids live in the store, committed with the input offset
and the emitted decision, so a replay after a crash decides nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hub import logs
from hub.errors import HubError
from hub.ids import derive
from hub.processor import Emit, Inbound, Outbound, Rejected
from hub.store import Txn
from schemas import catalog
from schemas.reference import DEPARTEMENTS, REGIONS
from services.routing import policy
from services.routing.policy import Decision, LeadScope, Reseller

#: Store namespaces: the rotation cursors, and the leads already decided.
ROTATION_NS = "rotation"
LEADS_NS = "lead"
SOURCE = "routing"


class InvalidLeadError(HubError):
    """A lead request the router cannot decide on (dead-lettered, stage "validate")."""


class RoutingProcessor:
    """Decides which reseller gets each requested lead."""

    name = "routing"
    inputs: tuple[str, ...] = (catalog.LEAD_REQUESTS,)

    def __init__(self, resellers: Mapping[str, Reseller]) -> None:
        self.resellers = resellers
        self.log = logs.get().bind(component=self.name)

    def apply(self, state: Txn, batch: Sequence[Inbound]) -> list[Emit]:
        """Decide every lead of the batch not decided before; return the decisions."""
        out: list[Emit] = []
        for inbound in batch:
            try:
                scope = _scope(inbound)
            except InvalidLeadError as exc:
                out.append(Rejected(inbound, exc, "validate"))
                continue
            lead_id = str(inbound.datum["lead_id"])
            if state.get(LEADS_NS, lead_id) is not None:
                self.log.debug("lead.already_decided", lead_id=lead_id, offset=inbound.offset)
                continue
            found = policy.candidates(scope, self.resellers)
            decision = policy.choose(found, int(state.get(ROTATION_NS, found.cursor_key) or 0))
            if decision.cursor is not None:
                state.put(ROTATION_NS, decision.cursor_key, decision.cursor,
                          partition=inbound.partition)
            state.put(LEADS_NS, lead_id, {"status": decision.status,
                                          "reseller_id": decision.reseller_id,
                                          "rule": decision.rule}, partition=inbound.partition)
            out.append(Outbound(catalog.LEADS, lead_id, "LeadAssigned",
                                assigned(inbound.datum, decision)))
            self.log.debug("lead.decided", lead_id=lead_id, status=decision.status,
                           reseller_id=decision.reseller_id, rule=decision.rule,
                           candidates=len(decision.candidates))
        return out


def _scope(inbound: Inbound) -> LeadScope:
    if inbound.record != "LeadRequested":
        raise InvalidLeadError(f"{inbound.topic} carries LeadRequested records, "
                               f"not {inbound.record or 'nothing'}")
    datum = inbound.datum
    departement, region = datum["departement"], datum["region"]
    if departement not in DEPARTEMENTS or region not in REGIONS:
        raise InvalidLeadError(f"unknown département {departement!r} or région {region!r}")
    return LeadScope(departement, region, str(datum["category"]))


def assigned(request: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
    """The ``LeadAssigned`` datum of a decision on a ``LeadRequested`` datum."""
    return {
        "event_id": derive(str(request["event_id"]), "assigned"),
        "occurred_at": request["occurred_at"],
        "source": SOURCE,
        "schema_version": 1,
        "lead_id": request["lead_id"],
        "siren": request["siren"],
        "category": request["category"],
        "departement": request["departement"],
        "region": request["region"],
        "status": decision.status,
        "reseller_id": decision.reseller_id,
        "rule": decision.rule,
        "candidates": list(decision.candidates),
        "business_name": request["name"],
        "contact_email": request["contact_email"],
    }
