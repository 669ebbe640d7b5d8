"""The passport state machine, on plain data: modules, passports, offers, parking, duplicates."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.ids import derive
from services.passport import events, persist, rules
from services.passport.events import InvalidEventError
from services.passport.rules import Lead, Passport

SIREN = "732829320"
T0 = datetime(2009, 3, 2, 9, 0, tzinfo=UTC)
T0_MS = events.millis(T0)

Item = tuple[str, dict[str, Any]]


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ms(minutes: int) -> int:
    return T0_MS + minutes * 60_000


def _base(minutes: int, event_id: str | None) -> dict[str, Any]:
    return {"event_id": event_id or str(uuid.uuid4()), "occurred_at": at(minutes),
            "source": "test", "schema_version": 1, "siren": SIREN}


def enrolled(minutes: int = 0, *, consent: bool = True, name: str = "Boulangerie Martin",
             departement: str = "78", event_id: str | None = None) -> Item:
    return "BusinessEnrolled", {
        **_base(minutes, event_id), "name": name, "departement": departement,
        "naf": "10.71C", "employees": 3, "contact_email": "contact@boulangerie.example",
        "advisor_id": None, "delegation": "Yvelines", "consent_share_with_resellers": consent}


def module(module_id: str, minutes: int, *, event_id: str | None = None) -> Item:
    return "ModuleCompleted", {**_base(minutes, event_id), "module_id": module_id,
                               "trainer_org": None}


def offer(minutes: int, *, category: str = "e-commerce", event_id: str | None = None) -> Item:
    return "OfferRequested", {**_base(minutes, event_id), "category": category}


def run(*items: Item, passport: Passport | None = None) -> tuple[Passport, list[Lead]]:
    state = passport or Passport(SIREN)
    leads: list[Lead] = []
    for record, datum in items:
        outcome = rules.apply(state, events.parse(record, datum), datum)
        state = outcome.passport
        leads.extend(outcome.leads)
    return state, leads


THREE = (module("website-create", 10), module("website-traffic", 20),
         module("email-pro", 30))


# -- modules and the passport ------------------------------------------------------------------

def test_enrolment_alone_is_enrolled_with_the_region_of_its_departement() -> None:
    passport, leads = run(enrolled(departement="2A"))
    assert passport.status == "enrolled"
    assert passport.profile is not None
    assert passport.profile.region == "94"
    assert leads == []


def test_two_modules_give_no_passport() -> None:
    passport, _ = run(enrolled(), *THREE[:2])
    assert passport.status == "in_training"
    assert passport.issued_at is None
    assert passport.modules_completed == ("website-create", "website-traffic")


def test_three_distinct_modules_issue_the_passport_at_the_third() -> None:
    passport, _ = run(enrolled(), *THREE)
    assert passport.status == "passport_issued"
    assert passport.issued_at == ms(30)


def test_the_same_module_three_times_counts_once() -> None:
    passport, _ = run(enrolled(), module("email-pro", 1), module("email-pro", 2),
                      module("email-pro", 3))
    assert passport.status == "in_training"
    assert passport.issued_at is None
    assert passport.modules == {"email-pro": ms(1)}


def test_a_repeated_module_keeps_its_earliest_completion() -> None:
    passport, _ = run(enrolled(), module("website-create", 50), module("website-create", 5),
                      module("website-traffic", 10), module("email-pro", 20))
    assert passport.modules["website-create"] == ms(5)
    assert passport.issued_at == ms(20)  # the 3rd distinct module, by earliest times


def test_out_of_order_modules_give_the_issue_time_of_the_in_order_run() -> None:
    stream = [*THREE, module("website-create", 40), module("office-tools", 50)]
    expected, _ = run(enrolled(), *stream)
    assert expected.issued_at == ms(30)
    for order in itertools.permutations(stream):
        passport, _ = run(enrolled(), *order)
        assert passport.issued_at == expected.issued_at
        assert passport.modules_completed == expected.modules_completed
        assert passport.status == "passport_issued"


# -- duplicates ----------------------------------------------------------------------------------

@pytest.mark.parametrize("item", [enrolled(5, name="Autre nom"), module("office-tools", 40),
                                  offer(60)])
def test_a_duplicate_event_id_changes_nothing(item: Item) -> None:
    once, _ = run(enrolled(), *THREE, item)
    twice, second_leads = run(item, passport=once)
    assert twice == once
    assert second_leads == []


def test_an_event_id_seen_while_parked_is_parked_once() -> None:
    item = module("website-create", 10)
    passport, _ = run(item, item)
    assert len(passport.parked) == 1


# -- offers and leads ----------------------------------------------------------------------------

def test_an_offer_without_consent_requests_no_lead() -> None:
    passport, leads = run(enrolled(consent=False), *THREE, offer(60))
    assert leads == []
    assert passport.offer_requests == 1
    assert passport.leads_requested == 0
    assert passport.offers[-1].decision == "no_consent"


def test_an_offer_before_the_passport_requests_no_lead() -> None:
    passport, leads = run(enrolled(), *THREE[:2], offer(25), THREE[2])
    assert leads == []
    assert passport.status == "passport_issued"
    assert passport.offers[-1].decision == "no_passport"


def test_an_offer_dated_before_the_issue_requests_no_lead_even_when_applied_after() -> None:
    _, leads = run(enrolled(), *THREE, offer(25))  # issued at 30, asked at 25
    assert leads == []


def test_an_offer_with_passport_and_consent_requests_exactly_one_deterministic_lead() -> None:
    item = offer(60, event_id="6f1c1a52-8d2b-4d0e-9a7e-3c4b5d6e7f80")
    enrolment = enrolled(event_id="0b6a4c1e-1111-4a2b-8c3d-000000000001")
    passport, leads = run(enrolment, *THREE, item)
    assert len(leads) == 1
    lead = leads[0]
    assert lead.lead_id == derive("6f1c1a52-8d2b-4d0e-9a7e-3c4b5d6e7f80", "lead")
    assert lead.event_id == derive("6f1c1a52-8d2b-4d0e-9a7e-3c4b5d6e7f80", "lead-requested")
    assert lead.lead_id != lead.event_id
    assert (lead.siren, lead.departement, lead.region, lead.category) == (
        SIREN, "78", "11", "e-commerce")
    assert lead.occurred_at == ms(60)
    assert lead.contact_email == "contact@boulangerie.example"
    assert passport.leads_requested == 1
    assert passport.offer_requests == 1
    _, again = run(enrolment, *THREE, item)
    assert again == leads


def test_two_offers_request_two_leads() -> None:
    passport, leads = run(enrolled(), *THREE, offer(60), offer(61, category="security"))
    assert [lead.category for lead in leads] == ["e-commerce", "security"]
    assert len({lead.lead_id for lead in leads}) == 2
    assert passport.leads_requested == 2


# -- parking -------------------------------------------------------------------------------------

def test_events_before_the_enrolment_are_parked_then_applied_in_time_order() -> None:
    early = [offer(60), module("email-pro", 30), module("website-create", 10),
             module("website-traffic", 20)]
    parked, leads = run(*early)
    assert parked.profile is None
    assert len(parked.parked) == 4
    assert parked.modules == {}
    assert leads == []
    passport, leads = run(enrolled(90), passport=parked)
    assert passport.parked == ()
    assert passport.status == "passport_issued"
    assert passport.issued_at == ms(30)
    # Applied by time, the offer (60) comes after the passport (30): it is a lead.
    assert len(leads) == 1
    assert passport.leads_requested == 1
    assert passport.last_event_at == ms(90)


def test_an_older_enrolment_does_not_overwrite_a_newer_profile() -> None:
    passport, _ = run(enrolled(10, name="Nouveau nom"), enrolled(5, name="Ancien nom"))
    assert passport.profile is not None
    assert passport.profile.name == "Nouveau nom"
    newer, _ = run(enrolled(20, name="Encore plus récent", consent=False), passport=passport)
    assert newer.profile is not None
    assert (newer.profile.name, newer.profile.consent) == ("Encore plus récent", False)


def test_an_event_of_another_business_is_a_bug_not_data() -> None:
    record, datum = module("email-pro", 1)
    with pytest.raises(ValueError, match="applied to passport"):
        rules.apply(Passport("542051180"), events.parse(record, datum), datum)


# -- the stored form -----------------------------------------------------------------------------

def test_the_stored_json_round_trips_with_parked_datums() -> None:
    partial, _ = run(module("email-pro", 1), offer(2))
    full, _ = run(enrolled(), *THREE, offer(60), offer(1))
    for passport in (partial, full):
        text = json.dumps(persist.dump(passport))
        assert persist.load(json.loads(text)) == passport
    assert isinstance(persist.dump(partial)["parked"][0]["datum"]["occurred_at"], int)


# -- parsing -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("item", "match"), [
    (("ModuleCompleted", {**module("email-pro", 1)[1], "siren": "732829321"}), "invalid SIREN"),
    (("ModuleCompleted", {**module("email-pro", 1)[1], "siren": "73282932"}), "invalid SIREN"),
    (("ModuleCompleted", {**module("email-pro", 1)[1], "module_id": "juggling"}), "module"),
    (("OfferRequested", {**offer(1)[1], "category": "toasters"}), "category"),
    (("BusinessEnrolled", {**enrolled()[1], "departement": "20"}), "département"),
    (("LeadAnswered", {**offer(1)[1]}), "does not apply"),
    (("ModuleCompleted", {"event_id": "x", "occurred_at": 1}), "incomplete"),
])
def test_parse_refuses_what_cannot_be_applied(item: Item, match: str) -> None:
    with pytest.raises(InvalidEventError, match=match):
        events.parse(*item)


def test_parse_inbound_checks_the_topic_record_and_the_key() -> None:
    record, datum = offer(1)
    assert events.parse_inbound("pn.offer-requests.v1", record, SIREN.encode(), datum)
    with pytest.raises(InvalidEventError, match="carries OfferRequested"):
        events.parse_inbound("pn.offer-requests.v1", "ModuleCompleted", SIREN.encode(),
                             module("email-pro", 1)[1])
    with pytest.raises(InvalidEventError, match="key"):
        events.parse_inbound("pn.offer-requests.v1", record, b"542051180", datum)
    with pytest.raises(InvalidEventError, match="key"):
        events.parse_inbound("pn.offer-requests.v1", record, None, datum)


def test_millis_and_back_are_exact() -> None:
    moment = datetime(2009, 3, 2, 9, 0, 0, 123_000, tzinfo=UTC)
    assert events.from_millis(events.millis(moment)) == moment
    assert events.millis(events.from_millis(1_235_984_400_123)) == 1_235_984_400_123
    with pytest.raises(InvalidEventError):
        events.millis(datetime(2009, 3, 2))  # noqa: DTZ001 - the naive value is the point
