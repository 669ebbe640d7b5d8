"""A synthetic programme year: 150,000 businesses, ~50,000 lead requests, 650 resellers (seeded).

The same seed gives the same year. Requests come in business hours (Paris),
on weekdays mostly, less in August and at Christmas, from départements
weighted by their rough population (``POPULATION``, thousands, INSEE orders of
magnitude: data, not a census). Resellers are local mostly: one reseller per
département first (every département is covered), the others placed by
population, covering their home, a few neighbours of the région, the whole
région or two; each sells 1-4 of the 8 categories (every région sells every
category), with a weight of 1-5 (mostly 1) and a capacity that grows with it;
a quarter take two or three weeks off in summer. Businesses are drawn with
replacement, so some ask twice (a duplicate while their lead is open).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from connectors.synthetic.identities import identity, siren
from schemas.reference import CATEGORIES, DEPARTEMENTS, departements_of, region_of
from services.routing.registry import Absence, Reseller
from services.routing.router import LeadRequest
from services.routing.simulate.inputs import Inputs
from services.routing.sla import PARIS

#: Rough population of each département, in thousands.
POPULATION: dict[str, int] = {
    "01": 660, "02": 530, "03": 335, "04": 165, "05": 141, "06": 1094, "07": 329, "08": 270,
    "09": 153, "10": 310, "11": 374, "12": 279, "13": 2043, "14": 694, "15": 144, "16": 352,
    "17": 651, "18": 302, "19": 240, "2A": 158, "2B": 182, "21": 534, "22": 600, "23": 116,
    "24": 413, "25": 543, "26": 516, "27": 599, "28": 431, "29": 915, "30": 748, "31": 1400,
    "32": 191, "33": 1623, "34": 1175, "35": 1079, "36": 219, "37": 610, "38": 1271, "39": 259,
    "40": 413, "41": 329, "42": 765, "43": 227, "44": 1429, "45": 680, "46": 174, "47": 331,
    "48": 76, "49": 818, "50": 495, "51": 566, "52": 172, "53": 307, "54": 733, "55": 184,
    "56": 759, "57": 1046, "58": 204, "59": 2608, "60": 829, "61": 280, "62": 1465, "63": 660,
    "64": 683, "65": 229, "66": 479, "67": 1140, "68": 767, "69": 1876, "70": 235, "71": 551,
    "72": 566, "73": 436, "74": 826, "75": 2165, "76": 1255, "77": 1421, "78": 1448, "79": 374,
    "80": 570, "81": 389, "82": 260, "83": 1076, "84": 561, "85": 685, "86": 438, "87": 372,
    "88": 364, "89": 335, "90": 141, "91": 1301, "92": 1624, "93": 1644, "94": 1407, "95": 1249,
    "971": 384, "972": 361, "973": 286, "974": 863, "976": 256,
}
#: How often each category is asked for (and sold), in CATEGORIES order.
CATEGORY_WEIGHTS = (30, 18, 20, 12, 8, 5, 3, 4)
WEIGHTS, WEIGHT_ODDS = (1, 2, 3, 4, 5), (45, 25, 15, 10, 5)


@dataclass(frozen=True, slots=True)
class Programme:
    """The size of a synthetic year."""

    businesses: int = 150_000
    requests: int | None = None
    """Lead requests over the year (a third of the businesses by default)."""
    resellers: int = 650
    year: int = 2027
    seed: int = 2027

    @property
    def request_count(self) -> int:
        return self.requests if self.requests is not None else self.businesses // 3


def synthetic_year(programme: Programme | None = None) -> Inputs:
    """The resellers and lead requests of one programme year (no recorded answers:
    the answer model answers)."""
    programme = programme or Programme()
    rng = random.Random(programme.seed)  # noqa: S311 - reproducible, not secret
    codes = [c for c in DEPARTEMENTS if c in POPULATION]
    weights = [POPULATION[c] for c in codes]
    resellers = _resellers(rng, programme, codes, weights)
    requests = _requests(rng, programme, codes, weights)
    return Inputs(resellers, requests, source=f"synthetic year {programme.year} "
                  f"(seed {programme.seed}, {programme.businesses:,} businesses)").sort()


def _resellers(rng: random.Random, programme: Programme, codes: list[str],
               weights: list[int]) -> list[Reseller]:
    categories = list(CATEGORIES)
    regions = sorted({region_of(c) for c in codes})
    drafts: list[tuple[set[str], set[str]]] = []
    for number in range(programme.resellers):
        home = codes[number] if number < len(codes) else rng.choices(codes, weights)[0]
        region = region_of(home)
        reach = rng.random()
        covered = {home}
        if reach < 0.25:
            neighbours = [d for d in departements_of(region) if d != home]
            covered.update(rng.sample(neighbours, min(len(neighbours), rng.randint(1, 3))))
        elif reach < 0.35:
            covered.update(departements_of(region))
        elif reach < 0.40:
            covered.update(departements_of(region))
            covered.update(departements_of(rng.choice(regions)))
        sold = set(rng.choices(categories, CATEGORY_WEIGHTS, k=rng.randint(1, 4)))
        drafts.append((covered, sold))
    for region in regions:  # every category sold somewhere in every région
        local = [d for d in drafts if any(region_of(c) == region for c in d[0])]
        for category in categories:
            if not any(category in sold for _, sold in local):
                rng.choice(local)[1].add(category)
    out = []
    for number, (covered, sold) in enumerate(drafts):
        weight = rng.choices(WEIGHTS, WEIGHT_ODDS)[0]
        absences: tuple[Absence, ...] = ()
        if rng.random() < 0.25:
            start = date(programme.year, 7, 1) + timedelta(days=rng.randrange(50))
            absences = (Absence(start, start + timedelta(days=rng.choice((13, 20)))),)
        out.append(Reseller(reseller_id=f"reseller-{number + 1:03d}",
                            name=f"Revendeur {number + 1}", departements=frozenset(covered),
                            categories=frozenset(sold), weight=weight,
                            capacity=rng.randint(3, 8) * weight + rng.randint(0, 6),
                            absences=absences))
    return out


def _requests(rng: random.Random, programme: Programme, codes: list[str],
              weights: list[int]) -> list[LeadRequest]:
    homes = rng.choices(codes, weights, k=programme.businesses)
    businesses: dict[int, tuple[str, str, str]] = {}
    sirens: set[str] = set()
    categories = list(CATEGORIES)
    start = date(programme.year, 1, 1)
    days = (date(programme.year + 1, 1, 1) - start).days
    out = []
    for number in range(programme.request_count):
        index = rng.randrange(programme.businesses)
        if index not in businesses:
            number_of = siren(rng)
            while number_of in sirens:
                number_of = siren(rng)
            sirens.add(number_of)
            who = identity(rng)
            businesses[index] = (number_of, who.name, who.email)
        business, name, email = businesses[index]
        departement = homes[index]
        out.append(LeadRequest(
            lead_id=f"lead-{programme.year}-{number + 1:06d}", siren=business,
            business_name=name, departement=departement, region=region_of(departement),
            category=rng.choices(categories, CATEGORY_WEIGHTS)[0], contact_email=email,
            requested_at=_moment(rng, start, days)))
    return out


def _moment(rng: random.Random, start: date, days: int) -> int:
    """A request time (epoch ms): business hours on weekdays mostly, quieter on holidays."""
    while True:
        day = start + timedelta(days=rng.randrange(days))
        keep = 1.0 if day.weekday() < 5 else 0.12
        if day.month == 8 or (day.month == 12 and day.day > 20):
            keep *= 0.5
        if rng.random() < keep:
            break
    minutes = int(rng.triangular(8 * 60 + 30, 18 * 60 + 30, 11 * 60))
    local = datetime.combine(day, time(minutes // 60, minutes % 60), PARIS)
    return int(local.timestamp() * 1000)
