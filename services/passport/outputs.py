"""The records the passport emits, as Avro datums: passport snapshots and lead requests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.ids import derive
from services.passport.events import from_millis
from services.passport.rules import Lead, Passport

SOURCE = "passport"


def snapshot_id(siren: str, topic: str, partition: int, offset: int) -> str:
    """A snapshot's event id: the business and the last input record it reflects."""
    return derive(f"{siren}@{topic}/{partition}/{offset}", "snapshot")


def snapshot(passport: Passport, *, event_id: str,
             input_offsets: Mapping[str, int]) -> dict[str, Any]:
    """The ``PassportSnapshot`` datum of an enrolled business's passport."""
    profile = passport.profile
    if profile is None or passport.last_event_at is None:
        raise ValueError(f"passport {passport.siren} is not enrolled: no snapshot")
    issued_at = passport.issued_at
    return {
        "event_id": event_id,
        # The latest event time the passport reflects: no clock is read here.
        "occurred_at": from_millis(passport.last_event_at),
        "source": SOURCE,
        "schema_version": 1,
        "siren": passport.siren,
        "name": profile.name,
        "departement": profile.departement,
        "region": profile.region,
        "naf": profile.naf,
        "state": passport.status,
        "modules_completed": list(passport.modules_completed),
        "passport_issued_at": None if issued_at is None else from_millis(issued_at),
        "consent_share_with_resellers": profile.consent,
        "offer_requests": passport.offer_requests,
        "leads_requested": passport.leads_requested,
        "input_offsets": dict(input_offsets),
    }


def lead_requested(lead: Lead) -> dict[str, Any]:
    """The ``LeadRequested`` datum of a lead."""
    return {
        "event_id": lead.event_id,
        "occurred_at": from_millis(lead.occurred_at),
        "source": SOURCE,
        "schema_version": 1,
        "lead_id": lead.lead_id,
        "siren": lead.siren,
        "name": lead.name,
        "departement": lead.departement,
        "region": lead.region,
        "category": lead.category,
        "naf": lead.naf,
        "contact_email": lead.contact_email,
    }
