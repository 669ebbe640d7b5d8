"""The programme's reseller network, made up: ~650 partners covering the 101 départements.

What the router is judged on only shows with a realistic network: most
resellers are local (a département and maybe a neighbour or two), some cover a
whole région, a handful the whole country; weights and capacities are uneven
(a few large partners, many small ones); a few are paused or retired, a few
away for some days around today. Every département gets at least one local
reseller before the rest are placed at random, so no area is left without one —
but the Yvelines (``WALKTHROUGH``), which the made-up network leaves to the
README's walk-through: its reseller is then the only one covering it, and the
README's lead goes to it whatever the demo did before. Pure: a ``random.Random``
and the clock's "now" in, profiles out.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

from connectors.synthetic.identities import slug
from schemas.events import ResellerAbsence, ResellerProfile
from schemas.reference import CATEGORIES, DEPARTEMENTS, departements_of

#: The programme's network size (issue 10: ~650 resellers).
DEFAULT_RESELLERS = 650
#: The département the synthetic network and businesses leave alone: the README's
#: walk-through enrols its business and registers its reseller there.
WALKTHROUGH = "78"
_PARIS = ZoneInfo("Europe/Paris")
_WORDS = ("Numérique", "Informatique", "Web Services", "Réseaux", "Digital", "Solutions TIC",
          "Bureautique", "Systèmes", "Cloud", "Télécom")
#: Scope shares: local, régional, national.
_SCOPES = (("local", 86), ("region", 13), ("national", 1))
#: Weights 1-5, skewed to the small end: most partners are small.
_WEIGHTS = ((1, 40), (2, 25), (3, 17), (4, 11), (5, 7))
_STATUSES = (("active", 94), ("paused", 4), ("retired", 2))
_T = TypeVar("_T")
_ABSENT_RATE = 0.05
"""Share of resellers away for a few days around today (holidays, a full order book)."""


def profiles(rng: random.Random, count: int, now: datetime,
             new_id: Callable[[], UUID]) -> list[ResellerProfile]:
    """``count`` reseller profiles, published a month before ``now``."""
    codes = sorted(set(DEPARTEMENTS) - {WALKTHROUGH})
    # Every département is the home of a local reseller first (in random order), so
    # each has one; the rest of the homes are drawn at random.
    homes = rng.sample(codes, len(codes))
    today = now.astimezone(_PARIS).date()
    out: list[ResellerProfile] = []
    for number in range(1, count + 1):
        scope = "local" if number <= len(homes) else _pick(rng, _SCOPES)
        home = DEPARTEMENTS[homes[number - 1] if number <= len(homes) else rng.choice(codes)]
        covered, categories = _coverage(rng, scope, home.code, home.region, codes)
        name = f"{rng.choice(_WORDS)} {'France' if scope == 'national' else home.name}"
        status = "active" if number <= len(homes) else _pick(rng, _STATUSES)
        out.append(ResellerProfile(
            event_id=new_id(), occurred_at=now - timedelta(days=30), source="microsoft-partners",
            reseller_id=f"{slug(name)}-{number:03d}", name=name, departements=tuple(covered),
            categories=tuple(categories), capacity=_capacity(rng, scope),
            weight=_pick(rng, _WEIGHTS), status=status, absences=_absences(rng, today)))
    return out


def _coverage(rng: random.Random, scope: str, home: str, region: str,
              codes: list[str]) -> tuple[list[str], list[str]]:
    """Where a reseller sells and what: the wider its area, the more categories."""
    catalogue = sorted(CATEGORIES)
    if scope == "national":
        return codes, sorted(rng.sample(catalogue, rng.randint(3, 6)))
    area = [code for code in departements_of(region) if code != WALKTHROUGH]
    if scope == "region":
        return sorted(area), sorted(rng.sample(catalogue, rng.randint(2, 5)))
    neighbours = rng.sample(area, min(len(area), rng.choices((0, 1, 2), (5, 3, 2))[0]))
    return sorted({home, *neighbours}), sorted(rng.sample(catalogue, rng.randint(2, 4)))


def _capacity(rng: random.Random, scope: str) -> int:
    """Open leads it holds at once: 3-40, mostly small; larger for wider areas."""
    low = {"local": 3, "region": 8, "national": 20}[scope]
    return low + int((40 - low) * rng.random() ** 2)


def _absences(rng: random.Random, today: date) -> tuple[ResellerAbsence, ...]:
    if rng.random() >= _ABSENT_RATE:
        return ()
    start = today + timedelta(days=rng.randint(-3, 2))
    end = start + timedelta(days=rng.randint(1, 6))
    return (ResellerAbsence(start=start.isoformat(), end=end.isoformat()),)


def _pick(rng: random.Random, weighted: tuple[tuple[_T, int], ...]) -> _T:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]
