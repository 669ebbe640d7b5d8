"""What a reseller's CRM receives about its leads: the events of the push and the pull (pure).

One ``LeadAssigned`` change (a record of ``pn.leads.v1``) becomes zero, one or
two ``LeadEvent``s, each for one reseller: the holder hears that it got a lead
or that its lead moved on; the reseller that lost a lead (expired, withdrawn,
rejected) hears that too. The webhook push (connectors/crm_webhook) and the
pull feed (``GET /v1/resellers/{id}/leads?cursor=``) render them with the same
function, so a CRM sees the same events, with the same ids, in the same order,
whichever way it reads them.

The body is the Standard Webhooks shape: ``{"id", "type", "timestamp",
"data"}``; ``id`` is also the ``webhook-id`` header, derived from the change's
event id, the reseller and the type, so a re-emitted change, a retry and a
replay all carry the same id and a CRM drops what it already has.

What ``data`` carries is what the CRM needs to act on the lead and nothing
else: the business (name, SIREN, place), the category, the deadline to answer,
the decision's rule and scope, and the contact e-mail — only for the holder of
an open lead, and only when the change carries it (the router drops it on
withdrawal of consent, erasure and closing).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from schemas.frozen import frozen

#: Every event type a CRM may receive.
EVENT_TYPES = ("lead.assigned", "lead.updated", "lead.reassigned_away", "lead.expired",
               "lead.withdrawn", "ping")

#: Changes the holder after the change hears of, and as what.
_TO_HOLDER = {"assigned": "lead.assigned", "reassigned": "lead.assigned",
              "queued": "lead.assigned", "accepted": "lead.updated", "won": "lead.updated",
              "lost": "lead.updated"}
#: Changes the holder before the change hears of, when it lost the lead by them.
_TO_PREVIOUS = {"expired": "lead.expired", "withdrawn": "lead.withdrawn",
                "rejected": "lead.updated"}
#: Statuses in which the holder may still contact the business.
_OPEN = frozenset({"assigned", "accepted", "queued"})

_IDS = uuid.UUID("6d1f3a52-9c4e-4b8a-a1d7-3e5f0b2c8a94")


@frozen
class LeadEvent:
    """One event for one reseller: the body of a webhook and an item of the pull feed."""

    reseller_id: str
    type: str
    message_id: str
    lead_id: str | None
    occurred_at: int
    """Epoch milliseconds of the change (the router's clock)."""
    data: dict[str, Any]

    def body(self) -> dict[str, Any]:
        """The JSON body: Standard Webhooks' ``type``, ``timestamp`` and ``data``, with ``id``."""
        return {"id": self.message_id, "type": self.type,
                "timestamp": iso(self.occurred_at), "data": self.data}


def message_id(event_id: str, reseller_id: str, kind: str) -> str:
    """The stable ``webhook-id`` of the event ``kind`` that change ``event_id`` causes."""
    return "msg_" + uuid.uuid5(_IDS, f"{event_id}/{reseller_id}/{kind}").hex


def iso(millis: int) -> str:
    """RFC 3339 UTC with milliseconds, as every time in a body is written."""
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def millis(value: Any) -> int | None:
    """A ``timestamp-millis`` field as epoch ms, whether decoded as datetime or as int."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)


def lead_events(datum: Mapping[str, Any]) -> list[LeadEvent]:
    """The events a ``LeadAssigned`` change causes, in the order they are to be delivered."""
    if int(datum.get("schema_version", 1)) < 2:
        return []  # v1 records carry no change: nothing to tell, as before push existed
    change = str(datum["change"])
    out: list[LeadEvent] = []
    previous, holder = datum.get("previous_reseller_id"), datum.get("reseller_id")
    lost = _TO_PREVIOUS.get(change)
    if previous and lost is not None:
        out.append(_event(datum, str(previous), lost, holding=False))
    elif previous and previous != holder:
        out.append(_event(datum, str(previous), "lead.reassigned_away", holding=False))
    gained = _TO_HOLDER.get(change)
    if holder and gained is not None:
        out.append(_event(datum, str(holder), gained, holding=True))
    return out


def _event(datum: Mapping[str, Any], reseller_id: str, kind: str, *, holding: bool) -> LeadEvent:
    at = millis(datum["occurred_at"]) or 0
    return LeadEvent(reseller_id, kind, message_id(str(datum["event_id"]), reseller_id, kind),
                     str(datum["lead_id"]), at, lead_data(datum, holding=holding))


def lead_data(datum: Mapping[str, Any], *, holding: bool) -> dict[str, Any]:
    """The lead as its holder (``holding``) or its former holder may see it."""
    status = str(datum["status"])
    decision = datum.get("decision")
    data: dict[str, Any] = {
        "lead_id": str(datum["lead_id"]), "version": int(datum.get("version", 1)),
        "status": status, "change": str(datum.get("change", "assigned")),
        "reason": datum.get("reason"),
        "business": {"siren": str(datum["siren"]), "name": str(datum["business_name"]),
                     "departement": str(datum["departement"]), "region": str(datum["region"])},
        "category": str(datum["category"]),
        "requested_at": _iso_or_none(datum.get("requested_at")),
    }
    if holding:
        data["assigned_at"] = _iso_or_none(datum.get("assigned_at"))
        data["answer_by"] = _iso_or_none(datum.get("deadline_at"))
        data["decision"] = None if decision is None else {
            "rule": str(decision["rule"]), "scope": str(decision.get("scope") or ""),
            "candidates": len(decision.get("candidates") or ())}
        email = datum.get("contact_email")
        if email and status in _OPEN:
            data["business"]["contact_email"] = str(email)
    return data


def without_contact(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with the business's contact e-mail removed (erasure: never sent again)."""
    copy = dict(data)
    business = copy.get("business")
    if isinstance(business, Mapping) and "contact_email" in business:
        copy["business"] = {k: v for k, v in business.items() if k != "contact_email"}
    return copy


def ping(reseller_id: str, event_id: str, now: int) -> LeadEvent:
    """The ``ping`` a reseller's test request sends (``POST …/webhook/test``)."""
    return LeadEvent(reseller_id, "ping", message_id(event_id, reseller_id, "ping"), None, now,
                     {"message": "passport-hub test delivery", "reseller_id": reseller_id})


def _iso_or_none(value: Any) -> str | None:
    at = millis(value)
    return None if at is None else iso(at)
