"""The routing policy on plain data: eligibility, nearest scope, fair share, the trace."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from services.routing import policy
from services.routing.policy import LeadScope
from services.routing.registry import Registry, Reseller
from services.routing.state import Decision, Exclusion, Standing
from tests.unit.routing_kit import reseller

# Yvelines (78) is in Île-de-France (11), with Paris (75); Calvados (14) is not.
LEAD = LeadScope("78", "11", "e-commerce")
TODAY = date(2026, 3, 3)
QUEUE = "cefac-national"


def decide(resellers: Sequence[Reseller], *, lead: LeadScope = LEAD,
           standings: dict[str, Standing] | None = None, open_counts: dict[str, int] | None = None,
           seen: tuple[str, ...] = (), today: date = TODAY) -> Decision:
    held = standings or {}
    counts = open_counts or {}
    return policy.decide(lead, Registry.of(resellers),
                         standing=lambda i: held.get(i, Standing()),
                         open_count=lambda i: counts.get(i, 0), seen=seen, today=today,
                         national_queue=QUEUE)


def ids(decision: Decision) -> list[str]:
    return [c.reseller_id for c in decision.candidates]


def test_the_departement_decides_when_it_has_an_eligible_reseller() -> None:
    decision = decide([reseller("paris", ["75"]), reseller("versailles", ["78"]),
                       reseller("idf", ["75", "78"])])
    assert (decision.rule, decision.scope) == ("departement", "78")
    assert ids(decision) == ["idf", "versailles"]
    assert decision.winner == "idf"  # level standings: the smaller id
    assert decision.excluded == ()


def test_the_region_decides_when_the_departement_has_nobody() -> None:
    decision = decide([reseller("paris", ["75"]), reseller("caen", ["14"])])
    assert (decision.rule, decision.scope, decision.winner) == ("region", "11", "paris")
    assert ids(decision) == ["paris"]


def test_the_national_queue_takes_what_no_region_reseller_can() -> None:
    decision = decide([reseller("caen", ["14"]), reseller("versailles", ["78"],
                                                          categories=["security"])])
    assert (decision.rule, decision.scope, decision.winner) == ("national", "", QUEUE)
    assert decision.candidates == ()
    assert decision.excluded == ()  # not selling the category: not in the running at all


def test_each_exclusion_reason_is_in_the_trace() -> None:
    resellers = [
        reseller("a-paused", ["78"], status="paused"),
        reseller("b-retired", ["78"], status="retired"),
        reseller("c-away", ["78"], absences=[(date(2026, 3, 1), date(2026, 3, 3))]),
        reseller("d-full", ["78"], capacity=2),
        reseller("e-seen", ["78"]),
        reseller("f-other-trade", ["78"], categories=["security"]),
        reseller("g-free", ["78"]),
    ]
    decision = decide(resellers, open_counts={"d-full": 2}, seen=("e-seen",))
    assert decision.winner == "g-free"
    assert ids(decision) == ["g-free"]
    assert decision.excluded == (Exclusion("a-paused", "inactive"),
                                 Exclusion("b-retired", "inactive"),
                                 Exclusion("c-away", "absent"),
                                 Exclusion("d-full", "at_capacity"),
                                 Exclusion("e-seen", "seen_before"))


def test_an_absence_counts_only_on_its_days() -> None:
    away = reseller("away", ["78"], absences=[(date(2026, 3, 4), date(2026, 3, 6))])
    assert decide([away], today=date(2026, 3, 3)).winner == "away"
    assert decide([away], today=date(2026, 3, 6)).excluded == (Exclusion("away", "absent"),)
    assert decide([away], today=date(2026, 3, 7)).winner == "away"


def test_below_capacity_is_eligible_at_capacity_is_not() -> None:
    full = reseller("r", ["78"], capacity=3)
    assert decide([full], open_counts={"r": 2}).winner == "r"
    assert decide([full], open_counts={"r": 3}).rule == "national"
    assert decide([reseller("zero", ["78"], capacity=0)]).excluded == (
        Exclusion("zero", "at_capacity"),)


def test_the_region_fallback_records_who_the_departement_left_out() -> None:
    decision = decide([reseller("versailles", ["78"], capacity=1), reseller("paris", ["75"])],
                      open_counts={"versailles": 1})
    assert (decision.rule, decision.winner) == ("region", "paris")
    assert decision.excluded == (Exclusion("versailles", "at_capacity"),)


def test_the_national_rule_records_everyone_left_out() -> None:
    decision = decide([reseller("versailles", ["78"]), reseller("paris", ["75"])],
                      seen=("paris", "versailles"))
    assert (decision.rule, decision.winner) == ("national", QUEUE)
    assert decision.excluded == (Exclusion("paris", "seen_before"),
                                 Exclusion("versailles", "seen_before"))


def test_the_trace_gives_every_candidate_its_standing() -> None:
    decision = decide([reseller("a", ["78"], weight=1, capacity=5),
                       reseller("b", ["78"], weight=3, capacity=9)],
                      standings={"a": Standing(2.5, 2), "b": Standing(4.0, 5)},
                      open_counts={"a": 1, "b": 4})
    a, b = decision.candidates
    assert (a.reseller_id, a.weight, a.share, a.entitlement, a.received, a.open, a.capacity) == (
        "a", 1, 0.25, 2.75, 2, 1, 5)
    assert (b.reseller_id, b.weight, b.share, b.entitlement, b.received, b.open, b.capacity) == (
        "b", 3, 0.75, 4.75, 5, 4, 9)
    assert (a.deficit, b.deficit) == (0.75, -0.25)
    assert decision.winner == "a"  # furthest below its entitlement


def test_the_furthest_below_its_entitlement_wins() -> None:
    resellers = [reseller("a", ["78"]), reseller("b", ["78"]), reseller("c", ["78"])]
    decision = decide(resellers, standings={"a": Standing(10, 10), "b": Standing(10, 9),
                                            "c": Standing(10, 11)})
    assert decision.winner == "b"


def test_ties_go_to_the_smaller_id_whatever_the_insertion_order() -> None:
    names = ["m", "b", "z", "a"]
    for order in (names, list(reversed(names))):
        decision = decide([reseller(n, ["78"]) for n in order])
        assert decision.winner == "a"
        assert ids(decision) == ["a", "b", "m", "z"]


def test_float_noise_does_not_break_a_tie() -> None:
    # 0.1 + 0.2 != 0.3 in binary; rounded at 9 places the two deficits are equal.
    decision = decide([reseller("a", ["78"]), reseller("b", ["78"])],
                      standings={"a": Standing(0.3, 0), "b": Standing(0.1 + 0.2, 0)})
    assert decision.winner == "a"


def test_the_same_inputs_give_the_same_decision() -> None:
    resellers = [reseller(f"r{n}", ["78", "75"], weight=n % 3 + 1) for n in range(8)]
    standings = {f"r{n}": Standing(n * 0.7, n // 2) for n in range(8)}
    first = decide(resellers, standings=standings, open_counts={"r3": 2})
    assert all(decide(resellers, standings=standings, open_counts={"r3": 2}) == first
               for _ in range(5))


def test_weighted_shares_hold_over_a_run() -> None:
    """Fed its own decisions back, the policy gives each reseller its weight's share."""
    resellers = [reseller("a", ["78"], weight=1), reseller("b", ["78"], weight=2),
                 reseller("c", ["78"], weight=5)]
    standings: dict[str, Standing] = {}
    for _ in range(800):
        decision = decide(resellers, standings=standings)
        for c in decision.candidates:
            won = c.reseller_id == decision.winner
            standings[c.reseller_id] = Standing(c.entitlement, c.received + won)
    assert {i: s.received for i, s in standings.items()} == {"a": 100, "b": 200, "c": 500}


def test_a_reseller_left_out_accrues_nothing_meanwhile() -> None:
    resellers = [reseller("a", ["78"]), reseller("b", ["78"])]
    decision = decide(resellers, standings={"a": Standing(3.0, 3), "b": Standing(1.0, 1)},
                      seen=("a",))
    assert ids(decision) == ["b"]
    assert decision.candidates[0].entitlement == 2.0  # the whole lead, b alone eligible
