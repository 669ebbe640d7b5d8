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
    """The API's view of a PassportSnapshot (the restore offsets stay internal)."""
    return {
        "siren": datum["siren"],
        "name": datum["name"],
        "departement": datum["departement"],
        "region": datum["region"],
        "naf": datum.get("naf"),
        "state": datum["state"],
        "modules_completed": list(datum["modules_completed"]),
        "passport_issued_at": iso(datum.get("passport_issued_at")),
        "offer_requests": int(datum.get("offer_requests", 0)),
        "leads_requested": int(datum.get("leads_requested", 0)),
        "consent": bool(datum.get("consent_share_with_resellers", False)),
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
