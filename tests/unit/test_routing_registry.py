"""Reseller profiles: what parse_profile takes and refuses, and the registry's place indexes."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.routing.registry import Absence, InvalidProfileError, Registry, parse_profile
from tests.unit.routing_kit import reseller

SELLS = "e-commerce"
GOOD: dict[str, Any] = {
    "reseller_id": "yvelines-web", "name": "Yvelines Web", "departements": ["78", "92"],
    "categories": ["website-hosting", "e-commerce"], "capacity": 20, "weight": 3,
    "status": "active", "delivery": "webhook",
    "absences": [{"start": "2026-08-01", "end": "2026-08-15"}]}


def test_a_good_profile_is_taken_whole() -> None:
    profile = parse_profile(GOOD)
    assert profile.reseller_id == "yvelines-web"
    assert profile.name == "Yvelines Web"
    assert profile.departements == {"78", "92"}
    assert profile.categories == {"website-hosting", "e-commerce"}
    assert (profile.capacity, profile.weight) == (20, 3)
    assert (profile.status, profile.delivery) == ("active", "webhook")
    assert profile.absences == (Absence(date(2026, 8, 1), date(2026, 8, 15)),)
    assert profile.regions == {"11"}


def test_optional_fields_default() -> None:
    minimal = {k: GOOD[k] for k in ("reseller_id", "departements", "categories", "capacity",
                                    "weight")}
    profile = parse_profile(minimal)
    assert (profile.status, profile.delivery, profile.absences, profile.name) == (
        "active", "pull", (), "")
    assert parse_profile({**minimal, "absences": None}).absences == ()


@pytest.mark.parametrize("status", ["paused", "retired"])
def test_paused_and_retired_profiles_are_valid_but_sell_nothing(status: str) -> None:
    profile = parse_profile({**GOOD, "status": status})
    assert profile.status == status
    assert not profile.sells("e-commerce")
    assert parse_profile(GOOD).sells("e-commerce")


@pytest.mark.parametrize(("field", "value", "named"), [
    ("reseller_id", "", "reseller_id"),
    ("departements", ["78", "99"], "départements ['99']"),
    ("departements", [], "départements"),
    ("categories", ["e-commerce", "gardening"], "categories ['gardening']"),
    ("categories", [], "categories"),
    ("capacity", -1, "capacity -1"),
    ("capacity", 10_001, "capacity 10001"),
    ("weight", 0, "weight 0"),
    ("weight", 101, "weight 101"),
    ("status", "sleeping", "status 'sleeping'"),
    ("delivery", "pigeon", "delivery 'pigeon'"),
    ("absences", [{"start": "2026-08-15", "end": "2026-08-01"}], "absence 2026-08-15..2026-08-01"),
])
def test_each_bad_field_is_refused_by_name(field: str, value: Any, named: str) -> None:
    with pytest.raises(InvalidProfileError) as caught:
        parse_profile({**GOOD, field: value})
    assert named in str(caught.value)


def test_every_problem_of_a_profile_is_listed_at_once() -> None:
    with pytest.raises(InvalidProfileError) as caught:
        parse_profile({**GOOD, "capacity": -5, "weight": 0, "status": "x"})
    message = str(caught.value)
    assert message.startswith("reseller yvelines-web: ")
    assert all(part in message for part in ("capacity -5", "weight 0", "status 'x'"))


@pytest.mark.parametrize("field", ["reseller_id", "departements", "categories", "capacity",
                                   "weight"])
def test_a_missing_field_is_named(field: str) -> None:
    with pytest.raises(InvalidProfileError, match=field):
        parse_profile({k: v for k, v in GOOD.items() if k != field})


@pytest.mark.parametrize(("field", "value"), [
    ("capacity", "lots"), ("weight", None), ("departements", None),
    ("absences", [{"start": "2026-13-01", "end": "2026-12-31"}]),
])
def test_a_malformed_value_is_named(field: str, value: Any) -> None:
    with pytest.raises(InvalidProfileError, match=field):
        parse_profile({**GOOD, field: value})


def test_a_malformed_value_says_it_is_malformed() -> None:
    for field, value in (("capacity", "lots"), ("weight", None), ("departements", None)):
        with pytest.raises(InvalidProfileError, match=f"{field} .* is malformed"):
            parse_profile({**GOOD, field: value})


def test_absences_cover_their_days_inclusively() -> None:
    away = reseller("a", absences=[(date(2026, 8, 1), date(2026, 8, 15))])
    assert [away.absent_on(date(2026, 8, d)) for d in (1, 15)] == [True, True]
    assert not away.absent_on(date(2026, 7, 31))
    assert not away.absent_on(date(2026, 8, 16))


def covering(registry: Registry, departement: str, category: str = SELLS) -> list[str]:
    return [r.reseller_id for r in registry.covering(departement, category)]


def in_region(registry: Registry, region: str, category: str = SELLS) -> list[str]:
    return [r.reseller_id for r in registry.in_region(region, category)]


def test_the_indexes_list_who_covers_a_place_by_id() -> None:
    registry = Registry.of([reseller("versailles", ["78"]), reseller("paris", ["75"]),
                            reseller("caen", ["14"]), reseller("idf", ["75", "78"])])
    assert covering(registry, "78") == ["idf", "versailles"]
    assert in_region(registry, "11") == ["idf", "paris", "versailles"]
    assert in_region(registry, "28") == ["caen"]
    assert covering(registry, "33") == []
    assert in_region(registry, "75") == []
    assert len(registry) == 4
    assert sorted(registry) == ["caen", "idf", "paris", "versailles"]


def test_the_indexes_list_only_the_sellers_of_the_category_whatever_their_status() -> None:
    registry = Registry.of([reseller("web", ["78"], categories=["website-hosting"]),
                            reseller("both", ["78"], categories=["website-hosting", SELLS]),
                            reseller("paused", ["78"], status="paused")])
    assert covering(registry, "78") == ["both", "paused"]
    assert covering(registry, "78", "website-hosting") == ["both", "web"]
    assert in_region(registry, "11", "security") == []


def test_a_reseller_that_moves_leaves_its_old_places() -> None:
    registry = Registry.of([reseller("mover", ["78"]), reseller("stay", ["78"])])
    assert covering(registry, "78") == ["mover", "stay"]  # looked up (and cached) before
    registry.put(reseller("mover", ["14"], capacity=3))
    assert covering(registry, "78") == ["stay"]
    assert in_region(registry, "11") == ["stay"]
    assert covering(registry, "14") == ["mover"]
    assert in_region(registry, "28") == ["mover"]
    assert registry["mover"].capacity == 3
    assert len(registry) == 2


def test_a_move_within_a_region_keeps_the_region() -> None:
    registry = Registry.of([reseller("mover", ["78", "92"])])
    assert covering(registry, "78") == ["mover"]
    registry.put(reseller("mover", ["92"]))
    assert covering(registry, "78") == []
    assert covering(registry, "92") == ["mover"]
    assert in_region(registry, "11") == ["mover"]


def test_a_change_of_categories_follows_in_the_lists() -> None:
    registry = Registry.of([reseller("r", ["78"])])
    assert covering(registry, "78") == ["r"]
    registry.put(reseller("r", ["78"], categories=["security"]))
    assert covering(registry, "78") == []
    assert covering(registry, "78", "security") == ["r"]


def test_a_removed_reseller_is_in_no_index() -> None:
    registry = Registry.of([reseller("gone", ["78"]), reseller("stay", ["92"])])
    assert in_region(registry, "11") == ["gone", "stay"]
    registry.remove("gone")
    registry.remove("never-there")  # nothing to do
    assert "gone" not in registry
    assert covering(registry, "78") == []
    assert in_region(registry, "11") == ["stay"]
    with pytest.raises(KeyError):
        registry["gone"]
