"""The reseller registry the router decides on: profiles, validated, indexed by place (pure).

Every router instance holds the whole registry (a few hundred profiles for the
programme, tens of thousands at national scale). A decision looks up the
resellers that cover one département, then those of its région, so both are
indexed: a lead never scans the whole table. A profile that fails validation
raises ``InvalidProfileError`` and the registry keeps the reseller's previous
profile (the shell dead-letters the record with the reason).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from hub.errors import HubError
from schemas.reference import CATEGORIES, DEPARTEMENTS, region_of

#: Statuses that take new leads; the others (paused, retired) keep what they hold.
ACTIVE = "active"
STATUSES = ("active", "paused", "retired")
DELIVERIES = ("pull", "webhook", "kafka")
_REQUIRED = object()
_T = TypeVar("_T")


class InvalidProfileError(HubError):
    """A reseller profile the router cannot use (dead-lettered, stage "validate")."""


@dataclass(frozen=True, slots=True)
class Absence:
    """Days (inclusive, Europe/Paris) during which a reseller takes no new lead."""

    start: date
    end: date

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True, slots=True)
class Reseller:
    """One reseller's profile, as the router uses it."""

    reseller_id: str
    name: str
    departements: frozenset[str]
    categories: frozenset[str]
    capacity: int = 10
    weight: int = 1
    status: str = ACTIVE
    absences: tuple[Absence, ...] = ()
    delivery: str = "pull"

    def sells(self, category: str) -> bool:
        """Active and selling ``category``: may take a lead of that category somewhere."""
        return self.status == ACTIVE and category in self.categories

    def absent_on(self, day: date) -> bool:
        return any(absence.covers(day) for absence in self.absences)

    @property
    def regions(self) -> frozenset[str]:
        return frozenset(region_of(d) for d in self.departements)


def _field(datum: Mapping[str, Any], name: str, convert: Callable[[Any], _T],
           default: Any = _REQUIRED) -> _T:
    """One field of a profile, converted; ``InvalidProfileError`` naming it if it cannot be."""
    value = datum.get(name, default)
    if value is _REQUIRED:
        raise InvalidProfileError(f"reseller profile: {name} is missing")
    try:
        return convert(value)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidProfileError(f"reseller profile: {name} {value!r} is malformed: {exc}") \
            from exc


def _strings(value: Any) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError("a list of strings is expected")
    return frozenset(str(item) for item in value)


def _absences(value: Any) -> tuple[Absence, ...]:
    return tuple(Absence(date.fromisoformat(str(a["start"])), date.fromisoformat(str(a["end"])))
                 for a in value or ())


def parse_profile(datum: Mapping[str, Any]) -> Reseller:
    """The router's view of a ``ResellerProfile`` datum; ``InvalidProfileError`` says why not."""
    reseller_id = _field(datum, "reseller_id", str)
    departements = _field(datum, "departements", _strings)
    categories = _field(datum, "categories", _strings)
    capacity = _field(datum, "capacity", int)
    weight = _field(datum, "weight", int)
    status = _field(datum, "status", str, ACTIVE)
    delivery = _field(datum, "delivery", str, "pull")
    absences = _field(datum, "absences", _absences, ())
    problems = []
    if not reseller_id:
        problems.append("reseller_id is empty")
    if not departements or departements - set(DEPARTEMENTS):
        problems.append(f"unknown départements {sorted(departements - set(DEPARTEMENTS))} "
                        "(or none)")
    if not categories or categories - set(CATEGORIES):
        problems.append(f"unknown categories {sorted(categories - set(CATEGORIES))} (or none)")
    if not 0 <= capacity <= 10_000:
        problems.append(f"capacity {capacity} is not within 0-10000")
    if not 1 <= weight <= 100:
        problems.append(f"weight {weight} is not within 1-100")
    if status not in STATUSES:
        problems.append(f"status {status!r} is not one of {', '.join(STATUSES)}")
    if delivery not in DELIVERIES:
        problems.append(f"delivery {delivery!r} is not one of {', '.join(DELIVERIES)}")
    problems.extend(f"absence {a.start}..{a.end} ends before it starts"
                    for a in absences if a.end < a.start)
    if problems:
        raise InvalidProfileError(f"reseller {reseller_id or '?'}: " + "; ".join(problems))
    return Reseller(reseller_id=reseller_id, name=str(datum.get("name", "")),
                    departements=departements, categories=categories, capacity=capacity,
                    weight=weight, status=status, absences=absences, delivery=delivery)


@dataclass(slots=True)
class Registry(Mapping[str, Reseller]):
    """The latest profile of every reseller, with who covers each département and région."""

    _by_id: dict[str, Reseller] = field(default_factory=dict)
    _by_departement: dict[str, set[str]] = field(default_factory=dict)
    _by_region: dict[str, set[str]] = field(default_factory=dict)
    _sorted: dict[tuple[str, str, str], list[Reseller]] = field(default_factory=dict)
    """("d"|"r", code, category) -> its sellers of the category by id: built on first
    use, all dropped on any change (profiles change rarely; decisions look up often)."""

    @classmethod
    def of(cls, resellers: Iterable[Reseller]) -> Registry:
        registry = cls()
        for reseller in resellers:
            registry.put(reseller)
        return registry

    def put(self, reseller: Reseller) -> None:
        """Add or replace a reseller's profile (its indices follow)."""
        self.remove(reseller.reseller_id)
        self._sorted.clear()  # profiles change rarely: every list is built again on use
        self._by_id[reseller.reseller_id] = reseller
        for departement in reseller.departements:
            self._by_departement.setdefault(departement, set()).add(reseller.reseller_id)
        for region in reseller.regions:
            self._by_region.setdefault(region, set()).add(reseller.reseller_id)

    def remove(self, reseller_id: str) -> None:
        old = self._by_id.pop(reseller_id, None)
        if old is None:
            return
        self._sorted.clear()
        for departement in old.departements:
            self._by_departement[departement].discard(reseller_id)
        for region in old.regions:
            self._by_region[region].discard(reseller_id)

    def covering(self, departement: str, category: str) -> list[Reseller]:
        """The resellers covering a département and selling ``category`` (whatever their
        status), by id (do not modify the list)."""
        return self._listed("d", departement, category, self._by_departement)

    def in_region(self, region: str, category: str) -> list[Reseller]:
        """The resellers covering any département of a région and selling ``category``,
        by id (do not modify the list)."""
        return self._listed("r", region, category, self._by_region)

    def _listed(self, kind: str, code: str, category: str,
                index: dict[str, set[str]]) -> list[Reseller]:
        listed = self._sorted.get((kind, code, category))
        if listed is None:
            listed = self._sorted[kind, code, category] = [
                self._by_id[i] for i in sorted(index.get(code, ()))
                if category in self._by_id[i].categories]
        return listed

    def __getitem__(self, reseller_id: str) -> Reseller:
        return self._by_id[reseller_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)
