"""A passport as the JSON value the store keeps (times as epoch milliseconds)."""

from __future__ import annotations

from typing import Any

from services.passport.rules import Parked, Passport, Profile


def dump(passport: Passport) -> dict[str, Any]:
    """The JSON value of a passport (lists sorted, so equal states store equal text)."""
    profile = passport.profile
    return {
        "siren": passport.siren,
        "profile": None if profile is None else {
            "name": profile.name,
            "departement": profile.departement,
            "region": profile.region,
            "naf": profile.naf,
            "contact_email": profile.contact_email,
            "consent": profile.consent,
            "as_of": profile.as_of,
        },
        "modules": dict(sorted(passport.modules.items())),
        "offer_requests": passport.offer_requests,
        "leads_requested": passport.leads_requested,
        "applied": sorted(passport.applied),
        "parked": [{"record": p.record, "datum": dict(p.datum)} for p in passport.parked],
        "last_event_at": passport.last_event_at,
        "last_ineligible_reason": passport.last_ineligible_reason,
        "consent_withdrawn": passport.consent_withdrawn,
        "erased": passport.erased,
    }


def load(value: dict[str, Any]) -> Passport:
    """The passport a JSON value stored by ``dump`` describes."""
    profile = value["profile"]
    return Passport(
        siren=value["siren"],
        profile=None if profile is None else Profile(
            name=profile["name"],
            departement=profile["departement"],
            region=profile["region"],
            naf=profile["naf"],
            contact_email=profile["contact_email"],
            consent=profile["consent"],
            as_of=profile["as_of"],
        ),
        modules={str(k): int(v) for k, v in value["modules"].items()},
        offer_requests=value["offer_requests"],
        leads_requested=value["leads_requested"],
        applied=frozenset(value["applied"]),
        parked=tuple(Parked(p["record"], p["datum"]) for p in value["parked"]),
        last_event_at=value["last_event_at"],
        last_ineligible_reason=value["last_ineligible_reason"],
        # .get: states stored before these flags existed read as "never happened".
        consent_withdrawn=bool(value.get("consent_withdrawn", False)),
        erased=bool(value.get("erased", False)),
    )
