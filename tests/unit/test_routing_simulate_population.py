"""The synthetic year: seeded, covering every département and category, in business hours."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from schemas.reference import CATEGORIES, DEPARTEMENTS, REGIONS, region_of
from services.routing.simulate.answers import AnswerModel
from services.routing.simulate.population import POPULATION, Programme, synthetic_year
from services.routing.sla import PARIS

SMALL = Programme(businesses=3_000, resellers=650, seed=7)


def test_the_same_seed_gives_the_same_year_and_another_seed_another() -> None:
    first, again = synthetic_year(SMALL), synthetic_year(SMALL)
    other = synthetic_year(Programme(businesses=3_000, seed=8))
    assert first.requests == again.requests
    assert first.resellers == again.resellers
    assert first.requests != other.requests
    assert first.resellers != other.resellers


def test_sizes_follow_the_programme() -> None:
    year = synthetic_year(SMALL)
    assert len(year.resellers) == 650
    assert len(year.requests) == 1_000  # a third of the businesses
    assert len({r.lead_id for r in year.requests}) == 1_000
    assert [r.requested_at for r in year.requests] == sorted(r.requested_at
                                                             for r in year.requests)


def test_every_departement_is_covered_and_every_region_sells_every_category() -> None:
    resellers = synthetic_year(SMALL).resellers
    assert set(POPULATION) == set(DEPARTEMENTS)
    assert {d for r in resellers for d in r.departements} == set(DEPARTEMENTS)
    for region in REGIONS:
        sold = {c for r in resellers if any(region_of(d) == region for d in r.departements)
                for c in r.categories}
        assert sold == set(CATEGORIES), region
    weights = Counter(r.weight for r in resellers)
    assert set(weights) == {1, 2, 3, 4, 5}
    assert weights[1] > weights[5]  # uneven: mostly 1
    assert all(r.capacity >= 3 * r.weight for r in resellers)


def test_requests_come_in_business_hours_on_weekdays_mostly() -> None:
    requests = synthetic_year(SMALL).requests
    local = [datetime.fromtimestamp(r.requested_at / 1000, UTC).astimezone(PARIS)
             for r in requests]
    assert all(8 <= t.hour <= 18 for t in local)
    assert all(t.year == 2027 for t in local)
    weekdays = sum(1 for t in local if t.weekday() < 5)
    assert weekdays / len(local) > 0.9
    paris = sum(1 for r in requests if r.departement == "75")
    lozere = sum(1 for r in requests if r.departement == "48")
    assert paris > lozere  # by population


def test_the_answer_model_replies_the_same_to_the_same_pair() -> None:
    model, again = AnswerModel(seed=1), AnswerModel(seed=1)
    replies = [model.reply(f"lead-{i}", "reseller-001") for i in range(300)]
    assert replies == [again.reply(f"lead-{i}", "reseller-001") for i in range(300)]
    kinds = Counter(r.answer for r in replies)
    assert set(kinds) == {"accepted", "rejected", None}
    assert all(r.reason is not None for r in replies if r.answer == "rejected")
    assert all(r.outcome in ("won", "lost") for r in replies if r.answer == "accepted")
    # Answers come within 2 business days (at least 48 hours).
    assert all(r.delay_ms < 48 * 3_600_000 for r in replies)
