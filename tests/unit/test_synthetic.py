"""The synthetic source: valid events, honest expectations, the same traffic for the same seed."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime

import pytest

from connectors.synthetic import crm
from connectors.synthetic.generator import PASSPORT_MODULES, Synthetic
from connectors.synthetic.holdback import Holdback
from connectors.synthetic.identities import siren
from connectors.synthetic.resellers import DEFAULT_RESELLERS, WALKTHROUGH
from schemas.codec import Codec
from schemas.identifiers import is_valid_siren
from schemas.models import (
    EVENT_ADAPTER,
    REJECT_REASONS,
    BusinessEnrolled,
    EventModel,
    ModuleCompleted,
    OfferRequested,
    ResellerProfile,
)
from schemas.reference import CATEGORIES, DEPARTEMENTS, departements_of, region_of

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


def _resellers(seed: int, count: int = DEFAULT_RESELLERS) -> list[ResellerProfile]:
    source = Synthetic(seed=seed, clock=lambda: NOW, resellers=count)
    return [e for e in source.resellers() if isinstance(e, ResellerProfile)]


def test_resellers_come_first_and_are_mostly_active() -> None:
    _, events = _generate(seed=2, businesses=50)
    resellers = [e for e in events if isinstance(e, ResellerProfile)]
    assert len(resellers) == DEFAULT_RESELLERS == 650
    assert events[:650] == resellers
    assert len({r.reseller_id for r in resellers}) == 650
    statuses = Counter(r.status for r in resellers)
    assert statuses["active"] >= 580
    assert 0 < statuses["paused"] + statuses["retired"] <= 70, "a few paused or retired"


@pytest.mark.parametrize("seed", [2, 11])
def test_the_network_covers_every_departement_and_nearly_every_category(seed: int) -> None:
    resellers = _resellers(seed)
    active = [r for r in resellers if r.status == "active"]
    # Every département but the README walk-through's, which the network leaves alone.
    served = set(DEPARTEMENTS) - {WALKTHROUGH}
    assert {d for r in active for d in r.departements} == served
    pairs = {(d, c) for r in active for d in r.departements for c in r.categories}
    assert len(pairs) >= 0.95 * len(served) * len(CATEGORIES)
    assert {c for r in resellers for c in r.categories} == set(CATEGORIES)
    national = [r for r in resellers if len(r.departements) == len(served)]
    regional = [r for r in resellers if 1 < len(r.departements) < len(served)
                and set(r.departements) == set(departements_of(region_of(r.departements[0])))
                - {WALKTHROUGH}]
    assert 1 <= len(national) <= 20, "a few national resellers"
    assert len(regional) >= 30, "some cover a whole région"


def test_weights_and_capacities_are_uneven() -> None:
    resellers = _resellers(3)
    weights = Counter(r.weight for r in resellers)
    assert set(weights) == {1, 2, 3, 4, 5}
    assert weights[1] > weights[2] > weights[3] > weights[5], "skewed to small partners"
    capacities = [r.capacity for r in resellers]
    assert min(capacities) >= 3
    assert max(capacities) <= 40
    assert len(set(capacities)) >= 20
    assert sorted(capacities)[len(capacities) // 2] < 20, "most are small"


def test_a_few_resellers_are_away_around_today() -> None:
    resellers = _resellers(4)
    away = [r for r in resellers if r.absences]
    assert 5 <= len(away) <= 80
    today = NOW.date()
    for reseller in away:
        (absence,) = reseller.absences
        start, end = date.fromisoformat(absence["start"]), date.fromisoformat(absence["end"])
        assert start <= end
        assert abs((start - today).days) <= 3
    assert any(date.fromisoformat(r.absences[0]["start"]) <= today
               <= date.fromisoformat(r.absences[0]["end"]) for r in away), "some away today"


def test_the_network_is_the_same_for_the_same_seed() -> None:
    assert _resellers(5) == _resellers(5)
    assert _resellers(5) != _resellers(6)
    assert [r.reseller_id for r in _resellers(5, count=30)] == \
        [r.reseller_id for r in _resellers(5)[:30]]


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


# -- the synthetic CRM ----------------------------------------------------------------------

QUEUE = "cefac-national"


def _change(lead_id: str, version: int, status: str = "assigned",
            holder: str | None = "web-78-001") -> dict[str, object]:
    return {"lead_id": lead_id, "version": version, "status": status, "reseller_id": holder,
            "change": "assigned" if version == 1 else "reassigned"}


def test_crm_decisions_are_seeded_and_in_the_programme_s_proportions() -> None:
    replies = [crm.decide(9, _change(f"lead-{i}", 1), national_queue=QUEUE) for i in range(4000)]
    again = [crm.decide(9, _change(f"lead-{i}", 1), national_queue=QUEUE) for i in range(4000)]
    assert replies == again
    other_seed = [crm.decide(10, _change(f"lead-{i}", 1), national_queue=QUEUE)
                  for i in range(4000)]
    assert replies != other_seed
    answers = Counter(r.answer if r else "silent" for r in replies)
    assert 0.50 < answers["accepted"] / 4000 < 0.60
    assert 0.16 < answers["rejected"] / 4000 < 0.24
    assert 0.21 < answers["silent"] / 4000 < 0.29
    assert set(answers) == {"accepted", "rejected", "silent"}
    for reply in filter(None, replies):
        assert reply.reseller_id == "web-78-001"
        assert reply.version == 1
        assert crm.ANSWER_DELAY_S[0] <= reply.delay_s <= crm.ANSWER_DELAY_S[1]
        assert (reply.reason is not None) == (reply.answer == "rejected")
    reasons = {r.reason for r in replies if r and r.reason}
    assert reasons == set(REJECT_REASONS)


def test_crm_answers_a_new_holder_and_an_accepted_lead_only() -> None:
    accepted = [crm.decide(1, _change(f"l{i}", 2, "accepted"), national_queue=QUEUE)
                for i in range(1000)]
    outcomes = Counter(r.answer if r else "open" for r in accepted)
    assert set(outcomes) == {"won", "lost", "open"}
    assert all(crm.OUTCOME_DELAY_S[0] <= r.delay_s <= crm.OUTCOME_DELAY_S[1]
               for r in filter(None, accepted))
    for status in ("queued", "won", "lost", "rejected", "expired", "withdrawn", "duplicate"):
        assert all(crm.decide(1, _change(f"l{i}", 3, status), national_queue=QUEUE) is None
                   for i in range(200)), status
    never = [crm.decide(1, _change(f"l{i}", 1, "assigned", QUEUE), national_queue=QUEUE)
             for i in range(200)]
    assert never == [None] * 200, "the national queue is CEFAC's, not a reseller's CRM"
    assert crm.decide(1, _change("l", 1, holder=None), national_queue=QUEUE) is None


def test_crm_sends_an_answer_after_its_delay_only_if_the_lead_did_not_move_on() -> None:
    now = [0.0]
    machine = crm.Crm(seed=9, national_queue=QUEUE, clock=lambda: now[0])
    ids = [f"lead-{i}" for i in range(40)]
    scheduled = {i: machine.observe(_change(i, 1)) for i in ids}
    assert machine.observe(_change(ids[0], 1)) is None, "a change read twice counts once"
    answering = [i for i, reply in scheduled.items() if reply is not None]
    assert answering
    moved = answering[0]  # the router reassigned it meanwhile (an expiry, say)
    second = machine.observe(_change(moved, 2, holder="other-92-002"))
    assert machine.due() == []
    now[0] = crm.ANSWER_DELAY_S[1] + 0.1
    due = machine.due()
    assert sorted((r.lead_id, r.version) for r in due) == sorted(
        [(i, 1) for i in answering if i != moved] + ([(moved, 2)] if second else []))
    assert machine.due() == []
    assert machine.next_due_in() is None
    machine.retry(due[0])
    now[0] += 1.0
    assert machine.due() == []
    now[0] += 1.5
    assert machine.due() == [due[0]]
    first = due[0]
    answered = crm.event(first, NOW)
    assert answered.reseller_id == first.reseller_id == answered.source
    assert answered.answer == first.answer
    assert answered == crm.event(first, NOW), "sent twice, it is the same event"
    assert answered.event_id != crm.event(crm.Reply(first.lead_id, first.reseller_id, 2,
                                                    first.answer, first.reason, 1.0),
                                          NOW).event_id
