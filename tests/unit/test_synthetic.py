"""The synthetic source: valid events, honest expectations, the same traffic for the same seed."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from connectors.synthetic.generator import PASSPORT_MODULES, Synthetic
from connectors.synthetic.holdback import Holdback
from connectors.synthetic.identities import siren
from schemas.codec import Codec
from schemas.identifiers import is_valid_siren
from schemas.models import (
    EVENT_ADAPTER,
    BusinessEnrolled,
    EventModel,
    ModuleCompleted,
    OfferRequested,
    ResellerProfile,
)
from schemas.reference import DEPARTEMENTS

NOW = datetime(2009, 3, 31, 12, 0, tzinfo=UTC)


def _generate(seed: int, businesses: int) -> tuple[Synthetic, list[EventModel]]:
    source = Synthetic(seed=seed, clock=lambda: NOW)
    return source, list(source.events(businesses))


def test_sirens_pass_luhn() -> None:
    rng = random.Random(7)
    assert all(is_valid_siren(siren(rng)) for _ in range(2000))


def test_every_event_validates_and_encodes() -> None:
    _, events = _generate(seed=1, businesses=300)
    codec = Codec.default()
    for event in events:
        again = EVENT_ADAPTER.validate_json(event.model_dump_json())
        assert again == event
        decoded = codec.decode(codec.encode(event.RECORD, event.to_avro()))
        assert decoded.record == event.RECORD
        assert event.occurred_at <= NOW
        if isinstance(event, BusinessEnrolled):
            assert is_valid_siren(event.siren)
            assert event.departement in DEPARTEMENTS
        if isinstance(event, ResellerProfile):
            assert set(event.departements) <= set(DEPARTEMENTS)


def test_resellers_come_first_and_are_mostly_active() -> None:
    _, events = _generate(seed=2, businesses=50)
    resellers = [e for e in events if isinstance(e, ResellerProfile)]
    assert len(resellers) == 60
    assert events[:60] == resellers
    assert len({r.reseller_id for r in resellers}) == 60
    assert sum(r.status == "active" for r in resellers) >= 45
    assert any(len(r.departements) > 3 for r in resellers), "some régional coverage"


def test_expectations_match_a_recount_of_the_events() -> None:
    source, events = _generate(seed=3, businesses=500)
    enrolled: dict[str, BusinessEnrolled] = {}
    modules: defaultdict[str, set[str]] = defaultdict(set)
    offers: defaultdict[str, int] = defaultdict(int)
    for event in events:
        if isinstance(event, BusinessEnrolled):
            enrolled[event.siren] = event
        elif isinstance(event, ModuleCompleted):
            modules[event.siren].add(event.module_id)
        elif isinstance(event, OfferRequested):
            offers[event.siren] += 1
    passports = {s for s, done in modules.items() if len(done) >= PASSPORT_MODULES}
    consenting = {s for s, e in enrolled.items() if e.consent_share_with_resellers}
    leads = sum(n for s, n in offers.items() if s in passports & consenting)
    assert source.expected.result() == {
        "businesses": 500, "expected_passports": len(passports), "expected_leads": leads,
        "events": len(events)}
    assert len(enrolled) == 500, "each business has its own SIREN"
    # Plausible proportions, wide enough not to depend on the seed.
    assert 0.3 < len(passports) / 500 < 0.8
    assert 0.05 < leads / 500 < 0.35
    assert 0.7 < sum(e.consent_share_with_resellers for e in enrolled.values()) / 500 < 0.9


def test_some_trainers_report_before_the_enrolment() -> None:
    _, events = _generate(seed=4, businesses=300)
    seen_enrolment: set[str] = set()
    early = 0
    for event in events:
        if isinstance(event, BusinessEnrolled):
            seen_enrolment.add(event.siren)
        elif isinstance(event, ModuleCompleted) and event.siren not in seen_enrolment:
            early += 1
        elif isinstance(event, OfferRequested):
            assert event.siren in seen_enrolment, "an offer comes after its enrolment"
    assert early > 0


def test_some_modules_are_repeated() -> None:
    _, events = _generate(seed=5, businesses=300)
    pairs = [(e.siren, e.module_id) for e in events if isinstance(e, ModuleCompleted)]
    assert len(pairs) > len(set(pairs))


@pytest.mark.parametrize("seed", [0, 42])
def test_same_seed_same_traffic(seed: int) -> None:
    first, a = _generate(seed=seed, businesses=100)
    second, b = _generate(seed=seed, businesses=100)
    assert a == b
    assert first.expected == second.expected
    _, c = _generate(seed=seed + 1, businesses=100)
    assert a != c


def test_units_are_whole_and_counted_as_they_are_handed_out() -> None:
    source = Synthetic(seed=6, clock=lambda: NOW)
    units = source.units(None)
    resellers = next(units)
    assert all(isinstance(e, ResellerProfile) for e in resellers)
    handed = len(resellers)
    for _ in range(25):
        unit = next(units)
        handed += len(unit)
        assert len({e.siren for e in unit if not isinstance(e, ResellerProfile)}) == 1
        assert source.expected.events == handed
    assert source.expected.businesses == 25


def test_holdback_delays_offer_requests_only() -> None:
    now = [100.0]
    holdback = Holdback(3.0, lambda: now[0])
    _, events = _generate(seed=8, businesses=200)
    offers = [e for e in events if isinstance(e, OfferRequested)]
    assert offers
    first = holdback.admit(events)
    assert first == [e for e in events if not isinstance(e, OfferRequested)]
    assert holdback.next_due_in() == 3.0
    now[0] += 2.5
    assert holdback.due() == []
    now[0] += 0.5
    assert holdback.admit([]) == offers
    assert holdback.next_due_in() is None
    holdback.admit(offers)
    assert holdback.release() == offers
    assert Holdback(0.0, lambda: now[0]).admit(events) == events
