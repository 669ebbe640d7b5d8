"""The rules copy a passport field by field on their hot path: no field may be lost there."""

from __future__ import annotations

import dataclasses

from services.passport import events, rules
from services.passport.rules import Offer, Parked, Passport, Profile, Score
from tests.unit.test_passport_rules import SIREN, ms


def _everything_set() -> Passport:
    """A passport whose every field differs from its default."""
    return Passport(
        siren=SIREN,
        profile=Profile("Boulangerie Martin", "78", "11", "47.11D", None, False, ms(0), "e0"),
        modules={"website-create": ms(10)},
        offers=(Offer("o1", ms(5), "e-commerce", "no_consent"),),
        feedback=(Score("f1", "website-create", "org", "78", 4),),
        applied=frozenset({"e0"}),
        parked=(Parked("ModuleCompleted", {"event_id": "p1", "occurred_at": ms(1)}),),
        last_event_at=ms(10),
        consent_withdrawn=True,
        erased=True,
    )


def test_applying_an_event_keeps_every_field_it_does_not_change() -> None:
    before = _everything_set()
    defaults = Passport(SIREN)
    assert all(getattr(before, f.name) != getattr(defaults, f.name)
               for f in dataclasses.fields(Passport) if f.name != "siren")
    attended = events.Attended("e9", ms(20), SIREN, "website-create")
    after = rules.apply(before, attended, {}).passport
    assert after.applied == before.applied | {"e9"}
    assert after.last_event_at == ms(20)
    assert dataclasses.replace(after, applied=before.applied,
                               last_event_at=before.last_event_at) == before
