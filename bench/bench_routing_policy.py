"""Routing policy benchmark: decisions per second of the pure ``Router.request`` path.

    python -m bench.bench_routing_policy [--leads 20000] [--rounds 3] [--profile]

Builds, in one run, a registry of 650 resellers (the programme) and one of 50,000
(national scale), each shaped like the programme's: every reseller covers 1-3
départements, one in ten a whole région, and sells 1-3 of the 8 categories; weights
1-5; capacities large enough that nobody fills up during the run, so every request
is a real decision (département scope, now and then the région). Then it times
``--leads`` fresh requests (distinct businesses, random départements and categories)
through ``Router.request`` on each, the best of ``--rounds`` rounds on a fresh router,
and prints both rates, their ratio, and the targets (>= 50,000/s at 650 resellers,
>= 5,000/s at 50,000). No broker, no store: the decision, its trace, the SLA deadline
and the state update, nothing else. ``--profile`` adds a cProfile of one round at
each size (top functions by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import time
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from schemas.reference import CATEGORIES, DEPARTEMENTS, departements_of, region_of
from services.routing.registry import Registry, Reseller
from services.routing.router import LeadRequest, Router

#: Tuesday 3 March 2026, 10:00 Paris (epoch ms): a business day.
T0 = 1_772_528_400_000
TARGETS = {650: 50_000.0, 50_000: 5_000.0}


def registry(size: int, rnd: random.Random) -> Registry:
    departements = sorted(DEPARTEMENTS)
    categories = sorted(CATEGORIES)
    resellers = []
    for n in range(size):
        home = rnd.choice(departements)
        if rnd.random() < 0.1:
            covers = frozenset(departements_of(region_of(home)))
        else:
            covers = frozenset([home, *rnd.sample(departements, rnd.randint(0, 2))])
        resellers.append(Reseller(f"reseller-{n:05d}", f"Reseller {n}", covers,
                                  frozenset(rnd.sample(categories, rnd.randint(1, 3))),
                                  capacity=10_000, weight=rnd.randint(1, 5)))
    return Registry.of(resellers)


def requests(count: int, rnd: random.Random) -> list[LeadRequest]:
    departements = sorted(DEPARTEMENTS)
    categories = sorted(CATEGORIES)
    out = []
    for n in range(count):
        departement = rnd.choice(departements)
        out.append(LeadRequest(f"lead-{n}", f"{n:09d}", "Business", departement,
                               region_of(departement), rnd.choice(categories),
                               "contact@example.org", T0))
    return out


@dataclass(frozen=True, slots=True)
class Figure:
    resellers: int
    rate: float
    candidates: float
    """Mean candidates per decision (the trace's length)."""


def measure(size: int, leads: int, rounds: int, seed: int) -> Figure:
    rnd = random.Random(seed)
    reg = registry(size, rnd)
    batch = requests(leads, rnd)
    best = 0.0
    candidates = 0
    for _ in range(rounds):
        router = Router(reg)
        candidates = 0
        start = time.perf_counter()
        for n, req in enumerate(batch):
            changes = router.request(req, T0 + n)
            decision = changes[0].decision
            candidates += 0 if decision is None else len(decision.candidates)
        best = max(best, leads / (time.perf_counter() - start))
    return Figure(size, best, candidates / leads)


def profile(size: int, leads: int, seed: int) -> str:
    rnd = random.Random(seed)
    reg = registry(size, rnd)
    batch = requests(leads, rnd)
    router = Router(reg)
    profiler = cProfile.Profile()
    profiler.enable()
    for n, req in enumerate(batch):
        router.request(req, T0 + n)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    figures = [measure(size, args.leads, args.rounds, args.seed) for size in TARGETS]
    table = Table(title=f"Router.request, {args.leads:,} leads, best of {args.rounds} rounds")
    for column in ("resellers", "candidates/decision", "decisions/s", "target", "met"):
        table.add_column(column, justify="right")
    for figure in figures:
        target = TARGETS[figure.resellers]
        table.add_row(f"{figure.resellers:,}", f"{figure.candidates:.1f}",
                      f"{figure.rate:,.0f}", f">= {target:,.0f}",
                      "yes" if figure.rate >= target else "NO")
    console = Console()
    console.print(table)
    small, large = figures
    console.print(f"ratio 650 / 50,000: {small.rate / large.rate:.1f}x "
                  f"(targets' ratio {TARGETS[650] / TARGETS[50_000]:.0f}x)")
    if args.profile:
        for size in TARGETS:
            console.print(f"\n[bold]cProfile, {size:,} resellers[/bold]")
            console.print(profile(size, args.leads // 4, args.seed), markup=False)


if __name__ == "__main__":
    main()
