"""One valid JSON example of every partner event, keyed by its ``type`` (docs, OpenAPI, tests).

Plain data, so that the API can hand them to its OpenAPI document as they are;
a test checks that each one validates and survives the trip through Avro.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["EXAMPLES"]

_AT = "2009-03-12T10:15:00+01:00"


def _envelope(event_id: str, source: str) -> dict[str, Any]:
    return {"event_id": event_id, "occurred_at": _AT, "source": source}


_EXAMPLES: dict[str, dict[str, Any]] = {
    "business_enrolled": {
        "type": "business_enrolled",
        **_envelope("6f1c2b8e-4a9d-4e1b-9c3f-2d7a5e8b1c40", "cefac-78"),
        "siren": "732829320", "siret": "73282932000074", "name": "Boulangerie Martin",
        "departement": "78", "naf": "10.71C", "employees": 3,
        "contact_email": "contact@boulangerie-martin.fr", "contact_phone": "+33139123456",
        "contact_name": "Jeanne Martin", "advisor_id": "adv-0042", "delegation": "cefac-78",
        "consent_share_with_resellers": True, "broadband": True, "ecommerce": False,
    },
    "module_completed": {
        "type": "module_completed",
        **_envelope("0b6d7f0e-2f41-4c55-8d1e-5a9b3c7e2f10", "google-trainers"),
        "siren": "732829320", "module_id": "website-create", "trainer_org": "Google",
    },
    "training_session_attended": {
        "type": "training_session_attended",
        **_envelope("3e5f7a91-6b2c-4d8e-a1f3-9c0b2d4e6f81", "google-trainers"),
        "siren": "732829320", "session_id": "versailles-2009-03-12-am",
        "module_id": "website-create", "trainer_org": "Google", "attended": True,
    },
    "training_feedback": {
        "type": "training_feedback",
        **_envelope("8a2c4e6f-1b3d-4f5a-9c7e-0d2f4a6b8c13", "cefac-78"),
        "siren": "732829320", "module_id": "website-create", "trainer_org": "Google",
        "delegation": "cefac-78", "score": 5,
        "comment": "Très concret : notre site sera en ligne avant Pâques.",
    },
    "offer_requested": {
        "type": "offer_requested",
        **_envelope("5c7e9a1b-3d5f-4b7d-8e0a-2c4e6a8b0d25", "cefac-78"),
        "siren": "732829320", "category": "e-commerce",
    },
    "consent_withdrawn": {
        "type": "consent_withdrawn",
        **_envelope("9d1f3b5c-7e9a-4c1e-b3d5-7f9a1c3e5b47", "cefac-78"),
        "siren": "732829320", "reason": "Ne souhaite plus être contactée par des revendeurs.",
    },
    "erasure_requested": {
        "type": "erasure_requested",
        **_envelope("2f4a6c8e-0b2d-4e6f-8a1c-3e5b7d9f1a69", "cefac-78"),
        "siren": "732829320", "requested_by": "adv-0042",
    },
    "reseller_profile": {
        "type": "reseller_profile",
        **_envelope("4b6d8f0a-2c4e-4a8c-9e1b-5d7f9b1d3f8b", "microsoft-partners"),
        "reseller_id": "infogerance-78", "name": "Infogérance 78",
        "departements": ["78", "92", "95"], "categories": ["website-hosting", "e-commerce"],
        "capacity": 25, "weight": 3, "status": "active", "delivery": "webhook",
        "webhook_url": "https://crm.infogerance-78.fr/hooks/passeport",
        "contact_email": "leads@infogerance-78.fr",
        "absences": [{"start": "2026-12-21", "end": "2027-01-02"}],
    },
    "lead_answered": {
        "type": "lead_answered",
        **_envelope("7e9b1d3f-5a7c-4e9b-a2d4-6f8b0d2f4a9d", "infogerance-78"),
        "lead_id": "3b0e6f52-8d6c-5f1e-9a47-0c1d2e3f4a5b", "reseller_id": "infogerance-78",
        "answer": "rejected", "reason": "timeline_too_short",
    },
}

#: A valid JSON example of each partner event type. Read-only mapping; copy an example to edit it.
EXAMPLES: Mapping[str, dict[str, Any]] = MappingProxyType(_EXAMPLES)
