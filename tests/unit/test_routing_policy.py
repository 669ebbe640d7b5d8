"""The routing policy on plain data: nearest scope, eligibility, rotation, determinism."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable

import pytest

from services.routing import policy
from services.routing.policy import Decision, LeadScope, Reseller

# Yvelines (78) is in Île-de-France (11); Paris (75) too; Gironde (33) is not.
LEAD = LeadScope("78", "11", "e-commerce")


def reseller(reseller_id: str, departements: Iterable[str], *,
             categories: Iterable[str] = ("e-commerce",), status: str = "active") -> Reseller:
    return Reseller(reseller_id, reseller_id.title(), frozenset(departements),
                    frozenset(categories), status=status)


def table(*resellers: Reseller) -> dict[str, Reseller]:
    return {r.reseller_id: r for r in resellers}


def run(lead: LeadScope, resellers: dict[str, Reseller], times: int,
        cursors: dict[str, int] | None = None) -> list[Decision]:
    """Decide ``times`` leads, keeping the cursors as the processor's store does."""
    cursors = {} if cursors is None else cursors
    out = []
    for _ in range(times):
        decision = policy.decide(lead, resellers, cursors)
        if decision.cursor is not None:
            cursors[decision.cursor_key] = decision.cursor
        out.append(decision)
    return out


def test_a_departement_match_beats_the_region() -> None:
    resellers = table(reseller("paris", ["75"]), reseller("versailles", ["78"]),
                      reseller("idf", ["75", "78", "92"]))
    decision = policy.decide(LEAD, resellers, {})
    assert decision.rule == "departement"
    assert decision.status == "assigned"
    assert decision.candidates == ("idf", "versailles")
    assert decision.reseller_id == "idf"
    assert decision.cursor == 1


def test_the_region_is_the_fallback() -> None:
    resellers = table(reseller("paris", ["75"]), reseller("bordeaux", ["33"]),
                      reseller("nanterre", ["92", "33"]))
    decision = policy.decide(LEAD, resellers, {})
    assert decision.rule == "region"
    assert decision.candidates == ("nanterre", "paris")
    assert decision.reseller_id == "nanterre"
    assert decision.cursor_key == "region:11:e-commerce"


def test_no_reseller_in_the_region_leaves_the_lead_unassigned() -> None:
    decision = policy.decide(LEAD, table(reseller("bordeaux", ["33"])), {})
    assert decision == Decision("unassigned", None, "none", (), "none::e-commerce", None)


def test_an_empty_table_leaves_the_lead_unassigned() -> None:
    assert policy.decide(LEAD, {}, {}).status == "unassigned"


def test_an_unknown_region_falls_to_none_without_crashing() -> None:
    decision = policy.decide(LeadScope("78", "99", "e-commerce"),
                             table(reseller("paris", ["75"])), {})
    assert decision.rule == "none"


@pytest.mark.parametrize("excluded", [
    reseller("x-paused", ["78"], status="paused"),
    reseller("x-retired", ["78"], status="retired"),
    reseller("x-wrong-category", ["78"], categories=["security", "broadband"]),
])
def test_inactive_and_wrong_category_resellers_are_never_chosen(excluded: Reseller) -> None:
    resellers = table(excluded, reseller("versailles", ["78"]), reseller("paris", ["75"]))
    decisions = run(LEAD, resellers, 10)
    assert {d.reseller_id for d in decisions} == {"versailles"}
    assert all(excluded.reseller_id not in d.candidates for d in decisions)
    # Alone in its département, the excluded one does not stop the région fallback.
    alone = table(excluded, reseller("paris", ["75"]))
    assert {d.reseller_id for d in run(LEAD, alone, 5)} == {"paris"}
    assert policy.decide(LEAD, table(excluded), {}).status == "unassigned"


@pytest.mark.parametrize("n", [1, 2, 5, 7])
def test_rotation_gives_each_candidate_exactly_its_turns(n: int) -> None:
    resellers = table(*(reseller(f"r{i:02d}", ["78"]) for i in range(n)),
                      reseller("far", ["33"]))
    decisions = run(LEAD, resellers, 3 * n)
    counts = Counter(d.reseller_id for d in decisions)
    assert counts == {f"r{i:02d}": 3 for i in range(n)}
    # Turns, not bursts: every window of n consecutive decisions names n distinct resellers.
    ids = [d.reseller_id for d in decisions]
    assert all(len(set(ids[i:i + n])) == n for i in range(len(ids) - n + 1))


def test_cursors_are_per_scope_and_category() -> None:
    resellers = table(reseller("a", ["78"], categories=["e-commerce", "security"]),
                      reseller("b", ["78"], categories=["e-commerce", "security"]))
    cursors: dict[str, int] = {}
    run(LEAD, resellers, 1, cursors)
    security = policy.decide(LeadScope("78", "11", "security"), resellers, cursors)
    assert security.reseller_id == "a"  # its own cursor, untouched by the e-commerce lead
    assert cursors == {"departement:78:e-commerce": 1}


def test_decisions_do_not_depend_on_the_table_order() -> None:
    resellers = [reseller(f"r{i}", ["78"] if i % 2 else ["92"]) for i in range(8)]
    expected = [(d.reseller_id, d.candidates) for d in run(LEAD, table(*resellers), 12)]
    shuffled = resellers[:]
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        again = [(d.reseller_id, d.candidates) for d in run(LEAD, table(*shuffled), 12)]
        assert again == expected


def test_a_candidate_set_change_keeps_choosing_within_the_new_set() -> None:
    cursors: dict[str, int] = {}
    run(LEAD, table(reseller("a", ["78"]), reseller("b", ["78"]), reseller("c", ["78"])), 2,
        cursors)
    decision = policy.decide(LEAD, table(reseller("a", ["78"])), cursors)
    assert decision.reseller_id == "a"
    assert decision.cursor == 3
