"""The passport's result does not depend on arrival order; its snapshot is its whole state.

Property tests over random histories of one business: every permutation of the
same events (with duplicates) gives the same passport and the same lead ids as
the events in time order. Consent changes and erasure are left out of the
permutations on purpose: they act from when they are applied (rules.py says why).
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import Codec
from services.passport import events, outputs, persist, rules
from services.passport.rules import Passport
from tests.unit.test_passport_lifecycle import attended, erasure, feedback, withdrawn
from tests.unit.test_passport_rules import SIREN, Item, enrolled, module, ms, offer, run

MODULE_IDS = ("website-create", "website-traffic", "website-performance", "email-pro",
              "collaborative-work")


@st.composite
def histories(draw: st.DrawFn) -> list[Item]:
    consent = draw(st.booleans())
    minute = st.integers(min_value=0, max_value=200)
    items: list[Item] = [enrolled(draw(minute), consent=consent,
                                  name=f"Name {i}") for i in range(draw(st.integers(1, 2)))]
    for _ in range(draw(st.integers(0, 6))):
        items.append(module(draw(st.sampled_from(MODULE_IDS)), draw(minute)))
    for _ in range(draw(st.integers(0, 3))):
        items.append(offer(draw(minute), category=draw(st.sampled_from(
            ["e-commerce", "website-hosting"]))))
    for _ in range(draw(st.integers(0, 2))):
        items.append(attended(draw(st.sampled_from(MODULE_IDS)), draw(minute)))
        items.append(feedback(draw(st.sampled_from(MODULE_IDS)), draw(minute),
                              draw(st.integers(1, 5))))
    duplicates = draw(st.lists(st.sampled_from(items), max_size=3))
    return items + duplicates


def _in_time_order(items: list[Item]) -> list[Item]:
    return sorted(items, key=lambda item: (item[1]["occurred_at"], item[1]["event_id"]))


def _result(items: list[Item]) -> tuple[dict[str, Any], set[str]]:
    passport, leads = run(*items)
    return persist.dump(passport), {lead.lead_id for lead in leads}


@settings(max_examples=300, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_passport_and_leads_of_time_order(
        items: list[Item], shuffler: random.Random) -> None:
    expected = _result(_in_time_order(items))
    shuffled = list(items)
    shuffler.shuffle(shuffled)
    assert _result(shuffled) == expected


@settings(max_examples=200, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_a_lead_is_never_requested_twice_for_one_offer(items: list[Item],
                                                        shuffler: random.Random) -> None:
    shuffled = list(items)
    shuffler.shuffle(shuffled)
    _, leads = run(*shuffled)
    assert len({lead.lead_id for lead in leads}) == len(leads)


@settings(max_examples=200, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_the_snapshot_restores_the_very_state_it_was_made_from(
        items: list[Item], shuffler: random.Random) -> None:
    shuffled = list(items)
    shuffler.shuffle(shuffled)
    passport, _ = run(*shuffled[: len(shuffled) // 2])  # parked events included, sometimes
    if passport.last_event_at is None:
        return
    codec = Codec.default()
    datum = outputs.snapshot(passport, event_id=outputs.snapshot_id(SIREN, "t/0/1"),
                             input_offsets={"pn.training.v1/0": 9},
                             replay_from={"pn.training.v1/0": 7})
    value = codec.encode("PassportSnapshot", datum)
    decoded = codec.decode(value).datum
    assert persist.dump(outputs.restore(decoded)) == persist.dump(passport)
    # The restore's shortcut: the stored value straight from the datum (times as the
    # restore reads them, epoch ms, or as datetimes), and the oldest parked event's time.
    oldest = min((p.occurred_at for p in passport.parked), default=None)
    assert outputs.stored(decoded) == (persist.dump(passport), oldest)
    assert outputs.stored(codec.decode(value, millis=True).datum) == (persist.dump(passport),
                                                                      oldest)


def test_an_offer_that_arrives_before_the_training_reports_gets_its_lead() -> None:
    # Asked at minute 40, after the third module (30); the reports arrive after the offer.
    passport, leads = run(enrolled(), offer(40), module("website-create", 10),
                          module("website-traffic", 20))
    assert leads == []
    assert passport.offers[0].decision == "no_passport"
    passport, leads = run(module("email-pro", 30), passport=passport)
    assert [lead.category for lead in leads] == ["e-commerce"]
    assert passport.offers[0].decision == "lead_requested"
    assert passport.offers[0].lead_id == leads[0].lead_id


def test_an_offer_made_before_the_passport_was_issued_stays_refused() -> None:
    passport, leads = run(enrolled(), offer(25), module("website-create", 10),
                          module("website-traffic", 20), module("email-pro", 30))
    assert leads == []
    assert passport.offers[0].decision == "no_passport"


def test_a_late_withdrawal_keeps_the_lead_already_requested_and_stops_the_next() -> None:
    passport, leads = run(enrolled(), module("website-create", 10), module("website-traffic", 20),
                          module("email-pro", 30), offer(40), withdrawn(35), offer(50))
    assert len(leads) == 1
    assert [o.decision for o in passport.offers] == ["lead_requested", "no_consent"]


def test_no_lead_after_an_erasure_even_for_an_older_offer_arriving_late() -> None:
    passport, leads = run(enrolled(), module("website-create", 10), module("website-traffic", 20),
                          module("email-pro", 30), erasure(60), offer(40))
    assert leads == []
    assert passport.offers[0].decision == "no_consent"
    assert passport.profile is not None
    assert passport.profile.contact_email is None


def test_expire_takes_out_only_the_events_parked_before_the_bound() -> None:
    passport, _ = run(module("website-create", 10), offer(50))
    kept, gone = rules.expire(passport, older_than=ms(30))
    assert [p.record for p in gone] == ["ModuleCompleted"]
    assert [p.record for p in kept.parked] == ["OfferRequested"]
    # Redriven from the dead letters once the enrolment is in, it counts.
    record, datum = module("website-create", 10, event_id=gone[0].event_id)
    enrolled_now, _ = run(enrolled(60), passport=kept)
    again = rules.apply(enrolled_now, events.parse(record, datum), datum).passport
    assert again.modules == {"website-create": ms(10)}


def test_expire_with_nothing_old_changes_nothing() -> None:
    passport, _ = run(module("website-create", 10))
    assert rules.expire(passport, older_than=ms(5)) == (passport, ())
    assert rules.expire(Passport(SIREN), older_than=ms(5)) == (Passport(SIREN), ())
