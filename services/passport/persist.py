"""A passport as the JSON value the store keeps (times as epoch milliseconds)."""

from __future__ import annotations

from typing import Any

from services.passport.rules import Offer, Parked, Passport, Profile, Score


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
            "enrolment_id": profile.enrolment_id,
        },
        "modules": dict(sorted(passport.modules.items())),
        "offers": [[o.event_id, o.occurred_at, o.category, o.decision, o.lead_id]
                   for o in passport.offers],
        "feedback": [[f.event_id, f.module_id, f.trainer_org, f.delegation, f.score]
                     for f in passport.feedback],
        "applied": sorted(passport.applied),
        "parked": [{"record": p.record, "datum": dict(p.datum)} for p in passport.parked],
        "last_event_at": passport.last_event_at,
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
            enrolment_id=profile.get("enrolment_id", ""),
        ),
        modules={str(k): int(v) for k, v in value["modules"].items()},
        offers=tuple(Offer(*o) for o in value.get("offers", ())),
        feedback=tuple(Score(*f) for f in value.get("feedback", ())),
        applied=frozenset(value["applied"]),
        parked=tuple(Parked(p["record"], p["datum"]) for p in value["parked"]),
        last_event_at=value["last_event_at"],
        consent_withdrawn=bool(value.get("consent_withdrawn", False)),
        erased=bool(value.get("erased", False)),
    )
