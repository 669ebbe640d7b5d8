"""The reference data: départements and régions (INSEE), modules, offer categories."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from schemas.reference import (
    CATEGORIES,
    DEPARTEMENTS,
    MODULES,
    REGIONS,
    departements_of,
    region_of,
)

EXPECTED_CODES = (
    [f"{n:02d}" for n in range(1, 20)]
    + ["2A", "2B"]
    + [f"{n:02d}" for n in range(21, 96)]
    + ["971", "972", "973", "974", "976"]
)

EXPECTED_REGIONS = {
    "01": "Guadeloupe", "02": "Martinique", "03": "Guyane", "04": "La Réunion", "06": "Mayotte",
    "11": "Île-de-France", "24": "Centre-Val de Loire", "27": "Bourgogne-Franche-Comté",
    "28": "Normandie", "32": "Hauts-de-France", "44": "Grand Est", "52": "Pays de la Loire",
    "53": "Bretagne", "75": "Nouvelle-Aquitaine", "76": "Occitanie",
    "84": "Auvergne-Rhône-Alpes", "93": "Provence-Alpes-Côte d'Azur", "94": "Corse",
}

#: Départements per région since the 2016 reform.
EXPECTED_SIZES = {
    "11": 8, "24": 6, "27": 8, "28": 5, "32": 5, "44": 10, "52": 5, "53": 4, "75": 12,
    "76": 13, "84": 12, "93": 6, "94": 2, "01": 1, "02": 1, "03": 1, "04": 1, "06": 1,
}


def test_the_101_departements_in_order() -> None:
    assert list(DEPARTEMENTS) == EXPECTED_CODES
    assert len(DEPARTEMENTS) == 101
    assert all(code == d.code for code, d in DEPARTEMENTS.items())


def test_the_18_regions() -> None:
    assert dict(REGIONS) == EXPECTED_REGIONS
    assert Counter(d.region for d in DEPARTEMENTS.values()) == EXPECTED_SIZES


def test_every_departement_names_its_region_consistently() -> None:
    for d in DEPARTEMENTS.values():
        assert REGIONS[d.region] == d.region_name
        assert d.name


@pytest.mark.parametrize(
    ("departement", "name", "region"),
    [
        ("78", "Yvelines", "11"), ("75", "Paris", "11"), ("2A", "Corse-du-Sud", "94"),
        ("2B", "Haute-Corse", "94"), ("13", "Bouches-du-Rhône", "93"), ("69", "Rhône", "84"),
        ("67", "Bas-Rhin", "44"), ("59", "Nord", "32"), ("44", "Loire-Atlantique", "52"),
        ("35", "Ille-et-Vilaine", "53"), ("33", "Gironde", "75"), ("31", "Haute-Garonne", "76"),
        ("21", "Côte-d'Or", "27"), ("45", "Loiret", "24"), ("76", "Seine-Maritime", "28"),
        ("90", "Territoire de Belfort", "27"), ("971", "Guadeloupe", "01"),
        ("974", "La Réunion", "04"), ("976", "Mayotte", "06"),
    ],
)
def test_known_departements(departement: str, name: str, region: str) -> None:
    assert DEPARTEMENTS[departement].name == name
    assert region_of(departement) == region


@pytest.mark.parametrize("code", ["20", "96", "975", "1", "2a", "78 ", ""])
def test_unknown_departement(code: str) -> None:
    with pytest.raises(KeyError):
        region_of(code)


def test_departements_of_a_region() -> None:
    assert departements_of("94") == ("2A", "2B")
    assert departements_of("11") == ("75", "77", "78", "91", "92", "93", "94", "95")
    everything = [code for region in REGIONS for code in departements_of(region)]
    assert sorted(everything) == sorted(DEPARTEMENTS)
    with pytest.raises(KeyError):
        departements_of("99")


def test_18_modules_with_googles_three() -> None:
    assert len(MODULES) == 18
    google = {m.id for m in MODULES.values() if m.provider == "Google"}
    assert google == {"website-create", "website-traffic", "website-performance"}
    for module_id, module in MODULES.items():
        assert module.id == module_id
        assert re.fullmatch(r"[a-z][a-z0-9-]+", module_id)
        assert module.title
        assert module.provider
    assert len({m.title for m in MODULES.values()}) == 18


def test_the_8_categories() -> None:
    assert set(CATEGORIES) == {
        "website-hosting", "e-commerce", "online-visibility", "email-collaboration",
        "security", "unified-communications", "server-virtualisation", "broadband",
    }
    assert all(CATEGORIES.values())


def test_reference_data_is_read_only() -> None:
    with pytest.raises(TypeError):
        DEPARTEMENTS["99"] = DEPARTEMENTS["78"]  # type: ignore[index]  # proving it fails
    with pytest.raises(TypeError):
        CATEGORIES["x"] = "y"  # type: ignore[index]  # proving it fails
