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


def lead(datum: Mapping[str, Any]) -> dict[str, Any]:
    """The API's view of a LeadAssigned decision, as the reseller pulls it."""
    return {
        "lead_id": datum["lead_id"],
        "reseller_id": datum.get("reseller_id"),
        "siren": datum["siren"],
        "business_name": datum["business_name"],
        "category": datum["category"],
        "departement": datum["departement"],
        "region": datum["region"],
        "status": datum["status"],
        "rule": datum["rule"],
        "candidates": list(datum["candidates"]),
        "assigned_at": iso(datum["occurred_at"]),
        # Personal data: routing puts it on the record only with the business's consent.
        "contact_email": datum.get("contact_email"),
    }
