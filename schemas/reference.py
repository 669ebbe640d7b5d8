"""Reference data of the programme (départements, régions, modules, offer categories).

The data ships as JSON under ``schemas/data`` and is loaded once, at import: it
is the programme's catalogue, not code, so changing it is a data change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from types import MappingProxyType
from typing import Any

__all__ = [
    "CATEGORIES",
    "DEPARTEMENTS",
    "MODULES",
    "REGIONS",
    "Departement",
    "Module",
    "departements_of",
    "region_of",
]


@dataclass(frozen=True, slots=True)
class Departement:
    """A French département and the région (INSEE code and name) it belongs to."""

    code: str
    name: str
    region: str
    region_name: str


@dataclass(frozen=True, slots=True)
class Module:
    """One of the free training modules of the programme."""

    id: str
    title: str
    provider: str


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (files("schemas") / "data" / name).read_text(encoding="utf-8")
    )
    return data


def _departements() -> dict[str, Departement]:
    return {
        code: Departement(code, entry["name"], entry["region"], entry["region_name"])
        for code, entry in _load("departements.json").items()
    }


_DEPARTEMENTS = _departements()

#: The 101 départements by INSEE code ("01".."19", "2A", "2B", "21".."95", "971".."976").
DEPARTEMENTS: Mapping[str, Departement] = MappingProxyType(_DEPARTEMENTS)

#: The 18 régions: INSEE code → name.
REGIONS: Mapping[str, str] = MappingProxyType(
    dict(sorted({d.region: d.region_name for d in _DEPARTEMENTS.values()}.items()))
)

_BY_REGION: dict[str, tuple[str, ...]] = {
    region: tuple(d.code for d in _DEPARTEMENTS.values() if d.region == region)
    for region in REGIONS
}

#: The free training modules by id.
MODULES: Mapping[str, Module] = MappingProxyType(
    {
        module_id: Module(module_id, entry["title"], entry["provider"])
        for module_id, entry in _load("modules.json").items()
    }
)

#: Offer categories: slug → French label.
CATEGORIES: Mapping[str, str] = MappingProxyType(
    {slug: str(label) for slug, label in _load("categories.json").items()}
)


def region_of(departement: str) -> str:
    """The INSEE région code of a département code (KeyError if unknown)."""
    return _DEPARTEMENTS[departement].region


def departements_of(region: str) -> tuple[str, ...]:
    """The département codes of a région, in catalogue order (KeyError if unknown)."""
    return _BY_REGION[region]
