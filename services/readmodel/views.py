"""The JSON faces of the state records the read model serves (pure: datum in, dict out).

Decoded Avro datums carry logical types as Python objects (``datetime`` for
timestamps, ``UUID`` for ids) or as raw ints and strings, depending on the
codec's settings; these helpers accept both so the views do not depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def millis(value: object) -> int:
    """A timestamp-millis value (``datetime`` or int) as UTC milliseconds."""
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(stamp.timestamp() * 1000)
    if isinstance(value, int):
        return value
    raise TypeError(f"not a timestamp: {type(value).__name__}")


def iso(value: object) -> str | None:
    """A timestamp as ISO 8601 in UTC (``None`` stays ``None``)."""
    if value is None:
        return None
    if isinstance(value, datetime):  # no round trip through epoch ms (~8% of a rebuild)
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return stamp.astimezone(UTC).isoformat(timespec="milliseconds")
    ms = millis(value)
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def passport(datum: Mapping[str, Any]) -> dict[str, Any]:
    """The API's view of a PassportSnapshot (v1 or v2 datum).

    Built field by field, so what the snapshot carries for the passport service
    alone never leaks: not the contact e-mail (personal data: it reaches a
    reseller only on a lead, with consent), nor the restore bookkeeping
    (``input_offsets``, ``replay_from``, ``applied_event_ids``, ``parked``).
    """
    withdrawn = bool(datum.get("consent_withdrawn", False))
    return {
        "siren": datum["siren"],
        "name": datum["name"],
        "departement": datum["departement"],
        "region": datum["region"],
        "naf": datum.get("naf"),
        "state": datum["state"],
        "enrolled_at": iso(datum.get("enrolled_at")),
        "modules_completed": list(datum["modules_completed"]),
        "modules": [{"module_id": m["module_id"], "completed_at": iso(m["completed_at"])}
                    for m in datum.get("modules") or ()],
        "passport_issued_at": iso(datum.get("passport_issued_at")),
        "offer_requests": int(datum.get("offer_requests", 0)),
        "leads_requested": int(datum.get("leads_requested", 0)),
        "offers": [{"event_id": str(o["event_id"]), "occurred_at": iso(o["occurred_at"]),
                    "category": o["category"], "outcome": o["outcome"],
                    "lead_id": o.get("lead_id")} for o in datum.get("offers") or ()],
        "feedback": [{"module_id": f["module_id"], "trainer_org": f.get("trainer_org"),
                      "delegation": f.get("delegation"), "score": int(f["score"])}
                     for f in datum.get("feedback") or ()],
        # Consent as it stands: given at enrolment and not withdrawn since.
        "consent": bool(datum.get("consent_share_with_resellers", False)) and not withdrawn,
        "consent_withdrawn": withdrawn,
        "erased": bool(datum.get("erased", False)),
        "updated_at": iso(datum["occurred_at"]),
    }


#: History entries kept per lead: a lead has a few changes per hop and at most a handful
#: of hops, so this only bounds a pathological one.
MAX_HISTORY = 50


def _decision(trace: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if trace is None:
        return None
    return {"rule": trace["rule"], "scope": trace["scope"], "winner": trace.get("winner"),
            "candidates": [{"reseller_id": c["reseller_id"], "weight": int(c["weight"]),
                            "share": float(c["share"]), "entitlement": float(c["entitlement"]),
                            "received": int(c["received"]), "deficit": float(c["deficit"]),
                            "open": int(c["open"]), "capacity": int(c["capacity"])}
                           for c in trace.get("candidates") or ()],
            "excluded": [{"reseller_id": e["reseller_id"], "reason": e["reason"]}
                         for e in trace.get("excluded") or ()]}


def lead(datum: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The full view of a lead after a ``LeadAssigned`` change (v2, or v1 with its defaults).

    ``previous`` is the view this change follows (None for the lead's first): the
    history and the holders so far come from it, and so does the decision trace
    when this change made none (an answer keeps the trace of the decision that
    placed the lead). Everything else is the change's own: each one carries the
    whole lead, so a withdrawal's missing contact e-mail is gone from the view too.
    This is what an admin sees; ``seen_by`` cuts it down for a reseller.
    """
    holder, before = datum.get("reseller_id"), datum.get("previous_reseller_id")
    decision = _decision(datum.get("decision"))
    if decision is None and previous is not None:
        decision = previous.get("decision")
    entry = {"version": int(datum.get("version", 1)), "change": datum.get("change", "assigned"),
             "at": iso(datum["occurred_at"]), "reseller_id": holder,
             "previous_reseller_id": before, "reason": datum.get("reason")}
    history = [*(previous["history"] if previous else ()), entry][-MAX_HISTORY:]
    holders = set(previous["holders"] if previous else ()) | {holder, before}
    holders.discard(None)
    return {
        "lead_id": datum["lead_id"],
        "siren": datum["siren"],
        "business_name": datum["business_name"],
        "category": datum["category"],
        "departement": datum["departement"],
        "region": datum["region"],
        "status": datum["status"],
        "change": entry["change"],
        "version": entry["version"],
        "reseller_id": holder,
        "previous_reseller_id": before,
        "reason": entry["reason"],
        "hops": int(datum.get("hops", 0)),
        "excluded_resellers": list(datum.get("excluded_resellers") or ()),
        "rule": datum["rule"],
        "candidates": list(datum["candidates"]),
        "decision": decision,
        "requested_at": iso(datum.get("requested_at") or datum["occurred_at"]),
        # v1 records have no assigned_at: the record's own time was the assignment's.
        "assigned_at": iso(datum.get("assigned_at") or datum["occurred_at"]),
        "deadline_at": iso(datum.get("deadline_at")),
        "sla_breached": bool(datum.get("sla_breached", False)),
        "duplicate_of": datum.get("duplicate_of"),
        # Personal data: routing puts it on the record only with the business's consent,
        # and drops it when the lead is withdrawn or closed.
        "contact_email": datum.get("contact_email"),
        "history": history,
        "holders": sorted(holders),
        "updated_at": iso(datum["occurred_at"]),
    }


def seen_by(view: Mapping[str, Any], reseller_id: str) -> dict[str, Any]:
    """What reseller ``reseller_id`` may see of a lead it holds or held: never another's id
    or figures.

    It sees the lead, the rule and scope of the last decision and its own candidate
    entry in it (``standing``; null if it was not a candidate), whether it won that
    decision, and the changes it took part in. Another reseller's id is null wherever
    it would appear; the candidates, the exclusions and the holders are left out. What
    belongs to the current holding (contact e-mail, assignment time, deadline, the last
    change's reason) is shown only to the reseller that holds the lead now.
    """
    holds = view["reseller_id"] == reseller_id

    def own(value: object) -> object:
        return value if value == reseller_id else None

    trace = view.get("decision")
    decision = None if trace is None else {
        "rule": trace["rule"], "scope": trace["scope"], "won": trace["winner"] == reseller_id,
        "standing": next((dict(c) for c in trace["candidates"]
                          if c["reseller_id"] == reseller_id), None)}
    history = [{**entry, "reseller_id": own(entry["reseller_id"]),
                "previous_reseller_id": own(entry["previous_reseller_id"])}
               for entry in view["history"]
               if reseller_id in (entry["reseller_id"], entry["previous_reseller_id"])]
    out = {name: view[name] for name in (
        "lead_id", "siren", "business_name", "category", "departement", "region", "status",
        "change", "version", "hops", "rule", "requested_at", "updated_at")}
    out.update({
        "reseller_id": own(view["reseller_id"]),
        "previous_reseller_id": own(view["previous_reseller_id"]),
        "held": holds,
        "decision": decision,
        "reason": view["reason"] if holds else None,
        "assigned_at": view["assigned_at"] if holds else None,
        "deadline_at": view["deadline_at"] if holds else None,
        "contact_email": view["contact_email"] if holds else None,
        "history": history,
    })
    if "requested_as" in view:
        out["requested_as"] = view["requested_as"]
    return out


def webhook_endpoint(datum: Mapping[str, Any]) -> dict[str, Any]:
    """The API's view of a ``WebhookEndpoint``: its state and secrets by fingerprint only.

    The record never carries a secret (the delivery component keeps them sealed),
    so nothing here can leak one; the fingerprints let a reseller tell which of
    its secrets signs now and when a rotated-out one stops.
    """
    return {
        "reseller_id": datum["reseller_id"],
        "url": datum["url"],
        "enabled": bool(datum["enabled"]),
        "disabled_reason": datum.get("disabled_reason"),
        "failing_since": iso(datum.get("failing_since")),
        "secrets": [{"fingerprint": s["fingerprint"], "created_at": iso(s["created_at"]),
                     "expires_at": iso(s.get("expires_at"))}
                    for s in datum.get("secrets") or ()],
        "version": int(datum["version"]),
        "updated_at": iso(datum["occurred_at"]),
    }


def delivery(datum: Mapping[str, Any]) -> dict[str, Any]:
    """The API's view of one ``WebhookDelivery`` attempt (the record holds no body, no secret)."""
    return {
        "message_id": datum["message_id"],
        "type": datum["type"],
        "lead_id": datum.get("lead_id"),
        "attempt": int(datum["attempt"]),
        "url": datum["url"],
        "outcome": datum["outcome"],
        "http_status": datum.get("http_status"),
        "latency_ms": datum.get("latency_ms"),
        "error": datum.get("error"),
        "next_attempt_at": iso(datum.get("next_attempt_at")),
        "replay": bool(datum.get("replay", False)),
        "at": iso(datum["occurred_at"]),
    }
