"""Impossible values the read model refuses to serve (pure): records that decode but cannot be.

The hub's writers validate what they publish; these checks catch what reaches a
state topic another way (a hand-written record, a writer with a bug), where
serving it would corrupt what the API shows: figures under a région or a
département that does not exist (the KPI page's and ``passport_hub_programme_*``'s
``region`` label is one of 18 codes), a negative capacity or a weight of zero on
the KPI page. The bounds are the programme's (docs/architecture.md, The
programme) and the routing rules' (docs/routing.md: capacity 0-10000, weight
1-100, as the router's own table enforces them). A record that fails a check is
dead-lettered at stage ``apply`` (store.py, materialiser.py), never half-applied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hub.errors import HubError
from schemas.reference import DEPARTEMENTS, region_of
from services.readmodel.aggregates import AWAITING_STATE, ENROLLED_STATES

#: The states a passport snapshot may be in.
STATES = (AWAITING_STATE, *ENROLLED_STATES)
MAX_CAPACITY = 10_000
WEIGHTS = range(1, 101)


class ImpossibleValueError(HubError):
    """A record whose values cannot be true: it is dead-lettered, not served."""


def _passport(datum: Mapping[str, Any]) -> None:
    state = datum["state"]
    if state not in STATES:
        raise ImpossibleValueError(f"PassportSnapshot: unknown state {state!r}")
    if state == AWAITING_STATE:
        return  # no enrolment yet: no place either (services/passport/outputs.py)
    departement, region = datum["departement"], datum["region"]
    if departement not in DEPARTEMENTS or region != region_of(departement):
        raise ImpossibleValueError(f"PassportSnapshot: département {departement!r} is unknown "
                                   f"or not in région {region!r}")


def _reseller(datum: Mapping[str, Any]) -> None:
    capacity, weight = datum.get("capacity", 10), datum.get("weight", 1)
    if not 0 <= capacity <= MAX_CAPACITY:
        raise ImpossibleValueError(f"ResellerProfile: capacity {capacity} is not within "
                                   f"0-{MAX_CAPACITY}")
    if weight not in WEIGHTS:
        raise ImpossibleValueError(f"ResellerProfile: weight {weight} is not within 1-100")


def _lead(datum: Mapping[str, Any]) -> None:
    version = datum.get("version", 1)
    if version < 1:
        raise ImpossibleValueError(f"LeadAssigned: version {version} (versions start at 1)")


_CHECKS: Mapping[str, Callable[[Mapping[str, Any]], None]] = {
    "PassportSnapshot": _passport, "ResellerProfile": _reseller, "LeadAssigned": _lead,
}


def check(record: str, datum: Mapping[str, Any]) -> None:
    """Raise ``ImpossibleValueError`` if a datum of ``record`` says what cannot be."""
    found = _CHECKS.get(record)
    if found is not None:
        found(datum)
