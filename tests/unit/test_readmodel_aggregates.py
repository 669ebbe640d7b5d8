"""The programme figures' pure rules: contributions, replacements, the stats document."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.reference import DEPARTEMENTS, MODULES, REGIONS
from services.readmodel import aggregates, stats
from services.readmodel.aggregates import (
    ALL,
    AWAITING,
    BUSINESSES,
    DEPARTEMENT,
    ENROLLED,
    FEEDBACK_DELEGATION,
    FEEDBACK_MODULE,
    FEEDBACK_TRAINER,
    ISSUED,
    MODULE,
    NATIONAL,
    REGION,
    RESPONSES,
    SCORE_SUM,
    contributions,
)

T0 = datetime(2009, 3, 2, 9, 0, tzinfo=UTC)


def feedback(module_id: str = "website-create", score: int = 4, *,
             trainer_org: str | None = "trainer-google", delegation: str | None = "78",
             event_id: str | None = None) -> dict[str, Any]:
    return {"event_id": event_id or str(uuid.uuid4()), "module_id": module_id,
            "trainer_org": trainer_org, "delegation": delegation, "score": score}


def snapshot(state: str = "in_training", *, departement: str = "78", region: str = "11",
             modules: tuple[str, ...] = (), timed: tuple[str, ...] = (),
             scores: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    """A v2 PassportSnapshot datum (only what the rules read, plus what must not matter)."""
    return {"siren": "732829320", "state": state, "departement": departement, "region": region,
            "modules_completed": list(modules),
            "modules": [{"module_id": m, "completed_at": T0} for m in timed],
            "feedback": list(scores), "contact_email": "contact@martin.fr", "erased": False}


def test_an_enrolled_business_counts_nationally_in_its_region_and_departement() -> None:
    assert contributions(snapshot("enrolled")) == {
        (NATIONAL, ALL, ENROLLED): 1, (REGION, "11", ENROLLED): 1,
        (DEPARTEMENT, "78", ENROLLED): 1}
    assert contributions(snapshot("in_training")) == contributions(snapshot("enrolled"))


def test_an_issued_passport_counts_as_enrolled_and_issued_everywhere() -> None:
    got = contributions(snapshot("passport_issued", departement="2A", region="94"))
    assert got == {(NATIONAL, ALL, ENROLLED): 1, (NATIONAL, ALL, ISSUED): 1,
                   (REGION, "94", ENROLLED): 1, (REGION, "94", ISSUED): 1,
                   (DEPARTEMENT, "2A", ENROLLED): 1, (DEPARTEMENT, "2A", ISSUED): 1}


def test_a_business_awaiting_enrolment_counts_only_as_awaiting() -> None:
    got = contributions(snapshot("awaiting_enrolment", departement="", region=""))
    assert got == {(NATIONAL, ALL, AWAITING): 1}


def test_an_erased_business_still_counts() -> None:
    erased = {**snapshot("passport_issued"), "erased": True, "contact_email": None}
    assert contributions(erased) == contributions(snapshot("passport_issued"))


def test_each_distinct_module_counts_the_business_once() -> None:
    # v1 resolved to v2: only modules_completed; v2: both lists, repeating each other.
    v1 = snapshot(modules=("website-create", "email-pro"))
    v2 = snapshot(modules=("website-create", "email-pro"), timed=("website-create", "email-pro"))
    only_timed = snapshot(timed=("email-pro", "website-create", "email-pro"))
    for datum in (v1, v2, only_timed):
        got = contributions(datum)
        assert got[MODULE, "website-create", BUSINESSES] == 1
        assert got[MODULE, "email-pro", BUSINESSES] == 1
    assert aggregates.modules_of(only_timed) == ["email-pro", "website-create"]


def test_training_facts_count_before_the_enrolment() -> None:
    got = contributions(snapshot("awaiting_enrolment", departement="", region="",
                                 modules=("email-pro",), scores=(feedback("email-pro", 5),)))
    assert got[MODULE, "email-pro", BUSINESSES] == 1
    assert got[FEEDBACK_MODULE, "email-pro", SCORE_SUM] == 5
    assert (REGION, "", ENROLLED) not in got


def test_feedback_adds_score_and_response_to_module_trainer_and_delegation() -> None:
    got = contributions(snapshot(scores=(
        feedback("website-create", 4), feedback("website-create", 2, trainer_org="cci-78"),
        feedback("email-pro", 5, delegation="92"))))
    assert got[FEEDBACK_MODULE, "website-create", SCORE_SUM] == 6
    assert got[FEEDBACK_MODULE, "website-create", RESPONSES] == 2
    assert got[FEEDBACK_MODULE, "email-pro", SCORE_SUM] == 5
    assert got[FEEDBACK_TRAINER, "trainer-google", SCORE_SUM] == 9
    assert got[FEEDBACK_TRAINER, "trainer-google", RESPONSES] == 2
    assert got[FEEDBACK_TRAINER, "cci-78", RESPONSES] == 1
    assert got[FEEDBACK_DELEGATION, "78", SCORE_SUM] == 6
    assert got[FEEDBACK_DELEGATION, "92", RESPONSES] == 1


def test_feedback_without_trainer_or_delegation_counts_for_its_module_only() -> None:
    got = contributions(snapshot(scores=(feedback(trainer_org=None, delegation=None),
                                         feedback(trainer_org="", delegation=""))))
    assert got[FEEDBACK_MODULE, "website-create", RESPONSES] == 2
    assert not [key for key in got if key[0] in (FEEDBACK_TRAINER, FEEDBACK_DELEGATION)]


@pytest.mark.parametrize("score", [0, 6, -1, 100])
def test_a_score_outside_1_to_5_is_not_counted(score: int) -> None:
    got = contributions(snapshot(scores=(feedback(score=score), feedback(score=3))))
    assert got[FEEDBACK_MODULE, "website-create", SCORE_SUM] == 3
    assert got[FEEDBACK_MODULE, "website-create", RESPONSES] == 1


def test_a_repeated_feedback_event_counts_once() -> None:
    twice = feedback(event_id="a0c7e1d2-0000-4000-8000-000000000001")
    got = contributions(snapshot(scores=(twice, dict(twice))))
    assert got[FEEDBACK_MODULE, "website-create", RESPONSES] == 1


def test_contact_and_bookkeeping_fields_do_not_matter() -> None:
    plain = snapshot("passport_issued", modules=("email-pro",), scores=(feedback(),))
    noisy = {**plain, "contact_email": "x@y.fr", "replay_from": {"t/0": 3},
             "applied_event_ids": ["e"], "parked": [{"record": "X", "datum_json": "{}"}]}
    assert contributions(noisy) == contributions(plain)


def test_a_v1_datum_without_v2_fields_contributes() -> None:
    v1 = {"siren": "732829320", "state": "passport_issued", "departement": "78",
          "region": "11", "modules_completed": ["a", "b", "c"]}
    got = contributions(v1)
    assert got[NATIONAL, ALL, ISSUED] == 1
    assert sum(amount for (dim, _k, _m), amount in got.items() if dim == MODULE) == 3


def test_change_is_new_minus_old_without_zeros() -> None:
    old = contributions(snapshot("in_training", modules=("email-pro",)))
    new = contributions(snapshot("passport_issued", modules=("email-pro", "a", "b")))
    assert aggregates.change(old, new) == {
        (NATIONAL, ALL, ISSUED): 1, (REGION, "11", ISSUED): 1, (DEPARTEMENT, "78", ISSUED): 1,
        (MODULE, "a", BUSINESSES): 1, (MODULE, "b", BUSINESSES): 1}
    assert aggregates.change({}, new) == new
    assert aggregates.change(new, new) == {}


def test_moving_departement_moves_the_counts() -> None:
    old = contributions(snapshot("enrolled"))
    new = contributions(snapshot("enrolled", departement="92"))
    assert aggregates.change(old, new) == {(DEPARTEMENT, "78", ENROLLED): -1,
                                          (DEPARTEMENT, "92", ENROLLED): 1}


def test_dumps_and_loads_round_trip() -> None:
    got = contributions(snapshot("passport_issued", modules=("é-module",), scores=(feedback(),)))
    assert aggregates.loads(aggregates.dumps(got)) == got
    assert aggregates.loads(None) == {}
    assert aggregates.loads(aggregates.dumps({})) == {}


_STATES = st.sampled_from(["awaiting_enrolment", "enrolled", "in_training", "passport_issued"])
_SNAPSHOTS = st.builds(
    lambda state, dept, modules, scores: snapshot(
        state, departement=dept if state != "awaiting_enrolment" else "",
        region=DEPARTEMENTS[dept].region if state != "awaiting_enrolment" else "",
        modules=tuple(modules),
        scores=tuple(feedback(m, s, trainer_org=t, delegation=d) for m, s, t, d in scores)),
    _STATES, st.sampled_from(["78", "92", "2A", "971"]),
    st.lists(st.sampled_from(["m1", "m2", "m3"]), max_size=3),
    st.lists(st.tuples(st.sampled_from(["m1", "m2"]), st.integers(0, 6),
                       st.sampled_from([None, "org-a", "org-b"]),
                       st.sampled_from([None, "78", "92"])), max_size=4))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["s1", "s2", "s3"]), _SNAPSHOTS), max_size=12))
def test_replacing_snapshots_one_by_one_equals_the_total_of_the_latest(
        history: list[tuple[str, dict[str, Any]]]) -> None:
    """What the store does incrementally is what a rebuild from the compacted topic gives."""
    counters: Counter[aggregates.Key] = Counter()
    held: dict[str, aggregates.Contribution] = {}
    latest: dict[str, dict[str, Any]] = {}
    for siren, datum in history:
        new = contributions(datum)
        counters.update(aggregates.change(held.get(siren, {}), new))
        held[siren] = new
        latest[siren] = datum
    rebuilt = aggregates.total(contributions(datum) for datum in latest.values())
    assert {key: amount for key, amount in counters.items() if amount} == rebuilt
    assert all(amount > 0 for amount in rebuilt.values())
    assert stats.document(rebuilt) == stats.document(counters)


# -- the stats document -------------------------------------------------------------------------

def test_the_empty_document_lists_every_place_and_module_at_zero() -> None:
    doc = stats.document({})
    assert doc["target"] == {"passports": 150_000, "scope": "national"}
    assert doc["national"] == {"businesses_enrolled": 0, "passports_issued": 0,
                               "share_of_target": 0.0, "awaiting_enrolment": 0}
    assert [r["region"] for r in doc["regions"]] == sorted(REGIONS)
    assert [d["departement"] for d in doc["departements"]] == list(DEPARTEMENTS)
    assert len(doc["departements"]) == 101
    assert [m["module_id"] for m in doc["modules"]] == list(MODULES)
    assert all(m["businesses"] == 0 for m in doc["modules"])
    assert doc["quality"] == {"by_module": [], "by_trainer_org": [], "by_delegation": []}


def test_the_document_of_some_snapshots() -> None:
    module = next(iter(MODULES))
    datums = [snapshot("passport_issued", modules=(module,),
                       scores=(feedback(module, 5), feedback(module, 4, trainer_org="cci-78"))),
              snapshot("passport_issued", departement="92", modules=(module,),
                       scores=(feedback(module, 2, delegation="92"),)),
              snapshot("enrolled", departement="2A", region="94"),
              snapshot("awaiting_enrolment", departement="", region="")]
    doc = stats.document(aggregates.total(contributions(d) for d in datums))
    assert doc["national"] == {"businesses_enrolled": 3, "passports_issued": 2,
                               "share_of_target": round(2 / 150_000, 6), "awaiting_enrolment": 1}
    idf = next(r for r in doc["regions"] if r["region"] == "11")
    assert idf == {"region": "11", "name": REGIONS["11"], "businesses_enrolled": 2,
                   "passports_issued": 2, "share_of_national_target": round(2 / 150_000, 6)}
    corse = next(r for r in doc["regions"] if r["region"] == "94")
    assert (corse["businesses_enrolled"], corse["passports_issued"]) == (1, 0)
    yvelines = next(d for d in doc["departements"] if d["departement"] == "78")
    assert yvelines["name"] == DEPARTEMENTS["78"].name
    assert yvelines["region"] == "11"
    assert (yvelines["businesses_enrolled"], yvelines["passports_issued"]) == (1, 1)
    assert next(m for m in doc["modules"] if m["module_id"] == module)["businesses"] == 2
    assert doc["quality"]["by_module"] == [
        {"module_id": module, "responses": 3, "average_score": round(11 / 3, 2)}]
    assert doc["quality"]["by_trainer_org"] == [
        {"trainer_org": "cci-78", "responses": 1, "average_score": 4.0},
        {"trainer_org": "trainer-google", "responses": 2, "average_score": 3.5}]
    assert doc["quality"]["by_delegation"] == [
        {"delegation": "78", "responses": 2, "average_score": 4.5},
        {"delegation": "92", "responses": 1, "average_score": 2.0}]


def test_codes_the_reference_data_does_not_know_are_shown_not_hidden() -> None:
    counters = aggregates.total([contributions(snapshot("enrolled", departement="99",
                                                        region="99", modules=("retired",)))])
    doc = stats.document(counters)
    assert doc["departements"][-1] == {"departement": "99", "name": None, "region": None,
                                       "businesses_enrolled": 1, "passports_issued": 0,
                                       "share_of_national_target": 0.0}
    assert {"region": "99", "name": None, "businesses_enrolled": 1, "passports_issued": 0,
            "share_of_national_target": 0.0} in doc["regions"]
    assert doc["modules"][-1] == {"module_id": "retired", "title": None, "businesses": 1}


def test_the_regions_shares_add_up_to_the_national_one() -> None:
    datums = [snapshot("passport_issued", departement=code, region=d.region)
              for code, d in list(DEPARTEMENTS.items())[::7]]
    doc = stats.document(aggregates.total(contributions(d) for d in datums))
    assert sum(r["passports_issued"] for r in doc["regions"]) == len(datums)
    assert sum(d["passports_issued"] for d in doc["departements"]) == len(datums)
    assert sum(r["share_of_national_target"] for r in doc["regions"]) == pytest.approx(
        doc["national"]["share_of_target"], abs=1e-5)
