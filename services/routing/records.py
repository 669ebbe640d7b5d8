"""The router's records: Avro datums in and out, and its state as stored JSON.

A ``Change`` becomes one ``LeadAssigned`` (v2) datum on ``pn.leads.v1``, and
``change_of`` reads it back (a restore folds them: services/routing/state.py).
Times are epoch milliseconds throughout (the loop decodes with ``millis``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from hub.ids import derive
from services.routing.router import Answer, LeadRequest
from services.routing.state import Candidate, Change, Decision, Exclusion, Lead, Standing

SOURCE = "routing"


def event_id(lead_id: str, version: int) -> str:
    """A lead event's id: the lead and its version, so a re-emitted change is the same event."""
    return derive(lead_id, f"lead-v{version}")


def datum(change: Change, input_offsets: Mapping[str, int]) -> dict[str, Any]:
    """The ``LeadAssigned`` datum of a change."""
    lead, decision = change.lead, change.decision
    return {
        "event_id": event_id(lead.lead_id, lead.version),
        "occurred_at": change.at,
        "source": SOURCE,
        "schema_version": 2,
        "lead_id": lead.lead_id,
        "siren": lead.siren,
        "category": lead.category,
        "departement": lead.departement,
        "region": lead.region,
        "status": lead.status,
        "reseller_id": lead.holder,
        "rule": lead.rule,
        "candidates": list(lead.candidates),
        "business_name": lead.business_name,
        "contact_email": lead.contact_email,
        "change": change.kind,
        "version": lead.version,
        "previous_reseller_id": change.previous,
        "reason": change.reason,
        "hops": lead.hops,
        "excluded_resellers": list(lead.excluded),
        "requested_at": lead.requested_at,
        "assigned_at": lead.assigned_at,
        "deadline_at": lead.deadline_at,
        "sla_breached": change.sla_breached,
        "duplicate_of": change.duplicate_of,
        "decision": None if decision is None else {
            "rule": decision.rule, "scope": decision.scope, "winner": decision.winner,
            "candidates": [{"reseller_id": c.reseller_id, "weight": c.weight, "share": c.share,
                            "entitlement": c.entitlement, "received": c.received,
                            "deficit": c.deficit, "open": c.open, "capacity": c.capacity}
                           for c in decision.candidates],
            "excluded": [{"reseller_id": e.reseller_id, "reason": e.reason}
                         for e in decision.excluded],
        },
        "input_offsets": dict(input_offsets),
    }


def change_of(value: Mapping[str, Any]) -> Change:
    """The change a ``LeadAssigned`` datum (any version, millis times) records."""
    trace = value.get("decision")
    decision = None if trace is None else Decision(
        trace["rule"], trace["scope"], trace["winner"],
        tuple(Candidate(c["reseller_id"], c["weight"], c["share"], c["entitlement"],
                        c["received"], c["open"], c["capacity"]) for c in trace["candidates"]),
        tuple(Exclusion(e["reseller_id"], e["reason"]) for e in trace["excluded"]))
    lead = Lead(
        lead_id=str(value["lead_id"]), siren=str(value["siren"]),
        category=str(value["category"]), departement=str(value["departement"]),
        region=str(value["region"]), business_name=str(value["business_name"]),
        contact_email=value.get("contact_email"),
        requested_at=int(value.get("requested_at") or value["occurred_at"]),
        status=str(value["status"]), holder=value.get("reseller_id"),
        version=int(value.get("version", 1)), hops=int(value.get("hops", 0)),
        excluded=tuple(value.get("excluded_resellers") or ()),
        assigned_at=value.get("assigned_at"), deadline_at=value.get("deadline_at"),
        rule=str(value["rule"]), candidates=tuple(value.get("candidates") or ()))
    return Change(str(value.get("change", "assigned")), int(value["occurred_at"]), lead,
                  previous=value.get("previous_reseller_id"), reason=value.get("reason"),
                  sla_breached=bool(value.get("sla_breached", False)),
                  duplicate_of=value.get("duplicate_of"), decision=decision)


def request_of(value: Mapping[str, Any]) -> LeadRequest:
    """The router's view of a ``LeadRequested`` datum."""
    return LeadRequest(str(value["lead_id"]), str(value["siren"]), str(value["name"]),
                       str(value["departement"]), str(value["region"]), str(value["category"]),
                       value.get("contact_email"), int(value["occurred_at"]))


def answer_of(value: Mapping[str, Any]) -> Answer:
    """The router's view of a ``LeadAnswered`` datum."""
    return Answer(str(value["lead_id"]), str(value["reseller_id"]), str(value["answer"]),
                  value.get("reason"))


#: A lead's fields, in order: the store keeps a lead as the list of their values
#: (``dataclasses.asdict`` cost ~240 µs a lead; this ~2).
_LEAD_FIELDS = tuple(f.name for f in fields(Lead))


def lead_json(lead: Lead) -> list[Any]:
    """A lead as the store keeps it."""
    return [getattr(lead, name) for name in _LEAD_FIELDS]


def lead_of_json(value: list[Any]) -> Lead:
    row = dict(zip(_LEAD_FIELDS, value, strict=True))
    return Lead(**{**row, "excluded": tuple(row["excluded"]),
                   "candidates": tuple(row["candidates"])})


def standing_json(standing: Standing) -> list[float]:
    return [standing.entitlement, standing.received]


def standing_of_json(value: list[float]) -> Standing:
    return Standing(float(value[0]), int(value[1]))
