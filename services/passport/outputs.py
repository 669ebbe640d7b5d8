"""The records the passport emits, as Avro datums: passport snapshots and lead requests.

A snapshot carries the whole state, and ``restore`` reads it back: the compacted
passport topic is what a new owner of a partition rebuilds its state from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from hub.ids import derive
from services.passport import persist
from services.passport.events import millis
from services.passport.rules import Lead, Offer, Parked, Passport, Profile, Score, Withdrawal

SOURCE = "passport"


def snapshot_id(siren: str, where: str, passport: Passport | None = None) -> str:
    """A snapshot's event id: the business, the last input it reflects and (the service
    always gives it) a digest of the state itself.

    The last input alone does not name one state: the passport reads three topics, and a
    replay after a restore can interleave them otherwise than the first pass did. An
    input already applied then came last in a batch after a new one, and the new state
    went out under the id of an older snapshot, which every reader drops as a repeat: the
    long crash campaign saw a read model keep a passport short of a feedback that the
    topic's last snapshot held. With the digest, one id is one state."""
    if passport is None:
        return derive(f"{siren}@{where}", "snapshot")
    state = orjson.dumps(persist.dump(passport), option=orjson.OPT_SORT_KEYS)
    return derive(f"{siren}@{where}#{hashlib.blake2b(state, digest_size=8).hexdigest()}",
                  "snapshot")


def snapshot(passport: Passport, *, event_id: str, input_offsets: Mapping[str, int],
             replay_from: Mapping[str, int]) -> dict[str, Any]:
    """The ``PassportSnapshot`` datum of a passport: its whole state (see ``restore``).

    A business known only by parked events gets one too (state
    ``awaiting_enrolment``, empty name and place), so a takeover keeps them.
    Times are epoch milliseconds, which the codec writes as ``timestamp-millis``
    with the same bytes as the datetimes a reader gets back, at a fraction of
    the cost of building those datetimes here.
    """
    profile = passport.profile
    if passport.last_event_at is None:
        raise ValueError(f"passport {passport.siren} has seen no event: no snapshot")
    issued_at = passport.issued_at
    return {
        "event_id": event_id,
        # The latest event time the passport reflects: no clock is read here.
        "occurred_at": passport.last_event_at,
        "source": SOURCE,
        "siren": passport.siren,
        "name": "" if profile is None else profile.name,
        "departement": "" if profile is None else profile.departement,
        "region": "" if profile is None else profile.region,
        "naf": None if profile is None else profile.naf,
        "state": passport.status,
        "modules_completed": list(passport.modules_completed),
        "passport_issued_at": issued_at,
        "consent_share_with_resellers": passport.consents,
        "offer_requests": passport.offer_requests,
        "leads_requested": passport.leads_requested,
        "input_offsets": dict(input_offsets),
        "replay_from": dict(replay_from),
        "contact_email": None if profile is None else profile.contact_email,
        "enrolled_at": None if profile is None else profile.as_of,
        "enrolment_id": None if profile is None else profile.enrolment_id,
        "consent_withdrawn": passport.consent_withdrawn,
        "erased": passport.erased,
        "modules": [{"module_id": module, "completed_at": at}
                    for module, at in sorted(passport.modules.items())],
        "offers": [{"event_id": o.event_id, "occurred_at": o.occurred_at,
                    "category": o.category, "outcome": o.decision, "lead_id": o.lead_id}
                   for o in passport.offers],
        "feedback": [{"event_id": f.event_id, "module_id": f.module_id,
                      "trainer_org": f.trainer_org, "delegation": f.delegation,
                      "score": f.score} for f in passport.feedback],
        "applied_event_ids": sorted(passport.applied),
        # orjson: a backlog read training-first parks nearly every training event,
        # and each snapshot carries them all again (json.dumps was ~5% of the service).
        "parked": [{"record": p.record,
                    "datum_json": orjson.dumps(dict(p.datum), option=orjson.OPT_SORT_KEYS).decode()}
                   for p in passport.parked],
    }


def restore(datum: Mapping[str, Any]) -> Passport:
    """The passport state a ``PassportSnapshot`` datum (v2) carries: ``snapshot``'s inverse."""
    enrolled_at = datum["enrolled_at"]
    profile = None if enrolled_at is None or datum["state"] == "awaiting_enrolment" else Profile(
        name=datum["name"],
        departement=datum["departement"],
        region=datum["region"],
        naf=datum["naf"],
        contact_email=datum["contact_email"],
        # The snapshot's flag is the consent net of withdrawal; the profile keeps the
        # enrolment's own, which only matters while neither flag below is set.
        consent=bool(datum["consent_share_with_resellers"]),
        as_of=millis(enrolled_at),
        enrolment_id=datum["enrolment_id"] or "",
    )
    return Passport(
        siren=datum["siren"],
        profile=profile,
        modules={m["module_id"]: millis(m["completed_at"]) for m in datum["modules"]},
        offers=tuple(Offer(o["event_id"], millis(o["occurred_at"]), o["category"],
                           o["outcome"], o["lead_id"]) for o in datum["offers"]),
        feedback=tuple(Score(f["event_id"], f["module_id"], f["trainer_org"], f["delegation"],
                             f["score"]) for f in datum["feedback"]),
        applied=frozenset(datum["applied_event_ids"]),
        parked=tuple(Parked(p["record"], orjson.loads(p["datum_json"])) for p in datum["parked"]),
        last_event_at=millis(datum["occurred_at"]),
        consent_withdrawn=bool(datum["consent_withdrawn"]),
        erased=bool(datum["erased"]),
    )


def stored(datum: Mapping[str, Any]) -> tuple[dict[str, Any], int | None]:
    """``persist.dump(restore(datum))`` built straight from the datum, and the time of its
    oldest parked event (None if none is parked).

    A restore writes a million of these: going through the ``Passport`` (a frozenset,
    a tuple of values per list, then a dict of each again) was most of its cost.
    tests/unit/test_passport_order.py holds the two equal on arbitrary passports."""
    enrolled_at = datum["enrolled_at"]
    parked = [{"record": p["record"], "datum": orjson.loads(p["datum_json"])}
              for p in datum["parked"]]
    return {
        "siren": datum["siren"],
        "profile": None if enrolled_at is None or datum["state"] == "awaiting_enrolment" else {
            "name": datum["name"],
            "departement": datum["departement"],
            "region": datum["region"],
            "naf": datum["naf"],
            "contact_email": datum["contact_email"],
            "consent": bool(datum["consent_share_with_resellers"]),
            "as_of": millis(enrolled_at),
            "enrolment_id": datum["enrolment_id"] or "",
        },
        "modules": dict(sorted({m["module_id"]: millis(m["completed_at"])
                                for m in datum["modules"]}.items())),
        "offers": [[o["event_id"], millis(o["occurred_at"]), o["category"], o["outcome"],
                    o["lead_id"]] for o in datum["offers"]],
        "feedback": [[f["event_id"], f["module_id"], f["trainer_org"], f["delegation"],
                      f["score"]] for f in datum["feedback"]],
        "applied": sorted(set(datum["applied_event_ids"])),
        "parked": parked,
        "last_event_at": millis(datum["occurred_at"]),
        "consent_withdrawn": bool(datum["consent_withdrawn"]),
        "erased": bool(datum["erased"]),
    }, min((int(p["datum"]["occurred_at"]) for p in parked), default=None)


def lead_requested(lead: Lead) -> dict[str, Any]:
    """The ``LeadRequested`` datum of a lead (times as epoch milliseconds, as ``snapshot``)."""
    return {
        "event_id": lead.event_id,
        "occurred_at": lead.occurred_at,
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


def lead_withdrawn(gone: Withdrawal) -> dict[str, Any]:
    """The ``LeadWithdrawn`` datum of a withdrawal: routing cancels the lead for good."""
    return {
        "event_id": gone.event_id,
        "occurred_at": gone.occurred_at,
        "source": SOURCE,
        "schema_version": 1,
        "lead_id": gone.lead_id,
        "siren": gone.siren,
        "reason": gone.reason,
    }
