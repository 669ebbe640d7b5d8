"""The campaign's plan and oracle: reproducible input, and expectations stated from the rules
of the programme, not from the hub's code (reliability/oracle.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

from reliability import oracle, plan
from reliability.plan import Plan, Post
from schemas.models import (
    BusinessEnrolled,
    ConsentWithdrawn,
    ErasureRequested,
    EventModel,
    ModuleCompleted,
    OfferRequested,
    TrainingFeedback,
)
from services.passport import events, rules
from services.passport.rules import Passport

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
_ids = iter(range(1, 10_000))


def _id() -> UUID:
    return UUID(int=next(_ids), version=4)


def enrol(siren: str, *, consent: bool = True) -> BusinessEnrolled:
    return BusinessEnrolled(event_id=_id(), occurred_at=NOW - timedelta(days=9), source="cefac-35",
                            siren=siren, name="Boulangerie Martin", departement="35",
                            contact_email="contact@example.fr",
                            consent_share_with_resellers=consent)


def done(siren: str, module: str, days_ago: float) -> ModuleCompleted:
    return ModuleCompleted(event_id=_id(), occurred_at=NOW - timedelta(days=days_ago),
                           source="trainer", siren=siren, module_id=module)


def ask(siren: str, category: str = "website-hosting", days_ago: float = 0) -> OfferRequested:
    return OfferRequested(event_id=_id(), occurred_at=NOW - timedelta(days=days_ago),
                          source="cefac-35", siren=siren, category=category)


def _plan(training: list[EventModel], offers: list[OfferRequested],
          privacy: Sequence[ConsentWithdrawn | ErasureRequested] = ()) -> Plan:
    return Plan(seed=1, now=NOW, profiles=(), webhooks=(), training=(Post("api", tuple(training)),),
                offers=tuple(offers), privacy=tuple(privacy))


# Valid SIRENs (Luhn).
A, B, C = "732829320", "552100554", "356000000"
MODULES = ("website-create", "website-traffic", "website-performance")


def test_a_passport_is_three_distinct_modules_issued_at_the_third_first_completion() -> None:
    completions = [done(A, MODULES[0], 5), done(A, MODULES[0], 6),  # a retake, reported first
                   done(A, MODULES[1], 4), done(A, MODULES[2], 2), done(A, MODULES[2], 1)]
    assert oracle.issued_at(completions) == NOW - timedelta(days=2)
    assert oracle.issued_at(completions[:3]) is None  # two distinct modules only


def test_offers_become_leads_only_with_a_passport_before_them_and_consent() -> None:
    training: list[EventModel] = [enrol(A), enrol(B), enrol(C, consent=False)]
    for siren in (A, C):
        training += [done(siren, m, 5 - i) for i, m in enumerate(MODULES)]
    training += [done(B, MODULES[0], 3), done(B, MODULES[1], 2)]
    early = ask(A, "security", days_ago=4)  # before A's third module
    offers = [ask(A), ask(B), ask(C), early]
    expected = oracle.expect(_plan(training, offers))
    outcome = {offer.event_id: expected.businesses[offer.siren].offers[str(offer.event_id)]
               for offer in offers}
    assert [outcome[o.event_id] for o in offers] == [
        "lead_requested", "no_passport", "no_consent", "no_passport"]
    assert set(expected.leads) == {str(offers[0].event_id)}
    assert expected.passports == 2
    assert {s: b.state for s, b in expected.businesses.items()} == {
        A: "passport_issued", B: "in_training", C: "passport_issued"}


def test_a_second_request_of_a_category_is_the_first_ones_duplicate() -> None:
    training: list[EventModel] = [enrol(A), *(done(A, m, 5 - i) for i, m in enumerate(MODULES))]
    first, again, other = ask(A), ask(A), ask(A, "security")
    expected = oracle.expect(_plan(training, [first, again, other]))
    assert [expected.leads[str(o.event_id)].duplicate for o in (first, again, other)] == [
        False, True, False]


def test_privacy_requests_close_the_leads_and_erasure_the_contact() -> None:
    training: list[EventModel] = [enrol(A), enrol(B)]
    for siren in (A, B):
        training += [done(siren, m, 5 - i) for i, m in enumerate(MODULES)]
    offers = [ask(A), ask(B)]
    privacy: list[ConsentWithdrawn | ErasureRequested] = [
        ConsentWithdrawn(event_id=_id(), occurred_at=NOW, source="cefac-35", siren=A),
        ErasureRequested(event_id=_id(), occurred_at=NOW, source="cefac-35", siren=B,
                         requested_by="the business")]
    expected = oracle.expect(_plan(training, offers, privacy))
    assert [expected.leads[str(o.event_id)].withdrawn for o in offers] == [
        "consent_withdrawn", "erased"]
    a, b = expected.businesses[A], expected.businesses[B]
    assert (a.consent, a.consent_withdrawn, a.erased) == (False, True, False)
    assert (b.consent, b.consent_withdrawn, b.erased) == (False, True, True)
    # Offers were all in before the withdrawal: their leads were requested.
    assert a.offers[str(offers[0].event_id)] == "lead_requested"


def test_feedback_is_counted_per_business() -> None:
    rating = TrainingFeedback(event_id=_id(), occurred_at=NOW, source="trainer", siren=A,
                              module_id=MODULES[0], score=4)
    expected = oracle.expect(_plan([enrol(A), done(A, MODULES[0], 1), rating], []))
    assert expected.businesses[A].feedback == 1


def _plan_of(seed: int) -> Plan:
    return plan.make(seed=seed, businesses=60, resellers=110, now=NOW)


def test_a_seed_gives_the_same_plan_and_another_seed_another() -> None:
    first, again, other = _plan_of(3), _plan_of(3), _plan_of(4)
    ids = [str(e.event_id) for e in first.events()]
    assert ids == [str(e.event_id) for e in again.events()]
    assert first.webhooks == again.webhooks
    assert set(ids).isdisjoint(str(e.event_id) for e in other.events())


def test_a_plan_never_gives_two_events_one_id() -> None:
    """Regression: the plan's own draws once came from the generator's very stream (the same
    seed), so extra offers repeated the ids of the generator's events, and the API refused
    them with a 409."""
    made = _plan_of(5)
    sent = [*made.profiles, *(e for p in made.training for e in p.events), *made.offers,
            *made.privacy]
    by_id: dict[UUID, set[str]] = {}
    for event in sent:
        by_id.setdefault(event.event_id, set()).add(event.model_dump_json())
    assert all(len(bodies) == 1 for bodies in by_id.values())  # resent: same body, same id
    counts = made.counts()
    assert counts["sent twice"] == len(sent) - len(by_id)
    assert counts["sent twice"] > 0
    assert counts["dropped files"] > 0
    assert Counter(p.channel for p in made.training)["file"] == counts["dropped files"]


def test_the_plan_holds_every_case_the_oracle_knows() -> None:
    made = plan.make(seed=11, businesses=200, resellers=110, now=NOW)
    expected = oracle.expect(made)
    outcomes = Counter(o for b in expected.businesses.values() for o in b.offers.values())
    assert {"lead_requested", "no_passport", "no_consent"} <= set(outcomes)
    assert any(lead.duplicate for lead in expected.leads.values())
    assert {lead.withdrawn for lead in expected.leads.values()} >= {
        None, "consent_withdrawn", "erased"}


def test_the_oracle_and_the_passport_rules_agree_on_a_plan() -> None:
    """Two independent statements of the same programme: if either were wrong, the campaign
    would report failures that are not the hub's (or miss some that are)."""
    made = plan.make(seed=13, businesses=150, resellers=110, now=NOW)
    expected = oracle.expect(made)
    passports: dict[str, Passport] = {}
    leads: set[str] = set()
    for event in made.events():
        if event.RECORD == "ResellerProfile":
            continue
        datum = event.to_avro()
        parsed = events.parse(event.RECORD, datum)
        outcome = rules.apply(passports.get(parsed.siren) or Passport(parsed.siren), parsed,
                              datum)
        passports[parsed.siren] = outcome.passport
        leads.update(lead.event_id for lead in outcome.leads)
    for siren, want in expected.businesses.items():
        got = passports[siren]
        assert (got.status, set(got.modules), len(got.feedback), got.erased) == (
            want.state, set(want.modules), want.feedback, want.erased), siren
        assert {o.event_id: o.decision for o in got.offers} == want.offers, siren
    assert sum(p.leads_requested for p in passports.values()) == len(expected.leads)
