"""The simulator's figures: Gini of known vectors, deviation, percentiles, the worst reseller."""

from __future__ import annotations

import pytest

from services.routing.simulate.metrics import (
    DEVIATION_FLOOR,
    Tally,
    deviation,
    gini,
    percentile,
    summarise,
)
from services.routing.state import Lead, RouterState, Standing


@pytest.mark.parametrize(("values", "expected"), [
    ([5, 5, 5, 5], 0.0),
    ([0, 0, 0, 1], 0.75),
    ([1, 2, 3, 4], 0.25),
    ([0, 0, 10], 2 / 3),
    ([3, 1, 2], 2 / 9),  # order does not matter
    ([], 0.0),
    ([0, 0], 0.0),
])
def test_gini_of_known_vectors(values: list[float], expected: float) -> None:
    assert gini(values) == pytest.approx(expected)


def test_deviation_is_received_over_entitlement_less_one() -> None:
    assert deviation(11, 10) == pytest.approx(0.1)
    assert deviation(9, 10) == pytest.approx(-0.1)
    assert deviation(10, 10) == 0
    with pytest.raises(ValueError, match="positive entitlement"):
        deviation(1, 0)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([1] * 95 + [7] * 5, 0.95) == 1
    assert percentile([1] * 94 + [7] * 6, 0.95) == 7
    assert percentile([], 0.95) == 0


def _lead(lead_id: str, hops: int, status: str = "accepted") -> Lead:
    return Lead(lead_id, "732829320", "e-commerce", "78", "11", "B", None, 0, status=status,
                holder="a", version=hops, hops=hops)


def test_the_worst_deviation_ignores_resellers_below_the_floor() -> None:
    state = RouterState()
    state.standings.update({"a": Standing(100.0, 90), "b": Standing(50.0, 56),
                            "c": Standing(DEVIATION_FLOOR - 1, 0)})
    for lead in (_lead("l1", 1), _lead("l2", 3), _lead("l3", 0, "duplicate")):
        state.leads[lead.lead_id] = lead
    summary = summarise("p", "", state, Tally(origin=0), weights={"a": 2, "b": 1, "c": 1},
                        stale_answers=0, elapsed_s=0.0)
    # c is furthest (-100%) but under the floor; b is +12%, a -10%.
    assert summary.worst_reseller == "b"
    assert summary.worst_deviation == pytest.approx(0.12)
    assert summary.leads == 2  # the duplicate is not a lead
    assert summary.hops_max == 3
    assert summary.hops_mean == 2
    assert summary.hops_histogram == {1: 1, 3: 1}
    assert summary.gini == pytest.approx(gini([90, 56, 0]))
    assert summary.gini_per_weight == pytest.approx(gini([45, 56, 0]))
